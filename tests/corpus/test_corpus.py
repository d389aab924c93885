"""Run the request corpus (``tests/corpus/<class>/*.http``) two ways.

* ``test_server``: every case against a real server in every process model of
  ``SERVING_MODES`` (one server per mode), over loopback.  Each case gets a fresh
  connection; the responses are read with a bounded deadline and compared with the
  expectation; after every case that is not fully valid a fresh connection must still be
  served.
* ``test_client_gives_up_mid_request``: the ``incomplete/`` cases again, with the client
  closing (or resetting) the connection instead of waiting; the server must carry on.
* ``test_driver``: every case fed to each sans-I/O driver in ``DRIVERS``, whole and in small
  pieces, comparing the request heads, bodies and the first rejection with the expectation.

Cases marked ``defect`` in their ``.toml`` are ``xfail(strict=True)``: fixing the server makes
them fail here until the mark is removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from modes import SERVING_MODES, mode_settings
from server_process import ServerProcess

from corpus.corpus import CORPUS_DIR, LIMITS, REQUEST_TIMEOUT, CorpusCase, ServedRequest, load_cases
from qactuar.http.driver import (
    BodyData,
    BodyEnd,
    HTTPDriver,
    Limits,
    NeedData,
    PeerClosed,
    Rejected,
    RequestHead,
)
from qactuar.http.heads import parse_head_httptools

CASES = load_cases()
CASE_PARAMS = [pytest.param(case, id=case.id) for case in CASES]
CASE_DEADLINE = 5.0  # seconds for one case's responses (plus REQUEST_TIMEOUT for `outcome = "close"`)
PROBE = b"GET /__probe HTTP/1.1\r\nHost: probe\r\n\r\n"


# -- what an app saw, from either runner ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: Sequence[tuple[bytes, bytes]]
    body_size: int
    body_sha256: str
    body: bytes | None


def mismatches(seen: Seen, want: ServedRequest) -> list[str]:
    problems = [
        f"{field}: got {got!r}, want {expected!r}"
        for field, got, expected in (
            ("method", seen.method, want.method),
            ("path", seen.path, want.path),
            ("raw_path", seen.raw_path, want.raw_path),
            ("query_string", seen.query_string, want.query_string),
            ("http_version", seen.http_version, want.http_version),
            ("body_size", seen.body_size, want.body_size),
            ("body_sha256", seen.body_sha256, want.body_sha256),
        )
        if got != expected
    ]
    if want.body is not None and seen.body is not None and seen.body != want.body:
        problems.append(f"body: got {seen.body[:200]!r}, want {want.body[:200]!r}")
    for name, values in want.headers.items():
        got_values = tuple(value for key, value in seen.headers if key == name)
        if got_values != values:
            problems.append(f"header {name!r}: got {got_values!r}, want {values!r}")
    return problems


def _bytes(text: str) -> bytes:
    return text.encode("latin-1")


def seen_from_app(payload: dict[str, Any]) -> Seen:
    body = payload["body"]
    return Seen(
        method=payload["method"],
        path=payload["path"],
        raw_path=_bytes(payload["raw_path"]),
        query_string=_bytes(payload["query_string"]),
        http_version=payload["http_version"],
        headers=[(_bytes(name), _bytes(value)) for name, value in payload["headers"]],
        body_size=payload["body_size"],
        body_sha256=payload["body_sha256"],
        body=None if body is None else _bytes(body),
    )


# -- the sans-I/O runner --------------------------------------------------------------------


class SansIODriver(Protocol):
    """The part of ``HTTPDriver``'s interface the corpus uses."""

    def receive_data(self, data: bytes) -> None: ...
    def receive_eof(self) -> None: ...
    def next_event(self) -> object: ...
    def send_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes: ...
    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes: ...
    def next_cycle(self) -> bool: ...
    @property
    def can_keep_alive(self) -> bool: ...


DriverFactory = Callable[[Limits], SansIODriver]
# Every driver here must give the same answers for the whole corpus (the id is a run tag).
DRIVERS: dict[str, DriverFactory] = {
    "h11": HTTPDriver,
    "httptools": functools.partial(HTTPDriver, parse_head=parse_head_httptools),
}
# How the bytes arrive: all in one piece, or in pieces of about 1/1000 of the case (1 byte
# for small cases) so that every parser state boundary is crossed.
FEEDS = ["whole", "pieces"]


class Feeder:
    """Hands the driver more bytes (then the EOF, if the case has one) only when it asks for them."""

    def __init__(self, driver: SansIODriver, raw: bytes, piece: int, eof: bool) -> None:
        self.driver = driver
        self.raw = raw
        self.piece = piece
        self.offset = 0
        self.eof_pending = eof

    def _feed(self) -> bool:
        if self.offset < len(self.raw):
            self.driver.receive_data(self.raw[self.offset : self.offset + self.piece])
            self.offset += self.piece
            return True
        if self.eof_pending:
            self.eof_pending = False
            self.driver.receive_eof()
            return True
        return False

    def next(self) -> object:
        while True:
            event = self.driver.next_event()
            if isinstance(event, NeedData) and self._feed():
                continue
            return event


