"""Fuzzing the sans-I/O HTTP driver(s): bytes in any split, events out, never an exception.

Every test runs against each entry of ``drivers.DRIVERS``.  The harness (``drive``) plays the
asyncio protocol's part (``qactuar/http/protocol.py``): it feeds chunks, asks ``next_event`` until
``NeedData``, answers each complete request with an empty response and calls ``next_cycle()``
when the driver allows keep-alive, and stops at ``Rejected``, ``PeerClosed`` or a closing response.
What it records (the *trace*) is what the server acts on: heads, the concatenated body of each
request, its end, a rejection status, the end of the connection.

Properties:

* any input, any split: only events come out, never an exception, never a ``Paused`` the caller
  cannot get out of, and ``next_cycle()`` says truthfully whether an event is waiting;
* split invariance: the trace of a byte stream is the same whatever the chunks it arrives in;
* unambiguous framing: every ``RequestHead`` has at most one Content-Length (digits), never both
  Content-Length and Transfer-Encoding, Transfer-Encoding only as ``chunked`` on HTTP/1.1, and the
  body bytes that follow match the framing;
* well-formed pipelined requests (random methods, targets, fields, bodies; Content-Length or
  chunked with extensions and trailers) come out exactly as sent, also at the exact limits, and
  one byte over a limit is rejected with its status in any split;
* the response side never puts a CR or LF an app gave on the wire, and what it frames is what an
  independent client (h11) reads back.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import h11
import pytest
from drivers import DRIVERS, DriverFactory, driver_id
from hypothesis import given, settings
from hypothesis import strategies as st

from qactuar.http.driver import BodyData, BodyEnd, Limits, NeedData, Paused, PeerClosed, Rejected, RequestHead

FUZZ = settings.get_profile("qactuar-fuzz")
drivers = pytest.mark.parametrize("factory", DRIVERS, ids=driver_id)

Item = tuple[Any, ...]
LOOP_GUARD = 100_000  # next_event calls without NeedData: a driver that spins is a defect too


# --- the harness --------------------------------------------------------------------------------------------


@dataclass
class Framing:
    length: int | None  # Content-Length, or None
    chunked: bool


def check_head(head: RequestHead) -> Framing:
    """Property (c) on one head: its framing is unambiguous, its fields are clean."""
    lengths = [v for n, v in head.headers if n == b"content-length"]
    codings_fields = [v for n, v in head.headers if n == b"transfer-encoding"]
    for name, value in head.headers:
        assert name == name.lower() and re.fullmatch(rb"[-!#$%&'*+.^_`|~0-9a-z]+", name), name
        assert not re.search(rb"[\x00\r\n]", value), value
    assert len(lengths) <= 1, f"more than one Content-Length: {lengths}"
    assert not (lengths and codings_fields), "both Content-Length and Transfer-Encoding"
    if lengths:
        assert re.fullmatch(rb"[0-9]+", lengths[0]), lengths
    chunked = bool(codings_fields)
    if chunked:
        codings = [c.strip(b" \t").lower() for v in codings_fields for c in v.split(b",")]
        assert codings[-1] == b"chunked" and codings.count(b"chunked") == 1, codings
        assert head.http_version == b"1.1"
    length = int(lengths[0]) if lengths else None
    assert head.has_body == (chunked or bool(length)), head
    assert head.http_version in (b"1.0", b"1.1"), head.http_version
    return Framing(length, chunked)


def head_item(head: RequestHead) -> Item:
    target = head.target
    return (
        "head",
        head.method,
        target.raw_path,
        target.query_string,
        head.http_version,
        tuple(head.headers),
        head.expect_continue,
        head.has_body,
        head.request_id,
        head.upgrade,
    )


class Harness:
    """One connection, driven as ``protocol.py`` drives it; ``trace`` is what the server acted on."""

    def __init__(self, factory: DriverFactory, limits: Limits) -> None:
        self.driver = factory(limits)
        self.trace: list[Item] = []
        self.over = False
        self._framing: Framing | None = None
        self._body = bytearray()

    def feed(self, chunks: Sequence[bytes], *, eof: bool = True) -> list[Item]:
        for chunk in chunks:
            if self.over:
                break
            self.driver.receive_data(chunk)
            self.pump()
        if eof and not self.over:
            self.driver.receive_eof()
            self.pump()
        return self.trace

    def pump(self) -> None:
        driver = self.driver
        for _ in range(LOOP_GUARD):
            event = driver.next_event()
            kind = type(event)
            if kind is NeedData:
                return
            if kind is RequestHead:
                assert self._framing is None, "a head inside a request"
                self._framing = check_head(event)
                self._body = bytearray()
                self.trace.append(head_item(event))
            elif kind is BodyData:
                assert self._framing is not None, "body bytes outside a request"
                assert type(event.data) is bytes
                self._body += event.data
                if self._framing.length is not None:
                    assert len(self._body) <= self._framing.length, "more body than Content-Length"
                elif not self._framing.chunked:
                    raise AssertionError("body bytes for a request without a body")
            elif kind is BodyEnd:
                framing = self._framing
                assert framing is not None, "a body end outside a request"
                if not framing.chunked:
                    assert len(self._body) == (framing.length or 0), "body length differs from its framing"
                self.trace.append(("body", bytes(self._body)))
                self.trace.append(("end",))
                self._framing = None
                self._respond()
                if self.over:
                    return
            elif kind is Rejected:
                assert 400 <= event.status <= 599, event
                self.trace.append(("rejected", event.status))
                self.over = True
                return
            elif kind is PeerClosed:
                assert self._framing is None, "PeerClosed inside a request"
                self.trace.append(("peer-closed",))
                self.over = True
                return
            elif kind is Paused:
                # The response was written at BodyEnd and next_cycle() called: nothing to wait for.
                raise AssertionError("Paused while no response is pending: the connection would stall")
            else:
                raise AssertionError(f"not a driver event: {event!r}")
        raise AssertionError("the driver produced events forever without asking for data")

    def _respond(self) -> None:
        driver = self.driver
        driver.send_response(200, [(b"content-length", b"0")])
        driver.send_end()
        if not driver.can_keep_alive:
            self.trace.append(("close",))
            self.over = True
            return
        if not driver.next_cycle():
            # next_cycle() said nothing waits: protocol.py will not call next_event() until more bytes.
            assert type(driver.next_event()) is NeedData, "next_cycle() hid a waiting event"


def drive(factory: DriverFactory, limits: Limits, chunks: Sequence[bytes], *, eof: bool = True) -> list[Item]:
    return Harness(factory, limits).feed(chunks, eof=eof)


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# The generated chunk-extension quoted-strings use every qdtext character.
QUOTED_EXT_TEXT = "\t " + "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')


# --- strategies: generic bytes ------------------------------------------------------------------------------

FRAGMENTS = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"OPTIONS ",
    b"PUT ",
    b"CONNECT ",
    b"/",
    b"/a?b=c",
    b"*",
    b"http://h/p",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b" HTTP/2.0",
    b" HTTP/1.1\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b"\n\n",
    b"Host: a\r\n",
    b"Host: ",
    b"host:a:1\r\n",
    b"Content-Length: ",
    b"content-length:",
    b"Transfer-Encoding: ",
    b"transfer-encoding:chunked\r\n",
    b"chunked",
    b"identity",
    b"gzip, chunked",
    b"chunked, chunked",
    b"Connection: close\r\n",
    b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
    b"Expect: 100-continue\r\n",
    b"X-Request-ID: r1\r\n",
    b"0",
    b"5",
    b"00",
    b"1a",
    b"FFFFFFFFFFFFFFFFFF",
    b"-1",
    b"0x5",
    b"+5",
    b" ",
    b"\t",
    b":",
    b",",
    b";",
    b";e=1",
    b';e="a;b"',
    b'"',
    b"\\",
    b"=",
    b"hello",
    b"\x00",
    b"\x7f",
    b"\x80\xff",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
    b"Trailer-X: t\r\n",
]

fragment_streams = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=6)), max_size=40).map(
    b"".join
)

small_limits = st.builds(
    Limits,
    max_request_line=st.integers(1, 80),
    max_header_bytes=st.integers(1, 160),
    max_headers=st.integers(1, 8),
    max_body_bytes=st.integers(0, 40),
)
limits_strategy = st.one_of(st.just(Limits()), small_limits)


# --- strategies: well-formed requests -----------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHAR = "".join(map(chr, range(0x21, 0x7F)))
OBS_TEXT = "".join(map(chr, range(0x80, 0x100)))
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
QUERY_CHARS = PATH_CHARS + "/?"
RESERVED_NAMES = {
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"upgrade",
    b"expect",
    b"te",
    b"trailer",
}
FORBIDDEN_TRAILERS = RESERVED_NAMES | {b"keep-alive", b"content-encoding", b"content-type", b"content-range"}


def tokens(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[bytes]:
    return st.text(TCHAR, min_size=min_size, max_size=max_size).map(str.encode)


field_values = st.text(VCHAR + OBS_TEXT + " \t", max_size=24).map(
    lambda v: v.encode("latin-1").strip(b" \t")
) | st.sampled_from([b"", b"a b", b"\xff"])
header_names = tokens(1, 16).filter(lambda n: n.lower() not in RESERVED_NAMES)


@st.composite
def percent_escapes(draw: st.DrawFn) -> str:
    return f"%{draw(st.integers(0, 255)):02X}"


@st.composite
def targets(draw: st.DrawFn) -> tuple[bytes, bytes]:
    segments = draw(
        st.lists(st.lists(st.text(PATH_CHARS, min_size=1) | percent_escapes(), max_size=3), max_size=4)
    )
    path = "/" + "/".join("".join(seg) for seg in segments)
    query = draw(st.text(QUERY_CHARS, max_size=16))
    return path.encode(), query.encode()


@st.composite
def chunk_extensions(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 2))):
        ows = draw(st.sampled_from([b"", b" ", b"\t"]))
        name = draw(tokens(1, 6))
        value = draw(
            st.none()
            | tokens(1, 6)
            | st.text(QUOTED_EXT_TEXT + OBS_TEXT, max_size=8).map(lambda v: b'"' + v.encode("latin-1") + b'"')
        )
        out += ows + b";" + ows + name + (b"" if value is None else b"=" + value)
    return out


@dataclass(frozen=True)
class Req:
    method: bytes
    path: bytes
    query: bytes
    version: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # as sent (name case kept)
    body: bytes
    framing: str  # "length" | "chunked" | "none"
    wire_body: bytes  # the body as framed on the wire
    trailer_bytes: int  # bytes of the trailer section (the final CRLF included)
    close: bool
    lead: bytes  # empty lines before the request line

    def head(self) -> bytes:
        target = self.path + (b"?" + self.query if self.query else b"")
        lines = [self.method + b" " + target + b" HTTP/" + self.version]
        lines += [n + b": " + v for n, v in self.headers]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def wire(self) -> bytes:
        return self.lead + self.head() + self.wire_body

    def expected(self) -> list[Item]:
        # h11 reports Transfer-Encoding lower-cased (it compares it with "chunked")
        headers = tuple(
            (n.lower(), v.lower() if n.lower() == b"transfer-encoding" else v) for n, v in self.headers
        )
        request_ids = [v for n, v in headers if n == b"x-request-id"]
        expect = any(n == b"expect" for n, _ in headers) and self.version == b"1.1"
        has_body = self.framing == "chunked" or (self.framing == "length" and bool(self.body))
        head: Item = (
            "head",
            self.method,
            self.path,
            self.query,
            self.version,
            headers,
            expect,
            has_body,
            request_ids[-1] if request_ids else None,
            None,
        )
        items: list[Item] = [head, ("body", self.body), ("end",)]
        return [*items, ("close",)] if self.close else items

    def request_line_bytes(self) -> int:
        return self.head().index(b"\r\n")

    def header_section_bytes(self) -> int:
        return len(self.head()) - 2 - self.request_line_bytes()


@st.composite
def requests(draw: st.DrawFn, *, last: bool) -> Req:
    method = draw(
        st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD"]) | tokens(1, 10)
    )
    if method == b"CONNECT":
        method = b"GET"
    path, query = draw(targets())
    # HTTP/1.0 closes after its response (no keep-alive), so only a last request may use it.
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0"] if last else [b"1.1"]))
    fields = draw(st.lists(st.tuples(header_names, field_values), max_size=8))
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["length", "chunked"] if version == b"1.1" else ["length"]))
    if not body and framing == "length" and draw(st.booleans()):
        framing = "none"
    close = last and (version == b"1.0" or draw(st.booleans()))
    extra: list[tuple[bytes, bytes]] = []
    if version == b"1.1" or draw(st.booleans()):
        extra.append((draw(st.sampled_from([b"Host", b"host", b"HOST"])), b"example.com:8080"))
    if close and version == b"1.1":
        extra.append((b"Connection", b"close"))
    if version == b"1.1" and draw(st.booleans()):
        extra.append((b"Expect", b"100-continue"))
    trailer_bytes = 0
    if framing == "length":
        extra.append((b"Content-Length", b"%d" % len(body)))
        wire_body = body
    elif framing == "chunked":
        extra.append((b"Transfer-Encoding", draw(st.sampled_from([b"chunked", b"Chunked", b"CHUNKED"]))))
        cuts = draw(st.lists(st.integers(0, len(body)), max_size=4))
        wire_body = b""
        for piece in split(body, cuts):
            size = draw(st.sampled_from(["%x", "%X", "%04x"])) % len(piece)
            wire_body += size.encode() + draw(chunk_extensions()) + b"\r\n" + piece + b"\r\n"
        trailers = draw(
            st.lists(
                st.tuples(tokens(1, 10).filter(lambda n: n.lower() not in FORBIDDEN_TRAILERS), field_values),
                max_size=3,
            )
        )
        trailer = b"".join(n + b": " + v + b"\r\n" for n, v in trailers) + b"\r\n"
        trailer_bytes = len(trailer)
        wire_body += draw(st.sampled_from([b"0", b"000"])) + draw(chunk_extensions()) + b"\r\n" + trailer
    else:
        wire_body = b""
    headers = draw(st.permutations(fields + extra))
    lead = draw(st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n"]))
    return Req(
        method, path, query, version, tuple(headers), body, framing, wire_body, trailer_bytes, close, lead
    )


@st.composite
def pipelines(draw: st.DrawFn, max_requests: int = 4) -> list[Req]:
    count = draw(st.integers(1, max_requests))
    return [draw(requests(last=i == count - 1)) for i in range(count)]


def expected_trace(reqs: Sequence[Req]) -> list[Item]:
    items = [item for req in reqs for item in req.expected()]
    return items if reqs[-1].close else [*items, ("peer-closed",)]


def exact_limits(reqs: Sequence[Req]) -> Limits:
    """The smallest limits every request in ``reqs`` fits exactly."""
    return Limits(
        max_request_line=max(r.request_line_bytes() for r in reqs),
        max_header_bytes=max(max(r.header_section_bytes(), r.trailer_bytes) for r in reqs),
        max_headers=max(max(len(r.headers), 1) for r in reqs),
        max_body_bytes=max(len(r.body) for r in reqs),
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """Well-formed pipelined requests with a few random edits: near-valid input finds framing bugs."""
    data = bytearray(b"".join(r.wire() for r in draw(pipelines())))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            data[pos:pos] = draw(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif action == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


any_stream = st.one_of(st.binary(max_size=200), fragment_streams, mutated())


@st.composite
def cut_lists(draw: st.DrawFn, data: bytes) -> list[int]:
    return draw(st.lists(st.integers(0, len(data)), max_size=12))


# --- (a), (b), (c): arbitrary input -------------------------------------------------------------------------


@drivers
@FUZZ
@given(data=st.data(), stream=any_stream, limits=limits_strategy, eof=st.booleans())
def test_arbitrary_bytes_in_arbitrary_splits_only_give_events(
    factory: DriverFactory, data: st.DataObject, stream: bytes, limits: Limits, eof: bool
) -> None:
    """(a) + (c): nothing but events, and every head it yields has unambiguous framing."""
    drive(factory, limits, split(stream, data.draw(cut_lists(stream))), eof=eof)


@drivers
@FUZZ
@given(data=st.data(), stream=any_stream, limits=limits_strategy)
def test_split_invariance(factory: DriverFactory, data: st.DataObject, stream: bytes, limits: Limits) -> None:
    """(b): one chunk, random chunks and one byte at a time give the same trace."""
    whole = drive(factory, limits, [stream])
    pieces = drive(factory, limits, split(stream, data.draw(cut_lists(stream))))
    assert pieces == whole, (pieces, whole)
    bytes_ = drive(factory, limits, bytewise(stream))
    assert bytes_ == whole, (bytes_, whole)


# --- (d): well-formed requests round-trip -------------------------------------------------------------------


@drivers
@FUZZ
@given(data=st.data(), reqs=pipelines())
def test_well_formed_pipelines_round_trip(
    factory: DriverFactory, data: st.DataObject, reqs: list[Req]
) -> None:
    stream = b"".join(r.wire() for r in reqs)
    expected = expected_trace(reqs)
    assert drive(factory, Limits(), [stream]) == expected
    assert drive(factory, Limits(), split(stream, data.draw(cut_lists(stream)))) == expected


@drivers
@FUZZ
@given(data=st.data(), reqs=pipelines(max_requests=2))
def test_requests_exactly_at_the_limits_are_accepted_in_any_split(
    factory: DriverFactory, data: st.DataObject, reqs: list[Req]
) -> None:
    stream = b"".join(r.wire() for r in reqs)
    limits = exact_limits(reqs)
    expected = expected_trace(reqs)
    assert drive(factory, limits, [stream]) == expected
    assert drive(factory, limits, split(stream, data.draw(cut_lists(stream)))) == expected
    assert drive(factory, limits, bytewise(stream)) == expected


LIMIT_STATUS = {"max_request_line": 414, "max_header_bytes": 431, "max_headers": 431, "max_body_bytes": 413}


@drivers
@FUZZ
@given(data=st.data(), req=requests(last=True), which=st.sampled_from(sorted(LIMIT_STATUS)))
def test_one_over_a_limit_is_rejected_with_its_status_in_any_split(
    factory: DriverFactory, data: st.DataObject, req: Req, which: str
) -> None:
    exact = exact_limits([req])
    lowered = getattr(exact, which) - 1
    if lowered < 1:
        return  # 0 means "unlimited" for the body and "nothing fits" is not a limit for the others
    limits = replace(exact, **{which: lowered})
    stream = req.wire()
    expected = ("rejected", LIMIT_STATUS[which])
    for chunks in ([stream], split(stream, data.draw(cut_lists(stream))), bytewise(stream)):
        trace = drive(factory, limits, chunks)
        assert trace[-1] == expected, (chunks, trace)
        assert all(item[0] != "end" for item in trace), "a request over a limit was served"


# --- (e): the response side ---------------------------------------------------------------------------------


def request_driver(factory: DriverFactory, method: bytes, version: bytes) -> Any:
    driver = factory(Limits())
    driver.receive_data(method + b" / HTTP/" + version + b"\r\nHost: a\r\n\r\n")
    assert type(driver.next_event()) is RequestHead
    assert type(driver.next_event()) is BodyEnd
    return driver


raw_names = st.one_of(
    tokens(1, 12), st.binary(max_size=12), st.sampled_from([b"x\r\ny", b"a:b", b"a b", b""])
)
raw_values = st.one_of(
    field_values,
    st.binary(max_size=16),
    st.sampled_from([b"a\r\nb: c", b"a\nb", b"a\rb", b" a", b"a ", b"\x00", b"\r\n\r\nHTTP/1.1 200 OK"]),
)
raw_fields = st.lists(st.tuples(raw_names, raw_values), max_size=6)


@drivers
@FUZZ
@given(
    status=st.integers(100, 599),
    fields=raw_fields,
    trailers=raw_fields,
    request=st.tuples(st.sampled_from([b"GET", b"HEAD"]), st.sampled_from([b"1.1", b"1.0"])),
)
def test_response_fields_never_inject_a_line(
    factory: DriverFactory,
    status: int,
    fields: list[tuple[bytes, bytes]],
    trailers: list[tuple[bytes, bytes]],
    request: tuple[bytes, bytes],
) -> None:
    method, version = request
    driver = request_driver(factory, method, version)
    try:
        head = driver.send_response(status, fields)
    except h11.LocalProtocolError:
        return
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
    lines = head[:-4].split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines), head
    assert re.fullmatch(rb"HTTP/1\.1 %d [^\r\n]*" % status, lines[0])
    written = [tuple(line.split(b": ", 1)) for line in lines[1:]]
    given_fields = [
        (n, v) for n, v in fields if not (version == b"1.0" and n.lower() == b"transfer-encoding")
    ]
    assert written[: len(given_fields)] == given_fields
    added = {(n.lower(), v) for n, v in written[len(given_fields) :]}
    assert added <= {(b"transfer-encoding", b"chunked"), (b"connection", b"close")}, added
    try:
        driver.send_data(b"")
        tail = driver.send_end(trailers)
    except h11.LocalProtocolError:
        return
    assert tail.count(b"\r\n\r\n") <= 1 and b"\r\n\r\n" not in tail[:-4]
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", tail), tail


def h11_read(request_method: bytes, response: bytes) -> tuple[int, bytes]:
    """What an HTTP/1.1 client (h11) reads from ``response``: the status and the body."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=request_method, target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(response)
    client.receive_data(b"")
    status, body = 0, b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, body
        else:
            raise AssertionError(f"h11 stopped at {event!r}")


