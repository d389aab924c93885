"""The console's parts without a screen: hostile text, bounded memory, parsing replies, the command line."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from qactuar.admin.client import AdminUnavailable, Location
from qactuar.stats.models import StatsPoint
from qactuar_tui import __main__ as cli
from qactuar_tui.backend import (
    AdminBackend,
    DeployRequest,
    LogRecord,
    Snapshot,
    login_refused,
)
from qactuar_tui.factory import ConnectOptions, locator
from qactuar_tui.model import LEVELS, LogBuffer, LogQuery, StatsHistory
from qactuar_tui.text import clean, duration, millis, size
from qactuar_tui.widgets.live_table import cell

PACKAGE = Path(__file__).resolve().parents[2] / "qactuar_tui"
ALLOWED = {"qactuar.admin.client", "qactuar.admin.statefiles", "qactuar.config", "qactuar.stats.models"}


class TestText:
    def test_escape_sequences_are_shown_not_obeyed(self) -> None:
        assert clean("/x\x1b[31m\x1b[2J") == "/x\\x1b[31m\\x1b[2J"

    def test_c1_bidi_and_separators_are_visible(self) -> None:
        assert clean("a\x9bb\u202ec\u2028d\x00") == "a\\x9bb\\u202ec\\u2028d\\x00"

    def test_newlines_kept_only_when_multiline(self) -> None:
        assert clean("a\r\nb\tc") == "a\\x0d\\x0ab    c"
        assert clean("a\r\nb\rc", multiline=True) == "a\nb\\x0dc"

    def test_table_cells_are_plain_text(self) -> None:
        text = cell("[bold red]pwned[/]\x1b[31m")
        assert isinstance(text, Text)
        assert text.plain == "[bold red]pwned[/]\\x1b[31m"
        assert text.spans == []
        assert text.order == "[bold red]pwned[/]\x1b[31m"

    def test_labels(self) -> None:
        assert [duration(s) for s in (5, 65, 3725, 90_000)] == ["5s", "1m 05s", "1h 02m", "1d 01h"]
        assert [size(n) for n in (None, 512, 2048, 3 * 1024**3)] == ["—", "512 B", "2.0 KiB", "3.0 GiB"]
        assert [millis(v) for v in (None, 0.42, 12.34, 4321.0)] == ["—", "0.42 ms", "12.3 ms", "4,321 ms"]


def record(seq: int, level: str = "INFO", message: str = "m", **more: Any) -> LogRecord:
    return LogRecord(seq, 1000.0 + seq, level, "qt_access", message, **more)


class TestMemory:
    def test_history_keeps_new_points_and_pads_the_window(self) -> None:
        history = StatsHistory(seconds=5)
        history.extend([StatsPoint(t=1, req_per_s=1.0), StatsPoint(t=2, req_per_s=2.0)])
        history.extend([StatsPoint(t=2, req_per_s=99.0), StatsPoint(t=3)])
        assert history.last_time == 3
        assert history.values(lambda p: p.req_per_s) == [0.0, 0.0, 1.0, 2.0, 0.0]
        history.extend(StatsPoint(t=4 + n, p99_ms=None) for n in range(10))
        assert history.values(lambda p: p.p99_ms) == [0.0] * 5

    def test_log_buffer_is_bounded_and_drops_repeats(self) -> None:
        buffer = LogBuffer(size=3)
        buffer.new_server((1, 10.0))
        assert [buffer.add(record(n)) for n in (1, 2, 2, 1, 3, 4)] == [True, True, False, False, True, True]
        assert [r.seq for r in buffer.matching(LogQuery(), 10)] == [2, 3, 4]
        assert buffer.added == 4
        assert [r.seq for r in buffer.since(2)] == [3, 4]
        assert [r.seq for r in buffer.since(0)] == [2, 3, 4]  # what is still held

    def test_a_restarted_server_starts_seq_again(self) -> None:
        buffer = LogBuffer()
        buffer.new_server((1, 10.0))
        buffer.add(record(50))
        buffer.new_server((1, 10.0))
        assert not buffer.add(record(7))
        buffer.new_server((2, 20.0))
        assert buffer.add(record(7))

    def test_query(self) -> None:
        error = record(1, "ERROR", "Exception in ASGI app", route="/api", exc_text="KeyError: 'Token'")
        assert LogQuery(level=LEVELS["WARNING"]).matches(error)
        assert not LogQuery(level=LEVELS["WARNING"]).matches(record(2))
        assert LogQuery(route="/api", text="keyerror").matches(error)
        assert not LogQuery(route="/").matches(error)
        assert not LogQuery(text="nothing like it").matches(error)


class _Client:
    """Stands in for an AdminClient: answers every request with ``reply``."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def request(self, command: str, **args: Any) -> Any:
        self.sent.append((command, args))
        return self.reply

    async def close(self) -> None:
        return None


