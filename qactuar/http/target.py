"""Request-target forms (RFC 9112 section 3.2) turned into ASGI path fields.

- origin-form ``/path?query`` is the normal case;
- absolute-form ``http://host/path?query`` MUST be accepted by a server (3.2.2);
  the authority it carries is returned so the caller can check it against Host;
- asterisk-form ``*`` is only valid for OPTIONS (3.2.4);
- authority-form is only for CONNECT, which this server does not implement.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from qactuar.http.errors import RequestError


@dataclass(frozen=True, slots=True)
class Target:
    path: str
    raw_path: bytes
    query_string: bytes
    authority: bytes | None  # only for absolute-form


def _split_query(raw: bytes) -> tuple[bytes, bytes]:
    raw_path, _, query = raw.partition(b"?")
    return raw_path, query


def decode_path(raw_path: bytes) -> str:
    """Percent-decode a raw path as ASGI asks: UTF-8, undecodable bytes replaced (as uvicorn does)."""
    if b"%" not in raw_path:
        return raw_path.decode("ascii")
    return unquote(raw_path.decode("ascii"))


def parse_target(method: bytes, target: bytes) -> Target:
    if method == b"CONNECT":
        raise RequestError(501, "CONNECT is not implemented")
    if target[:1] == b"/":
        raw_path, query = _split_query(target)
        # A fragment is never sent by a client (RFC 9110 4.2.5); '#' in a target is malformed.
        if b"#" in target:
            raise RequestError(400, "fragment in request-target")
        return Target(decode_path(raw_path), raw_path, query, None)
    if target == b"*":
        if method != b"OPTIONS":
            raise RequestError(400, "asterisk-form is only allowed with OPTIONS")
        return Target("*", b"*", b"", None)
    lowered = target[:8].lower()
    if lowered.startswith(b"http://") or lowered.startswith(b"https://"):
        rest = target[target.index(b"//") + 2 :]
        slash = len(rest)
        for sep in (b"/", b"?"):
            pos = rest.find(sep)
            if pos != -1 and pos < slash:
                slash = pos
        authority = rest[:slash]
        if not authority or b"@" in authority or b"#" in rest:
            raise RequestError(400, "invalid absolute-form request-target")
        remainder = rest[slash:]
        if remainder[:1] == b"?":
            remainder = b"/" + remainder
        raw_path, query = _split_query(remainder or b"/")
        return Target(decode_path(raw_path), raw_path, query, authority)
    raise RequestError(400, "invalid request-target")
