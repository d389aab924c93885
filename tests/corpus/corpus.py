"""The raw HTTP/1.x request corpus: loader and expectation types.

Layout: ``tests/corpus/<class>/<name>.http`` holds the exact bytes a client sends (binary,
CRLF kept: ``.gitattributes`` says ``-text``) and ``<name>.toml`` beside it says what must
happen.  The runners (``test_corpus.py``: a real server in every process model, and the
sans-I/O driver) and any other test (``from corpus.corpus import load_cases``) read the
cases through ``load_cases()``.

Expectation file (every key but ``description`` optional; unknown keys are an error):

``description``
    What the case is and why it matters (RFC clause, CVE, bug report).
``status = 400`` (or a list such as ``[400, 501]`` where the RFCs leave the choice open)
    The request is rejected: exactly one response, with that status and ``Connection:
    close``, then the server closes the connection.  No app sees a complete request.
``[[response]]``
    The responses in order, one table per request (pipelining: several).  A table with
    ``method`` is a request the app serves (status 200 from ``corpus_app``), and the scope
    the app sees must match: ``method``, ``path``, ``raw_path`` (default: ``path``),
    ``query_string`` (default ``""``), ``http_version``, ``headers`` (selected fields:
    ``{name = [values in order]}``, ``[]`` = absent) and the body: ``body`` (default
    ``""``) or ``body_size`` + ``body_sha256``.  A table without ``method`` is an error
    response the server makes itself (``status`` only, ``Connection: close``, last).
    Byte strings (raw_path, query_string, header values, body) are written as latin-1 text:
    one character per byte, so ``"\\u00ff"`` is the byte 0xFF.
``after = "keep-alive" | "close"``
    What the connection does after the last response: serve another request on it
    (default after a served request), or close (default after an error response; required
    for HTTP/1.0 and ``Connection: close``).
``outcome = "close"``
    After the listed responses (maybe none) the bytes left are an incomplete request.  The
    server must wait and then end the connection itself once REQUEST_TIMEOUT has passed,
    sending either nothing or one ``408`` with ``Connection: close`` -- never a response to
    the incomplete request.  (With ``eof`` too, the server may close at once: the client
    has said it will send nothing more.)
``eof = true``
    The client half-closes its side (``shutdown(SHUT_WR)``) after sending the bytes.
``defect = "why"``
    The server is known to get this case wrong today; the expectation is the correct
    behaviour and the runners mark the case ``xfail(strict=True)``.
``defect_in = ["pieces"]``
    Limits the defect to the runs with one of these tags: ``server``, ``driver``, a
    ``SERVING_MODES`` entry (``prefork``...), a driver id (``h11``...), or how the driver
    runner feeds the bytes (``whole``, ``pieces``).

``LIMITS`` and ``REQUEST_TIMEOUT`` are the settings every runner uses for the corpus.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CORPUS_DIR = Path(__file__).resolve().parent

# The limits the corpus is written against (config keys MAX_REQUEST_LINE, MAX_HEADER_BYTES,
# MAX_HEADERS, MAX_BODY_BYTES; the first three are the defaults, the body limit is set so that
# 413 can be tested).
LIMITS: Mapping[str, int] = {
    "max_request_line": 8192,
    "max_header_bytes": 16384,
    "max_headers": 100,
    "max_body_bytes": 65536,
}
REQUEST_TIMEOUT = 0.3  # seconds: the `outcome = "close"` cases wait this long

After = Literal["keep-alive", "close", "timeout"]
_TOP_KEYS = {"description", "status", "response", "after", "outcome", "eof", "defect", "defect_in"}
_REQUEST_KEYS = {
    "status",
    "method",
    "path",
    "raw_path",
    "query_string",
    "http_version",
    "headers",
    "body",
    "body_size",
    "body_sha256",
}


class CorpusError(ValueError):
    """A case file is missing, orphaned or says something the format does not allow."""


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """What the app must see for one request it serves."""

    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: Mapping[bytes, tuple[bytes, ...]]  # lower-case name -> values in order
    body: bytes | None  # None: compare body_size and body_sha256 only
    body_size: int
    body_sha256: str


@dataclass(frozen=True, slots=True)
class ExpectedResponse:
    statuses: frozenset[int]
    request: ServedRequest | None  # None: an error response the server makes itself


@dataclass(frozen=True, slots=True)
class Expectation:
    responses: tuple[ExpectedResponse, ...]
    after: After  # "timeout" is `outcome = "close"`
    eof: bool


@dataclass(frozen=True, slots=True)
class CorpusCase:
    id: str  # "<class>/<name>"
    category: str
    raw: bytes
    expect: Expectation
    description: str
    defect: str | None
    defect_in: frozenset[str]  # empty: every run

    def defect_applies(self, tags: frozenset[str]) -> bool:
        """Whether the run with these tags is expected to fail (see ``defect_in``)."""
        return self.defect is not None and (not self.defect_in or bool(self.defect_in & tags))

    @property
    def valid(self) -> bool:
        """Every request in the case is served and the connection ends normally."""
        return self.expect.after != "timeout" and all(r.request is not None for r in self.expect.responses)


def _latin1(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise CorpusError(f"{where}: expected a string, got {value!r}")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise CorpusError(f"{where}: only latin-1 characters (one per byte) are allowed") from None


def _statuses(value: Any, where: str) -> frozenset[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and 100 <= v <= 599 for v in values):
        raise CorpusError(f"{where}: status must be an HTTP status or a list of them, got {value!r}")
    return frozenset(values)


def _request(table: Mapping[str, Any], where: str) -> ServedRequest:
    for key in ("path", "http_version"):
        if not isinstance(table.get(key), str):
            raise CorpusError(f"{where}: a served request needs {key!r}")
    headers: dict[bytes, tuple[bytes, ...]] = {}
    for name, values in (table.get("headers") or {}).items():
        if name != name.lower() or not isinstance(values, list):
            raise CorpusError(f"{where}: headers are {{lower-case name = [values]}}, got {name!r}")
        headers[name.encode("ascii")] = tuple(_latin1(v, f"{where} header {name}") for v in values)
    body: bytes | None
    if "body_sha256" in table or "body_size" in table:
        if "body" in table or not isinstance(table.get("body_size"), int):
            raise CorpusError(f"{where}: give either body or both body_size and body_sha256")
        body, size, digest = None, int(table["body_size"]), str(table["body_sha256"])
    else:
        body = _latin1(table.get("body", ""), f"{where} body")
        size, digest = len(body), hashlib.sha256(body).hexdigest()
    path = table["path"]
    return ServedRequest(
        method=str(table["method"]),
        path=path,
        raw_path=_latin1(table.get("raw_path", path), f"{where} raw_path"),
        query_string=_latin1(table.get("query_string", ""), f"{where} query_string"),
        http_version=table["http_version"],
        headers=headers,
        body=body,
        body_size=size,
        body_sha256=digest,
    )


def parse_expectation(
    data: Mapping[str, Any], where: str
) -> tuple[Expectation, str, str | None, frozenset[str]]:
    """(expectation, description, defect, defect_in) from a parsed expectation file."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise CorpusError(f"{where}: unknown keys {sorted(unknown)}")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise CorpusError(f"{where}: a description is required")
    defect = data.get("defect")
    if defect is not None and (not isinstance(defect, str) or not defect.strip()):
        raise CorpusError(f"{where}: defect must say why")
    defect_in = data.get("defect_in", [])
    if not isinstance(defect_in, list) or not all(isinstance(t, str) for t in defect_in):
        raise CorpusError(f"{where}: defect_in is a list of run tags")
    if defect_in and defect is None:
        raise CorpusError(f"{where}: defect_in without a defect")
    responses: list[ExpectedResponse] = []
    if "status" in data:
        if "response" in data or "outcome" in data:
            raise CorpusError(f"{where}: `status` is short for one error response; do not combine it")
        responses.append(ExpectedResponse(_statuses(data["status"], where), None))
    for index, table in enumerate(data.get("response", [])):
        here = f"{where} response {index + 1}"
        unknown = set(table) - _REQUEST_KEYS
        if unknown:
            raise CorpusError(f"{here}: unknown keys {sorted(unknown)}")
        if "method" in table:
            responses.append(
                ExpectedResponse(_statuses(table.get("status", 200), here), _request(table, here))
            )
        else:
            if set(table) != {"status"}:
                raise CorpusError(f"{here}: an error response has only a status (no method)")
            responses.append(ExpectedResponse(_statuses(table["status"], here), None))
    for response in responses[:-1]:
        if response.request is None:
            raise CorpusError(f"{where}: an error response ends the connection, so it must be the last")
    outcome = data.get("outcome")
    after: After
    if outcome is not None:
        if outcome != "close" or "after" in data:
            raise CorpusError(f"{where}: outcome can only be 'close', and excludes `after`")
        if responses and responses[-1].request is None:
            raise CorpusError(f"{where}: nothing can follow an error response")
        after = "timeout"
    elif not responses:
        raise CorpusError(f"{where}: say `status`, `[[response]]` or `outcome`")
    elif responses[-1].request is None:
        if data.get("after", "close") != "close":
            raise CorpusError(f"{where}: the connection closes after an error response")
        after = "close"
    else:
        value = data.get("after", "keep-alive")
        if value not in ("keep-alive", "close"):
            raise CorpusError(f"{where}: after must be 'keep-alive' or 'close'")
        after = value
    eof = data.get("eof", False)
    if not isinstance(eof, bool):
        raise CorpusError(f"{where}: eof is true or false")
    if eof and after == "keep-alive":
        raise CorpusError(f"{where}: after the client's EOF nothing more can be sent on the connection")
    return Expectation(tuple(responses), after, eof), description.strip(), defect, frozenset(defect_in)


def load_cases(root: Path = CORPUS_DIR) -> list[CorpusCase]:
    """Every case under ``root``, sorted by id; raises CorpusError on a malformed corpus."""
    cases: list[CorpusCase] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        raws = {p.stem for p in folder.glob("*.http")}
        specs = {p.stem for p in folder.glob("*.toml")}
        if raws != specs:
            raise CorpusError(f"{folder}: files without a partner: {sorted(raws ^ specs)}")
        for name in sorted(raws):
            where = f"{folder.name}/{name}.toml"
            with open(folder / f"{name}.toml", "rb") as fh:
                try:
                    data = tomllib.load(fh)
                except tomllib.TOMLDecodeError as exc:
                    raise CorpusError(f"{where}: {exc}") from None
            expect, description, defect, defect_in = parse_expectation(data, where)
            raw = (folder / f"{name}.http").read_bytes()
            if not raw:
                raise CorpusError(f"{folder.name}/{name}.http is empty")
            cases.append(
                CorpusCase(
                    id=f"{folder.name}/{name}",
                    category=folder.name,
                    raw=raw,
                    expect=expect,
                    description=description,
                    defect=defect,
                    defect_in=defect_in,
                )
            )
    return cases
