"""Request-head parsers: the bytes of one complete head in, its parts (or a rejection) out.

Two parsers give the same answers: ``parse_head_h11`` (pure Python, the default) and
``parse_head_httptools`` (llhttp in C, the ``fast`` extra).  Two parsers that disagree on
where a request ends or what it says are how request smuggling happens, so the fast one is
built to agree with h11 rather than to be fast at any price:

* llhttp is stricter than h11 in places (a fixed list of methods, HTTP versions other than
  0.9/1.0/1.1/2.0, a repeated identical Content-Length): whenever llhttp rejects a head, h11
  parses it again and its verdict is the answer;
* where llhttp is more lenient or leaves a step to the caller (it keeps trailing whitespace
  in values, does not check Host, accepts any list of transfer codings), ``_check_fields``
  applies h11's rules to what llhttp returned.

The tests feed both parsers the request corpus and hypothesis-generated heads and require
identical results (``tests/http/test_parser_parity.py``).  Bodies are not parsed here: the
driver frames them itself (``body.py``), for both parsers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import h11

from qactuar.http.errors import TOKEN, RequestError

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class ParsedHead:
    method: bytes
    target: bytes
    http_version: bytes
    headers: Headers  # names lower-cased, values without surrounding whitespace, order kept


HeadParser = Callable[[bytes], ParsedHead]


def transfer_coding_error(head: bytes) -> RequestError:
    """Classify an unacceptable set of Transfer-Encoding lines in a raw head (RFC 9112 6.1)."""
    codings: list[bytes] = []
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"transfer-encoding":
            codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
    if codings and (codings[-1] != b"chunked" or codings.count(b"chunked") > 1):
        return RequestError(400, "chunked must be the final transfer coding, applied once")
    return RequestError(501, "unsupported transfer coding")


def parse_head_h11(head: bytes) -> ParsedHead:
    """Parse with h11 (``head`` ends with the blank line)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        if str(exc) in _H11_CODING_ERRORS:
            raise transfer_coding_error(head) from None
        raise RequestError(exc.error_status_hint, str(exc)) from None
    if type(event) is not h11.Request:  # a complete head always gives a Request
        raise RequestError(400, "malformed request head")
    return ParsedHead(event.method, event.target, event.http_version, list(event.headers))


# What h11 says of a Transfer-Encoding it will not frame (the driver tells 400 from 501).
_H11_CODING_ERRORS = frozenset(
    ("Only Transfer-Encoding: chunked is supported", "multiple Transfer-Encoding headers")
)

try:
    import httptools
except ImportError:  # the fast extra is optional
    httptools = None  # type: ignore[assignment]


class _Collector:
    """httptools callbacks: keeps the target and the header fields of one head."""

    __slots__ = ("headers", "target")

    def __init__(self) -> None:
        self.target = b""
        self.headers: Headers = []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value.rstrip(b" \t")))


def parse_head_httptools(head: bytes) -> ParsedHead:
    """Parse with llhttp; h11 decides every head llhttp rejects (see the module docstring)."""
    if _H11_REQUEST_LINE.match(head) is None:  # llhttp takes "GET /" (HTTP/0.9) and repeated spaces
        return parse_head_h11(head)
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # an Upgrade or CONNECT head: llhttp stops at its end, which is all we gave it
    except httptools.HttpParserError:
        return parse_head_h11(head)
    version = parser.get_http_version()
    parsed = ParsedHead(
        parser.get_method(), collector.target, _VERSIONS.get(version) or version.encode(), collector.headers
    )
    _check_fields(parsed, head)
    return parsed


_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
# h11's request-line grammar (h11/_abnf.py): method SP target SP HTTP-version CRLF.
_H11_REQUEST_LINE = re.compile(TOKEN + rb" [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r\n")
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
_CONTENT_LENGTH_MAX_DIGITS = 20  # as h11


def _check_fields(parsed: ParsedHead, head: bytes) -> None:
    """h11's semantic checks of the header fields (h11/_headers.py, h11/_events.py), for llhttp's output."""
    hosts = 0
    codings: list[bytes] = []
    headers = parsed.headers
    for index, (name, value) in enumerate(headers):
        if name == b"content-length":
            lengths = {length.strip() for length in value.split(b",")}
            length = lengths.pop()
            if lengths:
                raise RequestError(400, "conflicting Content-Length headers")
            if not _CONTENT_LENGTH.fullmatch(length) or len(length) > _CONTENT_LENGTH_MAX_DIGITS:
                raise RequestError(400, "bad Content-Length")
        elif name == b"transfer-encoding":
            coding = value.lower()  # h11 reports the coding lower-cased
            headers[index] = (name, coding)
            codings.append(coding)
        elif name == b"host":
            hosts += 1
    if codings and codings != [b"chunked"]:
        raise transfer_coding_error(head)
    if hosts > 1:
        raise RequestError(400, "Found multiple Host: headers")
    if not hosts and parsed.http_version == b"1.1":
        raise RequestError(400, "Missing mandatory Host header")


def head_parser(name: str) -> HeadParser:
    """The parser for the HTTP_PARSER setting (``"h11"`` or ``"httptools"``)."""
    if name == "httptools":
        if httptools is None:
            raise RuntimeError("HTTP_PARSER = 'httptools' needs httptools: pip install 'qactuar[fast]'")
        return parse_head_httptools
    return parse_head_h11
