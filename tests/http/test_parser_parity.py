"""The two request parsers (h11 and httptools) must give identical results.

Two parsers that disagree on what a request says or where it ends are how request smuggling
happens, so the fast path is held to the pure path byte for byte: the same events, the same
heads, the same body bytes and the same rejection status, for generated requests and for
mutations of them that hit the places where parsers differ (spaces, tabs, control bytes,
obs-text, line ends, separators).  ``QACTUAR_FUZZ_EXAMPLES`` raises the example count.
"""

from __future__ import annotations

import os

import pytest
from corpus.corpus import LIMITS as CORPUS_LIMITS
from corpus.corpus import CorpusCase, load_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
)
from qactuar.http.errors import RequestError
from qactuar.http.heads import parse_head_h11, parse_head_httptools

EXAMPLES = int(os.environ.get("QACTUAR_FUZZ_EXAMPLES", "600"))
LIMITS = Limits(max_request_line=200, max_header_bytes=600, max_headers=12, max_body_bytes=5000)

METHODS = [
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"OPTIONS",
    b"DELETE",
    b"CONNECT",
    b"PATCH",
    b"get",
    b"FOO",
    b"M-SEARCH",
]
TARGETS = [
    b"/",
    b"/",
    b"/",
    b"/a/b?x=1",
    b"/a/b?x=1",
    b"*",
    b"http://h/p?q",
    b"h:443",
    b"/%2F",
    b'/a"b',
    b"/\xc3\xa9",
    b"a",
    b"/a#f",
]
VERSIONS = [
    b"HTTP/1.1",
    b"HTTP/1.1",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/1.0",
    b"HTTP/0.9",
    b"HTTP/2.0",
    b"HTTP/1.2",
    b"http/1.1",
    b"HTTP/1",
    b"",
]
NAMES = [
    b"host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Upgrade",
    b"Expect",
    b"X-Request-ID",
    b"X-A",
    b"Te",
    b"Trailer",
]
VALUES = [
    b"x",
    b"example.com:80",
    b"0",
    b"5",
    b"5, 5",
    b"5,6",
    b"+5",
    b"chunked",
    b"Chunked",
    b"gzip, chunked",
    b"chunked, identity",
    b"keep-alive",
    b"close",
    b"upgrade",
    b"websocket",
    b"100-continue",
    b"a b",
    b"",
    b"\xff\xfe",
]
WEIRD = [
    b" ",
    b"\t",
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\x01",
    b"\x0b",
    b"\x7f",
    b"\x80",
    b":",
    b",",
    b";",
    b'"',
    b"\\",
]


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    line = b" ".join(
        part
        for part in (
            draw(st.sampled_from(METHODS)),
            draw(st.sampled_from(TARGETS)),
            draw(st.sampled_from(VERSIONS)),
        )
        if part
    )
    fields = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=6))
    if draw(st.integers(0, 4)):
        fields.insert(0, (b"Host", b"x"))
    head = line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"
    body = draw(
        st.sampled_from(
            [b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"3;e=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", b"0x5\r\n"]
        )
    )
    raw = head + body + draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: y\r\n\r\n"]))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(WEIRD)) + raw[at:]
    return raw


FIELD_BYTES = b'aZ09-_.!~ :\t,;="\\/\x00\x01\x0b\x7f\x80\xff\r'


@st.composite
def arbitrary_heads(draw: st.DrawFn) -> bytes:
    """A plausible request line, then header lines of arbitrary bytes from a hostile alphabet."""
    line = draw(st.sampled_from(METHODS)) + b" " + draw(st.sampled_from(TARGETS)) + b" HTTP/1.1\r\n"
    fields = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=24).map(lambda b: bytes(FIELD_BYTES[c % len(FIELD_BYTES)] for c in b)),
                st.sampled_from([b"Host: x", b"Content-Length: 3", b"Transfer-Encoding: chunked"]),
            ),
            max_size=6,
        )
    )
    return (
        line
        + b"Host: x\r\n"
        + b"".join(f + b"\r\n" for f in fields)
        + b"\r\n"
        + draw(st.sampled_from([b"", b"abc"]))
    )


def outcome(event: Event) -> object:
    if isinstance(event, RequestHead):
        return ("head", event.method, event.target, event.http_version, event.headers, event.upgrade)
    if isinstance(event, BodyData):
        return ("data", event.data)
    if isinstance(event, Rejected):
        return ("rejected", event.status)
    return type(event).__name__


def run(raw: bytes, parser: object, split: int, limits: Limits = LIMITS) -> list[object]:
    """Every event the driver gives for ``raw`` (fed in two pieces), across pipelined requests."""
    driver = HTTPDriver(limits, parser)  # type: ignore[arg-type]
    out: list[object] = []
    pieces = [raw[:split], raw[split:]] if split else [raw]
    for piece in [*pieces, None]:
        if piece is None:
            driver.receive_eof()
        else:
            driver.receive_data(piece)
        while True:
            event = driver.next_event()
            if isinstance(event, NeedData):
                break
            out.append(outcome(event))
            if isinstance(event, Rejected | PeerClosed):
                return out
            if isinstance(event, Paused) or (isinstance(event, BodyEnd) and driver.request_complete):
                driver.send_response(200, [(b"content-length", b"0")])
                driver.send_end()
                if not driver.can_keep_alive:
                    return out
                driver.next_cycle()
    return out


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(raw=requests(), split=st.integers(0, 400))
def test_both_parsers_give_the_same_events(raw: bytes, split: int) -> None:
    assert run(raw, parse_head_httptools, split) == run(raw, parse_head_h11, split)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(raw=arbitrary_heads())
def test_both_parsers_agree_on_hostile_header_lines(raw: bytes) -> None:
    assert run(raw, parse_head_httptools, 0) == run(raw, parse_head_h11, 0)


CORPUS = load_cases()


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_both_parsers_give_the_same_events_for_every_corpus_case(case: CorpusCase) -> None:
    """Identical events for every corpus case, even where the expectation admits two statuses."""
    limits = Limits(**CORPUS_LIMITS)
    for split in (0, len(case.raw) // 2, 1):
        assert run(case.raw, parse_head_httptools, split, limits) == run(
            case.raw, parse_head_h11, split, limits
        )


def head_outcome(parse: object, head: bytes) -> object:
    try:
        parsed = parse(head)  # type: ignore[operator]
    except RequestError as exc:
        return exc.status
    return (parsed.method, parsed.target, parsed.http_version, parsed.headers)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x \t\r\nX-A:  a b  \r\n\r\n",
        b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    ],
)
def test_known_differences_of_the_parsers_are_reconciled(head: bytes) -> None:
    assert head_outcome(parse_head_httptools, head) == head_outcome(parse_head_h11, head)
