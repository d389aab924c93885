"""The sans-I/O WebSocket driver: feed it bytes, compare the events and the bytes it answers."""

from __future__ import annotations

import base64
import zlib

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.events import Event as WSEvent
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import generate_accept_token
from wsraw import frame

from qactuar.http.driver import HTTPDriver, Limits, RequestHead
from qactuar.websocket.deflate import BoundedDeflate
from qactuar.websocket.driver import (
    NEED_DATA,
    WS_CLOSED,
    WS_CLOSING,
    WS_OPEN,
    Closed,
    MessageReceived,
    PongReceived,
    WebSocketDriver,
)

KEY = base64.b64encode(b"0123456789abcdef")


def request_head(
    extra: bytes = b"", *, first_line: bytes = b"GET /chat?x=1 HTTP/1.1", key: bytes = KEY
) -> RequestHead:
    raw = (
        first_line
        + b"\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n"
        + extra
        + b"\r\n"
    )
    http = HTTPDriver(Limits())
    http.receive_data(raw)
    head = http.next_event()
    assert isinstance(head, RequestHead)
    return head


VERSION = b"Sec-WebSocket-Version: 13\r\n"


def opened(
    *, max_size: int = 1 << 20, deflate: bool = False, extra: bytes = b""
) -> tuple[WebSocketDriver, bytes]:
    driver = WebSocketDriver(max_size=max_size, per_message_deflate=deflate)
    assert driver.start(request_head(VERSION + extra)) is None
    return driver, driver.accept(None, [])


def client(*, deflate: bool = False) -> Connection:
    extensions = []
    if deflate:
        ext = PerMessageDeflate()
        ext.finalize("permessage-deflate")
        extensions.append(ext)
    return Connection(ConnectionType.CLIENT, extensions)


def events_of(driver: WebSocketDriver) -> list[object]:
    found: list[object] = []
    while (event := driver.next_event()) is not NEED_DATA:
        found.append(event)
    return found


def replies(driver: WebSocketDriver, peer: Connection) -> list[WSEvent]:
    peer.receive_data(driver.data_to_send())
    return list(peer.events())


# -- handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "first_line", "key", "status"),
    [
        (b"", b"GET / HTTP/1.1", KEY, 400),  # no Sec-WebSocket-Version
        (b"Sec-WebSocket-Version: 8\r\n", b"GET / HTTP/1.1", KEY, 426),
        (VERSION + VERSION, b"GET / HTTP/1.1", KEY, 426),
        (VERSION, b"POST / HTTP/1.1", KEY, 400),
        (VERSION, b"GET / HTTP/1.0", KEY, 400),
        (VERSION + b"Content-Length: 3\r\n", b"GET / HTTP/1.1", KEY, 400),
        (VERSION, b"GET / HTTP/1.1", b"not-base64!", 400),
        (VERSION, b"GET / HTTP/1.1", base64.b64encode(b"short"), 400),
        (VERSION + b"Sec-WebSocket-Protocol: caf\xc3\xa9\r\n", b"GET / HTTP/1.1", KEY, 400),
    ],
    ids=[
        "no-version",
        "version-8",
        "two-versions",
        "post",
        "http10",
        "body",
        "bad-key",
        "short-key",
        "non-ascii",
    ],
)
def test_invalid_handshakes(extra: bytes, first_line: bytes, key: bytes, status: int) -> None:
    driver = WebSocketDriver(max_size=100, per_message_deflate=True)
    error = driver.start(request_head(extra, first_line=first_line, key=key))
    assert error is not None
    assert error.status == status
    if status == 426:
        assert error.headers == ((b"sec-websocket-version", b"13"),)


