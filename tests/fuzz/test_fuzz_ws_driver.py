"""Fuzzing the sans-I/O WebSocket driver and its bounded permessage-deflate.

A hand-made client (``frame``, ``ClientStream``) writes what a well-behaved library will not:
any fragmentation, control frames between fragments, compressed and plain messages mixed,
compressors with any window and any flush (sync, full, or a final block), and raw garbage.
A wsproto client connection reads what the server writes back, as an independent check that
every frame the server sends is valid (a close code a peer may send, pongs that echo, ...).

Properties:

* any bytes after the handshake, in any split: only driver events, never an exception;
  every close frame the server writes carries a code an endpoint may send; no message is
  larger than ``max_size`` (the inflated size of compressed ones included);
* split invariance: the events and the bytes written are the same for any split;
* round trip: generated messages (text or binary, fragmented or not, compressed or not, with
  pings and pongs between fragments) arrive exactly, pings are answered, a close is echoed;
  a message exactly at ``max_size`` arrives, one byte more fails with 1009;
* the deflate extension never inflates more than its budget, whatever the input;
* the handshake: arbitrary offers of extensions and subprotocols never raise;
* messages and closes the server sends are read back exactly by wsproto.
"""

from __future__ import annotations

import base64
import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, Pong
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, RsvBits

from qactuar.http.driver import HTTPDriver, Limits, RequestHead
from qactuar.websocket.deflate import BoundedDeflate
from qactuar.websocket.driver import (
    NEED_DATA,
    WS_CLOSED,
    Closed,
    MessageReceived,
    PongReceived,
    WebSocketDriver,
)

FUZZ = settings.get_profile("qactuar-fuzz")
Item = tuple[Any, ...]
LOOP_GUARD = 100_000

# RFC 6455 7.4.1 and the IANA registry: the codes an endpoint may put in a close frame.
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
# ... and what a Closed event may report besides: 1005 when the peer's close had no code.
REPORTABLE_CODES = SENDABLE_CODES | {1005}


def sendable(code: int) -> bool:
    return code in SENDABLE_CODES or 3000 <= code <= 4999


# --- opening a driver ---------------------------------------------------------------------------------------


def upgrade_head(extra: bytes = b"") -> RequestHead:
    key = base64.b64encode(b"0123456789abcdef")
    raw = (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n" + extra + b"\r\n"
    )
    http = HTTPDriver(Limits())
    http.receive_data(raw)
    head = http.next_event()
    assert isinstance(head, RequestHead), head
    return head


@dataclass
class Opened:
    driver: WebSocketDriver
    deflate: bool  # permessage-deflate was negotiated
    client_resets: bool  # client_no_context_takeover was agreed: the client compresses each message afresh
    response: bytes


def open_driver(max_size: int, offer: str | None) -> Opened:
    driver = WebSocketDriver(max_size=max_size, per_message_deflate=offer is not None)
    extra = b"Sec-WebSocket-Extensions: " + offer.encode() + b"\r\n" if offer else b""
    assert driver.start(upgrade_head(extra)) is None
    response = driver.accept(None, [])
    assert response.startswith(b"HTTP/1.1 101 ")
    answer = b""
    for line in response.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-extensions":
            answer = value.strip()
    return Opened(
        driver, answer.startswith(b"permessage-deflate"), b"client_no_context_takeover" in answer, response
    )


DEFLATE_OFFERS = [
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10",
]
offers = st.sampled_from([None, *DEFLATE_OFFERS])


