"""Sans-I/O HTTP/1.1 server connection: bytes in, events out; response events in, bytes out.

Theory of operation
-------------------
The driver buffers a request head until its blank line, checks the raw bytes, hands the
head to a parser (``heads.py``: h11 by default, llhttp with the ``fast`` extra; both give
the same answers), applies the server's policy to the parts, and then frames the body
itself (Content-Length here, chunked in ``body.py``), so the parser choice can never change
where a request ends.  The policy is what a production server must decide for itself
(RFC 9112 / RFC 9110, taking the stricter choice wherever they allow one):

* limits: request-line length (414), header section bytes and header count (431),
  body size (413) -- checked on the raw bytes as they arrive, so a whole oversized block
  that arrives in one read is caught as surely as a trickled one;
* framing conflicts that enable request smuggling: Content-Length together with
  Transfer-Encoding (400), Transfer-Encoding on HTTP/1.0 (400), a coding list whose
  last coding is not ``chunked`` or that repeats it (400), any other coding (501);
* line syntax: bare LF line endings, obs-fold and control characters are rejected (400);
* HTTP versions other than 1.x (505), request-target forms (see ``target.py``).

A complete request pauses the input (``Paused``) until ``next_cycle()``: a pipelined
request is not read before the response to the one before it has been written.

Every rejection is a ``Rejected`` event carrying a status; the caller writes
``error_response(status)`` (a minimal response with ``Connection: close``) and closes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

import h11

from qactuar.http.body import ChunkedReader
from qactuar.http.errors import TOKEN, RequestError
from qactuar.http.heads import Headers, HeadParser, parse_head_h11
from qactuar.http.target import Target, parse_target


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_line: int = 8192
    max_header_bytes: int = 16384
    max_headers: int = 100
    max_body_bytes: int = 0  # 0 = unlimited


# ---- events out of the driver --------------------------------------------------------


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: Target
    http_version: bytes
    headers: Headers  # names lower-cased, order and duplicates preserved
    expect_continue: bool
    has_body: bool
    request_id: bytes | None  # a client-supplied X-Request-ID, unchecked
    upgrade: bytes | None  # the Upgrade protocol (lower-cased) when Connection lists "upgrade"


@dataclass(slots=True)
class BodyData:
    data: bytes


class BodyEnd:
    __slots__ = ()


class NeedData:
    __slots__ = ()


class Paused:
    """A full request has been read; the next one waits until ``next_cycle()``."""

    __slots__ = ()


class PeerClosed:
    """The client closed its side between requests (a clean end of the connection)."""

    __slots__ = ()


@dataclass(slots=True)
class Rejected:
    status: int
    reason: str


Event = RequestHead | BodyData | BodyEnd | NeedData | Paused | PeerClosed | Rejected


class FileRange:
    """Body bytes the caller sends itself (``os.sendfile``): ``send_file`` frames them by their
    count and hands the object back where their bytes go."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


NEED_DATA = NeedData()
PAUSED = Paused()
BODY_END = BodyEnd()
PEER_CLOSED = PeerClosed()