def run_driver(factory: DriverFactory, case: CorpusCase, feed: str) -> None:
    driver = factory(Limits(**LIMITS))
    piece = len(case.raw) if feed == "whole" else max(1, len(case.raw) // 1000)
    feeder = Feeder(driver, case.raw, piece, case.expect.eof)
    expect = case.expect
    for index, response in enumerate(expect.responses):
        where = f"request {index + 1}"
        if response.request is None:
            event = feeder.next()
            while isinstance(event, RequestHead | BodyData):  # a body error comes after its head
                event = feeder.next()
            assert isinstance(event, Rejected), (
                f"{where}: want a rejection {sorted(response.statuses)}, got {event!r}"
            )
            assert event.status in response.statuses, f"{where}: {event!r}, want {sorted(response.statuses)}"
            return
        head = feeder.next()
        assert isinstance(head, RequestHead), f"{where}: want a request head, got {head!r}"
        body = b""
        event = feeder.next()
        while isinstance(event, BodyData):
            body += event.data
            event = feeder.next()
        assert isinstance(event, BodyEnd), f"{where}: want the end of the body, got {event!r}"
        seen = Seen(
            method=head.method.decode("latin-1"),
            path=head.target.path,
            raw_path=head.target.raw_path,
            query_string=head.target.query_string,
            http_version=head.http_version.decode("latin-1"),
            headers=head.headers,
            body_size=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
            body=body,
        )
        problems = mismatches(seen, response.request)
        assert not problems, f"{where}: " + "; ".join(problems)
        driver.send_response(200, [(b"content-length", b"0")])
        driver.send_end()
        if index == len(expect.responses) - 1 and expect.after == "close":
            assert not driver.can_keep_alive, f"{where}: the connection must close after this response"
        else:
            assert driver.can_keep_alive, f"{where}: the connection must stay open after this response"
            driver.next_cycle()
    if expect.after == "timeout":
        event = feeder.next()
        while isinstance(event, RequestHead | BodyData):  # an incomplete body may follow a complete head
            event = feeder.next()
        wanted: tuple[type, ...] = (NeedData, PeerClosed) if expect.eof else (NeedData,)
        assert isinstance(event, wanted), f"the rest is incomplete: want the driver to wait, got {event!r}"
    elif expect.after == "keep-alive":
        event = feeder.next()
        ending: type = PeerClosed if expect.eof else NeedData
        assert isinstance(event, ending), f"nothing may follow the last request, got {event!r}"


def expect_defect(request: pytest.FixtureRequest, case: CorpusCase, tags: set[str]) -> None:
    """Mark the run xfail(strict) when the case's defect applies to it (see ``defect_in``)."""
    if case.defect is not None and case.defect_applies(frozenset(tags)):
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.defect))


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("driver", list(DRIVERS))
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_driver(request: pytest.FixtureRequest, case: CorpusCase, driver: str, feed: str) -> None:
    expect_defect(request, case, {"driver", driver, feed})
    run_driver(DRIVERS[driver], case, feed)


# -- the real-server runner -----------------------------------------------------------------


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    @property
    def closes(self) -> bool:
        tokens = (
            token.strip() for value in self.header(b"connection") for token in value.lower().split(b",")
        )
        return b"close" in tokens


class Wire:
    """Reads responses from a socket; every read is bounded by one deadline for the whole case."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.at_eof = False

    def _fill(self) -> bool:
        """Read more; False at the end of the stream."""
        if self.at_eof:
            return False
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no answer from the server in time; received so far: {self.buf[:300]!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(
                f"no answer from the server in time; received so far: {self.buf[:300]!r}"
            ) from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.at_eof = True
            return False
        self.buf += chunk
        return True

    def _take(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not self._fill():
                raise AssertionError(
                    f"connection closed in the middle of a response body: {self.buf[:300]!r}"
                )
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(
                    f"connection closed in the middle of a chunked response: {self.buf[:300]!r}"
                )
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_response(self, head_only: bool = False) -> Response | None:
        """The next final response (1xx are skipped); None if the server closed before sending one."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    if not self.buf:
                        return None
                    raise AssertionError(
                        f"connection closed in the middle of a response head: {self.buf[:300]!r}"
                    )
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            status_line, *lines = head.split(b"\r\n")
            version, _, rest = status_line.partition(b" ")
            assert version == b"HTTP/1.1", f"not an HTTP/1.1 status line: {status_line!r}"
            status = int(rest[:3])
            headers = []
            for line in lines:
                name, _, value = line.partition(b":")
                headers.append((name.strip().lower(), value.strip()))
            if status >= 200:
                break
        response = Response(status, headers, b"")
        length = response.header(b"content-length")
        if head_only or status in (204, 304):
            pass
        elif length:
            response.body = self._take(int(length[0]))
        elif b"chunked" in b",".join(response.header(b"transfer-encoding")).lower():
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                response.body += self._take(size)
                assert self._take(2) == b"\r\n", "chunk data not followed by CRLF"
        else:
            response.body = self.read_rest()
        return response

    def read_rest(self) -> bytes:
        """Everything until the server closes the connection."""
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data