# --- the client side ----------------------------------------------------------------------------------------


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bytes = b"\x12\x34\x56\x78"
) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes([first, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


@dataclass
class Message:
    data: str | bytes
    compressed: bool
    flush: str  # "sync" | "full" | "final" (a BFINAL block, RFC 7692 7.2.3.4)
    cuts: list[int]  # fragment boundaries in the payload as sent
    controls: list[tuple[int, int, bytes]] = field(
        default_factory=list
    )  # (before fragment i, opcode, payload)

    def size(self) -> int:
        return len(self.data.encode()) if isinstance(self.data, str) else len(self.data)


class ClientStream:
    """Encodes messages as a client would, keeping one compressor across messages (context takeover).

    ``encode`` also returns the events the server should report, in wire order: a pong frame
    between fragments is reported before the message, which is reported at its last fragment."""

    def __init__(self, wbits: int, resets: bool) -> None:
        self.wbits = wbits
        self.resets = resets
        self.pings: list[bytes] = []  # ping payloads sent, in wire order
        self._compressor: Any = None

    def encode(self, message: Message) -> tuple[bytes, list[Item]]:
        raw = message.data.encode() if isinstance(message.data, str) else message.data
        if message.compressed:
            raw = self._compress(raw, message.flush)
        opcode = 0x1 if isinstance(message.data, str) else 0x2
        pieces = _split(raw, message.cuts)
        out = b""
        items: list[Item] = []
        for index in range(len(pieces) + 1):
            for at, op, payload in message.controls:
                if min(at, len(pieces)) == index:
                    out += frame(op, payload)
                    if op == 0x9:
                        self.pings.append(payload)
                    if op == 0xA:
                        items.append(("pong", payload))
            if index < len(pieces):
                last = index == len(pieces) - 1
                first = index == 0
                out += frame(
                    opcode if first else 0x0, pieces[index], fin=last, rsv1=message.compressed and first
                )
                if last:
                    items.append(("message", message.data))
        return out, items

    def _compress(self, raw: bytes, flush: str) -> bytes:
        if self._compressor is None:
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, -self.wbits)
        out = self._compressor.compress(raw)
        if flush == "final":
            out += self._compressor.flush(zlib.Z_FINISH)
            self._compressor = None  # a finished stream cannot go on: the next message starts afresh
            return out
        out += self._compressor.flush(zlib.Z_SYNC_FLUSH if flush == "sync" else zlib.Z_FULL_FLUSH)
        if self.resets:
            self._compressor = None
        return out.removesuffix(b"\x00\x00\xff\xff")


def _split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts} - {0, len(data)})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    return [piece for piece in _split(data, cuts) if piece]


# --- the harness --------------------------------------------------------------------------------------------


def server_frames(data: bytes, deflate: bool) -> list[Any]:
    """What a wsproto client reads from the server's bytes; it fails on any invalid frame."""
    extensions = []
    if deflate:
        ext = PerMessageDeflate()
        ext.finalize("permessage-deflate")
        extensions.append(ext)
    client = Connection(ConnectionType.CLIENT, extensions)
    client.receive_data(data)
    return list(client.events())


def drive(opened: Opened, chunks: Sequence[bytes]) -> tuple[list[Item], bytes]:
    """Feed ``chunks``; the events (checked) and every byte the driver wrote back."""
    driver = opened.driver
    items: list[Item] = []
    out = b""
    for chunk in chunks:
        driver.receive_data(chunk)
        for _ in range(LOOP_GUARD):
            event = driver.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, MessageReceived):
                assert isinstance(event.data, str | bytes)
                size = len(event.data.encode()) if isinstance(event.data, str) else len(event.data)
                assert size <= driver.max_size, f"a message of {size} bytes passed max_size={driver.max_size}"
                items.append(("message", event.data))
            elif isinstance(event, PongReceived):
                assert type(event.payload) is bytes
                items.append(("pong", event.payload))
            elif isinstance(event, Closed):
                assert event.code in REPORTABLE_CODES or 3000 <= event.code <= 4999, event
                items.append(("closed", event.code))
            else:
                raise AssertionError(f"not a driver event: {event!r}")
        else:
            raise AssertionError("the driver produced events forever")
        out += driver.data_to_send()
    check_server_output(out, opened.deflate)
    return items, out


def check_server_output(out: bytes, deflate: bool) -> None:
    for event in server_frames(out, deflate):
        if isinstance(event, CloseConnection):
            # wsproto reports a frame it cannot parse as a close with 1002/1007/1009 and a reason of its own,
            # and a close frame without a code (the echo of one) as 1005; 1005 is never on the wire.
            assert sendable(event.code) or event.code == 1005, f"the server sent close code {event.code}"


# --- strategies ---------------------------------------------------------------------------------------------

texts = st.text(max_size=60) | st.text(alphabet="ab", max_size=600)
binaries = st.binary(max_size=60) | st.binary(max_size=2000).map(lambda b: b * 3)


@st.composite
def messages(draw: st.DrawFn, deflate: bool) -> Message:
    data: str | bytes = draw(texts | binaries)
    compressed = deflate and draw(st.booleans())
    flush = draw(st.sampled_from(["sync", "sync", "full", "final"]))
    cuts = draw(st.lists(st.integers(0, 3000), max_size=4))
    controls = draw(
        st.lists(
            st.tuples(st.integers(0, 5), st.sampled_from([0x9, 0xA]), st.binary(max_size=125)),
            max_size=2,
        )
    )
    return Message(data, compressed, flush, cuts, controls)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[str | None, int, list[Message]]:
    offer = draw(offers)
    wbits = draw(st.integers(9, 15))
    opened = open_driver(1 << 20, offer)
    msgs = draw(st.lists(messages(opened.deflate), max_size=5))
    return offer, wbits, msgs


