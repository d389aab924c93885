"""A raw WebSocket client over a plain socket, for what a well-behaved client library will not
send: invalid UTF-8, unmasked frames, pings without reading the pongs, no pong at all."""

from __future__ import annotations

import base64
import os
import socket
import struct

KEY = base64.b64encode(b"0123456789abcdef")


def upgrade_request(path: str, *, key: bytes = KEY, version: bytes = b"13", extra: bytes = b"") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: "
        + version
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def open_ws(host: str, port: int, path: str, timeout: float = 5.0) -> tuple[socket.socket, bytes]:
    """Connect and complete the handshake; returns the socket and any bytes read past the 101."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(upgrade_request(path))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed during the handshake: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock, rest


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, (0x80 if mask else 0) | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
    else:
        header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


class FrameReader:
    """Reads server frames (never masked) from a socket, keeping what it over-read."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buf = buffered

    def _need(self, size: int) -> bytes:
        while len(self.buf) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid frame")
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def read(self) -> tuple[int, bytes]:
        first, second = self._need(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._need(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._need(8))
        return first & 0x0F, self._need(length)

    def read_close(self) -> tuple[int, str]:
        """Skip to the close frame; its code and reason."""
        while True:
            opcode, payload = self.read()
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                return code, payload[2:].decode("utf-8", "replace")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()
