"""The admin wire protocol as a sans-I/O codec: bytes in, messages out; messages in, bytes out.

Theory of operation
-------------------
The server, the ``qactuar`` CLI and the TUI all speak through ``Codec``; none of them parses a byte itself,
so the three can never disagree about the format, and the format can be tested by feeding bytes.

A frame is a 4-byte big-endian payload length followed by that many bytes of UTF-8 JSON, one object per
frame (``docs/admin-protocol.md`` has the full description and examples).  Every object has a ``type``:

==========  =========  =================================================================================
type        sent by    fields
==========  =========  =================================================================================
hello       client     ``version``, ``token``, ``client`` (free text, e.g. "qactuar-cli 0.3.0")
welcome     server     ``version``, ``server``
request     client     ``id`` (int), ``command`` (str), ``args`` (object)
response    server     ``id``, ``ok``; then ``data`` when ok, ``error`` (str) when not
event       server     ``event`` (stats|log|deploy...), ``sub`` (subscription id), ``data``, ``dropped``
error       server     ``error`` (str): the connection is over, the server closes after sending it
==========  =========  =================================================================================

A codec is built for one side (``role``) and decodes only what the other side may send, so a client that
sends a ``welcome`` is as wrong as one that sends garbage.  Unknown fields are ignored (a newer peer may add
some); missing or mistyped ones are errors.

Why a frame's first byte is checked before its length is read: the admin port is usually on localhost,
which any web page the operator has open can reach with ``fetch()``.  A valid frame header starts with a
zero byte (the cap is far below 16 MiB), while a browser's request starts with a method name, so an ASCII
letter there means "HTTP (or another text protocol)" and the connection is refused before anything else --
as Redis does for ``POST``/``Host:``.  Any other byte that makes the length exceed the cap is refused as an
oversized frame, before the payload is buffered.

Errors raise ``ProtocolError``; after one the codec is broken and raises it again, because the stream can
no longer be trusted.  ``receive_data(b"")`` marks end of input; ``next_message()`` then returns ``CLOSED``
once everything buffered has been read, or raises if the peer stopped in the middle of a frame.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

PROTOCOL_VERSION = 1
MAX_FRAME = 1024 * 1024  # payload bytes
_HEADER = struct.Struct(">I")
_HTTP_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE")
_LARGEST_ID = 2**53 - 1  # ids must survive a JavaScript-style JSON parser in some client


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must close.  ``http`` is True for bytes that look like
    an HTTP request (the server closes those without a reply: nothing it could send would be understood)."""

    def __init__(self, message: str, *, http: bool = False) -> None:
        super().__init__(message)
        self.http = http


class Signal(enum.Enum):
    NEED_DATA = "need data"
    CLOSED = "closed"


NEED_DATA = Signal.NEED_DATA
CLOSED = Signal.CLOSED

JSONObject: TypeAlias = dict[str, Any]


# --- messages ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    token: str = field(repr=False)  # never in a repr, so never in a log line or a traceback
    version: int = PROTOCOL_VERSION
    client: str = ""


@dataclass(frozen=True, slots=True)
class Welcome:
    server: str
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    command: str
    args: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    ok: bool
    data: Any = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    sub: int
    data: Any
    dropped: int = 0  # events of this subscription left out before this one (a slow reader)


@dataclass(frozen=True, slots=True)
class Error:
    error: str


ClientMessage: TypeAlias = Hello | Request
ServerMessage: TypeAlias = Welcome | Response | Event | Error
Message: TypeAlias = ClientMessage | ServerMessage
Role = Literal["server", "client"]


# --- JSON object <-> message -------------------------------------------------------------------------------

_T = TypeVar("_T")
_REQUIRED: Any = object()


def _get(obj: JSONObject, name: str, kind: type[_T], default: _T = _REQUIRED) -> _T:
    if name not in obj:
        if default is _REQUIRED:
            raise ProtocolError(f"{obj['type']} message has no {name!r} field")
        return default
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            f"{obj['type']} message field {name!r} must be {kind.__name__}, not {value!r:.40}"
        )
    return value


def _id(obj: JSONObject, name: str) -> int:
    value = _get(obj, name, int)
    if not 0 <= value <= _LARGEST_ID:
        raise ProtocolError(f"{obj['type']} message field {name!r} must be from 0 to {_LARGEST_ID}")
    return value


def _hello(obj: JSONObject) -> Hello:
    return Hello(
        token=_get(obj, "token", str), version=_get(obj, "version", int), client=_get(obj, "client", str, "")
    )


def _welcome(obj: JSONObject) -> Welcome:
    return Welcome(server=_get(obj, "server", str), version=_get(obj, "version", int))


def _request(obj: JSONObject) -> Request:
    command = _get(obj, "command", str)
    return Request(id=_id(obj, "id"), command=command, args=_get(obj, "args", dict, {}))


def _response(obj: JSONObject) -> Response:
    ok = _get(obj, "ok", bool)
    if ok:
        return Response(id=_id(obj, "id"), ok=True, data=obj.get("data"))
    return Response(id=_id(obj, "id"), ok=False, error=_get(obj, "error", str))


def _event(obj: JSONObject) -> Event:
    dropped = _id(obj, "dropped") if "dropped" in obj else 0
    return Event(event=_get(obj, "event", str), sub=_id(obj, "sub"), data=obj.get("data"), dropped=dropped)


