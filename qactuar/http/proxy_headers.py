"""Proxy headers: who the client is, what scheme and host it used, as told by trusted proxies.

Behind nginx, HAProxy or a cloud load balancer the connection's peer is the proxy.  Proxies say
who their client was in ``Forwarded`` (RFC 7239) or in the older ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``X-Forwarded-Host``.  Anyone can send those headers, so they are read
only when the peer is in FORWARDED_ALLOW_IPS (``TrustedPeers``); from any other peer they are
ignored and reach the app untouched.

Sans-I/O: ``apply_forwarded(headers, client, scheme, trusted)`` returns the scope's client,
scheme and headers as the proxies describe them.  Choices:

* Several proxies in a row each append one entry.  The entries are walked from the right (the
  proxy nearest to us) while they name trusted proxies; the first one that does not is the
  client.  When every entry is trusted, the leftmost is the client.  A client can therefore
  prepend whatever it likes without effect: only entries added by trusted hops are believed.
* ``Forwarded`` wins when present (it is the standard, and one element carries ``for``,
  ``proto`` and ``host`` of the same hop); the X-Forwarded-* headers are then not read.
* X-Forwarded-Proto and X-Forwarded-Host take the entry at the client's position when their
  list is as long as X-Forwarded-For's, else their last entry (set by the nearest proxy).
* ``for=unknown`` and obfuscated identifiers (``for=_hidden``, RFC 7239 6.3) are where the walk
  stops and the ASGI client becomes None: the proxy says the address is not to be known.  An
  entry that is not an address at all leaves the peer as the client.
* Only ``http`` and ``https`` are taken as schemes; a host replaces the ``host`` header only when
  it is a syntactically valid host[:port].
* A Unix-socket peer is trusted when the list holds ``unix``: the socket's file mode decides who
  can connect, as loopback does for TCP.  ``*`` trusts every peer.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from typing import Literal

Headers = list[tuple[bytes, bytes]]
Client = tuple[str, int] | None

_HOST = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_SCHEMES = {"http": "http", "https": "https"}


class TrustedPeers:
    """FORWARDED_ALLOW_IPS: addresses and networks (CIDR), ``unix`` for Unix sockets, ``*`` for all."""

    __slots__ = ("_any", "_networks", "_unix")

    def __init__(self, entries: Iterable[str]) -> None:
        entries = [entry.strip() for entry in entries]
        self._any = "*" in entries
        self._unix = "unix" in entries
        self._networks = [
            ipaddress.ip_network(entry, strict=False) for entry in entries if entry not in ("*", "unix")
        ]

    def trusts_unix(self) -> bool:
        return self._any or self._unix

    def __contains__(self, host: str) -> bool:
        if self._any:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


def valid_network_entry(entry: str) -> bool:
    """True for what TrustedPeers accepts: ``*``, ``unix``, an IP address or a network."""
    if entry.strip() in ("*", "unix"):
        return True
    try:
        ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return False
    return True


def apply_forwarded(
    headers: Headers, client: Client, scheme: str, trusted: TrustedPeers
) -> tuple[Client, str, Headers]:
    """(client, scheme, headers) as trusted proxies describe the request; the inputs when they are silent."""
    forwarded: list[bytes] = []
    xff: list[bytes] = []
    proto: list[bytes] = []
    host: list[bytes] = []
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value)
        elif name[:12] == b"x-forwarded-":
            if name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"x-forwarded-proto":
                proto.append(value)
            elif name == b"x-forwarded-host":
                host.append(value)
    if forwarded:
        return _from_forwarded(b",".join(forwarded), headers, client, scheme, trusted)
    if not (xff or proto or host):
        return client, scheme, headers
    hops = _split(b",".join(xff))
    index = len(hops) - 1
    if hops:
        index, node = _walk([_parse_node(hop) for hop in hops], trusted)
        if node is not _Node.INVALID:
            client = node
    new_proto = _pick(_split(b",".join(proto)), index, len(hops))
    if new_proto is not None:
        scheme = _SCHEMES.get(new_proto.decode("latin-1").lower(), scheme)
    return client, scheme, _with_host(headers, _pick(_split(b",".join(host)), index, len(hops)))


# -- RFC 7239 ----------------------------------------------------------------------------------------


def _from_forwarded(
    value: bytes, headers: Headers, client: Client, scheme: str, trusted: TrustedPeers
) -> tuple[Client, str, Headers]:
    elements = parse_forwarded(value)
    if not elements:
        return client, scheme, headers
    nodes = [
        _parse_node(element["for"].encode("latin-1")) if "for" in element else None for element in elements
    ]
    index, node = _walk(nodes, trusted)
    element = elements[index]
    if "for" in element and node is not _Node.INVALID:
        client = node
    scheme = _SCHEMES.get(element.get("proto", "").lower(), scheme)
    new_host = element.get("host")
    return client, scheme, _with_host(headers, new_host.encode("latin-1") if new_host else None)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_forwarded(value: bytes) -> list[dict[str, str]]:
    """The elements of a Forwarded header, each a dict of lower-cased parameter name to value.

    Quoted strings (with backslash escapes) may hold ``,`` ``;`` and ``=``.  A malformed header
    yields no elements at all: half of it could not be told apart from what a client forged.
    """
    text = value.decode("latin-1")
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos] in " \t":
            pos += 1
        match = _TOKEN.match(text, pos)
        if match is None or match.end() >= end or text[match.end()] != "=":
            return []
        name = match.group().lower()
        pos = match.end() + 1
        if pos < end and text[pos] == '"':
            pos += 1
            chars: list[str] = []
            while pos < end and text[pos] != '"':
                if text[pos] == "\\" and pos + 1 < end:
                    pos += 1
                chars.append(text[pos])
                pos += 1
            if pos >= end:
                return []
            pos += 1
            param = "".join(chars)
        else:
            token = _TOKEN.match(text, pos)
            if token is None:
                return []
            param, pos = token.group(), token.end()
        if name in element:
            return []  # RFC 7239 4: a parameter must not occur more than once per element
        element[name] = param
        while pos < end and text[pos] in " \t":
            pos += 1
        if pos < end and text[pos] == ";":
            pos += 1
        elif pos < end and text[pos] == ",":
            elements.append(element)
            element = {}
            pos += 1
        elif pos < end:
            return []
    if element:
        elements.append(element)
    return elements


# -- shared ------------------------------------------------------------------------------------------


class _Node(enum.Enum):
    INVALID = "not an address"


Node = Client | Literal[_Node.INVALID]


def _parse_node(node: bytes) -> Node:
    """An address entry: ('ip', port) (port 0 when absent), None for unknown/obfuscated, or INVALID."""
    text = node.strip().strip(b'"').decode("latin-1")
    if text == "unknown" or text.startswith("_"):
        return None
    host, port = text, "0"
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            return _Node.INVALID
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                return _Node.INVALID
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _Node.INVALID
    if not (port.isdigit() and int(port) <= 65535):
        port = "0"  # an obfuscated port ("_abc") hides the port only
    return str(address), int(port)


def _walk(nodes: list[Node], trusted: TrustedPeers) -> tuple[int, Node]:
    """From the right, skip trusted proxies; the first other entry (or the leftmost) is the client."""
    index = len(nodes) - 1
    while index > 0:
        node = nodes[index]
        if node is None or node is _Node.INVALID or node[0] not in trusted:
            break
        index -= 1
    return index, nodes[index]


def _split(value: bytes) -> list[bytes]:
    return [part.strip() for part in value.split(b",") if part.strip()]


def _pick(values: list[bytes], index: int, hops: int) -> bytes | None:
    """The entry at the client's position when the lists line up, else the nearest proxy's."""
    if not values:
        return None
    return values[index] if len(values) == hops and index >= 0 else values[-1]


def _with_host(headers: Headers, host: bytes | None) -> Headers:
    if host is None or not _HOST.fullmatch(host):
        return headers
    return [(name, value) for name, value in headers if name != b"host"] + [(b"host", host)]
