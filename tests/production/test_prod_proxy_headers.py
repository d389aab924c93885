"""Proxy headers: Forwarded (RFC 7239) and X-Forwarded-* believed from trusted peers only."""

from __future__ import annotations

import pytest
from production_support import get_json

from qactuar.http.proxy_headers import TrustedPeers, apply_forwarded, parse_forwarded

LOOPBACK = TrustedPeers(["127.0.0.1", "::1"])
PEER = ("127.0.0.1", 5000)


def forwarded(*headers: tuple[bytes, bytes], trusted: TrustedPeers = LOOPBACK) -> tuple[object, str, object]:
    client, scheme, new_headers = apply_forwarded([(b"host", b"internal"), *headers], PEER, "http", trusted)
    host = dict(new_headers)[b"host"]
    return client, scheme, host


# -- sans-I/O -----------------------------------------------------------------------------------------


def test_no_proxy_headers_leave_everything_as_it_was() -> None:
    headers = [(b"host", b"a")]
    assert apply_forwarded(headers, PEER, "http", LOOPBACK) == (PEER, "http", headers)


def test_x_forwarded_for_proto_and_host() -> None:
    assert forwarded(
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"example.com:8443"),
    ) == (("203.0.113.7", 0), "https", b"example.com:8443")


def test_x_forwarded_for_walks_right_to_left_past_trusted_proxies() -> None:
    trusted = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    # The client forged the first entry; 10.1.2.3 is our own proxy tier; 198.51.100.4 is the client.
    client, _, _ = forwarded((b"x-forwarded-for", b"1.1.1.1, 198.51.100.4, 10.1.2.3"), trusted=trusted)
    assert client == ("198.51.100.4", 0)
    # Every hop trusted: the leftmost is the client.
    client, _, _ = forwarded((b"x-forwarded-for", b"10.0.0.9, 10.1.2.3"), trusted=trusted)
    assert client == ("10.0.0.9", 0)


def test_x_forwarded_proto_follows_the_chosen_hop_when_lists_line_up() -> None:
    trusted = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    _, scheme, _ = forwarded(
        (b"x-forwarded-for", b"198.51.100.4, 10.1.2.3"),
        (b"x-forwarded-proto", b"https, http"),
        trusted=trusted,
    )
    assert scheme == "https"


def test_junk_values_are_not_believed() -> None:
    assert forwarded(
        (b"x-forwarded-for", b"not-an-ip"),
        (b"x-forwarded-proto", b"gopher"),
        (b"x-forwarded-host", b"evil.com/path?x"),
    ) == (PEER, "http", b"internal")


def test_forwarded_rfc7239() -> None:
    assert forwarded((b"forwarded", b'for="[2001:db8:cafe::17]:4711";proto=https;host=example.org')) == (
        ("2001:db8:cafe::17", 4711),
        "https",
        b"example.org",
    )
    # Case-insensitive names, several elements (and header lines), the nearest untrusted one wins.
    assert forwarded(
        (b"forwarded", b"for=192.0.2.43, For=198.51.100.17;Proto=HTTPS"),
        (b"forwarded", b"for=127.0.0.1"),
    ) == (("198.51.100.17", 0), "https", b"internal")


def test_forwarded_wins_over_x_forwarded() -> None:
    client, _, _ = forwarded((b"x-forwarded-for", b"192.0.2.1"), (b"forwarded", b"for=192.0.2.2"))
    assert client == ("192.0.2.2", 0)


def test_forwarded_unknown_and_obfuscated_hide_the_client() -> None:
    assert forwarded((b"forwarded", b"for=unknown;proto=https"))[:2] == (None, "https")
    assert forwarded((b"forwarded", b"for=_hidden"))[0] is None


def test_parse_forwarded_quoting_and_malformed_headers() -> None:
    assert parse_forwarded(b'for="_a,b;c=d";by=x, for=1.2.3.4') == [
        {"for": "_a,b;c=d", "by": "x"},
        {"for": "1.2.3.4"},
    ]
    assert parse_forwarded(b'for="\\"q\\""') == [{"for": '"q"'}]
    for bad in (b"for", b"for=", b'for="open', b"for=a;for=b", b"for=a b", b"=x"):
        assert parse_forwarded(bad) == [], bad


def test_trusted_peers() -> None:
    trusted = TrustedPeers(["10.0.0.0/8", "::1", "unix"])
    assert "10.200.3.4" in trusted
    assert "::ffff:10.1.1.1" in trusted  # IPv4-mapped, as seen on a dual-stack socket
    assert "::1" in trusted
    assert "127.0.0.1" not in trusted
    assert "garbage" not in trusted
    assert trusted.trusts_unix()
    assert not LOOPBACK.trusts_unix()
    assert "8.8.8.8" in TrustedPeers(["*"])


# -- end to end ---------------------------------------------------------------------------------------

SPOOF = b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed.example\r\n"


@pytest.mark.parametrize("mode", ["async", "prefork"])
def test_x_forwarded_for_honoured_from_a_trusted_peer(start_server, mode: str) -> None:
    server = start_server({"/": "production:who"}, mode=mode)  # default: loopback is trusted
    seen = get_json(server.host, server.port, "/", headers=SPOOF)
    assert seen["client"] == ["6.6.6.6", 0]
    assert seen["scheme"] == "https"
    assert seen["host"] == "spoofed.example"
    seen = get_json(
        server.host,
        server.port,
        "/",
        headers=b'Forwarded: for="[2001:db8::5]:4711";proto=https;host=rfc7239.example\r\n',
    )
    assert seen["client"] == ["2001:db8::5", 4711]
    assert seen["scheme"] == "https"
    assert seen["host"] == "rfc7239.example"


def test_spoofed_x_forwarded_for_ignored_from_an_untrusted_peer(start_server) -> None:
    server = start_server({"/": "production:who"}, settings={"forwarded_allow_ips": ["10.0.0.0/8"]})
    seen = get_json(server.host, server.port, "/", headers=SPOOF + b"Forwarded: for=7.7.7.7;proto=https\r\n")
    assert seen["client"][0] == "127.0.0.1"
    assert seen["scheme"] == "http"
    assert seen["host"] == "test"
