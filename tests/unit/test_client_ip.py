"""Client IP resolution behind proxies (X-Forwarded-For, RFC 7239 Forwarded) and bucketing.

Threat model: anyone can send forwarding headers. They count only when the socket peer is a
trusted proxy, and then only the part the trusted proxies appended (read from the right); what
the client wrote itself (to the left of its own address) must never change the answer.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcr_middleware.core.client_ip import (
    IPAddress,
    IPNetwork,
    bucket,
    parse_ip,
    parse_networks,
    resolve,
)

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PROXIES = parse_networks(["10.0.0.0/8", "192.168.0.0/16", "2001:db8:ffff::/48", "::1"])
NOBODY = parse_networks([])
CLIENT = "198.51.100.7"
PROXY = "10.0.0.1"


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


# --- parse_ip -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("198.51.100.7", "198.51.100.7", id="ipv4"),
        pytest.param(" 198.51.100.7 ", "198.51.100.7", id="ipv4-spaces"),
        pytest.param("198.51.100.7:8080", "198.51.100.7", id="ipv4-port"),
        pytest.param('"198.51.100.7:8080"', "198.51.100.7", id="ipv4-quoted-port"),
        pytest.param("2001:db8::1", "2001:db8::1", id="ipv6"),
        pytest.param("::1", "::1", id="ipv6-loopback"),
        pytest.param("[::1]", "::1", id="ipv6-brackets"),
        pytest.param("[::1]:443", "::1", id="ipv6-brackets-port"),
        pytest.param('"[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17", id="ipv6-quoted-port"),
        pytest.param("::ffff:192.0.2.1", "192.0.2.1", id="ipv4-mapped"),
        pytest.param("[::ffff:192.0.2.1]:80", "192.0.2.1", id="ipv4-mapped-brackets-port"),
    ],
)
def test_parse_ip_accepts(text: str, expected: str) -> None:
    assert parse_ip(text) == ip(expected)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("unknown", id="unknown"),
        pytest.param("*", id="star"),
        pytest.param("_hidden", id="obfuscated"),
        pytest.param('"_gazonk"', id="obfuscated-quoted"),
        pytest.param("[::1", id="unclosed-bracket"),
        pytest.param("256.1.1.1", id="octet-out-of-range"),
        pytest.param("1.2.3.4.5", id="five-octets"),
        pytest.param("1.2.3.4:80:90", id="two-ports"),
        pytest.param("example.com", id="host-name"),
        pytest.param("198.51.100.7 203.0.113.9", id="two-addresses-no-comma"),
    ],
)
def test_parse_ip_rejects(text: str) -> None:
    assert parse_ip(text) is None


# --- resolve: X-Forwarded-For ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "values", "trusted", "expected"),
    [
        pytest.param(CLIENT, [], NOBODY, CLIENT, id="no-header"),
        pytest.param(CLIENT, ["203.0.113.9"], NOBODY, CLIENT, id="no-trusted-proxies"),
        pytest.param("203.0.113.5", ["1.2.3.4"], PROXIES, "203.0.113.5", id="spoof-untrusted-peer"),
        pytest.param(
            "203.0.113.5", ["1.2.3.4, 10.0.0.2"], PROXIES, "203.0.113.5", id="spoof-trusted-hops"
        ),
        pytest.param(PROXY, [], PROXIES, PROXY, id="trusted-peer-no-header"),
        pytest.param(PROXY, [CLIENT], PROXIES, CLIENT, id="one-proxy"),
        pytest.param(PROXY, [f"6.6.6.6, {CLIENT}"], PROXIES, CLIENT, id="one-proxy-spoofed-left"),
        pytest.param(
            PROXY,
            [f"6.6.6.6, {CLIENT}, 192.168.1.1, 10.1.2.3"],
            PROXIES,
            CLIENT,
            id="several-proxies-cidrs",
        ),
        pytest.param(
            PROXY, ["6.6.6.6", f"{CLIENT}, 10.1.1.1"], PROXIES, CLIENT, id="repeated-header"
        ),
        pytest.param(PROXY, ["10.9.9.9, 192.168.1.1"], PROXIES, "10.9.9.9", id="all-hops-trusted"),
        pytest.param(PROXY, [f" {CLIENT} "], PROXIES, CLIENT, id="spaces"),
        pytest.param(PROXY, [f"{CLIENT}:51234"], PROXIES, CLIENT, id="ipv4-with-port"),
        pytest.param(PROXY, ["::ffff:198.51.100.7"], PROXIES, CLIENT, id="ipv4-mapped-hop-is-ipv4"),
        pytest.param(
            "::ffff:10.0.0.1", [CLIENT], PROXIES, CLIENT, id="ipv4-mapped-peer-is-trusted"
        ),
        pytest.param("2001:db8:ffff::1", ["2001:db8:1::7"], PROXIES, "2001:db8:1::7", id="ipv6"),
        pytest.param(
            "2001:db8:ffff::1",
            ["[2001:db8:1::7]:443, 2001:db8:ffff::2"],
            PROXIES,
            "2001:db8:1::7",
            id="ipv6-brackets-port-and-trusted-hop",
        ),
        pytest.param("::1", [f"{CLIENT}:8443"], PROXIES, CLIENT, id="ipv6-loopback-proxy"),
        pytest.param(
            "[::1]:443", ["2001:db8:1::7"], PROXIES, "2001:db8:1::7", id="peer-brackets-port"
        ),
        pytest.param("2001:db8:1::9", [CLIENT], PROXIES, "2001:db8:1::9", id="ipv6-peer-untrusted"),
        # An IPv4 proxy list never trusts an IPv6 peer (and vice versa).
        pytest.param(
            "::a00:1", [CLIENT], parse_networks(["10.0.0.0/8"]), "::a00:1", id="no-cross-version"
        ),
    ],
)
def test_resolve_x_forwarded_for(
    peer: str, values: list[str], trusted: tuple[IPNetwork, ...], expected: str
) -> None:
    assert resolve(peer, values, trusted=trusted) == ip(expected)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("unknown", id="unknown"),
        pytest.param("*", id="star"),
        pytest.param("_hidden", id="obfuscated"),
        pytest.param("", id="empty-value"),
        pytest.param(" , ", id="empty-items"),
        pytest.param(f"{CLIENT},,10.1.1.1", id="empty-item-between-proxies"),
        pytest.param(f"{CLIENT}, unknown", id="proxy-wrote-unknown"),
        pytest.param(f"{CLIENT}, *", id="proxy-wrote-star"),
        pytest.param(f"{CLIENT} 10.1.1.1", id="missing-comma"),
        pytest.param("999.1.1.1", id="out-of-range"),
        pytest.param("for=198.51.100.7", id="forwarded-syntax-in-xff"),
    ],
)
def test_resolve_unusable_header_falls_back_to_the_peer(value: str) -> None:
    assert resolve(PROXY, [value], trusted=PROXIES) == ip(PROXY)


@pytest.mark.parametrize(
    "client_wrote",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("unknown", id="unknown"),
        pytest.param("*", id="star"),
        pytest.param("_hidden", id="obfuscated"),
        pytest.param("", id="empty"),
        pytest.param("10.0.0.2", id="a-trusted-address"),
        pytest.param("203.0.113.9", id="another-address"),
    ],
)
def test_resolve_client_written_prefix_does_not_move_the_client(client_wrote: str) -> None:
    # The trusted proxy appends the address it saw; what is left of it is the client's own text.
    header = f"{client_wrote}, {CLIENT}, 10.1.1.1"
    assert resolve(PROXY, [header], trusted=PROXIES) == ip(CLIENT)


@pytest.mark.parametrize(
    "peer",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("unix:/run/app.sock", id="unix-socket-name"),
    ],
)
def test_resolve_unknown_peer_is_none(peer: str | None) -> None:
    assert resolve(peer, [CLIENT], trusted=PROXIES) is None


# --- resolve: RFC 7239 Forwarded ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60", id="rfc-example"),
        pytest.param(['for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17", id="quoted-ipv6"),
        pytest.param(['for="192.0.2.60:8080"'], "192.0.2.60", id="quoted-ipv4-port"),
        pytest.param(["For=192.0.2.60"], "192.0.2.60", id="case-insensitive"),
        pytest.param(["FOR=192.0.2.60;PROTO=https"], "192.0.2.60", id="upper-case"),
        pytest.param(["proto=https;for=192.0.2.60"], "192.0.2.60", id="for-not-first"),
        pytest.param(["by=10.0.0.1; for=192.0.2.60"], "192.0.2.60", id="space-after-semicolon"),
        pytest.param(
            ["for=192.0.2.43, for=198.51.100.17;by=10.0.0.1, for=10.1.1.1"],
            "198.51.100.17",
            id="several-elements",
        ),
        pytest.param(
            ["for=192.0.2.43", "for=198.51.100.17"], "198.51.100.17", id="repeated-header"
        ),
        pytest.param(["for=10.2.2.2, for=10.1.1.1"], "10.2.2.2", id="all-hops-trusted"),
        pytest.param(["for=::ffff:192.0.2.60"], "192.0.2.60", id="ipv4-mapped"),
        pytest.param(["for=unknown, for=192.0.2.60"], "192.0.2.60", id="client-side-unknown-left"),
        pytest.param(["proto=http, for=192.0.2.60"], "192.0.2.60", id="client-element-left"),
    ],
)
def test_resolve_forwarded(values: list[str], expected: str) -> None:
    assert resolve(PROXY, values, trusted=PROXIES, header="forwarded") == ip(expected)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["proto=https;by=203.0.113.43"], id="element-without-for"),
        pytest.param(["for=192.0.2.60, proto=https"], id="last-element-without-for"),
        pytest.param(["for=unknown"], id="unknown"),
        pytest.param(["for=_hidden"], id="obfuscated"),
        pytest.param(['for="_gazonk"'], id="obfuscated-quoted"),
        pytest.param(["for=*"], id="star"),
        pytest.param(["for="], id="empty-for"),
        pytest.param(["xfor=192.0.2.60"], id="not-the-for-parameter"),
        pytest.param(["192.0.2.60"], id="x-forwarded-for-syntax"),
        pytest.param(['for="[2001:db8:cafe::17"'], id="unclosed-bracket"),
    ],
)
def test_resolve_forwarded_unusable_falls_back_to_the_peer(values: list[str]) -> None:
    assert resolve(PROXY, values, trusted=PROXIES, header="forwarded") == ip(PROXY)


def test_resolve_forwarded_from_untrusted_peer_is_ignored() -> None:
    peer = "203.0.113.5"
    assert resolve(peer, ["for=192.0.2.60"], trusted=PROXIES, header="forwarded") == ip(peer)


# --- property: only the proxies' part of the chain counts -----------------------------------------

untrusted_ips = st.one_of(
    st.ip_addresses(v=4, network="198.51.100.0/24"),
    st.ip_addresses(v=6, network="2001:db8:1::/48"),
)
trusted_ips = st.one_of(
    st.ip_addresses(v=4, network="10.0.0.0/8"),
    st.ip_addresses(v=4, network="192.168.0.0/16"),
    st.ip_addresses(v=6, network="2001:db8:ffff::/48"),
)
client_text = st.text(alphabet=st.characters(codec="ascii", exclude_characters=","), max_size=20)


@PROPERTY
@given(
    st.lists(client_text, max_size=3),
    untrusted_ips,
    st.lists(trusted_ips, max_size=4),
    trusted_ips,
)
def test_resolve_is_the_rightmost_untrusted_hop_whatever_the_client_wrote(
    client_wrote: list[str], client: IPAddress, hops: list[IPAddress], peer: IPAddress
) -> None:
    header = ", ".join([*client_wrote, str(client), *map(str, hops)])
    assert resolve(str(peer), [header], trusted=PROXIES) == client


@PROPERTY
@given(st.lists(st.text(max_size=30), max_size=3), untrusted_ips)
def test_resolve_untrusted_peer_is_never_overridden(values: list[str], peer: IPAddress) -> None:
    for header in ("x-forwarded-for", "forwarded"):
        assert resolve(str(peer), values, trusted=PROXIES, header=header) == peer


# --- bucket ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param(ip("198.51.100.7"), "ip:198.51.100.7", id="ipv4"),
        pytest.param(ip("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64", id="ipv6-slash-64"),
        pytest.param(ip("::1"), "ip:::/64", id="ipv6-loopback"),
        pytest.param(parse_ip("::ffff:192.0.2.1"), "ip:192.0.2.1", id="ipv4-mapped"),
        pytest.param(None, "ip:unknown", id="unknown"),
    ],
)
def test_bucket_names(address: IPAddress | None, expected: str) -> None:
    assert bucket(address) == expected


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        pytest.param("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", True, id="same-64"),
        pytest.param("2001:db8:1:2::1", "2001:db8:1:3::1", False, id="next-64"),
        pytest.param("2001:db8:1:2::1", "2001:db8:2:2::1", False, id="other-48"),
        pytest.param("198.51.100.7", "198.51.100.8", False, id="ipv4-neighbours"),
    ],
)
def test_bucket_ipv6_slash_64_sharing(first: str, second: str, same: bool) -> None:
    assert (bucket(ip(first)) == bucket(ip(second))) is same


def test_bucket_unix_socket_peer_is_unknown() -> None:
    assert bucket(resolve(None, [CLIENT], trusted=PROXIES)) == "ip:unknown"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(["10.0.0.0/8"], (ipaddress.ip_network("10.0.0.0/8"),), id="cidr"),
        pytest.param([" ::1 "], (ipaddress.ip_network("::1/128"),), id="single-address"),
        pytest.param(["10.1.2.3/8"], (ipaddress.ip_network("10.0.0.0/8"),), id="host-bits-set"),
    ],
)
def test_parse_networks(entries: list[str], expected: tuple[IPNetwork, ...]) -> None:
    assert parse_networks(entries) == expected


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param("10.0.0.0/33", id="prefix-too-long"),
        pytest.param("proxy.internal", id="host-name"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_networks_rejects(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_networks([entry])