@st.composite
def app_responses(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    pieces = draw(st.lists(st.binary(max_size=20), max_size=4))
    size = sum(map(len, pieces))
    options = [
        (b"Content-Length", b"%d" % size),
        (b"content-length", b"%d" % draw(st.integers(0, 64))),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"close"),
        (b"Connection", b"keep-alive"),
        (b"X-Thing", b"1"),
    ]
    chosen = draw(st.lists(st.sampled_from(options), max_size=4))
    return chosen, pieces


@drivers
@FUZZ
@given(
    status=st.integers(200, 599),
    response=app_responses(),
    method=st.sampled_from([b"GET", b"HEAD"]),
)
def test_response_framing_is_what_a_client_reads(
    factory: DriverFactory,
    status: int,
    response: tuple[list[tuple[bytes, bytes]], list[bytes]],
    method: bytes,
) -> None:
    """(e) framing: the bytes the app sent are the body an HTTP/1.1 client reads, or the driver refuses."""
    fields, pieces = response
    driver = request_driver(factory, method, b"1.1")
    try:
        wire = driver.send_response(status, fields)
        for piece in pieces:
            wire += driver.send_data(piece)
        wire += driver.send_end()
    except h11.LocalProtocolError:
        return
    no_body = method == b"HEAD" or status in (204, 304)
    assert h11_read(method, wire) == (status, b"" if no_body else b"".join(pieces))


