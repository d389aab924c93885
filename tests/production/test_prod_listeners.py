"""Listeners: a Unix socket, an inherited fd, systemd socket activation and sd_notify."""

from __future__ import annotations

import os
import signal
import socket
import stat
from pathlib import Path

import httpx
import pytest
from production_support import launcher_args, short_dir
from server_process import ServerProcess

from qactuar.config import Config, ConfigError, file_mode, load_config
from qactuar.listeners import open_listeners
from qactuar.net import BindError

# -- opening listeners, in process --------------------------------------------------------------------


def test_uds_alone_unless_host_or_port_is_set() -> None:
    with short_dir() as tmp:
        path = str(tmp / "q.sock")
        listeners = open_listeners(Config(UDS=path, UDS_MODE="600"), env={})
        try:
            assert [s.family for s in listeners.sockets] == [socket.AF_UNIX]
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        finally:
            listeners.close()
        assert not os.path.exists(path)  # removed: it was ours
        listeners = open_listeners(Config(UDS=path, PORT=0), env={})
        try:
            assert [s.family for s in listeners.sockets] == [socket.AF_UNIX, socket.AF_INET]
        finally:
            listeners.close()


def test_stale_socket_replaced_live_one_and_other_files_refused() -> None:
    with short_dir() as tmp:
        path = str(tmp / "q.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()  # the file stays, nobody accepts
        listeners = open_listeners(Config(UDS=path), env={})
        try:
            with pytest.raises(BindError, match="another server is accepting"):
                open_listeners(Config(UDS=path), env={})
        finally:
            listeners.close()
        Path(path).write_text("not a socket")
        with pytest.raises(BindError, match="not a socket"):
            open_listeners(Config(UDS=path), env={})


def test_fd_must_be_a_stream_socket() -> None:
    with pytest.raises(BindError, match="not an open socket"):
        open_listeners(Config(FD=987), env={})
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(BindError, match="not a stream socket"):
            open_listeners(Config(FD=udp.fileno()), env={})
    finally:
        udp.close()


def test_systemd_variables_for_another_process_are_ignored_and_removed() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    listeners = open_listeners(Config(PORT=0), env=env)
    try:
        assert [s.family for s in listeners.sockets] == [socket.AF_INET]
        assert env == {}
    finally:
        listeners.close()


def test_file_mode_and_config_checks() -> None:
    assert file_mode("") is None
    assert file_mode("660") == file_mode("0660") == file_mode("0o660") == 0o660
    with pytest.raises(ValueError, match="octal"):
        file_mode("9")
    env = {"QACTUAR_UDS_MODE": "rw-rw----"}
    with pytest.raises(ConfigError, match=r"QACTUAR_UDS_MODE.*octal file mode"):
        load_config(env=env, cwd="/")
    env = {"QACTUAR_FORWARDED_ALLOW_IPS": "10.0.0.0/8, unix, *, ::1", "QACTUAR_PROXY_PROTOCOL": "v2"}
    config = load_config(env=env, cwd="/")
    assert (config.FORWARDED_ALLOW_IPS, config.PROXY_PROTOCOL) == (["10.0.0.0/8", "unix", "*", "::1"], "v2")
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS entry 'localhost'"):
        load_config(env={"QACTUAR_FORWARDED_ALLOW_IPS": "localhost"}, cwd="/")
    with pytest.raises(ConfigError, match="HEALTH_PATH"):
        load_config(cli={"HEALTH_PATH": "/"}, cwd="/")
    tls = {"SSL_CERT_PATH": "/c.pem", "SSL_KEY_PATH": "/k.pem", "PROXY_PROTOCOL": "v1"}
    with pytest.raises(ConfigError, match="cannot be used with TLS"):
        load_config(cli=tls, cwd="/")


# -- end to end ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["async", "prefork"])
def test_serving_on_a_unix_socket_and_an_inherited_fd(start_server, mode: str) -> None:
    inherited = socket.create_server(("127.0.0.1", 0))
    inherited.set_inheritable(True)
    port = inherited.getsockname()[1]
    with short_dir() as tmp:
        path = str(tmp / "qactuar.sock")
        try:
            server = start_server(
                {"/": "production:who"},
                mode=mode,
                settings={"uds": path, "uds_mode": "660", "fd": inherited.fileno()},
                pass_fds=(inherited.fileno(),),
            )
        finally:
            inherited.close()  # the server holds its own copy now
        assert server.port == port  # the inherited socket is announced first
        assert f"Listening on unix:{path} (http)" in server.output()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
            reply = client.get("http://uds.local/")
        assert reply.status_code == 200
        assert reply.json()["client"] is None  # a Unix socket peer has no address
        assert reply.json()["host"] == "uds.local"
        assert httpx.get(f"http://127.0.0.1:{port}/").json()["server"] == ["127.0.0.1", port]
        server.stop()
        assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("prefork", "Generation 1 serving 1 app(s) in prefork mode"),
        ("async", "Serving 1 app(s) in async mode"),
    ],
)
def test_systemd_socket_activation_and_notify(tmp_path: Path, mode: str, status: str) -> None:
    """LISTEN_FDS/LISTEN_PID set as systemd does, READY=1 and STOPPING=1 on NOTIFY_SOCKET."""
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    with short_dir() as tmp:
        unix_path = str(tmp / "activated.sock")
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(unix_path)
        unix.listen()
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp / "notify"))
        notify.settimeout(15)
        fds = (tcp.fileno(), unix.fileno())
        server = ServerProcess(
            tmp_path,
            {"/": "production:who"},
            mode=mode,
            settings={"port": 8000},  # the default: only the activated sockets are served
            env={"QT_TEST_FDS": ",".join(map(str, fds)), "NOTIFY_SOCKET": str(tmp / "notify")},
            pass_fds=fds,
        )
        server.args = launcher_args(tmp_path, server.args[3:])  # after "python -m qactuar"
        try:
            server.start()
            tcp.close()
            unix.close()
            assert server.port == port
            assert "Listening on http://127.0.0.1:8000" not in server.output()
            ready = notify.recv(4096).decode()
            assert "READY=1" in ready.splitlines()
            assert f"STATUS={status}" in ready
            assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
            with httpx.Client(transport=httpx.HTTPTransport(uds=unix_path)) as client:
                assert client.get("http://x/").status_code == 200
            server.signal(signal.SIGTERM)
            assert "STOPPING=1" in notify.recv(4096).decode().splitlines()
            assert server.wait(15) == 0
            assert os.path.exists(unix_path)  # systemd's socket: never unlinked by us
        finally:
            notify.close()
            server.stop()
