"""The admin server on real sockets against a fake backend: login first, then commands, limits, files."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from admin_support import FAST, FakeBackend, Raw, admin_config, frame, free_port, hello, record, token_of
from conftest import Running

from qactuar.admin import (
    AdminClient,
    AdminError,
    AdminLimits,
    AdminServer,
    AdminUnavailable,
    Location,
    SyncAdminClient,
    locate,
)
from qactuar.admin.protocol import Error, Event, Response, Welcome
from qactuar.admin.statefiles import addr_file, parse_address


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def server_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qt_server" and r.levelno == logging.WARNING]


async def login(admin: Running) -> AdminClient:
    return await AdminClient.connect(admin.location)


# --- logging in ---------------------------------------------------------------------------------------------


async def test_login_and_commands(admin: Running) -> None:
    async with await login(admin) as client:
        assert (await client.request("ping"))["time"] > 0
        assert (await client.request("status"))["mode"] == "prefork"
        assert [p["pid"] for p in await client.request("processes")] == [100, 10234]
        assert (await client.request("apps"))[1]["state"] == "failed"
        assert await client.request("stats", seconds=60, route="/api") == {
            "seconds": 60,
            "route": "/api",
            "totals": [],
        }
        assert [r["seq"] for r in await client.request("logs", n=2)] == [2, 3]
        assert [r["seq"] for r in await client.request("logs", level="warning", route="/api")] == [3]


async def test_welcome_names_the_server(admin: Running) -> None:
    raw = await Raw.open(admin.address)
    await raw.send(hello(admin.token))
    welcome = await raw.next()
    assert isinstance(welcome, Welcome) and welcome.server.startswith("qactuar ") and welcome.version == 1
    await raw.close()


async def expect_closed(admin: Running, data: bytes, error: str | None) -> None:
    """Send ``data``; the server must close, with an error frame containing ``error`` (None: no reply)."""
    raw = await Raw.open(admin.address)
    await raw.send(data)
    messages = await raw.messages()
    if error is None:
        assert messages == []
    else:
        assert len(messages) == 1 and isinstance(messages[0], Error)
        assert error in messages[0].error
    await raw.close()
    assert admin.backend.calls == []


async def test_wrong_token(admin: Running) -> None:
    await expect_closed(admin, hello("x" * 43), "authentication failed")


async def test_wrong_token_then_a_command_in_the_same_packet(admin: Running) -> None:
    request = frame({"type": "request", "id": 1, "command": "reload", "args": {}})
    await expect_closed(admin, hello(admin.token[:-1] + "A") + request, "authentication failed")


async def test_command_before_login(admin: Running) -> None:
    await expect_closed(admin, frame({"type": "request", "id": 1, "command": "reload"}), "must be a hello")


async def test_http_request_is_closed_without_a_reply(admin: Running) -> None:
    await expect_closed(admin, b"GET / HTTP/1.1\r\nHost: localhost:1986\r\n\r\n", None)
    await expect_closed(admin, b"POST /reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n", None)


async def test_two_mebibyte_frame(admin: Running) -> None:
    await expect_closed(admin, struct.pack(">I", 2 * 1024 * 1024) + b"{" * 65536, "exceeds")


async def test_before_login_a_frame_can_only_be_hello_sized(admin: Running) -> None:
    await expect_closed(admin, struct.pack(">I", 8192) + b" " * 8192, "exceeds the 4096-byte limit")


async def test_invalid_json(admin: Running) -> None:
    payload = b'{"type": "hello", "token": '
    await expect_closed(admin, struct.pack(">I", len(payload)) + payload, "not valid UTF-8 JSON")


async def test_no_hello_times_out(admin: Running) -> None:
    raw = await Raw.open(admin.address)
    loop = asyncio.get_running_loop()
    started = loop.time()
    [message] = await raw.messages()
    assert isinstance(message, Error) and "no hello within" in message.error
    assert FAST.auth_timeout <= loop.time() - started < FAST.auth_timeout + 2
    await raw.close()


async def test_half_a_hello_times_out(admin: Running) -> None:
    raw = await Raw.open(admin.address)
    await raw.send(hello(admin.token)[:10])
    [message] = await raw.messages()
    assert isinstance(message, Error) and "no hello" in message.error
    await raw.close()


async def test_wrong_protocol_version(admin: Running) -> None:
    await expect_closed(
        admin, frame({"type": "hello", "version": 99, "token": admin.token}), "version 99 is not supported"
    )


async def test_second_hello_is_a_protocol_error(admin: Running) -> None:
    raw = await Raw.open(admin.address)
    await raw.send(hello(admin.token) + hello(admin.token))
    messages = await raw.messages()
    assert isinstance(messages[0], Welcome)
    assert isinstance(messages[1], Error) and "second hello" in messages[1].error
    await raw.close()


async def test_token_is_compared_in_constant_time(admin: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    await expect_closed(admin, hello(admin.token[:20]), "authentication failed")
    assert seen == [(admin.token[:20].encode(), admin.token.encode())]


async def test_async_client_with_a_wrong_token(admin: Running) -> None:
    with pytest.raises(AdminUnavailable, match="refused the login: authentication failed"):
        await AdminClient.connect(Location(parse_address(admin.address), "y" * 43, "/some/admin.token"))


# --- throttling and logs ------------------------------------------------------------------------------------


async def test_rapid_failures_lock_logins_out(admin: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(FAST.failures):
        await expect_closed(admin, hello("z" * 43), "authentication failed")
    # Locked out: even the right token is refused, without being checked.
    await expect_closed(admin, hello(admin.token), "too many failed logins")
    warnings = server_warnings(caplog)
    assert any("failed logins within" in line for line in warnings)
    assert len(warnings) <= FAST.failures + 1  # the rejection lines are throttled too
    await asyncio.sleep(FAST.lockout + 0.1)
    async with await login(admin) as client:
        assert await client.request("ping")


async def test_http_probes_do_not_lock_the_operator_out(admin: Running) -> None:
    for _ in range(FAST.failures * 2):
        await expect_closed(admin, b"GET / HTTP/1.1\r\n\r\n", None)
    async with await login(admin) as client:
        assert await client.request("ping")


async def test_a_flood_of_rejections_is_not_a_flood_of_log_lines(
    admin: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(30):
        await expect_closed(admin, b"GET / HTTP/1.1\r\n\r\n", None)
    warnings = server_warnings(caplog)
    assert len(warnings) == FAST.failures
    assert "not logged for a while" in warnings[-1]
    assert all("rejected" in line for line in warnings)


async def test_the_token_is_never_logged_or_shown(admin: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = admin.token
    admin.backend.secret_config = {
        "ADMIN_TOKEN": token,
        "ADMIN_TOKEN_FILE": "/srv/state/admin.token",
        "SSL_KEY_PASSWORD": "hunter2",
        "DB_SECRET": "s",
        "LOGS": {"handlers": {"mail": {"credentials": ["user", "pw"], "note": f"token={token}"}}},
        "EMPTY_PASSWORD": "",
    }
    await expect_closed(admin, hello(token[:-2]), "authentication failed")
    async with await login(admin) as client:
        shown = await client.request("config")
        await client.request("set", key="LOG_LEVEL", value="debug")
        with pytest.raises(AdminError):  # a token pasted as a value is refused, and not audit-logged
            await client.request("set", key="LOG_LEVEL", value=token)
    assert "Admin audit" in caplog.text
    assert token not in caplog.text
    assert token not in str(shown)
    assert shown["ADMIN_TOKEN"] == shown["SSL_KEY_PASSWORD"] == shown["DB_SECRET"] == "<redacted>"
    assert shown["ADMIN_TOKEN_FILE"] == "<redacted>"
    assert shown["LOGS"]["handlers"]["mail"] == {"credentials": "<redacted>", "note": "token=<redacted>"}
    assert shown["EMPTY_PASSWORD"] == ""  # visible: no password is set
    assert shown["PORT"] == 8000


# --- commands -----------------------------------------------------------------------------------------------


async def test_unknown_command_and_bad_arguments_keep_the_connection(admin: Running) -> None:
    async with await login(admin) as client:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("frobnicate", {}, "unknown command 'frobnicate'; commands: apps, config"),
            ("scale", {}, "scale: missing argument 'n'"),
            ("scale", {"n": "many"}, "argument 'n' must be int"),
            ("scale", {"n": True}, "argument 'n' must be int"),
            ("scale", {"n": 0}, "must be from 1 to 1024"),
            ("logs", {"n": 0}, "must be from 1 to 5000"),
            ("logs", {"level": "LOUD"}, "must be a level name"),
            ("status", {"verbose": True}, "status: unknown argument 'verbose'; it takes no arguments"),
            ("set", {"key": "PORT", "value": 80}, "these can: LOG_LEVEL, WORKERS"),
            ("set", {"key": "WORKERS", "value": -1}, "WORKERS must be a whole number"),
            ("set", {"key": "LOG_LEVEL", "value": "chatty"}, "LOG_LEVEL must be DEBUG"),
            ("subscribe", {"topic": "weather"}, "unknown topic 'weather'; topics: stats, log"),
            ("subscribe", {"topic": "log", "colour": "red"}, "unknown argument 'colour'"),
            ("unsubscribe", {"sub": 42}, "no subscription 42"),
        ]
        for command, args, message in cases:
            with pytest.raises(AdminError) as info:
                await client.request(command, **args)
            assert message in str(info.value), (command, args)
        assert await client.request("ping")
    mutations = [call for call in admin.backend.calls if call[0] in ("reload", "scale", "set")]
    assert mutations == []


async def test_mutating_commands(admin: Running) -> None:
    async with await login(admin) as client:
        assert await client.request("reload") == {"generation": 3}
        assert await client.request("scale", n=4) == {"workers": 4}
        assert await client.request("set", key="log_level", value="debug") == {"LOG_LEVEL": "DEBUG"}
        assert await client.request("set", key="WORKERS", value="3") == {"WORKERS": 3}
    assert admin.backend.calls == [
        ("reload",),
        ("scale", 4),
        ("set", "LOG_LEVEL", "DEBUG"),
        ("set", "WORKERS", 3),
    ]


async def test_backend_errors(admin: Running, caplog: pytest.LogCaptureFixture) -> None:
    async with await login(admin) as client:
        with pytest.raises(AdminError, match=r"^13 workers is unlucky$"):
            await client.request("scale", n=13)
        with pytest.raises(AdminError, match="internal error in 'scale'; the server log has details"):
            await client.request("scale", n=14)
        assert await client.request("ping")
    assert "a bug in the master" in caplog.text  # the traceback is in the server's log


async def test_audit_log(admin: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qt_server")
    async with await login(admin) as client:
        await client.request("status")
        await client.request("reload")
        await client.request("scale", n=3)
        with pytest.raises(AdminError):
            await client.request("scale", n=13)
        with pytest.raises(AdminError):
            await client.request("set", key="PORT", value=1)
    audit = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Admin audit")]
    peer = "127.0.0.1:"
    assert len(audit) == 4 and all(peer in line for line in audit)
    assert audit[0].endswith("ran reload {}: ok")
    assert audit[1].endswith('ran scale {"n": 3}: ok')
    assert audit[2].endswith('ran scale {"n": 13}: failed: 13 workers is unlucky')
    assert 'ran set {"key": "PORT", "value": 1}: refused: set:' in audit[3]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.getMessage().startswith("Admin audit"))


async def test_a_slow_command_does_not_hold_up_others(admin: Running) -> None:
    admin.backend.reload_gate = gate = asyncio.Event()
    async with await login(admin) as client:
        reload = asyncio.create_task(client.request("reload"))
        assert await asyncio.wait_for(client.request("ping"), 2)
        assert not reload.done()
        gate.set()
        assert await reload == {"generation": 3}


async def test_a_reply_too_large_for_a_frame_is_an_error_reply(admin: Running) -> None:
    admin.backend.huge_logs = True
    async with await login(admin) as client:
        with pytest.raises(AdminError, match=r"could not be sent.*frame limit"):
            await client.request("logs", n=2000)
        assert await client.request("ping")


async def test_requests_in_flight_are_capped(backend: FakeBackend, config: Any) -> None:
    server = AdminServer(backend, config, limits=AdminLimits(max_in_flight=2))
    [address] = await server.start()
    backend.reload_gate = gate = asyncio.Event()
    async with await AdminClient.connect(Location(parse_address(address), token_of(config))) as client:
        reloads = [asyncio.create_task(client.request("reload")) for _ in range(2)]
        ping = asyncio.create_task(client.request("ping"))
        await asyncio.sleep(0.2)
        assert not ping.done()  # the third request waits, unread, until one of the two finishes
        gate.set()
        await asyncio.wait_for(asyncio.gather(*reloads, ping), 2)
    await server.close()


# --- subscriptions ------------------------------------------------------------------------------------------


async def test_subscribe_to_logs(admin: Running) -> None:
    async with await login(admin) as client:
        sub = await client.subscribe("log", level="WARNING", route="/api")
        admin.backend.emit(record(10, "INFO", "quiet", route="/api"))
        admin.backend.emit(record(11, "ERROR", "other app", route="/"))
        admin.backend.emit(record(12, "ERROR", "wanted", route="/api"))
        event = await asyncio.wait_for(anext(sub), 2)
        assert (event.event, event.sub, event.data["seq"], event.dropped) == ("log", sub.sub, 12, 0)
        await sub.close()
        assert admin.backend.listeners == []
        with pytest.raises(StopAsyncIteration):
            await anext(sub)


async def test_subscribe_to_stats(admin: Running) -> None:
    async with await login(admin) as client:
        sub = await client.subscribe("stats")
        first = await asyncio.wait_for(anext(sub), 2)
        second = await asyncio.wait_for(anext(sub), 2)
        assert first.event == "stats" and set(first.data) == {"time", "status", "processes", "apps"}
        assert second.data["time"] >= first.data["time"]
        await sub.close()


async def test_subscriptions_end_with_the_connection(admin: Running) -> None:
    client = await login(admin)
    await client.subscribe("log")
    await client.subscribe("stats")
    assert len(admin.backend.listeners) == 1
    await client.close()
    await asyncio.sleep(0.1)
    assert admin.backend.listeners == []


async def test_events_for_a_slow_reader_are_dropped_and_counted(admin: Running) -> None:
    client = await AdminClient.connect(admin.location, queue_size=3)
    sub = await client.subscribe("log")
    for seq in range(10):
        admin.backend.emit(record(100 + seq))
    await asyncio.sleep(0.2)
    events = [await asyncio.wait_for(anext(sub), 2) for _ in range(3)]
    assert [e.data["seq"] for e in events] == [107, 108, 109]
    assert events[0].dropped == 7
    await client.close()


async def test_server_side_backpressure_drops_events(backend: FakeBackend, config: Any) -> None:
    """A client that does not read costs the master a bounded buffer; what it missed is counted."""
    server = AdminServer(backend, config, limits=AdminLimits(write_buffer=4096))
    [address] = await server.start()
    raw = await Raw.open(address)
    subscribe = {"type": "request", "id": 1, "command": "subscribe", "args": {"topic": "log"}}
    await raw.send(hello(token_of(config)) + frame(subscribe))
    assert isinstance(await raw.next(), Welcome)
    assert isinstance(await raw.next(), Response)
    flood = 20_000
    for seq in range(flood):  # all in one go: the client cannot read in between
        backend.emit(record(seq, message="x" * 1000))
    received: list[Event] = []
    with pytest.raises(TimeoutError):
        while True:
            message = await raw.next(timeout=0.5)
            assert isinstance(message, Event)
            received.append(message)
    assert 0 < len(received) < flood
    backend.emit(record(flood))
    last = await raw.next()
    assert isinstance(last, Event) and last.data["seq"] == flood
    assert last.dropped == flood - len(received)
    await raw.close()
    await server.close()


# --- idle and connection limits -----------------------------------------------------------------------------


async def test_idle_connection_is_closed(admin: Running) -> None:
    raw = await Raw.open(admin.address)
    await raw.send(hello(admin.token))
    messages = await raw.messages(timeout=FAST.idle_timeout + 3)
    assert isinstance(messages[0], Welcome)
    assert isinstance(messages[1], Error) and "idle for" in messages[1].error
    await raw.close()


async def test_a_subscribed_connection_is_not_idle(admin: Running) -> None:
    async with await login(admin) as client:
        sub = await client.subscribe("log")
        await asyncio.sleep(FAST.idle_timeout + 0.5)
        assert await client.request("ping")
        await sub.close()


async def test_connection_cap(backend: FakeBackend, config: Any) -> None:
    server = AdminServer(backend, config, limits=AdminLimits(max_connections=2))
    [address] = await server.start()
    location = Location(parse_address(address), token_of(config))
    first, second = await AdminClient.connect(location), await AdminClient.connect(location)
    with pytest.raises(AdminUnavailable, match="too many admin connections"):
        await AdminClient.connect(location)
    await first.close()
    await asyncio.sleep(0.1)
    third = await AdminClient.connect(location)
    assert await third.request("ping")
    for client in (second, third):
        await client.close()
    await server.close()


# --- files, addresses and sockets ---------------------------------------------------------------------------


async def test_token_file_and_address_file(admin: Running) -> None:
    token_file = admin.config.admin_token_file()
    assert mode(token_file) == 0o600 and mode(token_file.parent) == 0o700
    assert len(admin.token) >= 43
    record_file = addr_file(token_file)
    assert parse_address(record_file.read_text()) == parse_address(admin.address)
    assert mode(record_file) == 0o600
    assert str(locate(admin.config)) == admin.address
    await admin.server.close()
    assert not record_file.exists()
    assert token_file.exists()  # the token outlives the server: the next start reuses it


async def test_existing_token_is_reused_and_a_loose_one_narrowed(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    config = admin_config(tmp_path / "state")
    token_file = config.admin_token_file()
    token_file.parent.mkdir(mode=0o755)
    token_file.write_text("my-own-token-of-sufficient-length-123\n")
    token_file.chmod(0o644)
    server = AdminServer(backend, config)
    assert await server.start()
    assert token_of(config) == "my-own-token-of-sufficient-length-123"
    assert mode(token_file) == 0o600
    assert any("readable by others" in line for line in server_warnings(caplog))
    await server.close()


async def test_a_short_token_is_replaced(tmp_path: Path, backend: FakeBackend) -> None:
    config = admin_config(tmp_path / "state")
    token_file = config.admin_token_file()
    token_file.parent.mkdir(mode=0o700)
    token_file.write_text("short\n")
    token_file.chmod(0o600)
    server = AdminServer(backend, config)
    assert await server.start()
    assert len(token_of(config)) >= 43
    await server.close()


async def test_busy_address(tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = AdminServer(backend, admin_config(tmp_path / "state", ADMIN_PORT=port))
        assert await server.start() == []
        assert server.fds() == []
        await server.close()
    [line] = server_warnings(caplog)
    assert line.startswith(f"Admin socket off: cannot listen on 127.0.0.1:{port}: ")
    assert "ADMIN_PORT" in line and "ADMIN_SOCKET" in line and "HTTP serving is not affected" in line


async def test_non_loopback_is_refused_unless_allowed(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    server = AdminServer(backend, admin_config(tmp_path / "state", ADMIN_HOST="0.0.0.0"))
    assert await server.start() == []
    [line] = server_warnings(caplog)
    assert "not a loopback address" in line and "ADMIN_ALLOW_REMOTE" in line
    caplog.clear()
    allowed = AdminServer(
        backend, admin_config(tmp_path / "state", ADMIN_HOST="0.0.0.0", ADMIN_ALLOW_REMOTE=True)
    )
    [address] = await allowed.start()
    assert address.startswith("0.0.0.0:")
    assert any(line.startswith("WARNING: the admin socket listens on") for line in server_warnings(caplog))
    await allowed.close()


async def test_localhost_is_loopback(tmp_path: Path, backend: FakeBackend) -> None:
    server = AdminServer(
        backend, admin_config(tmp_path / "state", ADMIN_HOST="localhost", ADMIN_PORT=free_port())
    )
    [address] = await server.start()
    assert address.startswith(("127.0.0.1:", "[::1]:"))
    await server.close()


async def test_unwritable_state_dir_turns_the_admin_socket_off(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    server = AdminServer(backend, admin_config(blocker / "state"))
    assert await server.start() == []
    [line] = server_warnings(caplog)
    assert line.startswith("Admin socket off: cannot use the admin token file") and "STATE_DIR" in line


async def test_unix_socket(tmp_path: Path, backend: FakeBackend) -> None:
    path = tmp_path / "run" / "admin.sock"
    config = admin_config(tmp_path / "state", ADMIN_SOCKET=str(path))
    server = AdminServer(backend, config, limits=FAST)
    assert await server.start() == [f"unix:{path}"]
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    location = locate(config)
    assert location.address == str(path)
    async with await AdminClient.connect(location) as client:
        assert (await client.request("status"))["generation"] == 2
    backend.calls.clear()
    await expect_closed(
        Running(server, backend, config, f"unix:{path}", token_of(config)), hello("q" * 43), "authentication"
    )
    await server.close()
    assert not path.exists()


async def test_unix_peer_is_named_by_pid_and_uid(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qt_server")
    path = tmp_path / "run" / "admin.sock"
    config = admin_config(tmp_path / "state", ADMIN_SOCKET=str(path))
    server = AdminServer(backend, config)
    await server.start()
    async with await AdminClient.connect(locate(config)) as client:
        await client.request("reload")
    await server.close()
    [audit] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Admin audit")]
    assert audit.startswith(f"Admin audit: unix pid={os.getpid()} uid={os.getuid()} ran reload")


async def test_stale_unix_socket_is_replaced(tmp_path: Path, backend: FakeBackend) -> None:
    path = tmp_path / "run" / "admin.sock"
    path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening, then closed: what a crashed server leaves
    server = AdminServer(backend, admin_config(tmp_path / "state", ADMIN_SOCKET=str(path)))
    assert await server.start() == [f"unix:{path}"]
    await server.close()


async def test_live_unix_socket_is_busy(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run" / "admin.sock"
    config = admin_config(tmp_path / "state", ADMIN_SOCKET=str(path))
    first = AdminServer(backend, config)
    assert await first.start()
    second = AdminServer(backend, config)
    assert await second.start() == []
    [line] = server_warnings(caplog)
    assert "another server is listening on the admin socket" in line
    assert path.exists()  # the live server's socket is left alone
    await second.close()
    await first.close()


@pytest.mark.parametrize("kind", ["not a socket", "open directory"])
async def test_unix_socket_refusals(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    path = tmp_path / "run" / "admin.sock"
    path.parent.mkdir()
    if kind == "not a socket":
        path.parent.chmod(0o700)
        path.write_text("precious")
    else:
        path.parent.chmod(0o755)
    server = AdminServer(backend, admin_config(tmp_path / "state", ADMIN_SOCKET=str(path)))
    assert await server.start() == []
    [line] = server_warnings(caplog)
    assert ("is not a socket" if kind == "not a socket" else "open to other users (mode 0755") in line
    if kind == "not a socket":
        assert path.read_text() == "precious"


async def test_fds_lists_listening_and_connected_sockets(admin: Running) -> None:
    [listening] = admin.server.fds()
    assert os.get_inheritable(listening) is False
    client = await login(admin)
    fds = admin.server.fds()
    assert listening in fds and len(fds) == 2
    await client.close()
    await asyncio.sleep(0.1)
    assert admin.server.fds() == [listening]


async def test_close_cancels_running_requests(admin: Running) -> None:
    admin.backend.reload_gate = asyncio.Event()
    client = await login(admin)
    reload = asyncio.create_task(client.request("reload"))
    await asyncio.sleep(0.1)
    await admin.server.close()
    with pytest.raises(AdminUnavailable):
        await reload
    await client.close()


async def test_start_twice_is_a_bug(admin: Running) -> None:
    with pytest.raises(RuntimeError, match="twice"):
        await admin.server.start()


def test_sync_client(admin_thread: Any) -> None:
    location = locate(admin_thread.server.config)
    with SyncAdminClient(location) as client:
        assert client.request("ping")
        with pytest.raises(AdminError, match="unknown command"):
            client.request("nope")
        sub = client.subscribe("log", text="needle")
        admin_thread.call(admin_thread.backend.emit, record(50, message="hay"))
        admin_thread.call(admin_thread.backend.emit, record(51, message="a NEEDLE"))
        event = next(iter(sub))
        assert event.data["seq"] == 51
        sub.close()