def encode_all(wbits: int, msgs: Sequence[Message], opened: Opened) -> tuple[bytes, list[Item], list[bytes]]:
    """The client's bytes, the events the server should report, the pings it should answer (in order)."""
    client = ClientStream(wbits, opened.client_resets)
    stream = b""
    items: list[Item] = []
    for message in msgs:
        data, expected = client.encode(message)
        stream += data
        items += expected
    return stream, items, client.pings


@st.composite
def cut_lists(draw: st.DrawFn, data: bytes) -> list[int]:
    return draw(st.lists(st.integers(0, len(data)), max_size=12))


# --- round trip ---------------------------------------------------------------------------------------------


@FUZZ
@given(
    data=st.data(), conversation=conversations(), close=st.none() | st.sampled_from([1000, 1001, 3000, 4999])
)
def test_generated_messages_round_trip(
    data: st.DataObject, conversation: tuple[str | None, int, list[Message]], close: int | None
) -> None:
    offer, wbits, msgs = conversation
    max_size = max((m.size() for m in msgs), default=1) + data.draw(st.sampled_from([0, 0, 1, 100]))
    opened = open_driver(max(max_size, 1), offer)
    stream, expected, pings = encode_all(wbits, msgs, opened)
    if close is not None:
        stream += frame(0x8, close.to_bytes(2, "big") + b"bye")
        expected.append(("closed", close))
    items, out = drive(opened, split(stream, data.draw(cut_lists(stream))))
    assert items == expected
    replies = server_frames(out, opened.deflate)
    assert [bytes(e.payload) for e in replies if isinstance(e, Ping | Pong)] == pings
    closes = [e.code for e in replies if isinstance(e, CloseConnection)]
    assert closes == ([close] if close is not None else [])


# --- arbitrary input ----------------------------------------------------------------------------------------


