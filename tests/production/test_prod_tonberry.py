"""The seed's Tonberry example runs unchanged, programmatically and mounted from a config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from production_support import EXAMPLE_APPS
from server_process import LISTEN_RE, wait_until

pytest.importorskip("tonberry")


def test_seed_programmatic_example_runs_unchanged(tmp_path: Path) -> None:
    """``python seed.py``: create_app(Root) and qactuar.run(app=app), settings from the environment only."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "QACTUAR_PORT": "0",
        "QACTUAR_ADMIN_PORT": "0",
        "QACTUAR_WORKERS": "1",
        "QACTUAR_USE_UVLOOP": "false",
    }
    log = tmp_path / "out.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE_APPS / "tonberry_example" / "seed.py")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: LISTEN_RE.search(log.read_text()) or proc.poll() is not None, 15)
        match = LISTEN_RE.search(log.read_text())
        assert match is not None, log.read_text()
        reply = httpx.get(f"http://127.0.0.1:{match.group(3)}/")
        assert (reply.status_code, reply.text) == (200, "Hello, world!")
    finally:
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()


def test_tonberry_example_mounted_from_a_config(start_server) -> None:
    server = start_server({"/": "tonberry_example:app"}, settings={"app_dir": str(EXAMPLE_APPS)})
    assert httpx.get(server.url + "/").text == "Hello, world!"
    assert httpx.get(server.url + "/nothing-here").status_code == 404