def test_accept_writes_101_with_token_and_subprotocol() -> None:
    driver = WebSocketDriver(max_size=100, per_message_deflate=False)
    assert driver.start(request_head(VERSION + b"Sec-WebSocket-Protocol: a, chat\r\n")) is None
    assert driver.subprotocols == ["a", "chat"]
    with pytest.raises(ValueError, match="subprotocol"):
        driver.accept("other", [])
    with pytest.raises(ValueError):
        driver.accept(None, [(b"x-bad", b"a\r\nInjected: 1")])
    data = driver.accept("chat", [(b"x-extra", b"1")])
    head = data.decode("latin-1").lower()
    assert head.startswith("http/1.1 101 ")
    assert "sec-websocket-accept: " + generate_accept_token(KEY).decode().lower() in head
    assert "sec-websocket-protocol: chat" in head
    assert "x-extra: 1" in head
    assert driver.state == WS_OPEN


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        (b"permessage-deflate", "permessage-deflate"),
        (b"permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (b"permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        (b"permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10"),
        (b"permessage-deflate; server_max_window_bits=8", None),
        (b"permessage-deflate; unknown_param", None),
        (b"permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate"),
        (b"x-other-extension", None),
    ],
)
def test_deflate_negotiation(offer: bytes, answer: str | None) -> None:
    _, data = opened(deflate=True, extra=b"Sec-WebSocket-Extensions: " + offer + b"\r\n")
    lines = data.decode("latin-1").lower().split("\r\n")
    found = [line.split(": ", 1)[1] for line in lines if line.startswith("sec-websocket-extensions:")]
    assert found == ([answer] if answer else [])