@st.composite
def raw_frames(draw: st.DrawFn) -> bytes:
    """Frames that are often almost right: any opcode, flags, mask, close payload, length (even a lie)."""
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15))
    if opcode == 0x8 and draw(st.booleans()):
        code = draw(st.sampled_from(sorted(SENDABLE_CODES)) | st.integers(0, 65535))
        reason = draw(st.text(max_size=20).map(str.encode) | st.binary(max_size=8))
        payload = code.to_bytes(2, "big") + reason
    elif opcode in (0x1, 0x2, 0x0) and draw(st.booleans()):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -draw(st.integers(9, 15)))
        plain = draw(st.binary(max_size=100)) * draw(st.integers(1, 400))
        payload = compressor.compress(plain) + compressor.flush(
            draw(st.sampled_from([zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH, zlib.Z_FINISH]))
        )
        payload = payload.removesuffix(b"\x00\x00\xff\xff")
    else:
        payload = draw(st.binary(max_size=140))
    data = frame(opcode, payload, fin=draw(st.booleans()), rsv1=draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:
        data = bytes([data[0] | draw(st.sampled_from([0x10, 0x20])), *data[1:]])  # rsv2 / rsv3
    if draw(st.integers(0, 9)) == 0:
        data = bytes([data[0], data[1] & 0x7F, *data[6:]])  # unmasked (the mask is dropped)
    return data


@st.composite
def ws_streams(draw: st.DrawFn) -> tuple[str | None, int, bytes]:
    offer = draw(offers)
    max_size = draw(st.integers(1, 300) | st.just(1 << 20))
    kind = draw(st.sampled_from(["random", "frames", "mutated"]))
    if kind == "random":
        return offer, max_size, draw(st.binary(max_size=300))
    if kind == "frames":
        return offer, max_size, b"".join(draw(st.lists(raw_frames(), max_size=8)))
    opened = open_driver(max_size, offer)
    msgs = draw(st.lists(messages(opened.deflate), max_size=4))
    data = bytearray(encode_all(draw(st.integers(9, 15)), msgs, opened)[0])
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            data[pos:pos] = draw(raw_frames())
    return offer, max_size, bytes(data)


@FUZZ
@given(data=st.data(), stream=ws_streams())
def test_arbitrary_bytes_only_give_events_and_valid_frames(
    data: st.DataObject, stream: tuple[str | None, int, bytes]
) -> None:
    offer, max_size, raw = stream
    opened = open_driver(max_size, offer)
    driver = opened.driver
    drive(opened, split(raw, data.draw(cut_lists(raw))))
    if driver.state == WS_CLOSED:  # once closed, more input is ignored and nothing more is written
        driver.receive_data(raw)
        assert driver.next_event() is NEED_DATA
        assert driver.data_to_send() == b""


@FUZZ
@given(data=st.data(), stream=ws_streams())
def test_split_invariance(data: st.DataObject, stream: tuple[str | None, int, bytes]) -> None:
    offer, max_size, raw = stream
    whole = drive(open_driver(max_size, offer), [raw])
    pieces = drive(open_driver(max_size, offer), split(raw, data.draw(cut_lists(raw))))
    assert same_up_to_first_failure(pieces, whole, offer is not None), (pieces, whole)
    bytewise = drive(open_driver(max_size, offer), [raw[i : i + 1] for i in range(len(raw))])
    assert same_up_to_first_failure(bytewise, whole, offer is not None), (bytewise, whole)


def same_up_to_first_failure(
    one: tuple[list[Item], bytes], other: tuple[list[Item], bytes], deflate: bool
) -> bool:
    """Equal, or equal but for a final close that is 1007 in one and 1009 in the other.

    A text message that is both too big and invalid UTF-8 (or corrupt compressed data) fails either way;
    which check fires first depends on the reads: wsproto validates a frame's UTF-8 as far as it has
    the frame, the size limit counts what has been delivered.  Both codes are true; the message is never
    delivered.  Everything before the close must still be identical."""
    if one == other:
        return True
    (items, out), (other_items, other_out) = one, other
    if items[:-1] != other_items[:-1] or {items[-1], other_items[-1]} != {("closed", 1007), ("closed", 1009)}:
        return False
    frames, other_frames = server_frames(out, deflate), server_frames(other_out, deflate)
    return repr(frames[:-1]) == repr(other_frames[:-1])


@FUZZ
@given(data=st.data(), offer=offers)
def test_one_byte_over_max_size_fails_with_1009(data: st.DataObject, offer: str | None) -> None:
    """The message exactly at max_size arrives (the round trip test); one byte more never does."""
    msg = data.draw(messages(offer is not None).filter(lambda m: m.size() > 1))
    opened = open_driver(msg.size() - 1, offer)
    assert opened.deflate == (offer is not None)
    stream, _, _ = encode_all(data.draw(st.integers(9, 15)), [msg], opened)
    items, out = drive(opened, split(stream, data.draw(cut_lists(stream))))
    assert all(item[0] != "message" for item in items), items
    assert ("closed", 1009) in items, items
    assert [e.code for e in server_frames(out, opened.deflate) if isinstance(e, CloseConnection)] == [1009]


# --- the deflate extension alone ----------------------------------------------------------------------------


@FUZZ
@given(
    max_size=st.integers(1, 5000),
    frames=st.lists(
        st.tuples(st.booleans(), st.binary(max_size=50) | st.binary(max_size=20).map(lambda b: b * 500)),
        min_size=1,
        max_size=6,
    ),
    compress=st.booleans(),
)
def test_bounded_deflate_never_inflates_past_its_budget(
    max_size: int, frames: list[tuple[bool, bytes]], compress: bool
) -> None:
    """Feed one message frame by frame (compressed by a real compressor, or raw bytes): the inflated
    total stays within max_size, or the extension stops it with 1009/1007."""
    ext = BoundedDeflate(max_size)
    assert ext.accept("permessage-deflate") == ""
    proto = FrameProtocol(client=False, extensions=[])
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    total = 0
    for index, (fin_flag, chunk) in enumerate(frames):
        fin = fin_flag or index == len(frames) - 1
        payload = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH) if compress else chunk
        opcode = Opcode.BINARY if index == 0 else Opcode.CONTINUATION
        rsv = RsvBits(index == 0, False, False)
        assert ext.frame_inbound_header(proto, opcode, rsv, len(payload)) == RsvBits(True, False, False)
        for result in (
            ext.frame_inbound_payload_data(proto, payload),
            ext.frame_inbound_complete(proto, fin),
        ):
            if isinstance(result, CloseReason):
                assert result in (CloseReason.MESSAGE_TOO_BIG, CloseReason.INVALID_FRAME_PAYLOAD_DATA)
                return
            total += len(result or b"")
            assert total <= max_size
        if fin:
            break


# --- the handshake ------------------------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
extension_offers = st.lists(
    st.sampled_from(["permessage-deflate", "x-webkit-deflate-frame", "foo"]).flatmap(
        lambda name: st.lists(
            st.sampled_from(
                [
                    "server_no_context_takeover",
                    "client_no_context_takeover",
                    "server_max_window_bits",
                    "client_max_window_bits",
                    "x",
                ]
            ).flatmap(
                lambda p: st.sampled_from(["", "=8", "=9", "=15", "=16", '="10"', "=abc", "= 10"]).map(
                    lambda v: p + v
                )
            ),
            max_size=4,
        ).map(lambda params: "; ".join([name, *params]))
    ),
    max_size=3,
).map(", ".join)


