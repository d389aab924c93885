"""The PROXY protocol (HAProxy's spec, versions 1 and 2): who the client is, from a TCP load balancer.

A layer-4 load balancer (HAProxy in ``mode tcp``, AWS NLB, a Kubernetes Service of type
LoadBalancer with proxy protocol on) opens its own connection to us, so the peer address is the
balancer's.  With the PROXY protocol it first sends one header naming the real source and
destination, then the client's bytes unchanged.

Sans-I/O: ``parse_proxy_header(data, versions)`` looks at the bytes received so far and answers
"need more", the parsed header and how many bytes it used, or raises ``ProxyHeaderError``.  The
caller (``HTTPProtocol``) decides who may send a header at all (FORWARDED_ALLOW_IPS) and closes
the connection on an error.

Choices, following the spec's MUSTs where it has them:

* The receiver never guesses: from a peer configured to send it, the header is required, and
  anything else is an error (spec section 2.3, "MUST not try to guess").  ``auto`` accepts either
  version, told apart by their first bytes.
* Version 1 is one line of at most 107 bytes ending in CRLF, single spaces, ``TCP4``/``TCP6``
  with addresses of that family and decimal ports, or ``UNKNOWN`` (keep the peer address).
* Version 2 is a 16-byte preamble and up to 65535 bytes of addresses and TLVs.  ``LOCAL``
  (a health check from the balancer itself) and ``UNSPEC``/``AF_UNIX`` sources keep the peer
  address; TLVs are skipped; datagram transports are refused (this is a stream server).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # the longest v1 line, CRLF included (spec 2.1)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_PREAMBLE = 16

Address = tuple[str, int]

PROXY_VERSIONS = ("v1", "v2", "auto")


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header; the connection must be closed."""


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """What the header says.  ``None`` addresses mean "keep the connection's own"."""

    source: Address | None
    destination: Address | None


_KEEP_PEER = ProxyInfo(None, None)


def parse_proxy_header(data: bytes, versions: str) -> tuple[ProxyInfo, int] | None:
    """Parse the header at the start of ``data``: (info, bytes used), or None when more bytes are needed.

    ``versions`` is ``v1``, ``v2`` or ``auto`` (either).  Raises ProxyHeaderError.
    """
    head = data[: len(V2_SIGNATURE)]
    if versions != "v1" and V2_SIGNATURE.startswith(head):
        if len(head) < len(V2_SIGNATURE):
            return None
        return _parse_v2(data)
    head = data[: len(V1_PREFIX)]
    if versions != "v2" and V1_PREFIX.startswith(head):
        if len(head) < len(V1_PREFIX):
            return None
        return _parse_v1(data)
    expected = {"v1": "version 1", "v2": "version 2"}.get(versions, "version 1 or 2")
    raise ProxyHeaderError(f"expected a PROXY protocol {expected} header")


# -- version 1: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" --------------------------------


def _parse_v1(data: bytes) -> tuple[ProxyInfo, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end == -1:
        if len(data) >= V1_MAX_LENGTH or b"\n" in data[:V1_MAX_LENGTH]:
            raise ProxyHeaderError("PROXY v1 line is not terminated by CRLF within 107 bytes")
        return None
    parts = data[:end].split(b" ")
    if len(parts) >= 2 and parts[1] == b"UNKNOWN":
        return _KEEP_PEER, end + 2
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("PROXY v1 line must be 'PROXY TCP4|TCP6 src dst sport dport' or UNKNOWN")
    version = 4 if parts[1] == b"TCP4" else 6
    source = (_v1_address(parts[2], version), _v1_port(parts[4]))
    destination = (_v1_address(parts[3], version), _v1_port(parts[5]))
    return ProxyInfo(source, destination), end + 2


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyHeaderError(f"PROXY v1 address {text!r} is not an IP address") from None
    if address.version != version:
        raise ProxyHeaderError(f"PROXY v1 address {text!r} is not IPv{version}")
    return str(address)


def _v1_port(text: bytes) -> int:
    if not (text.isdigit() and len(text) <= 5 and int(text) <= 65535):
        raise ProxyHeaderError(f"PROXY v1 port {text!r} is not a number from 0 to 65535")
    return int(text)


# -- version 2: binary --------------------------------------------------------------------------

_LOCAL, _PROXY = 0x0, 0x1
_UNSPEC, _INET, _INET6, _UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM = 0x1
_ADDRESS_BYTES = {_INET: 12, _INET6: 36, _UNIX: 216}


def _parse_v2(data: bytes) -> tuple[ProxyInfo, int] | None:
    if len(data) < V2_PREAMBLE:
        return None
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY v2 header has version {version}")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"PROXY v2 header has an unknown command {command:#x}")
    family, transport = data[13] >> 4, data[13] & 0x0F
    length = int.from_bytes(data[14:16], "big")
    total = V2_PREAMBLE + length
    if len(data) < total:
        return None
    if command == _LOCAL or family == _UNSPEC:
        return _KEEP_PEER, total
    if family not in _ADDRESS_BYTES:
        raise ProxyHeaderError(f"PROXY v2 header has an unknown address family {family:#x}")
    if transport != _STREAM:
        raise ProxyHeaderError("PROXY v2 header is for a datagram (or unknown) transport")
    if length < _ADDRESS_BYTES[family]:
        raise ProxyHeaderError("PROXY v2 header is too short for its addresses")
    if family == _UNIX:
        return _KEEP_PEER, total
    body = data[V2_PREAMBLE:total]
    size = 4 if family == _INET else 16
    src = ipaddress.ip_address(body[:size])
    dst = ipaddress.ip_address(body[size : 2 * size])
    ports = body[2 * size : 2 * size + 4]
    source = (str(src), int.from_bytes(ports[:2], "big"))
    destination = (str(dst), int.from_bytes(ports[2:], "big"))
    return ProxyInfo(source, destination), total
