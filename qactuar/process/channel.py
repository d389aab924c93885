"""The one-way channel from a generation and its serving processes up to the master.

A Unix datagram socketpair per generation: the master keeps one end; the generation and
every process it forks share the other (inherited through fork).  Each message is one
datagram, so writers never interleave, and a message is a JSON object with a ``k`` (kind)
field: ``stats`` snapshots, ``logs`` batches, and ``gen`` lifecycle events.

Writers send with a short timeout: a master that cannot keep up slows a worker down for
at most that long, then the message is dropped and counted.  Stats snapshots are
cumulative, so a dropped one loses nothing; the next supersedes it.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

MAX_MESSAGE = 512 * 1024  # well under the 1 MiB socket buffers set below
SEND_TIMEOUT = 1.0

server_log = logging.getLogger("qt_server")


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(master end, generation end)."""
    master_end, generation_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock in (master_end, generation_end):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    master_end.setblocking(False)
    generation_end.settimeout(SEND_TIMEOUT)
    generation_end.set_inheritable(True)
    return master_end, generation_end


class ChannelWriter:
    """The sending side, used in the generation and in every serving process."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dropped = 0

    def send(self, kind: str, payload: dict[str, Any]) -> bool:
        message = {"k": kind, **payload}
        data = json.dumps(message, separators=(",", ":"), default=str).encode("utf-8")
        if len(data) > MAX_MESSAGE:
            data = _shrink(message)
        try:
            self.sock.send(data)
        except (TimeoutError, BlockingIOError, OSError):
            self.dropped += 1
            return False
        return True


def _shrink(message: dict[str, Any]) -> bytes:
    """Cut the longest text fields of an oversized message (log batches carry tracebacks)."""
    if message.get("k") == "logs":
        records = message.get("records", [])
        budget = MAX_MESSAGE // max(1, len(records)) - 512
        for record in records:
            for field in ("message", "exc_text"):
                text = record.get(field)
                if isinstance(text, str) and len(text) > budget:
                    record[field] = text[: max(0, budget)] + " ...[truncated]"
    data = json.dumps(message, separators=(",", ":"), default=str).encode("utf-8")
    return data[:MAX_MESSAGE] if len(data) > MAX_MESSAGE else data


def read_messages(sock: socket.socket, flags: int = 0, limit: int = 0) -> list[dict[str, Any]]:
    """What waits on a channel end (at most ``limit`` datagrams; 0: all), decoded; undecodable
    datagrams are skipped.

    The master's end is non-blocking; the generation passes MSG_DONTWAIT for its own.
    """
    messages: list[dict[str, Any]] = []
    received = 0
    while not limit or received < limit:
        received += 1
        try:
            data = sock.recv(MAX_MESSAGE + 1, flags)
        except (BlockingIOError, InterruptedError):
            return messages
        except OSError:
            return messages
        try:
            message = json.loads(data)
        except ValueError:
            server_log.warning("Dropped an undecodable message (%d bytes) from a serving process", len(data))
            continue
        if isinstance(message, dict):
            messages.append(message)
    return messages