_PHRASES: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def error_response(status: int, date: bytes, extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A minimal plain-text response that closes the connection (``extra``: more header fields)."""
    reason = _PHRASES.get(status, b"Error")
    body = b"%d %s\n" % (status, reason)
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, reason),
        b"date: " + date + b"\r\n",
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    head.extend(name + b": " + value + b"\r\n" for name, value in extra)
    head.append(b"\r\n")
    return b"".join(head) + body


class HTTPDriver:
    """One server-side HTTP/1.1 connection, without I/O."""

    __slots__ = (
        "_body_remaining",
        "_buf",
        "_chunked",
        "_continue_pending",
        "_eof",
        "_framing",
        "_head_only",
        "_http10",
        "_keep_alive",
        "_parse_head",
        "_rejected",
        "_remaining",
        "_request_keep_alive",
        "_response_done",
        "_state",
        "limits",
    )

    def __init__(self, limits: Limits, parse_head: HeadParser = parse_head_h11) -> None:
        self.limits = limits
        self._parse_head = parse_head
        self._buf = b""
        self._eof = False
        self._state = _HEAD
        self._body_remaining = 0  # a Content-Length body: bytes still to read
        self._chunked: ChunkedReader | None = None
        self._rejected: Rejected | None = None
        # the current request, as far as the response needs to know
        self._request_keep_alive = True
        self._http10 = False
        self._head_only = False
        self._continue_pending = False
        # the current response
        self._framing: object = _NO_BODY
        self._remaining = 0
        self._keep_alive = False
        self._response_done = False

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            return  # nothing can follow the end of input
        if self._state == _HEAD and not self._buf:
            # RFC 9112 2.2: ignore at least one empty line before the request-line.
            data = data.lstrip(b"\r\n")
        self._buf = self._buf + data if self._buf else data

    def receive_eof(self) -> None:
        self._eof = True

    @property
    def head_started(self) -> bool:
        """Bytes of a request head have arrived and the head is not complete yet."""
        return self._state == _HEAD and bool(self._buf)

    def next_event(self) -> Event:
        state = self._state
        if state == _BODY_LENGTH:
            return self._read_length_body()
        if state == _BODY_CHUNKED:
            return self._read_chunked_body()
        if state == _HEAD:
            return self._read_head()
        if state == _BODY_EMPTY:
            self._state = _DONE
            return BODY_END
        if state == _DONE:
            if self._buf:
                return PAUSED
            return PEER_CLOSED if self._eof else NEED_DATA
        assert self._rejected is not None
        return self._rejected

    def _reject(self, status: int, reason: str) -> Rejected:
        self._state = _ERROR
        self._rejected = Rejected(status, reason)
        return self._rejected

    def _read_head(self) -> Event:
        buf = self._buf
        end = _head_end(buf)
        limits = self.limits
        if end == -1:
            if self._eof:
                if buf:
                    return self._reject(400, "connection closed in the middle of a request head")
                return PEER_CLOSED
            status = _over_limits(buf, limits)
            if status:
                return self._reject(*status)
            return NEED_DATA
        head = buf[:end]
        self._buf = buf[end:]
        return self._request_head(head)

    def _request_head(self, head: bytes) -> Event:
        limits = self.limits
        status = _over_limits(head, limits)  # first, as for an incomplete head: any split, one answer
        if status:
            return self._reject(*status)
        if head.count(b"\n") != head.count(b"\r\n"):
            return self._reject(400, "bare LF line terminator")
        if b"\n " in head or b"\n\t" in head:
            return self._reject(400, "obsolete line folding")
        if _CONTROL.search(head) is not None:
            return self._reject(400, "control character in the request head")
        try:
            parsed = self._parse_head(head)
        except RequestError as exc:
            return self._reject(exc.status, exc.reason)
        headers = parsed.headers
        if len(headers) > limits.max_headers:
            return self._reject(431, "too many header fields")
        version = parsed.http_version
        if version[:1] != b"1":
            return self._reject(505, "HTTP version not supported")
        method = parsed.method
        has_te = has_cl = expect_continue = False
        content_length = 0
        host: bytes | None = None
        request_id: bytes | None = None
        upgrade: bytes | None = None
        connection_upgrade = connection_close = False
        for name, value in headers:
            if name == b"content-length":
                has_cl = True
                content_length = int(value)
            elif name == b"transfer-encoding":
                has_te = True
            elif name == b"host":
                host = value
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
            elif name == b"x-request-id":
                request_id = value
            elif name == b"upgrade":
                upgrade = value.strip().lower()
            elif name == b"connection":
                tokens = [t.strip() for t in value.lower().split(b",")]
                connection_upgrade = connection_upgrade or b"upgrade" in tokens
                connection_close = connection_close or b"close" in tokens
        if has_cl:
            # h11 folds "5, 5" and a repeated identical line into one value; RFC 9110 8.6 lets a
            # recipient reject them instead, and we take the stricter choice: a proxy in front
            # may have read them differently.
            declared = _CONTENT_LENGTH_LINE.findall(head)
            if len(declared) != 1 or b"," in declared[0]:
                return self._reject(400, "repeated Content-Length")
        if version not in {b"1.1", b"1.0"}:
            version = b"1.1"  # RFC 9112 2.3: a later 1.x minor version is answered as 1.1
        http10 = version == b"1.0"
        if has_te:
            if has_cl:
                return self._reject(400, "both Content-Length and Transfer-Encoding")
            if http10:
                return self._reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        if host is not None and not _valid_host(host):
            return self._reject(400, "invalid Host header")
        try:
            target = parse_target(method, parsed.target)
        except RequestError as exc:
            return self._reject(exc.status, exc.reason)
        if limits.max_body_bytes and content_length > limits.max_body_bytes:
            return self._reject(413, "request body larger than the limit")
        if has_te:
            self._state = _BODY_CHUNKED
            self._chunked = ChunkedReader(limits.max_body_bytes, limits.max_header_bytes)
        elif content_length:
            self._state = _BODY_LENGTH
            self._body_remaining = content_length
        else:
            self._state = _BODY_EMPTY
        self._http10 = http10
        self._request_keep_alive = not (http10 or connection_close)
        self._head_only = method == b"HEAD"
        self._continue_pending = expect_continue and not http10
        return RequestHead(
            method=method,
            target=target,
            http_version=version,
            headers=headers,
            expect_continue=expect_continue and not http10,
            has_body=has_te or content_length > 0,
            request_id=request_id,
            upgrade=upgrade if connection_upgrade else None,
        )

    def _read_length_body(self) -> Event:
        buf = self._buf
        if not buf:
            if self._eof:
                return self._reject(400, "connection closed in the middle of a request body")
            return NEED_DATA
        self._continue_pending = False  # the client sent the body without waiting for 100
        remaining = self._body_remaining
        if len(buf) <= remaining:
            data = buf
            self._buf = b""
        else:
            data = buf[:remaining]
            self._buf = buf[remaining:]
        remaining -= len(data)
        self._body_remaining = remaining
        if not remaining:
            self._state = _BODY_EMPTY
        return BodyData(data)

    def _read_chunked_body(self) -> Event:
        reader = self._chunked
        assert reader is not None
        while True:
            try:
                data, used = reader.read(self._buf)
            except RequestError as exc:
                return self._reject(exc.status, exc.reason)
            if data is None:
                if self._eof:
                    return self._reject(400, "connection closed in the middle of a request body")
                return NEED_DATA
            self._continue_pending = False
            self._buf = self._buf[used:]
            if reader.done:
                self._chunked = None
                self._state = _DONE
                return BODY_END
            if data:
                return BodyData(data)

    # -- output --------------------------------------------------------------------------
    #
    # The driver frames responses itself (serialising through h11 cost as much as parsing
    # the request), by RFC 9112 6: no body for HEAD, 204 and 304; Content-Length when the app
    # gives one (more or fewer bytes than declared is an error); otherwise chunked for
    # HTTP/1.1 and close-delimited for HTTP/1.0.  Errors are h11.LocalProtocolError, as the
    # callers expect.

    def send_continue(self) -> bytes:
        self._continue_pending = False
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def send_response(self, status: int, headers: Headers, app_fields: int | None = None) -> bytes:
        """Serialise the status line and headers (h11.LocalProtocolError on an invalid field).

        Only the first ``app_fields`` fields (all when None) came from the app and are checked;
        the rest were made by the server.
        """
        unchecked = len(headers) if app_fields is None else app_fields
        length: bytes | None = None
        chunked = close = False
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b""))]
        for name, value in headers:
            if unchecked:
                unchecked -= 1
                _check_field(name, value)
            lname = name.lower()
            if lname == b"content-length":
                if (length is not None and value != length) or not value.isdigit():
                    raise h11.LocalProtocolError(f"bad Content-Length {value!r}")
                length = value
            elif lname == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise h11.LocalProtocolError("only Transfer-Encoding: chunked is supported")
                if chunked:
                    raise h11.LocalProtocolError("Transfer-Encoding given twice")
                chunked = True
                if self._http10:
                    continue  # an HTTP/1.0 client cannot read chunks: close-delimit instead
            elif lname == b"connection" and b"close" in value.lower():
                close = True
            lines.append(name + b": " + value + b"\r\n")
        if chunked and length is not None:  # RFC 9112 6.3: a client could frame it either way
            raise h11.LocalProtocolError("both Content-Length and Transfer-Encoding")
        self._continue_pending = False
        keep_alive = self._request_keep_alive and not close
        if self._head_only or status in (204, 304):
            self._framing = _NO_BODY
            if self._head_only and length is None and not chunked:
                lines.append(b"transfer-encoding: chunked\r\n")  # what the GET response would say
        elif chunked and length is None and not self._http10:
            self._framing = _CHUNKED
        elif length is not None and not chunked:
            self._framing = _LENGTH
            self._remaining = int(length)
        elif self._http10 or chunked:
            self._framing = _UNTIL_CLOSE
            keep_alive = False
        else:
            self._framing = _CHUNKED
            lines.append(b"transfer-encoding: chunked\r\n")
        if not keep_alive and not close:
            lines.append(b"connection: close\r\n")
        self._keep_alive = keep_alive
        lines.append(b"\r\n")
        return b"".join(lines)

    def send_data(self, data: bytes) -> bytes:
        framing = self._framing
        if framing is _LENGTH:
            if len(data) > self._remaining:
                raise h11.LocalProtocolError("Too much data for declared Content-Length")
            self._remaining -= len(data)
            return data
        if framing is _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return data if framing is _UNTIL_CLOSE else b""

    def send_file(self, body: FileRange) -> list[bytes | FileRange]:
        """Framing around ``body``: byte strings to write, and ``body`` itself where its bytes go."""
        framing = self._framing
        if framing is _LENGTH:
            if body.count > self._remaining:
                raise h11.LocalProtocolError("Too much data for declared Content-Length")
            self._remaining -= body.count
            return [body]
        if framing is _CHUNKED:
            return [b"%x\r\n" % body.count, body, b"\r\n"] if body.count else []
        return [body] if framing is _UNTIL_CLOSE else []

    def send_end(self, trailers: Headers | None = None) -> bytes:
        """End the response; trailer fields need chunked framing (h11.LocalProtocolError otherwise)."""
        framing = self._framing
        self._response_done = True
        if framing is _LENGTH and self._remaining:
            self._keep_alive = False
            raise h11.LocalProtocolError("Too little data for declared Content-Length")
        if framing is _CHUNKED:
            fields = b""
            for name, value in trailers or ():
                _check_field(name, value)
                fields += name + b": " + value + b"\r\n"
            return b"0\r\n" + fields + b"\r\n"
        if trailers:
            raise h11.LocalProtocolError("trailer fields need a chunked response")
        return b""

    @property
    def waiting_for_continue(self) -> bool:
        return self._continue_pending and self._state in (_BODY_LENGTH, _BODY_CHUNKED)

    @property
    def request_complete(self) -> bool:
        return self._state == _DONE

    @property
    def can_keep_alive(self) -> bool:
        """The response is complete and both sides agree to another request."""
        return self._response_done and self._keep_alive and self._state == _DONE

    def take_trailing_data(self) -> bytes:
        """Bytes received after the current request (for a protocol switch such as WebSocket)."""
        data, self._buf = self._buf, b""
        return data

    def next_cycle(self) -> bool:
        """Get ready for the next request on the connection, starting with what already arrived of it.

        Returns whether anything arrived (bytes or the end of input) that needs processing.
        """
        self._state = _HEAD
        self._response_done = False
        self._buf = self._buf.lstrip(b"\r\n")
        return bool(self._buf) or self._eof


_HEAD, _BODY_LENGTH, _BODY_CHUNKED, _BODY_EMPTY, _DONE, _ERROR = range(6)
# Control characters other than HTAB, CR and LF (CR and LF are checked as line ends); NUL and DEL too.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEAD_END = re.compile(rb"\n\r?\n")
_CONTENT_LENGTH_LINE = re.compile(rb"\r\ncontent-length[ \t]*:([^\r]*)", re.IGNORECASE)


def _over_limits(head: bytes, limits: Limits) -> tuple[int, str] | None:
    """414 or 431 for a head (complete or not) over the limits, else None.

    The request-line's length excludes its line end (a CR may still wait for its LF); the
    header section is every byte after the request-line's LF.  Both only grow as bytes arrive,
    so a head gets the same answer however it was split.
    """
    newline = head.find(b"\n")
    line = len(head) if newline == -1 else newline
    if line - (head[line - 1 : line] == b"\r") > limits.max_request_line:
        return 414, "request-line too long"
    if newline != -1 and len(head) - newline - 1 > limits.max_header_bytes:
        return 431, "header section too large"
    return None


def _head_end(buf: bytes) -> int:
    """The end of the head in ``buf`` (just after its blank line, found as h11 finds it), or -1."""
    match = _HEAD_END.search(buf)
    return match.end() if match is not None else -1


_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = (object() for _ in range(4))
_TOKEN = re.compile(TOKEN)
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")


def _check_field(name: bytes, value: bytes) -> None:
    """A response field the app gave must not smuggle a line break or an invalid name onto the wire."""
    if (name, value) in _CHECKED_FIELDS:
        return
    if not _TOKEN.fullmatch(name):
        raise h11.LocalProtocolError(f"Illegal header name {name!r}")
    if _BAD_VALUE.search(value):
        raise h11.LocalProtocolError(f"Illegal header value {value!r}")
    if len(_CHECKED_FIELDS) >= _CHECKED_FIELDS_MAX:
        _CHECKED_FIELDS.clear()
    _CHECKED_FIELDS.add((name, value))


# Fields already found valid: most responses repeat the same few (content-type, server, ...).
_CHECKED_FIELDS: set[tuple[bytes, bytes]] = set()
_CHECKED_FIELDS_MAX = 512


def _valid_host(host: bytes) -> bool:
    """RFC 9110 7.2 / RFC 3986 host[:port]; rejects spaces, '/', '@' and other junk."""
    if not host:
        return True  # an empty Host is allowed when the target URI has no authority
    if host[:1] == b"[":
        close = host.find(b"]")
        if close == -1:
            return False
        rest = host[close + 1 :]
        return not rest or (rest[:1] == b":" and rest[1:].isdigit())
    name, _, port = host.partition(b":")
    if port and not port.isdigit():
        return False
    return _HOST_NAME.fullmatch(name) is not None


_HOST_NAME = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=%]*")
