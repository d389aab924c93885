"""The sans-I/O HTTP driver: feed bytes, compare events and output bytes."""

from __future__ import annotations

import h11
import pytest

from qactuar.http.driver import (
    BodyData,
    BodyEnd,
    Event,
    HTTPDriver,
    Limits,
    NeedData,
    Paused,
    PeerClosed,
    Rejected,
    RequestHead,
    error_response,
)
from qactuar.http.target import Target


def events_until_blocked(driver: HTTPDriver) -> list[Event]:
    out: list[Event] = []
    while True:
        event = driver.next_event()
        out.append(event)
        if isinstance(event, NeedData | Paused | Rejected | PeerClosed):
            return out


def feed(data: bytes, limits: Limits | None = None) -> list[Event]:
    driver = HTTPDriver(limits or Limits())
    driver.receive_data(data)
    return events_until_blocked(driver)


def test_simple_get() -> None:
    events = feed(b"GET /a%2Fb?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.method == b"GET"
    assert head.target == Target("/a/b", b"/a%2Fb", b"q=1", None)
    assert head.headers == [(b"host", b"example.com"), (b"x-multi", b"1"), (b"x-multi", b"2")]
    assert head.has_body is False
    assert isinstance(events[1], BodyEnd)
    assert isinstance(events[2], NeedData)  # PAUSED only when more bytes wait


def test_body_split_at_every_byte() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    driver = HTTPDriver(Limits())
    events: list[Event] = []
    for i in range(len(raw)):
        driver.receive_data(raw[i : i + 1])
        events.extend(e for e in events_until_blocked(driver) if not isinstance(e, NeedData))
    heads = [e for e in events if isinstance(e, RequestHead)]
    body = b"".join(e.data for e in events if isinstance(e, BodyData))
    assert len(heads) == 1 and heads[0].has_body
    assert body == b"abcde"
    assert any(isinstance(e, BodyEnd) for e in events)


def test_response_bytes_and_keep_alive() -> None:
    driver = HTTPDriver(Limits())
    driver.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_until_blocked(driver)
    out = driver.send_response(200, [(b"content-length", b"2")]) + driver.send_data(b"hi") + driver.send_end()
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"
    assert driver.can_keep_alive
    driver.next_cycle()
    assert isinstance(driver.next_event(), NeedData)


def test_pipelined_head_is_kept_for_next_cycle() -> None:
    driver = HTTPDriver(Limits())
    driver.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    first = events_until_blocked(driver)
    assert isinstance(first[-1], Paused)
    driver.send_response(204, [])
    driver.send_end()
    driver.next_cycle()
    second = driver.next_event()
    assert isinstance(second, RequestHead) and second.target.path == "/2"


def test_http10_is_not_kept_alive() -> None:
    driver = HTTPDriver(Limits())
    driver.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    events_until_blocked(driver)
    driver.send_response(200, [(b"content-length", b"0")])
    driver.send_end()
    assert not driver.can_keep_alive


def test_expect_continue() -> None:
    driver = HTTPDriver(Limits())
    driver.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    head = driver.next_event()
    assert isinstance(head, RequestHead) and head.expect_continue
    assert driver.waiting_for_continue
    assert driver.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not driver.waiting_for_continue


def test_peer_closed_between_requests() -> None:
    driver = HTTPDriver(Limits())
    driver.receive_eof()
    assert isinstance(driver.next_event(), PeerClosed)


def test_peer_closed_mid_head_is_rejected() -> None:
    driver = HTTPDriver(Limits())
    driver.receive_data(b"GET / HTTP/1.1\r\nHo")
    assert isinstance(driver.next_event(), NeedData)
    driver.receive_eof()
    event = driver.next_event()
    assert isinstance(event, Rejected) and event.status == 400


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400),
        (b"GET /" + b"x" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 5 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"b" * 300 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
    ],
)
def test_policy_rejections(raw: bytes, status: int) -> None:
    limits = Limits(max_request_line=64, max_header_bytes=256, max_headers=4, max_body_bytes=1000)
    events = feed(raw, limits)
    assert isinstance(events[-1], Rejected)
    assert events[-1].status == status


def test_chunked_body_over_limit_is_413() -> None:
    limits = Limits(max_body_bytes=4)
    events = feed(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", limits
    )
    assert isinstance(events[-1], Rejected) and events[-1].status == 413


def test_error_response_is_minimal_and_closes() -> None:
    out = error_response(431, b"Mon, 01 Jan 2024 00:00:00 GMT")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head
    assert int(head.split(b"content-length: ")[1].split(b"\r\n")[0]) == len(body)


def started(raw: bytes) -> HTTPDriver:
    driver = HTTPDriver(Limits())
    driver.receive_data(raw)
    events_until_blocked(driver)
    return driver


def test_response_framing_chunked_when_length_unknown() -> None:
    driver = started(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = driver.send_response(200, [(b"content-type", b"text/plain")])
    assert head == b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    assert driver.send_data(b"hello") == b"5\r\nhello\r\n"
    assert driver.send_data(b"") == b""
    assert driver.send_end([(b"x-checksum", b"abc")]) == b"0\r\nx-checksum: abc\r\n\r\n"
    assert driver.can_keep_alive


def test_response_framing_http10_is_close_delimited() -> None:
    driver = started(b"GET / HTTP/1.0\r\n\r\n")
    head = driver.send_response(200, [])
    assert head == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    assert driver.send_data(b"raw") == b"raw"
    assert driver.send_end() == b""
    assert not driver.can_keep_alive


def test_response_head_request_keeps_headers_drops_body() -> None:
    driver = started(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert driver.send_response(200, [(b"content-length", b"13")]).endswith(b"content-length: 13\r\n\r\n")
    assert driver.send_data(b"Hello, world!") == b""
    assert driver.send_end() == b""
    assert driver.can_keep_alive


def test_response_content_length_is_enforced() -> None:
    driver = started(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    driver.send_response(200, [(b"content-length", b"3")])
    with pytest.raises(h11.LocalProtocolError, match="Too much data"):
        driver.send_data(b"four")
    driver = started(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    driver.send_response(200, [(b"content-length", b"3")])
    driver.send_data(b"ab")
    with pytest.raises(h11.LocalProtocolError, match="Too little data"):
        driver.send_end()
    assert not driver.can_keep_alive


@pytest.mark.parametrize(
    "field",
    [
        (b"x-evil", b"a\r\nset-cookie: x=1"),
        (b"x-evil", b"a\nb"),
        (b"x-evil", b"a\x00b"),
        (b"bad name", b"v"),
        (b"x-a:", b"v"),
        (b"x-pad", b" leading"),
    ],
)
def test_response_fields_cannot_inject(field: tuple[bytes, bytes]) -> None:
    driver = started(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(h11.LocalProtocolError):
        driver.send_response(200, [field])


def test_connection_close_from_app_or_client_ends_keep_alive() -> None:
    driver = started(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = driver.send_response(200, [(b"connection", b"close"), (b"content-length", b"0")])
    assert head.count(b"connection: close") == 1
    driver.send_end()
    assert not driver.can_keep_alive
    driver = started(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"connection: close" in driver.send_response(204, [])
    driver.send_end()
    assert not driver.can_keep_alive and driver.request_complete
