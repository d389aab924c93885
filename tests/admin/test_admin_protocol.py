"""The sans-I/O codec: bytes in, messages out, and every way bytes can be wrong."""

from __future__ import annotations

import json
import struct

import pytest

from qactuar.admin.logfilter import LogFilter, level_number
from qactuar.admin.protocol import (
    CLOSED,
    MAX_FRAME,
    NEED_DATA,
    Codec,
    Error,
    Event,
    Hello,
    Message,
    ProtocolError,
    Request,
    Response,
    Signal,
    Welcome,
)


def frame(obj: object) -> bytes:
    payload = json.dumps(obj).encode()
    return struct.pack(">I", len(payload)) + payload


def drain(codec: Codec) -> list[Message]:
    out: list[Message] = []
    while not isinstance(message := codec.next_message(), Signal):
        out.append(message)
    return out


CLIENT_MESSAGES: list[Message] = [
    Hello(token="t" * 43, client="qactuar-cli 0.3.0"),
    Request(1, "status"),
    Request(2, "logs", {"n": 5, "level": "WARNING", "text": "ünïcode ✓"}),
]
SERVER_MESSAGES: list[Message] = [
    Welcome(server="qactuar 0.3.0"),
    Response(1, True, {"mode": "prefork", "listen": ["http://127.0.0.1:8000"]}),
    Response(2, False, error="unknown command 'x'"),
    Event("log", 3, {"seq": 9, "message": "hi"}),
    Event("stats", 4, {"time": 1.5}, dropped=7),
    Error("authentication failed"),
]


@pytest.mark.parametrize(
    ("sender", "receiver", "messages"),
    [("client", "server", CLIENT_MESSAGES), ("server", "client", SERVER_MESSAGES)],
)
def test_round_trip_split_at_every_byte(sender: str, receiver: str, messages: list[Message]) -> None:
    data = b"".join(Codec(sender).encode(message) for message in messages)  # type: ignore[arg-type]
    for cut in range(len(data) + 1):
        codec = Codec(receiver)  # type: ignore[arg-type]
        got: list[Message] = []
        for part in (data[:cut], data[cut:]):
            if part:  # receive_data(b"") would mean end of input
                codec.receive_data(part)
                got += drain(codec)
        assert got == messages, cut


def test_byte_by_byte() -> None:
    data = Codec("client").encode(Request(7, "ping"))
    codec = Codec("server")
    for i in range(len(data) - 1):
        codec.receive_data(data[i : i + 1])
        assert codec.next_message() is NEED_DATA
    codec.receive_data(data[-1:])
    assert codec.next_message() == Request(7, "ping")


def test_wire_format_is_length_prefixed_json() -> None:
    data = Codec("client").encode(Request(1, "scale", {"n": 4}))
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert json.loads(data[4:]) == {"type": "request", "id": 1, "command": "scale", "args": {"n": 4}}
    event = Codec("server").encode(Event("log", 2, {"seq": 1}))
    assert json.loads(event[4:]) == {"type": "event", "event": "log", "sub": 2, "data": {"seq": 1}}


def test_oversized_frame_is_refused_from_its_header() -> None:
    codec = Codec("server")
    codec.receive_data(struct.pack(">I", 2 * MAX_FRAME))  # no payload needed to refuse it
    with pytest.raises(ProtocolError, match="exceeds the 1048576-byte limit") as info:
        codec.next_message()
    assert not info.value.http


def test_partial_header_already_too_large() -> None:
    codec = Codec("server")
    codec.receive_data(b"\x00\x20")  # at least 2 MiB whatever follows
    with pytest.raises(ProtocolError, match="at least 2097152 bytes"):
        codec.next_message()


