"""Chunked request bodies (RFC 9112 7.1), decoded strictly and without I/O.

The driver frames request bodies itself, for either head parser, so the two parsers can
never disagree on where a body ends.  Strict where smuggling lives: a chunk size is hex
digits only (no ``0x``, sign or whitespace), a chunk extension is ``;name[=value]`` with
token or quoted-string values (a bare CR or LF in it is an error), every line ends with
CRLF, chunk data is followed by CRLF, and the trailer section may not carry fields that
frame or route the message.  Trailer fields are checked and then dropped: ASGI has no
request trailers.
"""

from __future__ import annotations

import re

from qactuar.http.errors import TOKEN, RequestError

_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)((?:[ \t]*;[ \t]*"
    + TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*)\r\n"
)
_TRAILER_FIELD = re.compile(
    rb"("
    + TOKEN
    + rb"):[ \t]*(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?[ \t]*"
)
# RFC 9110 6.5.1: fields a sender must not put in trailers (framing, routing, controls).
FORBIDDEN_TRAILERS = frozenset(
    (
        b"transfer-encoding",
        b"content-length",
        b"host",
        b"trailer",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"te",
        b"expect",
        b"content-encoding",
        b"content-type",
        b"content-range",
    )
)
MAX_CHUNK_SIZE = 2**63 - 1
MAX_CHUNK_LINE = 4096  # the size line with its extensions


SIZE, DATA, DATA_END, TRAILER, DONE = range(5)


class ChunkedReader:
    """Decodes one chunked body from the front of a buffer, a piece at a time.

    ``read(buf)`` returns ``(data, used)``: ``data`` is chunk data (possibly empty while only
    framing was consumed), or ``None`` when more bytes are needed; ``used`` is how many bytes
    of ``buf`` it consumed.  ``done`` turns true once the final CRLF has been read.
    """

    __slots__ = ("_remaining", "_state", "_trailer_bytes", "max_body", "max_trailer", "received")

    def __init__(self, max_body: int, max_trailer: int) -> None:
        self.max_body = max_body  # 0 = unlimited
        self.max_trailer = max_trailer
        self.received = 0
        self._state = SIZE
        self._remaining = 0
        self._trailer_bytes = 0

    @property
    def done(self) -> bool:
        return self._state == DONE

    def read(self, buf: bytes) -> tuple[bytes | None, int]:
        state = self._state
        if state == DATA:
            if not buf:
                return None, 0
            data = buf[: self._remaining]
            self._remaining -= len(data)
            if not self._remaining:
                self._state = DATA_END
            return data, len(data)
        if state == SIZE:
            return self._read_size(buf)
        if state == DATA_END:
            if len(buf) < 2:
                if buf[:1] not in (b"", b"\r"):
                    raise RequestError(400, "chunk data not followed by CRLF")
                return None, 0
            if buf[:2] != b"\r\n":
                raise RequestError(400, "chunk data not followed by CRLF")
            self._state = SIZE
            return b"", 2
        return self._read_trailer(buf)

    def _read_size(self, buf: bytes) -> tuple[bytes | None, int]:
        match = _CHUNK_LINE.match(buf)
        if match is None:
            newline = buf.find(b"\n", 0, MAX_CHUNK_LINE + 2)
            if newline != -1:
                raise RequestError(400, "invalid chunk size line")
            if len(buf) > MAX_CHUNK_LINE:
                raise RequestError(400, "chunk size line too long")
            if buf and not _could_be_size_line(buf):
                raise RequestError(400, "invalid chunk size line")
            return None, 0
        used = match.end()
        if used > MAX_CHUNK_LINE + 2:
            raise RequestError(400, "chunk size line too long")
        size = int(match.group(1), 16)
        if size > MAX_CHUNK_SIZE:
            raise RequestError(400, "chunk size too large")
        self.received += size
        if self.max_body and self.received > self.max_body:
            raise RequestError(413, "request body larger than the limit")
        if size:
            self._state = DATA
            self._remaining = size
        else:
            self._state = TRAILER
        return b"", used

    def _read_trailer(self, buf: bytes) -> tuple[bytes | None, int]:
        newline = buf.find(b"\n")
        if newline == -1:
            if self._trailer_bytes + len(buf) > self.max_trailer:
                raise RequestError(431, "trailer section too large")
            return None, 0
        self._trailer_bytes += newline + 1
        if self._trailer_bytes > self.max_trailer:
            raise RequestError(431, "trailer section too large")
        if newline == 0 or buf[newline - 1] != 0x0D:
            raise RequestError(400, "bare LF line terminator in the trailer section")
        line = buf[: newline - 1]
        if not line:
            self._state = DONE
            return b"", newline + 1
        if line[:1] in (b" ", b"\t"):
            raise RequestError(400, "obsolete line folding in the trailer section")
        field = _TRAILER_FIELD.fullmatch(line)
        if field is None:
            raise RequestError(400, "invalid trailer field")
        if field.group(1).lower() in FORBIDDEN_TRAILERS:
            raise RequestError(400, "a trailer field that frames or routes the message")
        return b"", newline + 1


# What an incomplete size line must look like so far: hex digits, then (after a separator) the
# rest, which is checked whole once its LF arrives.  Rejects "0x5", "+5", " 5" without waiting.
_SIZE_LINE_START = re.compile(rb"[0-9A-Fa-f]+(?:[ \t;\r][^\n]*)?")


def _could_be_size_line(buf: bytes) -> bool:
    """An incomplete size line that a valid line could still start with."""
    return _SIZE_LINE_START.fullmatch(buf) is not None
