"""Admin clients that vanish in the middle of their subscriptions.

Against a live server, each vanishing client logs in, subscribes to ``stats``, ``log`` and ``deploy``,
then disappears with a TCP reset (SO_LINGER 0) or an orderly close without unsubscribing.  More of them
vanish than the admin server's connection limit (AdminLimits.max_connections, 32), so a session that
leaked would show as a refused login, a growing count of file descriptors in the process that holds the
admin socket (the master; in async mode the only process), or a connection left open there.  Meanwhile
HTTP keeps serving and an admin client that stays keeps receiving its events.  That its subscriptions
ended too (no log follower left behind) is seen in-process, against a backend that counts followers.

A client whose host dies sends nothing at all; on loopback that cannot be staged without a firewall, so
the test checks what catches it: the server's end of an admin connection has TCP keepalive armed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from pathlib import Path
from typing import cast

import psutil
import pytest
from admin.admin_support import FAST, FakeBackend, admin_config, token_of
from fault_support import CONTROL_HOSTS, StartServer, get, reset, start_mode
from server_process import ServerProcess, wait_until

from qactuar.admin import AdminClient, AdminServer, Location, SyncAdminClient, locate
from qactuar.admin.backend import AdminBackend
from qactuar.admin.statefiles import parse_address
from qactuar.config import load_config

VANISHING = 36  # more than AdminLimits.max_connections (32)


def admin(server: ServerProcess) -> SyncAdminClient:
    config = load_config(config_file=str(server.config_path), env={})
    return SyncAdminClient(locate(config), timeout=10)


def tcp_timer(local_port: int, remote_port: int) -> tuple[int, float] | None:
    """The kernel timer of the TCP socket with these ports, from /proc/net/tcp{,6}: (kind, seconds left).

    Kinds: 0 none, 1 retransmit, 2 keepalive (for an established socket), 4 zero-window probe.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, timer = fields[1], fields[2], fields[5]
            if (
                int(local.rsplit(":", 1)[1], 16) == local_port
                and int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                kind, jiffies = timer.split(":")
                return int(kind, 16), int(jiffies, 16) / os.sysconf("SC_CLK_TCK")
    return None


def admin_connections(holder: psutil.Process, port: int) -> list[str]:
    """States of the admin server's own ends of connections (the listening socket left out)."""
    return [
        conn.status
        for conn in holder.net_connections(kind="tcp")
        if conn.laddr and conn.laddr.port == port and conn.status != psutil.CONN_LISTEN
    ]


@pytest.mark.parametrize("mode", CONTROL_HOSTS)
def test_admin_clients_vanishing_mid_subscription_leak_nothing(start_server: StartServer, mode: str) -> None:
    srv = start_mode(start_server, mode, {"/pid": "faults:pid"}, workers=1)
    holder = psutil.Process(srv.pid)  # the master, or the async-mode process: it owns the admin socket
    with admin(srv) as staying:
        location = staying.location
        assert isinstance(location.address, tuple)
        port = location.address[1]
        stats = iter(staying.subscribe("stats"))
        logs = iter(staying.subscribe("log", text="vanish-probe"))
        next(stats)
        assert wait_until(lambda: len(admin_connections(holder, port)) == 1, 5)
        fds_before = holder.num_fds()
        # A peer that goes silent is probed: the server's end of this connection has keepalive armed.
        assert staying._sock is not None
        kind, due = tcp_timer(port, staying._sock.getsockname()[1]) or (0, 0.0)
        assert kind == 2 and 30 < due <= 60, (kind, due)

        for number in range(VANISHING):
            client = admin(srv)
            client.connect()
            for topic in ("stats", "log", "deploy"):
                client.subscribe(topic)
            sock = client._sock  # the client vanishes: no unsubscribe, no goodbye
            assert isinstance(sock, socket.socket)
            if number % 2:
                reset(sock)
            else:
                sock.close()
            client._sock = None
            if number % 4 == 0:
                assert get(srv, f"/pid?vanish-probe-{number}")[0] == 200  # HTTP serves all along

        # Nothing is left of them in the process that holds the admin socket.
        assert wait_until(lambda: admin_connections(holder, port) == [psutil.CONN_ESTABLISHED], 5), (
            admin_connections(holder, port)
        )
        assert wait_until(lambda: holder.num_fds() <= fds_before, 5), (holder.num_fds(), fds_before)

        # The client that stayed still gets its events: stats ticks, and the access lines it filters for.
        started = time.monotonic()
        next(stats)
        assert time.monotonic() - started < 3
        seen = next(logs).data["message"]
        assert "vanish-probe-" in seen
        # and a new client can log in (no leaked session holds a place under the connection limit)
        with admin(srv) as late:
            assert late.request("ping") is not None


async def test_a_reset_mid_subscription_ends_its_subscriptions(tmp_path: Path) -> None:
    backend = FakeBackend()  # counts its log followers
    config = admin_config(tmp_path / "state")
    server = AdminServer(cast(AdminBackend, backend), config, limits=FAST)  # it has what this test uses
    [address] = await server.start()
    location = Location(parse_address(address), token_of(config))
    try:
        for number in range(3):
            client = await AdminClient.connect(location)
            await client.subscribe("log")
            await client.subscribe("stats")
            assert len(backend.listeners) == 1
            if number % 2 == 0:  # vanish with a reset; else an orderly close that never unsubscribed
                client._writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                client._writer.transport.abort()
            await client.close()
            async with asyncio.timeout(5):
                while backend.listeners:
                    await asyncio.sleep(0.01)
        async with await AdminClient.connect(location) as late:
            assert (await late.request("ping"))["time"] > 0
    finally:
        await server.close()