def _error(obj: JSONObject) -> Error:
    return Error(error=_get(obj, "error", str))


# Which types each side may receive: a server decodes client messages, a client server messages.
_DECODERS: Mapping[Role, Mapping[str, Callable[[JSONObject], Message]]] = {
    "server": {"hello": _hello, "request": _request},
    "client": {"welcome": _welcome, "response": _response, "event": _event, "error": _error},
}


def _to_wire(message: Message) -> JSONObject:
    match message:
        case Hello(token=token, version=version, client=client):
            return {"type": "hello", "version": version, "token": token, "client": client}
        case Welcome(server=server, version=version):
            return {"type": "welcome", "version": version, "server": server}
        case Request(id=id_, command=command, args=args):
            return {"type": "request", "id": id_, "command": command, "args": args}
        case Response(id=id_, ok=True, data=data):
            return {"type": "response", "id": id_, "ok": True, "data": data}
        case Response(id=id_, error=error):
            return {"type": "response", "id": id_, "ok": False, "error": error}
        case Event(event=event, sub=sub, data=data, dropped=dropped):
            wire = {"type": "event", "event": event, "sub": sub, "data": data}
            return {**wire, "dropped": dropped} if dropped else wire
        case Error(error=error):
            return {"type": "error", "error": error}


_SENDS: Mapping[Role, tuple[type, ...]] = {
    "server": (Welcome, Response, Event, Error),
    "client": (Hello, Request),
}


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one no double holds (``1e999``) is refused rather than read as
    infinity, which ``encode`` could never write back (a reply or relay would then fail)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text:.40} is out of range")
    return value


# --- the codec ---------------------------------------------------------------------------------------------


class Codec:
    """One side of one admin connection.  Not thread-safe; one per connection."""

    def __init__(self, role: Role, *, max_frame: int = MAX_FRAME) -> None:
        if not 0 < max_frame < 0x41000000:  # a larger cap would let "A..." be a valid length
            raise ValueError("max_frame must be from 1 to 1 GiB")
        self.role: Role = role
        self.max_frame = max_frame  # may be changed between messages (the server raises it after login)
        self._decoders = _DECODERS[role]
        self._buffer = bytearray()
        self._eof = False
        self._broken: ProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed its side."""
        if data:
            if self._eof:
                raise RuntimeError("receive_data() after end of input")
            self._buffer += data
        else:
            self._eof = True

    def next_message(self) -> Message | Signal:
        """The next complete message, NEED_DATA, or CLOSED after end of input; ProtocolError if broken."""
        if self._broken is not None:
            raise self._broken
        try:
            return self._next()
        except ProtocolError as exc:
            self._broken = exc
            raise

    def encode(self, message: Message) -> bytes:
        """The frame for ``message``; ProtocolError if it is not JSON-able, too large, or not ours to send."""
        if not isinstance(message, _SENDS[self.role]):
            raise ProtocolError(f"a {self.role} does not send {type(message).__name__}")
        try:
            payload = json.dumps(
                _to_wire(message), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"cannot encode {type(message).__name__} as JSON: {exc}") from None
        if len(payload) > self.max_frame:
            raise ProtocolError(
                f"{type(message).__name__} of {len(payload)} bytes exceeds the "
                f"{self.max_frame}-byte frame limit"
            )
        return _HEADER.pack(len(payload)) + payload

    def _next(self) -> Message | Signal:
        buffer = self._buffer
        if buffer:
            self._check_frame_start(bytes(buffer[:16]))
        if len(buffer) < _HEADER.size:
            return self._starved()
        (length,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + length:
            return self._starved()
        payload = bytes(buffer[_HEADER.size : _HEADER.size + length])
        del buffer[: _HEADER.size + length]
        return self._decode(payload)

    def _starved(self) -> Signal:
        if not self._eof:
            return NEED_DATA
        if self._buffer:
            raise ProtocolError(
                f"connection closed in the middle of a frame ({len(self._buffer)} bytes buffered)"
            )
        return CLOSED

    def _check_frame_start(self, start: bytes) -> None:
        if start[:1].isalpha():
            method = next((m.decode() for m in _HTTP_METHODS if start.startswith(m + b" ")), None)
            what = f"an HTTP {method} request" if method else "a text protocol (HTTP?)"
            raise ProtocolError(f"received {what}, not an admin frame: {start!r}", http=True)
        # The smallest length these header bytes can still become (a partial header is padded with zeros).
        (least,) = _HEADER.unpack(start[: _HEADER.size].ljust(_HEADER.size, b"\0"))
        if least > self.max_frame:
            size = f"{least} bytes" if len(start) >= _HEADER.size else f"at least {least} bytes"
            raise ProtocolError(f"frame of {size} exceeds the {self.max_frame}-byte limit")

    def _decode(self, payload: bytes) -> Message:
        try:
            obj = json.loads(payload.decode(), parse_constant=_no_constants, parse_float=_finite_float)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolError(f"frame is not valid UTF-8 JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ProtocolError(f"frame is JSON {type(obj).__name__}, not an object")
        kind = obj.get("type")
        if not isinstance(kind, str) or kind not in self._decoders:
            allowed = ", ".join(self._decoders)
            raise ProtocolError(f"message type {kind!r:.40} is not one a {self.role} receives ({allowed})")
        return self._decoders[kind](obj)
