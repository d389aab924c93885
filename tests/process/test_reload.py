"""Generation handover: SIGHUP and --reload pick up new code; broken code never replaces good code."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]

APP_TEMPLATE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""


def write_app(folder: Path, name: str, version: str) -> None:
    path = folder / f"{name}.py"
    path.write_text(APP_TEMPLATE.format(version=version))
    # make sure the mtime moves even on coarse clocks
    stamp = time.time() + 1
    import os

    os.utime(path, (stamp, stamp))


def body(server: ServerProcess, path: str = "/") -> str:
    return httpx.get(server.url + path, timeout=5, headers={"Connection": "close"}).text


@pytest.mark.parametrize("mode", ["prefork", "postfork"])
def test_sighup_serves_new_code_and_keeps_old_on_error(
    start_server: StartServer, tmp_path: Path, mode: str
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    write_app(code, "live_app", "v1")
    write_app(code, "other_app", "other-v1")
    srv = start_server(
        {"/": "live_app:app", "/other": "other_app:app"},
        mode=mode,
        settings={"app_dir": str(code), "workers": 1},
    )
    assert body(srv) == "v1"
    write_app(code, "live_app", "v2")
    srv.signal(signal.SIGHUP)
    assert wait_until(lambda: body(srv) == "v2", 15)
    (code / "live_app.py").write_text("def broken(:\n")
    srv.signal(signal.SIGHUP)
    assert wait_until(lambda: "Reload failed" in srv.output(), 15)
    assert "SyntaxError" in srv.output() or "invalid syntax" in srv.output()
    assert body(srv) == "v2"
    assert body(srv, "/other") == "other-v1"


def test_reload_with_bad_config_keeps_serving(start_server: StartServer) -> None:
    srv = start_server({"/": "basic:hello"}, mode="prefork", settings={"workers": 1})
    srv.config_path.write_text(srv.config_path.read_text() + "\nport = 'not a number'\n")
    srv.signal(signal.SIGHUP)
    assert wait_until(lambda: "Reload refused" in srv.output(), 10)
    assert body(srv) == "Hello, world!"


@pytest.mark.parametrize("mode", ["async", "prefork"])
def test_reload_flag_watches_files(start_server: StartServer, tmp_path: Path, mode: str) -> None:
    code = tmp_path / "code"
    code.mkdir()
    write_app(code, "watched_app", "before")
    srv = start_server({"/": "watched_app:app"}, mode=mode, settings={"app_dir": str(code), "reload": True})
    assert body(srv) == "before"
    write_app(code, "watched_app", "after")
    assert wait_until(lambda: body(srv) == "after", 15)


def test_usr1_reopens_log_files(start_server: StartServer, tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "{message}", "style": "{"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"},
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "qt_access": {"handlers": ["file"], "level": "INFO"},
            "qt_server": {"handlers": ["console"], "level": "INFO"},
        },
    }
    srv = start_server(
        {"/": "basic:hello"}, mode="prefork", settings={"workers": 1, "logs": logs}, json_config=True
    )
    httpx.get(srv.url + "/first", timeout=5)
    assert wait_until(lambda: log_file.exists() and "/first" in log_file.read_text(), 5)
    log_file.rename(tmp_path / "access.log.1")
    srv.signal(signal.SIGUSR1)
    assert wait_until(lambda: "Log files reopened" in srv.output(), 5)
    httpx.get(srv.url + "/second", timeout=5)
    assert wait_until(lambda: log_file.exists() and "/second" in log_file.read_text(), 5)
    assert "/second" not in (tmp_path / "access.log.1").read_text()