def test_deflate_off_ignores_the_offer() -> None:
    _, data = opened(deflate=False, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert b"permessage-deflate" not in data.lower()


def test_denial_is_framed_by_h11() -> None:
    driver = WebSocketDriver(max_size=100, per_message_deflate=False)
    assert driver.start(request_head(VERSION)) is None
    with pytest.raises(ValueError):
        driver.deny(401, [(b"bad header", b"x")], b"", more_body=False)
    data = driver.deny(401, [(b"content-type", b"text/plain")], b"no ", more_body=True)
    data += driver.deny_body(b"entry", more_body=False)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert b"transfer-encoding: chunked" in data.lower()
    assert data.endswith(b"3\r\nno \r\n5\r\nentry\r\n0\r\n\r\n")
    assert driver.state == WS_CLOSED


# -- messages ----------------------------------------------------------------------------


def test_text_binary_and_fragments() -> None:
    driver, _ = opened()
    peer = client()
    data = peer.send(TextMessage(data="hé"))
    data += peer.send(BytesMessage(data=b"\x00\x01"))
    data += peer.send(TextMessage(data="frag", message_finished=False))
    data += peer.send(Ping(payload=b"in-between"))
    data += peer.send(TextMessage(data="mented"))
    driver.receive_data(data)
    assert events_of(driver) == [
        MessageReceived("hé"),
        MessageReceived(b"\x00\x01"),
        MessageReceived("fragmented"),
    ]
    assert replies(driver, peer) == [Pong(payload=b"in-between")]


def test_bytes_split_at_every_position() -> None:
    peer = client()
    data = peer.send(TextMessage(data="hello")) + peer.send(BytesMessage(data=b"x" * 300))
    for cut in range(len(data)):
        driver, _ = opened()
        driver.receive_data(data[:cut])
        first = events_of(driver)
        driver.receive_data(data[cut:])
        assert first + events_of(driver) == [MessageReceived("hello"), MessageReceived(b"x" * 300)]


def test_events_are_parsed_lazily() -> None:
    driver, _ = opened()
    peer = client()
    driver.receive_data(b"".join(peer.send(TextMessage(data=str(i))) for i in range(3)))
    assert driver.next_event() == MessageReceived("0")
    driver.receive_data(peer.send(TextMessage(data="3")))  # more bytes before the rest was asked for
    assert events_of(driver) == [MessageReceived(str(i)) for i in (1, 2, 3)]


def test_message_over_max_size_fails_with_1009() -> None:
    driver, _ = opened(max_size=10)
    peer = client()
    driver.receive_data(peer.send(TextMessage(data="0123456789")))  # exactly the limit
    assert events_of(driver) == [MessageReceived("0123456789")]
    driver.receive_data(peer.send(TextMessage(data="é" * 6, message_finished=False)))  # 12 bytes
    assert events_of(driver) == [Closed(1009, "message larger than 10 bytes")]
    reply = replies(driver, peer)
    assert isinstance(reply[0], CloseConnection)
    assert reply[0].code == 1009
    assert driver.state == WS_CLOSED


def test_invalid_utf8_fails_with_1007() -> None:
    driver, _ = opened()
    driver.receive_data(frame(0x1, b"ok \xff"))
    [event] = events_of(driver)
    assert isinstance(event, Closed)
    assert event.code == 1007
    out = driver.data_to_send()
    assert out[0] == 0x88
    assert out[2:4] == (1007).to_bytes(2, "big")


@pytest.mark.parametrize(
    "data",
    [frame(0x1, b"unmasked", mask=False), frame(0x3, b""), frame(0x9, b"x" * 126), frame(0x0, b"orphan")],
    ids=["unmasked", "reserved-opcode", "long-control-frame", "orphan-continuation"],
)
def test_protocol_violations_fail_with_1002(data: bytes) -> None:
    driver, _ = opened()
    driver.receive_data(data)
    [event] = events_of(driver)
    assert isinstance(event, Closed)
    assert event.code == 1002
    assert driver.data_to_send().startswith(b"\x88")
    driver.receive_data(b"anything after the end is ignored")
    assert driver.next_event() is NEED_DATA


def test_peer_close_is_echoed() -> None:
    driver, _ = opened()
    peer = client()
    driver.receive_data(peer.send(CloseConnection(code=4001, reason="bye")))
    assert events_of(driver) == [Closed(4001, "bye")]
    assert replies(driver, peer) == [CloseConnection(code=4001, reason="bye")]
    assert driver.send_message("too late") == b""


def test_local_close_discards_data_until_the_echo() -> None:
    driver, _ = opened()
    peer = client()
    peer.receive_data(driver.close(1001, "going away"))
    assert driver.state == WS_CLOSING
    assert list(peer.events()) == [CloseConnection(code=1001, reason="going away")]
    driver.receive_data(frame(0x1, b"in flight"))  # sent before the peer saw our close
    assert events_of(driver) == []
    driver.receive_data(peer.send(CloseConnection(code=1001)))
    assert events_of(driver) == [Closed(1001, "")]
    assert driver.data_to_send() == b""


def test_pong_is_reported() -> None:
    driver, _ = opened()
    peer = client()
    peer.receive_data(driver.ping(b"1234"))
    [ping] = list(peer.events())
    assert isinstance(ping, Ping)
    driver.receive_data(peer.send(ping.response()))
    assert events_of(driver) == [PongReceived(b"1234")]


# -- permessage-deflate --------------------------------------------------------------------


def test_compressed_messages_both_ways() -> None:
    driver, _ = opened(deflate=True, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    peer = client(deflate=True)
    text = "compress me " * 1000
    data = peer.send(TextMessage(data=text)) + peer.send(BytesMessage(data=b"\x00" * 5000))
    assert len(data) < 500
    driver.receive_data(data)
    assert events_of(driver) == [MessageReceived(text), MessageReceived(b"\x00" * 5000)]
    out = driver.send_message(text)
    assert len(out) < 200
    peer.receive_data(out)
    assert list(peer.events()) == [TextMessage(data=text)]


def test_decompression_bomb_stops_at_max_size() -> None:
    limit = 64 * 1024
    driver, _ = opened(
        max_size=limit, deflate=True, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    )
    peer = client(deflate=True)
    bomb = peer.send(BytesMessage(data=b"\x00" * (64 * 1024 * 1024)))
    assert len(bomb) < 100_000
    driver.receive_data(bomb)
    [event] = events_of(driver)
    assert isinstance(event, Closed)
    assert event.code == 1009


def test_bounded_deflate_never_inflates_past_the_budget() -> None:
    ext = BoundedDeflate(max_size=1000)
    assert ext.accept("permessage-deflate") == ""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(b"a" * 10_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    proto = FrameProtocol(client=False, extensions=[])  # only passed through to the hooks
    ext.frame_inbound_header(proto, Opcode.BINARY, RsvBits(True, False, False), len(payload))
    assert ext.frame_inbound_payload_data(proto, payload[:100]) == CloseReason.MESSAGE_TOO_BIG
