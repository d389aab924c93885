"""Binding the admin socket: TCP on loopback unless told otherwise, or a Unix socket in a private directory.

Every refusal is a ``ListenError`` whose message is one sentence saying what failed, why, and which setting
to change: the server logs it as the single "admin socket off" line and goes on serving HTTP, because many
servers share one host and a busy admin port must never take a site down.

- TCP: ``ADMIN_HOST`` must resolve only to loopback addresses unless ``ADMIN_ALLOW_REMOTE`` is true (Redis'
  protected mode; Docker's "TCP only with TLS"): the admin port can reload and rescale the server, and the
  token crosses the network in clear text.  Only the first resolved address is bound, so ``ADMIN_PORT = 0``
  means one port, recorded once.  SO_REUSEADDR is deliberately not set: a second server on the same port
  must fail, not share it.
- Unix: the directory must belong to this user and be closed to others (0700) -- some systems ignore a
  socket file's own mode, so the directory is the real lock (Tor refuses group-readable socket dirs for the
  same reason).  A missing directory is created 0700; the socket file is made 0600.  A leftover socket file
  nobody answers on is removed; one a live server answers on is left alone and reported as busy; anything
  that is not a socket is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import stat
from pathlib import Path

from qactuar.admin.statefiles import make_private_dir
from qactuar.net import format_address

BACKLOG = 16
server_log = logging.getLogger("qt_server")


class ListenError(Exception):
    """The admin socket cannot be opened; the message says why and what to change."""


_TCP_HINT = "set ADMIN_PORT to another port (0 picks a free one), or ADMIN_SOCKET to a Unix socket path"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.partition("%")[0]).is_loopback
    except ValueError:
        return False


def listen_tcp(host: str, port: int, *, allow_remote: bool) -> socket.socket:
    """A listening, non-blocking, non-inheritable TCP socket on the first address ``host`` resolves to."""
    where = format_address(host or "*", port)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve ADMIN_HOST {host!r}: {exc.strerror}; set ADMIN_HOST") from None
    addresses = [str(info[4][0]) for info in infos]
    if not all(map(_is_loopback, addresses)):
        if not allow_remote:
            raise ListenError(
                f"ADMIN_HOST {host!r} is not a loopback address ({', '.join(addresses)}), and the admin "
                "socket controls the server; use 127.0.0.1, ::1 or localhost (and SSH port forwarding), "
                "or set ADMIN_ALLOW_REMOTE = true if you really mean it"
            )
        server_log.warning(
            "WARNING: the admin socket listens on %s, which is not loopback (ADMIN_ALLOW_REMOTE is on). "
            "Anyone who can reach it and has the token controls this server, and the token crosses the "
            "network unencrypted. Prefer 127.0.0.1 and SSH port forwarding.",
            where,
        )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += " (another Qactuar server, or another program, has it)"
        raise ListenError(f"cannot listen on {where}: {reason}; {_TCP_HINT}") from None
    sock.setblocking(False)
    return sock


def _check_private_dir(directory: Path) -> None:
    info = directory.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid() or mode & 0o077:
        raise ListenError(
            f"the admin socket directory {directory} is open to other users (mode {mode:04o}, owner uid "
            f"{info.st_uid}); set ADMIN_SOCKET to a path in a directory only this user can enter "
            "(mode 0700), for example under STATE_DIR"
        )


def _clear_stale(path: Path) -> None:
    """Remove a dead socket file at ``path``; ListenError if something else, or a live server, is there."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenError(f"{path} exists and is not a socket; remove it or set ADMIN_SOCKET to another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)  # a live server with a full backlog counts as live
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
    raise ListenError(
        f"another server is listening on the admin socket {path}; set ADMIN_SOCKET to another path"
    )


def _cannot_listen(path: Path, exc: OSError) -> ListenError:
    return ListenError(
        f"cannot listen on the admin socket {path}: {exc.strerror or exc}; set ADMIN_SOCKET to another path"
    )


def listen_unix(path: Path) -> socket.socket:
    """A listening, non-blocking, non-inheritable Unix socket at ``path``, mode 0600, in a 0700 directory."""
    try:
        make_private_dir(path.parent)
        _check_private_dir(path.parent)
        _clear_stale(path)
    except OSError as exc:
        raise _cannot_listen(path, exc) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise _cannot_listen(path, exc) from None
    try:
        os.chmod(path, 0o600)  # the directory is private, so nobody can connect before this
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        path.unlink()
        raise _cannot_listen(path, exc) from None
    sock.setblocking(False)
    return sock
