"""Sans-I/O HTTP/1.1 server connection: bytes in, events out; response events in, bytes out.

Theory of operation
-------------------
h11 is the parser and the framing state machine; it is a parser, not a policy.  This
driver wraps one ``h11.Connection`` and adds what a production server must decide for
itself (RFC 9112 / RFC 9110, taking the stricter choice wherever they allow one):

* limits: request-line length (414), header section bytes and header count (431),
  body size (413) -- the header limits are checked on the raw bytes, so a whole
  oversized block that arrives in one read is caught as surely as a trickled one;
* framing conflicts that enable request smuggling: Content-Length together with
  Transfer-Encoding (400), Transfer-Encoding on HTTP/1.0 (400), a coding list whose
  last coding is not ``chunked`` or that repeats it (400), any other coding (501);
* line syntax h11 tolerates: bare LF line endings and obs-fold are rejected (400);
* HTTP versions other than 1.x (505), request-target forms (see ``target.py``).

To see the raw bytes of a request head the driver keeps references to the chunks
received since the current head began (no copy on the common one-chunk path) and
reads them only when a head completes or h11 reports an error.

Every rejection is a ``Rejected`` event carrying a status; the caller writes
``error_response(status)`` (a minimal response with ``Connection: close``) and closes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

import h11

from qactuar.http.target import Target, TargetError, parse_target

Headers = list[tuple[bytes, bytes]]


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
    """Body bytes the caller sends itself (``os.sendfile``): h11 counts them by ``len()`` and
    hands the object back in place of the data (h11's documented sendfile pass-through)."""

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


def _transfer_coding_status(head: bytes) -> tuple[int, str] | None:
    """Classify the Transfer-Encoding field lines of a raw head (RFC 9112 6.1)."""
    codings: list[bytes] = []
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"transfer-encoding":
            codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
    if not codings:
        return None
    if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
        return 400, "chunked must be the final transfer coding, applied once"
    return 501, "unsupported transfer coding"


class HTTPDriver:
    """One server-side HTTP/1.1 connection, without I/O."""

    __slots__ = (
        "_body_received",
        "_conn",
        "_continue_pending",
        "_framing",
        "_head_chunks",
        "_head_only",
        "_http10",
        "_in_head",
        "_keep_alive",
        "_remaining",
        "_request_keep_alive",
        "_response_done",
        "limits",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._conn = self._new_connection()
        self._head_chunks: list[bytes] = []
        self._in_head = True
        self._body_received = 0
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
        if self._in_head:
            if not self._head_chunks and self._conn.their_state is h11.IDLE:
                # RFC 9112 2.2: ignore at least one empty line before the request-line.
                data = data.lstrip(b"\r\n")
                if not data:
                    return
            self._head_chunks.append(data)
        self._conn.receive_data(data)

    def receive_eof(self) -> None:
        self._conn.receive_data(b"")

    @property
    def head_started(self) -> bool:
        """Bytes of a request head have arrived and the head is not complete yet."""
        return self._in_head and bool(self._head_chunks)

    def next_event(self) -> Event:
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            return self._rejection(exc)
        kind = type(event)
        if kind is h11.Data:
            self._continue_pending = False  # the client sent the body without waiting for 100
            data = bytes(event.data)  # type: ignore[union-attr]
            limit = self.limits.max_body_bytes
            if limit:
                self._body_received += len(data)
                if self._body_received > limit:
                    return Rejected(413, "request body larger than the limit")
            return BodyData(data)
        if kind is h11.EndOfMessage:
            return BODY_END
        if kind is h11.Request:
            return self._request_head(event)  # type: ignore[arg-type]
        if event is h11.NEED_DATA:
            return NEED_DATA
        if event is h11.PAUSED:
            return PAUSED
        if kind is h11.ConnectionClosed:
            if self._in_head and self._head_chunks:
                return Rejected(400, "connection closed in the middle of a request head")
            return PEER_CLOSED
        return Rejected(400, f"unexpected event {kind.__name__}")

    def _raw_head(self) -> bytes:
        chunks = self._head_chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _rejection(self, exc: h11.RemoteProtocolError) -> Rejected:
        reason = str(exc)
        status = exc.error_status_hint
        if self._in_head:
            raw = self._raw_head()
            if "Transfer-Encoding" in reason:
                classified = _transfer_coding_status(raw)
                if classified:
                    return Rejected(*classified)
            if status == 431:
                line_end = raw.find(b"\n")
                if line_end == -1 or line_end > self.limits.max_request_line:
                    return Rejected(414, "request-line too long")
        return Rejected(status, reason)

    def _request_head(self, event: h11.Request) -> Event:
        limits = self.limits
        raw = self._raw_head()
        self._in_head = False
        self._head_chunks = []
        end = raw.find(b"\r\n\r\n")
        if end == -1:
            return Rejected(400, "bare LF line terminator")
        line_end = raw.find(b"\r\n")
        if line_end > limits.max_request_line:
            return Rejected(414, "request-line too long")
        if end - line_end > limits.max_header_bytes:
            return Rejected(431, "header section too large")
        head = raw[: end + 2]
        if head.count(b"\n") != head.count(b"\r\n"):
            return Rejected(400, "bare LF line terminator")
        if b"\n " in head or b"\n\t" in head:
            return Rejected(400, "obsolete line folding")
        headers = event.headers
        if len(headers) > limits.max_headers:
            return Rejected(431, "too many header fields")
        version = event.http_version
        if version[:1] != b"1":
            return Rejected(505, "HTTP version not supported")
        method = event.method
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
        if has_te:
            if has_cl:
                return Rejected(400, "both Content-Length and Transfer-Encoding")
            if version == b"1.0":
                return Rejected(400, "Transfer-Encoding in an HTTP/1.0 request")
        if host is not None and not _valid_host(host):
            return Rejected(400, "invalid Host header")
        try:
            target = parse_target(method, event.target)
        except TargetError as exc:
            return Rejected(exc.status, exc.reason)
        if limits.max_body_bytes and content_length > limits.max_body_bytes:
            return Rejected(413, "request body larger than the limit")
        self._body_received = 0
        self._http10 = version == b"1.0"
        self._request_keep_alive = not (self._http10 or connection_close)
        self._head_only = method == b"HEAD"
        self._continue_pending = expect_continue and not self._http10
        return RequestHead(
            method=method,
            target=target,
            http_version=version,
            headers=list(headers),
            expect_continue=expect_continue and version != b"1.0",
            has_body=has_te or content_length > 0,
            request_id=request_id,
            upgrade=upgrade if connection_upgrade else None,
        )

    # -- output --------------------------------------------------------------------------
    #
    # h11 parses requests; responses are written here.  Serialising a response through h11
    # costs about as much as parsing the request (each head is validated twice and walks
    # the state machine), so the driver frames responses itself by the same rules
    # (RFC 9112 6): no body for HEAD, 204 and 304; Content-Length when the app gives one
    # (more or fewer bytes than declared is an error); otherwise chunked for HTTP/1.1 and
    # close-delimited for HTTP/1.0.  Each request gets a fresh h11 connection for its head
    # (``next_cycle``), so h11 never needs to see the response.

    def send_continue(self) -> bytes:
        self._continue_pending = False
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def send_response(self, status: int, headers: Headers) -> bytes:
        """Serialise the status line and headers (h11.LocalProtocolError on an invalid field)."""
        length: bytes | None = None
        chunked = close = False
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b""))]
        for name, value in headers:
            _check_field(name, value)
            lname = name.lower()
            if lname == b"content-length":
                if (length is not None and value != length) or not value.isdigit():
                    raise h11.LocalProtocolError(f"bad Content-Length {value!r}")
                length = value
            elif lname == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise h11.LocalProtocolError("only Transfer-Encoding: chunked is supported")
                chunked = True
                if self._http10:
                    continue  # an HTTP/1.0 client cannot read chunks: close-delimit instead
            elif lname == b"connection" and b"close" in value.lower():
                close = True
            lines.append(name + b": " + value + b"\r\n")
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
        return self._continue_pending and self._conn.their_state is h11.SEND_BODY

    @property
    def request_complete(self) -> bool:
        return self._conn.their_state in (h11.DONE, h11.MUST_CLOSE)

    @property
    def can_keep_alive(self) -> bool:
        """The response is complete and both sides agree to another request."""
        return self._response_done and self._keep_alive and self._conn.their_state is h11.DONE

    def take_trailing_data(self) -> bytes:
        """Bytes received after the current request (for a protocol switch such as WebSocket)."""
        return bytes(self._conn.trailing_data[0])

    def next_cycle(self) -> bool:
        """A fresh h11 connection for the next request, fed what already arrived of it.

        Returns whether anything arrived (bytes or the end of input) that needs processing.
        """
        pending, closed = self._conn.trailing_data
        self._conn = self._new_connection()
        self._response_done = False
        self._in_head = True
        self._head_chunks = []
        if pending:
            self._head_chunks.append(bytes(pending))
            self._conn.receive_data(bytes(pending))
        if closed:
            self._conn.receive_data(b"")
        return bool(pending) or closed

    def _new_connection(self) -> h11.Connection:
        limits = self.limits
        return h11.Connection(
            h11.SERVER, max_incomplete_event_size=limits.max_request_line + limits.max_header_bytes
        )


_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = (object() for _ in range(4))
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")


def _check_field(name: bytes, value: bytes) -> None:
    """A response field the app gave must not smuggle a line break or an invalid name onto the wire."""
    if not _TOKEN.fullmatch(name):
        raise h11.LocalProtocolError(f"Illegal header name {name!r}")
    if _BAD_VALUE.search(value):
        raise h11.LocalProtocolError(f"Illegal header value {value!r}")


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
    return all(c in _HOST_CHARS for c in name)


_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%")