def backend_answering(reply: Any) -> tuple[AdminBackend, _Client]:
    backend = AdminBackend(lambda: Location(("127.0.0.1", 1), "t" * 43))
    client = _Client(reply)
    backend._client = client  # type: ignore[assignment]
    return backend, client


STATUS = {
    "version": "0.3.0",
    "mode": "prefork",
    "pid": 10,
    "started_at": 5.0,
    "uptime": 2.5,
    "generation": 1,
    "workers": 2,
    "listen": ["http://127.0.0.1:8000"],
    "totals": {"requests": 3, "status": {"2xx": 3}, "newer_field": 1},
    "generations": [{"number": 1}],
}


class TestBackend:
    def test_a_stats_event_becomes_records(self) -> None:
        snapshot = Snapshot.from_dict(
            {
                "time": 9.0,
                "status": STATUS,
                "processes": [{"pid": 10, "role": "master", "generation": 0, "state": "running"}],
                "apps": [{"route": "/", "spec": "a:b", "source": "config", "state": "loaded"}],
            }
        )
        assert snapshot.status.totals.requests == 3
        assert snapshot.processes[0].role == "master"
        assert snapshot.apps[0].route == "/"

    async def test_a_reply_it_cannot_read_is_a_broken_connection(self) -> None:
        backend, _ = backend_answering({"version": "0.3.0"})
        with pytest.raises(AdminUnavailable, match="status this console cannot read"):
            await backend.status()

    async def test_commands_send_only_what_was_given(self) -> None:
        backend, client = backend_answering({"ok": True})
        await backend.update("blog", "")
        await backend.update("blog", "v2")
        await backend.scale(3)
        assert client.sent == [
            ("update", {"name": "blog"}),
            ("update", {"name": "blog", "ref": "v2"}),
            ("scale", {"n": 3}),
        ]
        assert DeployRequest("file:///r.git", "/r", ref="main").args() == {
            "url": "file:///r.git",
            "route": "/r",
            "ref": "main",
        }

    def test_login_refused_is_told_apart(self) -> None:
        assert login_refused(AdminUnavailable("the admin server at x refused the login: wrong admin token"))
        assert not login_refused(AdminUnavailable("no Qactuar admin server at x (refused): is it running?"))


class TestCommandLine:
    def test_bad_address_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--admin", "nowhere"])
        assert exit_info.value.code == 2
        assert "is not HOST:PORT" in capsys.readouterr().err

    def test_admin_and_socket_exclude_each_other(self) -> None:
        with pytest.raises(SystemExit):
            cli.main(["--admin", "localhost:1986", "--socket", "/tmp/admin.sock"])

    def test_a_bad_config_is_one_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        config = tmp_path / "qactuar.toml"
        config.write_text("admin_port = 'many'\n")
        assert cli.main(["--config", str(config)]) == 2
        error = capsys.readouterr().err
        assert error.startswith("qactuar-tui: error:") and "ADMIN_PORT" in error.upper()
        assert "Traceback" not in error

    def test_flags_override_the_config(self, tmp_path: Path) -> None:
        token = tmp_path / "token"
        token.write_text("x" * 43)
        token.chmod(0o600)
        find, name = locator(ConnectOptions(admin=("127.0.0.1", 4321), token_file=str(token), config=None))
        assert name == "127.0.0.1:4321"
        location = find()
        assert location.address == ("127.0.0.1", 4321)
        assert location.token == "x" * 43


def test_the_console_imports_no_server_internals() -> None:
    """Only the admin client (and its address files), the config loader and the shared stats records."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    server_side = {name for name in found if name == "qactuar" or name.startswith("qactuar.")}
    assert server_side <= ALLOWED, server_side - ALLOWED
