"""``qactuar status|processes|apps|logs|reload|scale|config|set`` against an admin server on a thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import FakeBackend, ThreadedAdmin, free_port, record

from qactuar.cli import main
from qactuar.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in an empty directory with no QACTUAR_* variables."""
    for name in [name for name in os.environ if name.startswith("QACTUAR_")]:
        monkeypatch.delenv(name)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.chdir(site)
    return site


@pytest.fixture
def site(clean_env: Path) -> Iterator[ThreadedAdmin]:
    """A directory with a qactuar.toml (admin on a free port, recorded) and its admin server running."""
    (clean_env / "qactuar.toml").write_text('admin_host = "127.0.0.1"\nadmin_port = 0\n')
    threaded = ThreadedAdmin(FakeBackend(), load_config(cwd=str(clean_env))).start()
    yield threaded
    threaded.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_json(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == FakeBackend().status()


def test_status_table(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert out.splitlines() == [
        "version            0.3.0",
        "mode               prefork",
        "uptime             1h02m",
        "generation         2",
        "listen             http://127.0.0.1:8000",
        "totals.requests    1234",
        "totals.in_flight   1",
        "totals.error_rate  1.5%",
    ]


def test_processes_and_apps_tables(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "processes")
    header, master, worker = out.splitlines()
    assert code == 0
    assert header.split() == ["PID", "ROLE", "GEN", "STATE", "REQUESTS", "IN", "FLIGHT", "CPU", "RSS", "AGE"]
    assert worker.split()[:8] == ["10234", "worker", "2", "serving", "1234", "1", "12.2%", "50.0"]
    assert len(header) >= len(master.rstrip())
    code, out, _ = run(capsys, "apps")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ROUTE", "APP", "SOURCE"]
    assert "\x1b" not in out
    assert lines[2].endswith("ImportError: no module named 'api'")  # the first line of the error only


def test_config_is_redacted(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    site.backend.secret_config = {"SSL_KEY_PASSWORD": "hunter2"}
    code, out, _ = run(capsys, "config")
    assert code == 0
    assert 'SSL_KEY_PASSWORD  "<redacted>"' in out and "hunter2" not in out
    code, out, _ = run(capsys, "config", "--json")
    assert json.loads(out)["SSL_KEY_PASSWORD"] == "<redacted>"


def test_logs(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "logs")
    assert code == 0
    assert [line.split(" ", 3)[2:] for line in out.splitlines()] == [
        ["INFO", "    qt_server hello"],
        ["WARNING", " qt_server disk low"],
        ["ERROR", "   qt_server [/api] boom"],
    ]
    code, out, _ = run(
        capsys, "logs", "--json", "-n", "1", "--level", "warning", "--app", "/api", "--grep", "BOO"
    )
    assert [r["seq"] for r in json.loads(out)] == [3]
    [call] = [c for c in site.backend.calls if c[0] == "logs"][-1:]
    assert call[1] == 1 and call[2].route == "/api" and call[2].text == "BOO"


def test_mutating_commands(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "reload") == (0, "generation  3\n", "")
    assert run(capsys, "scale", "4") == (0, "workers  4\n", "")
    assert run(capsys, "set", "log_level", "debug", "--json") == (0, '{\n  "LOG_LEVEL": "DEBUG"\n}\n', "")
    assert [c for c in site.backend.calls if c[0] in ("reload", "scale", "set")] == [
        ("reload",),
        ("scale", 4),
        ("set", "LOG_LEVEL", "DEBUG"),
    ]


def test_refused_request_is_one_line(site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "set", "PORT", "80")
    assert (code, out) == (1, "")
    assert err.startswith("qactuar: error: set: 'PORT' cannot be changed while the server runs; these can: ")
    assert err.count("\n") == 1
    code, _, err = run(capsys, "scale", "13")
    assert (code, err) == (1, "qactuar: error: 13 workers is unlucky\n")


def test_server_not_running(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status")
    assert (code, out) == (1, "")
    assert err.startswith("qactuar: error: no admin token file at ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_server_stopped_leaves_a_token_but_no_address(
    site: ThreadedAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    site.stop()
    code, _, err = run(capsys, "processes")
    assert code == 1
    assert "ADMIN_PORT is 0 and no running server has recorded its admin address" in err
    assert err.count("\n") == 1


def test_nothing_listening_on_a_fixed_port(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    (clean_env / "qactuar.toml").write_text(f"admin_port = {port}\nadmin_host = '127.0.0.1'\n")
    token_file = clean_env / ".qactuar" / "admin.token"
    token_file.parent.mkdir()
    token_file.write_text("t" * 43)
    code, _, err = run(capsys, "status")
    assert code == 1
    refused = f"no Qactuar admin server at 127.0.0.1:{port} (Connection refused): is the server running?"
    assert err == f"qactuar: error: {refused}\n"


def test_explicit_address_and_token_file(
    site: ThreadedAdmin, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = site.server.config.admin_token_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run(
        capsys, "apps", "--json", "--admin", site.addresses[0], "--token-file", str(token_file)
    )
    assert (code, err) == (0, "")
    assert [app["route"] for app in json.loads(out)] == ["/", "/api"]
    code, out, err = run(capsys, "apps", "--config", str(token_file.parent.parent / "qactuar.toml"), "--json")
    assert code == 0


def test_wrong_token_file(site: ThreadedAdmin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("w" * 43)
    code, _, err = run(capsys, "status", "--token-file", str(wrong), "--admin", site.addresses[0])
    assert code == 1
    assert "refused the login: authentication failed: wrong admin token" in err and str(wrong) in err


def test_bad_admin_address_is_a_usage_error(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--admin", "localhost")
    assert code == 2
    assert "is not HOST:PORT" in err


def test_unix_socket_flag(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sock = clean_env / "run" / "admin.sock"
    (clean_env / "qactuar.toml").write_text(f"admin_socket = {json.dumps(str(sock))}\n")
    threaded = ThreadedAdmin(FakeBackend(), load_config(cwd=str(clean_env))).start()
    try:
        assert threaded.addresses == [f"unix:{sock}"]
        code, out, _ = run(capsys, "status", "--json")  # found through the config
        assert code == 0 and json.loads(out)["generation"] == 2
        token_file = clean_env / ".qactuar" / "admin.token"
        code, out, _ = run(capsys, "status", "--json", "--socket", str(sock), "--token-file", str(token_file))
        assert code == 0
    finally:
        threaded.stop()


def test_logs_follow(site: ThreadedAdmin, clean_env: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QACTUAR_")}
    env["PYTHONPATH"] = str(REPO)
    follower = subprocess.Popen(
        [sys.executable, "-m", "qactuar", "logs", "-f", "-n", "2", "--json", "--level", "WARNING"],
        cwd=clean_env,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert [json.loads(follower.stdout.readline())["seq"] for _ in range(2)] == [2, 3]
        site.call(site.backend.emit, record(60, "DEBUG", "too quiet"))
        site.call(site.backend.emit, record(61, "ERROR", "followed"))
        assert json.loads(follower.stdout.readline())["message"] == "followed"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 130
        assert follower.stderr is not None and follower.stderr.read() == ""
    finally:
        follower.kill()
        follower.wait()
        for stream in (follower.stdout, follower.stderr):
            if stream is not None:
                stream.close()