def test_frame_exactly_at_the_cap_is_accepted() -> None:
    codec = Codec("server", max_frame=64)
    payload = b'{"type": "request", "id": 1, "command": "ping"}'.ljust(64)  # JSON allows trailing spaces
    codec.receive_data(struct.pack(">I", 64) + payload)
    assert codec.next_message() == Request(1, "ping")


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"GET / HTTP/1.1\r\nHost: localhost:1986\r\n\r\n", "HTTP GET"),
        (b"POST /api HTTP/1.1\r\n", "HTTP POST"),
        (b"OPTIONS * HTTP/1.1\r\n", "HTTP OPTIONS"),
        (b"G", "text protocol"),
        (b"PRI * HTTP/2.0\r\n", "text protocol"),
    ],
)
def test_http_looking_bytes(data: bytes, what: str) -> None:
    codec = Codec("server")
    codec.receive_data(data)
    with pytest.raises(ProtocolError, match=what) as info:
        codec.next_message()
    assert info.value.http


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"", "not valid UTF-8 JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"type": "hello", "version": 1, "token": NaN}', "not valid"),
        (b"[" * 100_000, "not valid"),  # too deep: RecursionError, not a crash
        (b'{"type": "welcome", "version": 1, "server": "x"}', "not one a server receives"),
        (b'{"type": "nope"}', "not one a server receives"),
        (b'{"version": 1}', "not one a server receives"),
        (b'{"type": "hello", "version": 1}', "no 'token' field"),
        (b'{"type": "request", "id": true, "command": "x"}', "'id' must be int"),
        (b'{"type": "request", "id": -1, "command": "x"}', "'id' must be from 0"),
        (b'{"type": "request", "id": 1, "command": "x", "args": []}', "'args' must be dict"),
    ],
)
def test_invalid_frames(payload: bytes, match: str) -> None:
    codec = Codec("server")
    codec.receive_data(struct.pack(">I", len(payload)) + payload)
    with pytest.raises(ProtocolError, match=match):
        codec.next_message()


def test_unknown_fields_are_ignored() -> None:
    codec = Codec("server")
    codec.receive_data(frame({"type": "request", "id": 3, "command": "ping", "future": [1, 2]}))
    assert codec.next_message() == Request(3, "ping")


def test_broken_codec_stays_broken() -> None:
    codec = Codec("server")
    codec.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    for _ in range(2):
        with pytest.raises(ProtocolError):
            codec.next_message()


def test_end_of_input() -> None:
    codec = Codec("client")
    codec.receive_data(Codec("server").encode(Welcome("qactuar")))
    codec.receive_data(b"")
    assert codec.next_message() == Welcome("qactuar")
    assert codec.next_message() is CLOSED


def test_end_of_input_inside_a_frame() -> None:
    codec = Codec("client")
    codec.receive_data(Codec("server").encode(Welcome("qactuar"))[:-1])
    codec.receive_data(b"")
    with pytest.raises(ProtocolError, match="middle of a frame"):
        codec.next_message()


def test_encode_refuses_what_it_cannot_send() -> None:
    with pytest.raises(ProtocolError, match="does not send Hello"):
        Codec("server").encode(Hello(token="x"))
    with pytest.raises(ProtocolError, match="cannot encode"):
        Codec("server").encode(Response(1, True, {"rate": float("nan")}))
    with pytest.raises(ProtocolError, match="cannot encode"):
        Codec("server").encode(Response(1, True, {"x": object()}))
    with pytest.raises(ProtocolError, match="exceeds the 100-byte frame limit"):
        Codec("server", max_frame=100).encode(Response(1, True, "x" * 200))


def test_hello_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(Hello(token="s3cret-token"))


def test_max_frame_must_keep_text_distinguishable() -> None:
    with pytest.raises(ValueError, match="max_frame"):
        Codec("server", max_frame=2**31)


# --- the log filter ----------------------------------------------------------------------------------------


def test_log_filter() -> None:
    rec = {
        "level": "WARNING",
        "logger": "qt_access.sub",
        "route": "/api",
        "message": "Disk LOW",
        "exc_text": None,
    }
    assert LogFilter().matches(rec)
    assert LogFilter(level=level_number("WARNING") or 0).matches(rec)
    assert not LogFilter(level=level_number("ERROR") or 0).matches(rec)
    assert LogFilter(logger="qt_access").matches(rec)
    assert not LogFilter(logger="qt_acc").matches(rec)
    assert LogFilter(route="/api").matches(rec)
    assert not LogFilter(route="/").matches(rec)
    assert LogFilter(text="disk low").matches(rec)
    assert LogFilter(text="trace").matches({**rec, "exc_text": "Traceback ..."})
    assert not LogFilter(text="nothing").matches(rec)
    assert LogFilter(level=30).matches({**rec, "level": 40})
    assert level_number("nonsense") is None