# --- defects found by these tests, fixed: the pinned inputs -------------------------------------------------


@drivers
def test_d1_request_line_at_the_limit_in_any_split(factory: DriverFactory) -> None:
    """D1: a request line of exactly MAX_REQUEST_LINE bytes was served when the head arrived in one read
    but answered 414 when a read ended after its CR or LF (the LF's index, one past the CR's, was
    compared with the limit)."""
    stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    limits = Limits(max_request_line=len(b"GET / HTTP/1.1"))
    whole = drive(factory, limits, [stream])
    assert whole[0][0] == "head"
    assert drive(factory, limits, [b"GET / HTTP/1.1\r", b"\nHost: a\r\n\r\n"]) == whole
    assert drive(factory, limits, bytewise(stream)) == whole


D2_STREAM = b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0;e="{"\r\n\r\n'


@drivers
def test_d2_quoted_chunk_extension_trickled(factory: DriverFactory) -> None:
    """D2 (fixed): a chunk extension quoted-string holding '{', '(', '/', ':', '@', ... was accepted in one
    read but 400 'invalid chunk size line' when the size line arrived in pieces."""
    whole = drive(factory, Limits(), [D2_STREAM])
    assert whole[-3:] == [("body", b""), ("end",), ("peer-closed",)]
    cut = D2_STREAM.index(b"{") + 1
    assert drive(factory, Limits(), [D2_STREAM[:cut], D2_STREAM[cut:]]) == whole