@FUZZ
@given(
    extensions=st.lists(extension_offers | header_text, max_size=2),
    protocols=st.lists(header_text, max_size=2),
    deflate=st.booleans(),
)
def test_any_offer_of_extensions_or_subprotocols_never_raises(
    extensions: list[str], protocols: list[str], deflate: bool
) -> None:
    extra = b"".join(b"Sec-WebSocket-Extensions: " + e.strip().encode() + b"\r\n" for e in extensions)
    extra += b"".join(b"Sec-WebSocket-Protocol: " + p.strip().encode() + b"\r\n" for p in protocols)
    http = HTTPDriver(Limits())
    key = base64.b64encode(b"0123456789abcdef")
    http.receive_data(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n" + extra + b"\r\n"
    )
    head = http.next_event()
    if not isinstance(head, RequestHead):
        return  # the HTTP driver refused the head itself
    driver = WebSocketDriver(max_size=1000, per_message_deflate=deflate)
    if driver.start(head) is not None:
        return
    for subprotocol in [None, *driver.subprotocols[:1]]:
        response = WebSocketDriver(max_size=1000, per_message_deflate=deflate)
        assert response.start(head) is None
        out = response.accept(subprotocol, [])
        assert out.startswith(b"HTTP/1.1 101 ")
        answers = [
            line for line in out.split(b"\r\n") if line.lower().startswith(b"sec-websocket-extensions:")
        ]
        assert len(answers) <= 1
        if answers:
            assert deflate and answers[0].split(b":", 1)[1].strip().startswith(b"permessage-deflate")


# --- the server's own frames --------------------------------------------------------------------------------


@FUZZ
@given(
    offer=offers,
    outgoing=st.lists(texts | binaries, max_size=5),
    # 1014 is left out: wsproto (the reader here) does not know that registered code and refuses it
    close=st.tuples(
        st.sampled_from(sorted(SENDABLE_CODES - {1014})) | st.integers(3000, 4999), st.text(max_size=80)
    ),
)
def test_what_the_server_sends_is_read_back_exactly(
    offer: str | None, outgoing: list[str | bytes], close: tuple[int, str]
) -> None:
    opened = open_driver(1 << 20, offer)
    driver = opened.driver
    wire = b"".join(driver.send_message(m) for m in outgoing) + driver.close(*close)
    events = server_frames(wire, opened.deflate)
    assert [e.data for e in events[:-1]] == outgoing
    last = events[-1]
    assert isinstance(last, CloseConnection) and last.code == close[0]
    assert close[1].encode().startswith(last.reason.encode())  # a long reason is cut to fit 125 bytes


# --- the defect found here, pinned --------------------------------------------------------------------------


def test_a_message_ending_in_a_final_deflate_block_does_not_swallow_the_next() -> None:
    """Found by test_generated_messages_round_trip: a compressed message flushed with Z_FINISH (BFINAL,
    RFC 7692 7.2.3.4) left zlib's stream ended, so every later compressed message came out empty."""
    opened = open_driver(1000, "permessage-deflate")
    client = ClientStream(15, resets=False)
    first, _ = client.encode(Message("", compressed=True, flush="final", cuts=[]))
    second, _ = client.encode(Message("0", compressed=True, flush="sync", cuts=[]))
    items, _ = drive(opened, [first + second])
    assert items == [("message", ""), ("message", "0")]


def test_bytes_after_a_final_deflate_block_fail_with_1007() -> None:
    opened = open_driver(1000, "permessage-deflate")
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(b"abc") + compressor.flush(zlib.Z_FINISH) + b"\x02\x00"
    items, out = drive(opened, [frame(0x2, payload, rsv1=True)])
    assert items == [("closed", 1007)]
    assert [e.code for e in server_frames(out, True) if isinstance(e, CloseConnection)] == [1007]


def test_invalid_utf8_gives_the_same_close_frame_in_any_split() -> None:
    """Found by test_split_invariance: the 1007 reason was the UnicodeDecodeError's text, whose byte
    position depends on where a read ended, so the same bytes gave different close frames."""
    stream = frame(0x1, b"p\xe0\x80")
    whole = drive(open_driver(1000, None), [stream])
    assert whole[0] == [("closed", 1007)]
    assert drive(open_driver(1000, None), [stream[i : i + 1] for i in range(len(stream))]) == whole
