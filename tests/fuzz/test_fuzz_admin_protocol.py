"""Fuzzing the admin wire codec (4-byte length + UTF-8 JSON, qactuar/admin/protocol.py).

Properties:

* any bytes, any split, either role, any cap: ``next_message`` gives messages or signals, or
  raises ``ProtocolError`` -- the codec's one documented error -- and then the same error again;
* round trip: generated messages of every type a side sends (with any JSON in their free
  fields) are decoded by the other side exactly, in any split;
* what decodes can be encoded again (a relay, a log line or a reply never meets a value the
  codec itself cannot write);
* the frame cap is enforced from the header, before the payload is buffered: a frame longer
  than the cap is refused once its 4 header bytes (often fewer) are in, whatever follows;
  and a frame exactly at the cap is accepted.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qactuar.admin.protocol import (
    CLOSED,
    NEED_DATA,
    Codec,
    Error,
    Event,
    Hello,
    Message,
    ProtocolError,
    Request,
    Response,
    Role,
    Signal,
    Welcome,
)

FUZZ = settings.get_profile("qactuar-fuzz")
LARGEST_ID = 2**53 - 1
OTHER: dict[Role, Role] = {"server": "client", "client": "server"}


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def run(codec: Codec, chunks: Sequence[bytes], *, eof: bool) -> tuple[list[Message], str]:
    """Feed ``chunks`` (then the end of input) reading after each; the messages and how it ended."""
    messages: list[Message] = []
    chunks = [chunk for chunk in chunks if chunk]  # b"" means the end of input to the codec
    for chunk in [*chunks, b""] if eof else chunks:
        codec.receive_data(chunk)
        while True:
            try:
                message = codec.next_message()
            except ProtocolError as exc:
                with_again = _raises_again(codec, exc)
                assert with_again, "a broken codec must keep raising its error"
                return messages, f"error: {exc}"
            if message is NEED_DATA:
                break
            if message is CLOSED:
                assert eof and chunk == b"", "CLOSED before the end of input"
                return messages, "closed"
            assert not isinstance(message, Signal)
            messages.append(message)
    return messages, "open"


def _raises_again(codec: Codec, exc: ProtocolError) -> bool:
    try:
        codec.next_message()
    except ProtocolError as again:
        return again is exc
    return False


# --- strategies ---------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
ids = st.integers(0, LARGEST_ID)
texts = st.text(max_size=40)

client_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, token=texts, version=st.integers(-(2**40), 2**40), client=texts),
    st.builds(Request, id=ids, command=texts, args=json_objects),
)
server_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Welcome, server=texts, version=st.integers(-(2**40), 2**40)),
    st.builds(Response, id=ids, ok=st.just(True), data=json_values),
    st.builds(Response, id=ids, ok=st.just(False), error=texts),
    st.builds(Event, event=texts, sub=ids, data=json_values, dropped=ids),
    st.builds(Error, error=texts),
)
SENT_BY: dict[Role, st.SearchStrategy[Message]] = {"client": client_messages, "server": server_messages}


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@st.composite
def json_frames(draw: st.DrawFn) -> bytes:
    """Frames of JSON that is often nearly a message: right and wrong types, fields, values."""
    obj: Any = draw(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["hello", "welcome", "request", "response", "event", "error", "x"])
                | json_values
            },
            optional={
                "id": ids | json_values,
                "ok": st.booleans() | json_values,
                "token": texts | json_values,
                "version": st.integers() | json_values,
                "command": texts | json_values,
                "args": json_objects | json_values,
                "data": json_values,
                "error": texts | json_values,
                "event": texts | json_values,
                "sub": ids | st.integers() | json_values,
                "dropped": ids | st.integers() | json_values,
                "server": texts | json_values,
                "client": texts | json_values,
            },
        )
        | json_values
    )
    text = json.dumps(obj)
    raw = text.encode()
    tweak = draw(st.sampled_from(["none", "none", "nan", "huge", "deep", "bad-utf8", "trailing", "overflow"]))
    if tweak == "nan":
        raw = raw.replace(b"0", b"NaN", 1) if b"0" in raw else raw + b"Infinity"
    elif tweak == "huge":
        raw = (
            b'{"type":"request","id":1,"command":"x","args":{"n":1'
            + b"0" * draw(st.sampled_from([400, 5000]))
            + b"}}"
        )
    elif tweak == "deep":
        depth = draw(st.integers(100, 5000))
        raw = b'{"type":"event","event":"e","sub":1,"data":' + b"[" * depth + b"]" * depth + b"}"
    elif tweak == "bad-utf8":
        raw = raw[:-1] + b"\xff" + raw[-1:]
    elif tweak == "overflow":  # a float JSON can write but no double holds
        raw = b'{"type":"%s","id":1,"command":"x","ok":true,"data":-1e400,"args":{"n":1e999}}' % draw(
            st.sampled_from([b"request", b"response"])
        )
    elif tweak == "trailing":
        raw += b" {}"
    return frame(raw)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(
                json_frames(),
                st.binary(max_size=12),
                st.sampled_from(
                    [b"GET / HTTP/1.1\r\n", b"POST ", b"\x00\x00\x00", b"\xff\xff\xff\xff", b"A"]
                ),
                st.binary(max_size=40).map(frame),
            ),
            max_size=6,
        )
    )
    return b"".join(parts)


caps = st.integers(1, 200) | st.just(1024 * 1024)


# --- properties ---------------------------------------------------------------------------------------------


@FUZZ
@given(
    role=st.sampled_from(["server", "client"]),
    stream=streams() | st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
    cap=caps,
    eof=st.booleans(),
)
def test_any_bytes_in_any_split_give_messages_or_protocol_error(
    role: Role, stream: bytes, cuts: list[int], cap: int, eof: bool
) -> None:
    whole = run(Codec(role, max_frame=cap), [stream], eof=eof)
    pieces = run(Codec(role, max_frame=cap), split(stream, cuts), eof=eof)
    # split invariance: the same messages, and the same ending (the text of an error may name a size
    # known so far, so errors are compared by kind only)
    assert pieces[0] == whole[0]
    assert pieces[1].partition(":")[0] == whole[1].partition(":")[0]


@FUZZ
@given(
    data=st.data(),
    sender=st.sampled_from(["server", "client"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_generated_messages_round_trip(data: st.DataObject, sender: Role, cuts: list[int]) -> None:
    messages = data.draw(st.lists(SENT_BY[sender], max_size=5))
    encoder = Codec(sender)
    wire = b"".join(encoder.encode(m) for m in messages)
    decoded, ending = run(Codec(OTHER[sender]), split(wire, cuts), eof=True)
    assert ending == "closed"
    assert decoded == messages


@FUZZ
@given(role=st.sampled_from(["server", "client"]), frames=st.lists(json_frames(), min_size=1, max_size=3))
def test_what_decodes_encodes_again(role: Role, frames: list[bytes]) -> None:
    """A decoded message never holds a value the codec cannot write (NaN, Infinity, a float overflow)."""
    messages = []
    for one in frames:  # each frame alone: one bad frame must not hide the others
        messages += run(Codec(role), [one], eof=True)[0]
    for message in messages:
        again, _ = run(Codec(role), [Codec(OTHER[role]).encode(message)], eof=True)
        assert again == [message]


@FUZZ
@given(
    role=st.sampled_from(["server", "client"]),
    cap=st.integers(1, 4096),
    over=st.integers(1, 2**32 - 1),
    rest=st.binary(max_size=64),
    cuts=st.lists(st.integers(0, 100), max_size=6),
)
def test_an_oversized_frame_is_refused_from_its_header(
    role: Role, cap: int, over: int, rest: bytes, cuts: list[int]
) -> None:
    """Refused as soon as the header is in (or a prefix of it already says too much): the payload is
    never waited for, so never buffered beyond the read that brought the header."""
    header = struct.pack(">I", min(cap + over, 2**32 - 1))
    codec = Codec(role, max_frame=cap)
    fed = 0
    for chunk in split(header + rest, cuts):
        codec.receive_data(chunk)
        fed += len(chunk)
        try:
            codec.next_message()
        except ProtocolError as exc:
            assert exc.http == header[:1].isalpha()  # an ASCII letter first: refused as HTTP/text
            return
        assert fed < len(header), f"a {header.hex()} header over the {cap}-byte cap was not refused"
    raise AssertionError("never refused")


@FUZZ
@given(data=st.data(), sender=st.sampled_from(["server", "client"]), cap=st.integers(1, 400))
def test_a_message_exactly_at_the_cap_is_read(data: st.DataObject, sender: Role, cap: int) -> None:
    """The cap counts payload bytes: a message of exactly ``cap`` bytes passes both ends."""
    padding = "x" * data.draw(st.integers(0, 40))
    make = {
        "client": lambda text: Request(id=1, command=text),
        "server": lambda text: Error(error=text),
    }[sender]
    size = len(Codec(sender).encode(make(padding))) - 4
    if size > cap:
        return
    message = make(padding + "y" * (cap - size))
    wire = Codec(sender, max_frame=cap).encode(message)
    assert len(wire) == cap + 4
    assert run(Codec(OTHER[sender], max_frame=cap), [wire], eof=True) == ([message], "closed")


# --- the defect found here, pinned --------------------------------------------------------------------------


def test_a_number_no_float_holds_is_a_protocol_error() -> None:
    """Found by test_what_decodes_encodes_again: ``1e999`` was read as infinity, which the codec cannot
    write back (a reply echoing it failed); now it is refused like NaN and Infinity."""
    payload = b'{"type":"request","id":1,"command":"x","args":{"n":1e999}}'
    codec = Codec("server")
    codec.receive_data(frame(payload))
    try:
        codec.next_message()
    except ProtocolError as exc:
        assert "out of range" in str(exc)
    else:
        raise AssertionError("1e999 was accepted")