@dataclass(frozen=True, slots=True)
class ModeServer:
    mode: str  # the SERVING_MODES entry (a run tag)
    server: ServerProcess


@pytest.fixture(scope="module", params=SERVING_MODES)
def corpus_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModeServer]:
    mode, extra = mode_settings(request.param)
    server = ServerProcess(
        tmp_path_factory.mktemp(f"corpus-{mode}"),
        {"/": "corpus_app:app"},
        mode=mode,
        settings={
            "app_dir": str(CORPUS_DIR),
            "request_timeout": REQUEST_TIMEOUT,
            "forwarded_allow_ips": [],  # the scope must be the request as sent
            **LIMITS,
            **extra,
        },
    )
    server.start()
    try:
        probe(server)  # serving before the first case, so no case pays for the warm-up
        yield ModeServer(request.param, server)
    finally:
        server.stop()


def check_served(response: Response, want: ServedRequest, where: str) -> None:
    if want.method == "HEAD":
        assert response.header(b"content-type") == [b"application/json"], f"{where}: {response!r}"
        return
    problems = mismatches(seen_from_app(json.loads(response.body)), want)
    assert not problems, f"{where}: " + "; ".join(problems)


def probe(server: ServerProcess) -> None:
    """A fresh connection is served normally."""
    with socket.create_connection((server.host, server.port), timeout=CASE_DEADLINE) as sock:
        sock.sendall(PROBE)
        response = Wire(sock, time.monotonic() + CASE_DEADLINE).read_response()
    assert response is not None and response.status == 200, f"the server no longer serves: {response!r}"


def run_server_case(server: ServerProcess, case: CorpusCase) -> None:
    expect = case.expect
    timeout = expect.after == "timeout"
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=CASE_DEADLINE) as sock:
        try:
            sock.sendall(case.raw)
            if expect.eof:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before taking it all: read what it said
        wire = Wire(sock, started + CASE_DEADLINE + (REQUEST_TIMEOUT if timeout else 0))
        last: Response | None = None
        for index, want in enumerate(expect.responses):
            where = f"response {index + 1}"
            head_only = want.request is not None and want.request.method == "HEAD"
            last = wire.read_response(head_only)
            assert last is not None, f"{where}: closed without a response, want {sorted(want.statuses)}"
            assert last.status in want.statuses, (
                f"{where}: got {last.status}, want {sorted(want.statuses)}: {last!r}"
            )
            if want.request is None:
                assert last.closes, f"{where}: an error response must say Connection: close"
            else:
                check_served(last, want.request, where)
        if expect.after == "keep-alive":
            sock.sendall(PROBE)
            response = wire.read_response()
            assert response is not None and response.status == 200, (
                f"the connection was not kept open: {response!r}"
            )
            assert json.loads(response.body)["path"] == "/__probe"
        elif expect.after == "close":
            if last is not None:
                assert last.closes, "the last response must say Connection: close"
            rest = wire.read_rest()
            assert rest == b"", f"bytes after the last response: {rest[:300]!r}"
        else:
            rest = wire.read_rest()
            elapsed = time.monotonic() - started
            if not expect.eof:
                assert elapsed >= REQUEST_TIMEOUT * 0.8, (
                    f"closed after {elapsed:.2f}s, before REQUEST_TIMEOUT"
                )
            if rest:
                wire.buf, wire.at_eof = rest, True
                response = wire.read_response()
                assert response is not None and response.status == 408 and response.closes, (
                    f"only a 408 with Connection: close may end an incomplete request: {rest[:300]!r}"
                )
                assert not wire.buf, f"bytes after the 408: {wire.buf[:300]!r}"
    if not case.valid:
        probe(server)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_server(request: pytest.FixtureRequest, corpus_server: ModeServer, case: CorpusCase) -> None:
    expect_defect(request, case, {"server", corpus_server.mode})
    run_server_case(corpus_server.server, case)


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.id) for case in CASES if case.category == "incomplete"]
)
def test_client_gives_up_mid_request(corpus_server: ModeServer, case: CorpusCase, how: str) -> None:
    """The client sends an incomplete request and closes without reading (FIN, or RST with SO_LINGER 0):
    the server drops the connection quietly and carries on."""
    sock = socket.create_connection(
        (corpus_server.server.host, corpus_server.server.port), timeout=CASE_DEADLINE
    )
    try:
        sock.sendall(case.raw)
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()
    probe(corpus_server.server)


def test_corpus_size() -> None:
    """The issue asks for at least 100 raw requests, a good share of them valid."""
    assert len(CASES) >= 100
    assert sum(case.valid for case in CASES) >= 50
