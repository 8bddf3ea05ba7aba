"""The guarded fetcher's pure core: address classes, URL and host rules, answer checks, cache
lifetimes, and the flow driven by a scripted executor (no network)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcr_middleware.core import _addresses
from dcr_middleware.core.fetching import (
    FetchPolicy,
    FetchRefused,
    Reply,
    Request,
    Resolve,
    cache_lifetime,
    check_array_reply,
    check_client_id_url,
    check_fetch_url,
    check_host,
    check_reply,
    choose_address,
    fetch_json,
)
from dcr_middleware.drivers import run

JSON = {"content-type": "application/json"}
LOOPBACK = FetchPolicy(allowed_networks=("127.0.0.0/8",))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        pytest.param("8.8.8.8", "public", id="ipv4-public"),
        pytest.param("10.0.0.1", "private", id="ipv4-10"),
        pytest.param("172.16.5.4", "private", id="ipv4-172.16"),
        pytest.param("192.168.1.1", "private", id="ipv4-192.168"),
        pytest.param("100.64.0.1", "shared", id="ipv4-cgnat"),
        pytest.param("100.128.0.1", "public", id="ipv4-past-cgnat"),
        pytest.param("127.0.0.1", "loopback", id="ipv4-loopback"),
        pytest.param("127.255.255.254", "loopback", id="ipv4-loopback-range"),
        pytest.param("169.254.169.254", "link_local", id="ipv4-metadata-service"),
        pytest.param("224.0.0.1", "multicast", id="ipv4-multicast"),
        pytest.param("0.0.0.0", "unspecified", id="ipv4-unspecified"),
        pytest.param("0.1.2.3", "unspecified", id="ipv4-this-network"),
        pytest.param("255.255.255.255", "reserved", id="ipv4-broadcast"),
        pytest.param("240.0.0.1", "reserved", id="ipv4-class-e"),
        pytest.param("192.0.2.1", "reserved", id="ipv4-documentation"),
        pytest.param("198.18.0.1", "reserved", id="ipv4-benchmarking"),
        pytest.param("::", "unspecified", id="ipv6-unspecified"),
        pytest.param("::1", "loopback", id="ipv6-loopback"),
        pytest.param("2606:4700:4700::1111", "public", id="ipv6-public"),
        pytest.param("::ffff:10.0.0.1", "private", id="ipv4-mapped-private"),
        pytest.param("::ffff:127.0.0.1", "loopback", id="ipv4-mapped-loopback"),
        pytest.param("::ffff:8.8.8.8", "public", id="ipv4-mapped-public"),
        pytest.param("64:ff9b::a00:1", "private", id="nat64-private"),
        pytest.param("64:ff9b::7f00:1", "loopback", id="nat64-loopback"),
        pytest.param("64:ff9b::808:808", "public", id="nat64-public"),
        pytest.param("64:ff9b:1::1", "private", id="nat64-local-use"),
        pytest.param("2002:a00:1::1", "private", id="6to4-private"),
        pytest.param("2002:808:808::1", "public", id="6to4-public"),
        pytest.param("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private", id="teredo-private"),
        pytest.param("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved", id="teredo-docs"),
        pytest.param("::10.0.0.1", "reserved", id="ipv4-compatible"),
        pytest.param("fe80::1", "link_local", id="ipv6-link-local"),
        pytest.param("fe80::1%eth0", "link_local", id="ipv6-link-local-zone"),
        pytest.param("fc00::1", "private", id="ipv6-unique-local"),
        pytest.param("fd12:3456::1", "private", id="ipv6-unique-local-fd"),
        pytest.param("fec0::1", "private", id="ipv6-site-local"),
        pytest.param("ff02::1", "multicast", id="ipv6-multicast"),
        pytest.param("2001:db8::1", "reserved", id="ipv6-documentation"),
        pytest.param("100::1", "reserved", id="ipv6-discard"),
        pytest.param("4000::1", "reserved", id="ipv6-outside-global-unicast"),
    ],
)
def test_classify_address(address: str, kind: str) -> None:
    parsed = _addresses.parse_address(address)
    assert parsed is not None
    assert _addresses.classify(parsed) == kind
    assert _addresses.allowed(parsed, ()) is (kind == "public")


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [
        pytest.param("127.0.0.1", ("127.0.0.0/8",), True, id="loopback-allowed"),
        pytest.param("::ffff:127.0.0.1", ("127.0.0.0/8",), True, id="mapped-loopback-allowed"),
        pytest.param("::1", ("127.0.0.0/8",), False, id="ipv6-loopback-not-in-ipv4-network"),
        pytest.param("10.0.0.1", ("127.0.0.0/8",), False, id="other-private-still-refused"),
        pytest.param("fd00::5", ("fd00::/8",), True, id="ipv6-network"),
    ],
)
def test_allowed_networks_override_the_class(
    address: str, networks: tuple[str, ...], allowed: bool
) -> None:
    policy = FetchPolicy(allowed_networks=networks)
    parsed = _addresses.parse_address(address)
    assert parsed is not None
    assert _addresses.allowed(parsed, policy.networks) is allowed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://example.com/c", "scheme", id="http"),
        pytest.param("ftp://example.com/c", "scheme", id="ftp"),
        pytest.param("https:///c", "url", id="no-host"),
        pytest.param("https://user:pw@example.com/c", "url", id="userinfo"),
        pytest.param("https://example.com/c#frag", "url", id="fragment"),
        pytest.param("https://example.com/c#", "url", id="empty-fragment"),
        pytest.param("https://exa mple.com/c", "url", id="space"),
        pytest.param("https://example.com\\@evil.com/c", "url", id="backslash"),
        pytest.param("https://exämple.com/c", "url", id="non-ascii"),
        pytest.param("https://example.com:0/c", "url", id="port-zero"),
        pytest.param("https://example.com:99999/c", "url", id="port-too-big"),
        pytest.param("https://a..b/c", "url", id="empty-label"),
        pytest.param("https://-a.com/c", "url", id="label-hyphen"),
        pytest.param("https://%31%32%37.0.0.1/c", "url", id="percent-host"),
        pytest.param("/relative", "url", id="relative"),
    ],
)
def test_check_fetch_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        check_fetch_url(url)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        pytest.param("https://Example.COM/c", "example.com", 443, id="host-lower-cased"),
        pytest.param("https://example.com./c", "example.com", 443, id="trailing-dot"),
        pytest.param("https://example.com:8443/c?x=1", "example.com", 8443, id="port-query"),
        pytest.param("https://[2606:4700::1]/c", "2606:4700::1", 443, id="ipv6-literal"),
        pytest.param("https://93.184.216.34", "93.184.216.34", 443, id="no-path"),
        pytest.param("HTTPS://example.com/c", "example.com", 443, id="scheme-case"),
    ],
)
def test_check_fetch_url_accepts(url: str, host: str, port: int) -> None:
    target = check_fetch_url(url)
    assert (target.url, target.host, target.port) == (url, host, port)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://example.com", id="no-path"),
        pytest.param("https://example.com/a/./b", id="dot"),
        pytest.param("https://example.com/a/../b", id="dot-dot"),
        pytest.param("https://example.com/..", id="trailing-dot-dot"),
        pytest.param("https://example.com/a/%2e%2E/b", id="encoded-dot-dot"),
        pytest.param("https://example.com/a/.%2e", id="half-encoded-dot-dot"),
        pytest.param("https://example.com/c#x", id="fragment"),
    ],
)
def test_check_client_id_url_refuses(url: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        check_client_id_url(url)
    assert refused.value.reason == "url"


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "https://example.com/client.json", "https://e.com/a/.well/..x"],
)
def test_check_client_id_url_accepts(url: str) -> None:
    assert check_client_id_url(url).url == url


@given(st.text(max_size=80))
def test_url_checks_raise_only_refusals(text: str) -> None:
    for check in (check_fetch_url, check_client_id_url):
        with contextlib.suppress(FetchRefused):
            check(text)
        with contextlib.suppress(FetchRefused):
            check("https://" + text)


@pytest.mark.parametrize(
    ("host", "allowed", "denied", "ok"),
    [
        pytest.param("a.example.com", (), (), True, id="no-lists"),
        pytest.param("a.example.com", ("*.example.com",), (), True, id="allowed-wildcard"),
        pytest.param("example.com", ("*.example.com",), (), False, id="wildcard-not-apex"),
        pytest.param("evilexample.com", ("*.example.com",), (), False, id="wildcard-is-a-label"),
        pytest.param("example.com", ("Example.COM.",), (), True, id="pattern-normalised"),
        pytest.param("a.example.com", (), ("*.example.com",), False, id="denied"),
        pytest.param(
            "a.example.com", ("a.example.com",), ("*.example.com",), False, id="deny-wins"
        ),
    ],
)
def test_check_host(host: str, allowed: tuple[str, ...], denied: tuple[str, ...], ok: bool) -> None:
    policy = FetchPolicy(allowed_hosts=allowed, denied_hosts=denied)
    if ok:
        check_host(host, policy)
    else:
        with pytest.raises(FetchRefused, match="host_denied"):
            check_host(host, policy)


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        pytest.param([], "dns", id="no-address"),
        pytest.param(["not-an-address"], "dns", id="garbage"),
        pytest.param(["8.8.8.8", "10.0.0.1"], "private_address", id="one-private-among-public"),
        pytest.param(["10.0.0.1", "8.8.8.8"], "private_address", id="private-first"),
        pytest.param(["2606:4700::1", "::1"], "private_address", id="ipv6-loopback-among"),
    ],
)
def test_choose_address_refuses(addresses: list[str], reason: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        choose_address(addresses, FetchPolicy())
    assert refused.value.reason == reason


def test_choose_address_takes_the_first_once_all_are_allowed() -> None:
    assert choose_address(["8.8.4.4", "8.8.8.8"], FetchPolicy()) == "8.8.4.4"
    assert choose_address(["127.0.0.2", "8.8.8.8"], LOOPBACK) == "127.0.0.2"


def _reply(status: int = 200, body: bytes = b"{}", **headers: str) -> Reply:
    return Reply(status, {**JSON, **{k.replace("_", "-"): v for k, v in headers.items()}}, body)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(_reply(301), "redirect", id="301"),
        pytest.param(_reply(302), "redirect", id="302"),
        pytest.param(_reply(307), "redirect", id="307"),
        pytest.param(_reply(308), "redirect", id="308"),
        pytest.param(_reply(304), "redirect", id="304"),
        pytest.param(_reply(204), "status", id="204"),
        pytest.param(_reply(404), "status", id="404"),
        pytest.param(_reply(500), "status", id="500"),
        pytest.param(_reply(content_type="text/html"), "content_type", id="text-html"),
        pytest.param(_reply(content_type="text/json"), "content_type", id="text-json"),
        pytest.param(_reply(content_type="application/jsonp"), "content_type", id="jsonp"),
        pytest.param(_reply(content_type="application/+json"), "content_type", id="bare-suffix"),
        pytest.param(_reply(content_type=""), "content_type", id="empty-type"),
        pytest.param(Reply(200, {}, b"{}"), "content_type", id="no-type"),
        pytest.param(_reply(content_encoding="gzip"), "content_encoding", id="gzip"),
        pytest.param(_reply(content_length="5121"), "too_large", id="declared-too-large"),
        pytest.param(_reply(body=b" " * 5119 + b"{}"), "too_large", id="read-too-large"),
        pytest.param(_reply(body=b"{'a': 1}"), "not_json", id="not-json"),
        pytest.param(_reply(body=b"[]"), "not_json", id="array"),
        pytest.param(_reply(body=b'"text"'), "not_json", id="string"),
        pytest.param(_reply(body=b'{"a": 1, "a": 2}'), "not_json", id="repeated-member"),
        pytest.param(_reply(body=b'{"a": NaN}'), "not_json", id="nan"),
        pytest.param(_reply(body=b"\xff{}"), "not_json", id="not-utf8"),
        pytest.param(_reply(body=b'{"a":' * 40 + b"1" + b"}" * 40), "not_json", id="too-deep"),
    ],
)
def test_check_reply_refuses(reply: Reply, reason: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        check_reply(reply, 5120)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/cimd+json",
        "application/client-metadata+json;charset=UTF-8",
    ],
)
def test_check_reply_accepts_json_media_types(content_type: str) -> None:
    body = json.dumps({"client_id": "https://example.com/c"}).encode()
    reply = _reply(body=body, content_type=content_type, content_length=str(len(body)))
    assert check_reply(reply, len(body)) == {"client_id": "https://example.com/c"}


@given(st.binary(max_size=200), st.integers(100, 599), st.text(max_size=40))
def test_check_reply_raises_only_refusals(body: bytes, status: int, content_type: str) -> None:
    with contextlib.suppress(FetchRefused):
        check_reply(Reply(status, {"content-type": content_type}, body), 5120)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(_reply(302, body=b"[]"), "redirect", id="302"),
        pytest.param(_reply(404, body=b"[]"), "status", id="404"),
        pytest.param(_reply(body=b"[]", content_type="text/html"), "content_type", id="text-html"),
        pytest.param(_reply(body=b"[]", content_encoding="gzip"), "content_encoding", id="gzip"),
        pytest.param(_reply(body=b'["' + b"a" * 5120 + b'"]'), "too_large", id="too-large"),
        pytest.param(_reply(body=b"{}"), "not_json", id="object"),
        pytest.param(_reply(body=b'"https://a.example/cb"'), "not_json", id="string"),
        pytest.param(_reply(body=b'["https://a.example/cb", 1]'), "not_json", id="a-number"),
        pytest.param(_reply(body=b'[["https://a.example/cb"]]'), "not_json", id="nested"),
        pytest.param(_reply(body=b"[null]"), "not_json", id="null"),
        pytest.param(_reply(body=b'["a",'), "not_json", id="cut-short"),
        pytest.param(_reply(body=b"[NaN]"), "not_json", id="nan"),
        pytest.param(_reply(body=b"\xff[]"), "not_json", id="not-utf8"),
        pytest.param(_reply(body=b"[" * 40 + b"]" * 40), "not_json", id="too-deep"),
    ],
)
def test_check_array_reply_refuses(reply: Reply, reason: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        check_array_reply(reply, 5120)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("body", "values"),
    [
        pytest.param(b"[]", [], id="empty"),
        pytest.param(b'["https://a.example/cb"]', ["https://a.example/cb"], id="one"),
        pytest.param(b' ["x", "x", "y"] ', ["x", "x", "y"], id="repeats-and-space"),
    ],
)
def test_check_array_reply_accepts_an_array_of_strings(body: bytes, values: list[str]) -> None:
    reply = _reply(body=body, content_type="application/json; charset=utf-8")
    assert check_array_reply(reply, 5120) == values


@given(st.binary(max_size=200), st.integers(100, 599), st.text(max_size=40))
def test_check_array_reply_raises_only_refusals(
    body: bytes, status: int, content_type: str
) -> None:
    with contextlib.suppress(FetchRefused):
        check_array_reply(Reply(status, {"content-type": content_type}, body), 5120)


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        pytest.param({}, 30, id="none-is-the-minimum"),
        pytest.param({"cache-control": "max-age=600"}, 600, id="max-age"),
        pytest.param({"cache-control": "public, MAX-AGE=600"}, 600, id="case-and-others"),
        pytest.param({"cache-control": 'max-age="600"'}, 600, id="quoted"),
        pytest.param({"cache-control": "max-age=5"}, 30, id="clamped-up"),
        pytest.param({"cache-control": "max-age=9999999"}, 3600, id="clamped-down"),
        pytest.param({"cache-control": "max-age=1" + "0" * 40}, 3600, id="huge"),
        pytest.param({"cache-control": "max-age=600, no-cache"}, 30, id="no-cache"),
        pytest.param({"cache-control": "no-store, max-age=600"}, 30, id="no-store"),
        pytest.param({"cache-control": "max-age=600, max-age=900"}, 30, id="repeated"),
        pytest.param({"cache-control": "max-age=ten"}, 30, id="invalid"),
        pytest.param({"cache-control": "max-age=-5"}, 30, id="negative"),
        pytest.param({"cache-control": "max-age=600", "age": "500"}, 100, id="age"),
        pytest.param({"cache-control": "max-age=600", "age": "x"}, 600, id="bad-age"),
    ],
)
def test_cache_lifetime(headers: dict[str, str], lifetime: int) -> None:
    assert cache_lifetime(headers, 30, 3600) == lifetime


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"max_bytes": 0}, id="max-bytes"),
        pytest.param({"connect_timeout": 0}, id="connect-timeout"),
        pytest.param({"connect_timeout": 6.0, "total_timeout": 5.0}, id="connect-over-total"),
        pytest.param({"cache_min": 10, "cache_max": 5}, id="cache-bounds"),
        pytest.param({"allowed_networks": ("10.0.0.1/8",)}, id="host-bits"),
        pytest.param({"allowed_networks": ("nope",)}, id="not-a-network"),
        pytest.param({"expect": "list"}, id="expect"),
    ],
)
def test_fetch_policy_refuses_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FetchPolicy(**options)


def test_request_connects_to_the_address_and_keeps_the_host() -> None:
    request = Request("https://Example.com:8443/c?q=1", "2606:4700::1", "example.com", LOOPBACK)
    assert request.connect_url == "https://[2606:4700::1]:8443/c?q=1"
    assert request.host_header == "Example.com:8443"
    request = Request("https://example.com/c", "93.184.216.34", "example.com", LOOPBACK)
    assert request.connect_url == "https://93.184.216.34:443/c"
    assert request.host_header == "example.com"


Executor = Callable[[Any], Any]


def _script(addresses: list[str], reply: Reply, asked: list[Any]) -> Executor:
    def execute(op: Any) -> Any:
        asked.append(op)
        return addresses if isinstance(op, Resolve) else reply

    return execute


def test_fetch_json_flow_resolves_once_and_requests_the_checked_address() -> None:
    asked: list[Any] = []
    body = b'{"client_id": "https://client.example/c"}'
    reply = Reply(200, {**JSON, "cache-control": "max-age=120"}, body)
    fetched = run(
        fetch_json("https://client.example/c", FetchPolicy(), 1000.0),
        _script(["93.184.216.34", "93.184.216.35"], reply, asked),
    )
    assert asked == [
        Resolve("client.example", 443),
        Request("https://client.example/c", "93.184.216.34", "client.example", FetchPolicy()),
    ]
    assert (fetched.document, fetched.max_age, fetched.fetched_at) == (
        {"client_id": "https://client.example/c"},
        120,
        1000.0,
    )


def test_fetch_json_flow_with_expect_array_returns_the_values() -> None:
    asked: list[Any] = []
    policy = FetchPolicy(expect="array")
    reply = Reply(200, JSON, b'["https://a.example/cb", "https://b.example/cb"]')
    fetched = run(
        fetch_json("https://client.example/sector.json", policy, 5.0),
        _script(["93.184.216.34"], reply, asked),
    )
    assert [type(op) for op in asked] == [Resolve, Request]
    assert asked[1].policy.expect == "array"
    assert fetched.values == ("https://a.example/cb", "https://b.example/cb")
    assert fetched.document == {}


def test_fetch_json_flow_with_expect_array_refuses_an_object() -> None:
    reply = Reply(200, JSON, b'{"redirect_uris": []}')
    flow = fetch_json("https://client.example/s", FetchPolicy(expect="array"), 0.0)
    with pytest.raises(FetchRefused, match="not_json"):
        run(flow, _script(["93.184.216.34"], reply, []))


def test_fetch_json_flow_does_not_resolve_an_address_literal() -> None:
    asked: list[Any] = []
    run(fetch_json("https://[::1]/c", FetchPolicy(allowed_networks=("::1/128",)), 0.0),
        _script([], _reply(), asked))  # fmt: skip
    assert [type(op) for op in asked] == [Request]


@pytest.mark.parametrize(
    ("url", "addresses", "reason"),
    [
        pytest.param("http://client.example/c", [], "scheme", id="scheme-before-any-lookup"),
        pytest.param("https://10.0.0.1/c", [], "private_address", id="private-literal"),
        pytest.param(
            "https://client.example/c", ["169.254.169.254"], "private_address", id="rebound"
        ),
    ],
)
def test_fetch_json_flow_refuses_before_any_request(
    url: str, addresses: list[str], reason: str
) -> None:
    asked: list[Any] = []
    with pytest.raises(FetchRefused) as refused:
        run(fetch_json(url, FetchPolicy(), 0.0), _script(addresses, _reply(), asked))
    assert refused.value.reason == reason
    assert not any(isinstance(op, Request) for op in asked)


def test_fetch_json_flow_lets_an_executor_refusal_through() -> None:
    def execute(op: Any) -> Any:
        raise FetchRefused("timeout", "the resolver did not answer")

    with pytest.raises(FetchRefused, match="timeout"):
        run(fetch_json("https://client.example/c", FetchPolicy(), 0.0), execute)
