"""Listening sockets: bound once (by the master, or by the async-mode process) and shared."""

from __future__ import annotations

import socket


class BindError(Exception):
    """The listening address could not be bound; the message says which and why."""


def bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    """Bind a TCP listening socket; IPv6 literals and names resolving to IPv6 work too."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {format_address(host, port)}: {exc.strerror}") from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_url(sock: socket.socket, scheme: str = "http") -> str:
    """``http://host:port`` for TCP, ``unix:/path (http)`` for a Unix socket."""
    if sock.family == socket.AF_UNIX:
        path = sock.getsockname()
        return f"unix:{path.decode() if isinstance(path, bytes) else path} ({scheme})"
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{format_address(host, port)}"
