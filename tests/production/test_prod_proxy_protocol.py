"""The PROXY protocol, v1 and v2: parsed without I/O, then over raw sockets against a real server."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from production_support import exchange, get_json

from qactuar.http.proxy_protocol import V2_SIGNATURE, ProxyHeaderError, ProxyInfo, parse_proxy_header

V1 = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"


def v2(command: int = 1, family: int = 0x11, addresses: bytes | None = None, tlvs: bytes = b"") -> bytes:
    if addresses is None:
        addresses = (
            ipaddress.ip_address("203.0.113.5").packed
            + ipaddress.ip_address("198.51.100.1").packed
            + struct.pack("!HH", 40000, 8443)
        )
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


# -- sans-I/O -----------------------------------------------------------------------------------------


def test_v1_tcp4_tcp6_and_unknown() -> None:
    info, used = parse_proxy_header(V1 + b"GET / HTTP/1.1\r\n", "v1")
    assert info == ProxyInfo(("192.0.2.10", 56324), ("198.51.100.1", 443))
    assert used == len(V1)
    info, _ = parse_proxy_header(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", "auto")
    assert info.source == ("2001:db8::1", 1)
    assert parse_proxy_header(b"PROXY UNKNOWN\r\n", "v1") == (ProxyInfo(None, None), 15)


def test_v2_ipv4_ipv6_local_and_tlvs() -> None:
    header = v2(tlvs=b"\x04\x00\x03abc")  # a TLV is skipped
    info, used = parse_proxy_header(header + b"GET", "v2")
    assert info == ProxyInfo(("203.0.113.5", 40000), ("198.51.100.1", 8443))
    assert used == len(header)
    six = ipaddress.ip_address("2001:db8::7").packed + ipaddress.ip_address("2001:db8::8").packed
    info, _ = parse_proxy_header(v2(family=0x21, addresses=six + struct.pack("!HH", 5, 6)), "auto")
    assert info.source == ("2001:db8::7", 5)
    assert parse_proxy_header(v2(command=0, addresses=b""), "v2")[0] == ProxyInfo(None, None)


def test_incomplete_headers_ask_for_more() -> None:
    for data in (b"", b"PRO", b"PROXY TCP4 192.0.2.10", V2_SIGNATURE[:5], v2()[:20]):
        assert parse_proxy_header(data, "auto") is None, data


@pytest.mark.parametrize(
    ("data", "versions"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "auto"),
        (V1, "v2"),
        (v2(), "v1"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 99999\r\n", "v1"),
        (b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", "v1"),
        (b"PROXY TCP4 192.0.2.010 198.51.100.1 1 2\r\n", "v1"),
        (b"PROXY TCP4  192.0.2.10 198.51.100.1 1 2\r\n", "v1"),
        (b"PROXY UDP4 192.0.2.10 198.51.100.1 1 2\r\n", "v1"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n", "v1"),
        (b"PROXY " + b"x" * 120, "v1"),
        (V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12), "v2"),  # version 3
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "v2"),  # command 2
        (V2_SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12), "v2"),  # datagram
        (V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4), "v2"),  # too short for IPv4
    ],
)
def test_malformed_headers_are_errors(data: bytes, versions: str) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(data, versions)


# -- end to end over raw sockets ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["async", "prefork", "postfork"])
def test_proxy_protocol_from_a_trusted_peer(start_server, mode: str) -> None:
    server = start_server({"/": "production:who"}, mode=mode, settings={"proxy_protocol": "auto"})
    seen = get_json(server.host, server.port, "/", prefix=V1)
    assert seen["client"] == ["192.0.2.10", 56324]
    assert seen["server"] == ["198.51.100.1", 443]
    seen = get_json(server.host, server.port, "/", prefix=v2())
    assert seen["client"] == ["203.0.113.5", 40000]
    # LOCAL (the balancer's own health check): the connection's peer stands.
    seen = get_json(server.host, server.port, "/", prefix=v2(command=0, addresses=b""))
    assert seen["client"][0] == "127.0.0.1"
    # The header may arrive in pieces.
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        for piece in (V1[:9], V1[9:30], V1[30:] + b"GET / HTTP/1.1\r\nHost: t\r\n", b"\r\n"):
            sock.sendall(piece)
        assert b'"client": ["192.0.2.10", 56324]' in sock.recv(65536)
    # Proxy headers are then judged by the real client: 192.0.2.10 is not trusted.
    seen = get_json(server.host, server.port, "/", prefix=V1, headers=b"X-Forwarded-For: 6.6.6.6\r\n")
    assert seen["client"] == ["192.0.2.10", 56324]


@pytest.mark.parametrize(
    "garbage",
    [
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 70000\r\nGET / HTTP/1.1\r\n\r\n",
        V2_SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12) + b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",  # no header at all: the receiver must not guess
    ],
    ids=["bad-v1", "bad-v2", "missing"],
)
def test_malformed_or_missing_proxy_header_closes_the_connection(start_server, garbage: bytes) -> None:
    server = start_server({"/": "production:who"}, settings={"proxy_protocol": "auto"})
    assert exchange(server.host, server.port, garbage) == b""
    assert "Closing the connection from 127.0.0.1" in server.output()
    assert get_json(server.host, server.port, "/", prefix=V1)["client"][0] == "192.0.2.10"  # still serving


def test_proxy_header_not_accepted_from_an_untrusted_peer(start_server) -> None:
    server = start_server(
        {"/": "production:who"}, settings={"proxy_protocol": "v1", "forwarded_allow_ips": ["10.0.0.0/8"]}
    )
    assert exchange(server.host, server.port, V1 + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )
    assert get_json(server.host, server.port, "/")["client"][0] == "127.0.0.1"