@drivers
def test_d3_rejection_status_does_not_depend_on_the_split(factory: DriverFactory) -> None:
    """D3 (fixed): a head with bare LFs over a limit was 400 in one read (syntax checked first) and
    414/431 in pieces (limits checked on the incomplete head); now the limits come first either way."""
    limits = Limits(max_request_line=4)
    stream = b"GET / HTTP/1.1\n\n"
    assert drive(factory, limits, [stream]) == drive(factory, limits, bytewise(stream))


@drivers
def test_d4_response_with_content_length_and_chunked(factory: DriverFactory) -> None:
    """D4 (fixed): an app's Content-Length together with Transfer-Encoding: chunked went on the wire as both
    fields with the body unframed until close, which a client or proxy reads as chunked (RFC 9112 6.2: a
    sender MUST NOT send Content-Length in a message with Transfer-Encoding).  Now refused."""
    driver = request_driver(factory, b"GET", b"1.1")
    fields = [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    with pytest.raises(h11.LocalProtocolError, match="both Content-Length and Transfer-Encoding"):
        driver.send_response(200, fields)


@drivers
def test_d5_response_with_chunked_twice(factory: DriverFactory) -> None:
    """D5 (fixed): an app's Transfer-Encoding: chunked given twice was written twice ('chunked, chunked':
    chunked applied twice, RFC 9112 6.1), a response clients reject.  Now refused."""
    driver = request_driver(factory, b"GET", b"1.1")
    fields = [(b"transfer-encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")]
    with pytest.raises(h11.LocalProtocolError, match="Transfer-Encoding given twice"):
        driver.send_response(200, fields)
