"""The guarded fetcher's decisions, each a pure function: which URLs, hosts and addresses may be
fetched, which answers are accepted, and how long one may be cached.

The flow that applies them in order is :func:`dcr_middleware.core.fetching.fetch_json`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any, Literal
from urllib.parse import urlsplit

from ._addresses import IPNetwork, allowed, classify, parse_address
from ._uris import split_absolute
from .errors import InvalidClientMetadataError
from .registration import parse_json, parse_json_object

Expect = Literal["object", "array"]


class FetchRefused(Exception):
    """A fetch that was refused or failed. ``reason`` is a short token for events and metrics
    (``scheme``, ``url``, ``host_denied``, ``dns``, ``private_address``, ``timeout``, ``tls``,
    ``connect``, ``protocol``, ``redirect``, ``status``, ``content_type``, ``content_encoding``,
    ``too_large``, ``not_json``); ``detail`` says more, for the operator. The callers add their
    own (``busy`` for a spent fetch budget, the validation's)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _host_pattern(pattern: str) -> str:
    return pattern.strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchPolicy:
    """What a fetch may do, checked at construction (a bad CIDR raises :class:`ValueError`).

    ``allowed_networks`` (CIDRs) lets the fetcher reach addresses it otherwise refuses, for
    local testing only; ``allowed_hosts`` (when not empty) and ``denied_hosts`` hold host names,
    or ``*.example.com`` for any name under one. Timeouts are in seconds; cache lifetimes are
    clamped into ``[cache_min, cache_max]`` seconds. ``expect`` is the JSON accepted: one
    ``object`` (a metadata document), or one ``array`` of strings (an OpenID Connect
    ``sector_identifier_uri``). ``networks`` is ``allowed_networks`` parsed."""

    max_bytes: int = 5120  # the draft's recommended maximum, 5 kilobytes
    connect_timeout: float = 2.0
    total_timeout: float = 5.0
    allowed_networks: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    denied_hosts: tuple[str, ...] = ()
    cache_min: int = 30
    cache_max: int = 86_400
    expect: Expect = "object"
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or not 0 < self.connect_timeout <= self.total_timeout:
            raise ValueError("need max_bytes > 0 and 0 < connect_timeout <= total_timeout")
        if not 0 <= self.cache_min <= self.cache_max:
            raise ValueError("need 0 <= cache_min <= cache_max")
        if self.expect not in ("object", "array"):
            raise ValueError("expect is 'object' or 'array'")
        object.__setattr__(self, "networks", tuple(map(ip_network, self.allowed_networks)))
        for name in ("allowed_hosts", "denied_hosts"):
            object.__setattr__(self, name, tuple(map(_host_pattern, getattr(self, name))))


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL, its lower-case ``host`` (an IPv6 literal without brackets) and ``port``."""

    url: str
    host: str
    port: int


# RFC 1123 §2.1 host names (with "_", found in real names): labels of at most 63 characters.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# A percent-encoded "." is a dot too: WHATWG URL parsers resolve "%2e%2E" as "..".
_DOT_SEGMENT = re.compile(r"(?:\.|%2e){1,2}", re.IGNORECASE)


def check_fetch_url(url: str) -> Target:
    """Check a URL the fetcher may GET: ``https``, a host, no userinfo, no fragment, printable
    ASCII only (no white space or backslash that parsers read differently), a valid port."""
    parts = split_absolute(url)
    if parts is not None and parts.scheme.lower() != "https":
        raise FetchRefused("scheme", "only https URLs are fetched")
    if parts is None or not parts.hostname or parts.port == 0:
        raise FetchRefused("url", "not an absolute https URL with a host, without userinfo")
    host = parts.hostname.rstrip(".")
    if parse_address(host) is None and not (len(host) <= 253 and _HOST_NAME.fullmatch(host)):
        raise FetchRefused("url", "the host is neither a DNS name nor an IP address")
    return Target(url, host, parts.port or 443)


@functools.lru_cache(maxsize=1024)
def check_client_id_url(url: str) -> Target:
    """Check a Client ID Metadata Document URL: :func:`check_fetch_url`, and a path with no dot
    segment.

    Every lookup of a URL client id runs it (an authorization server looks up the same few
    clients again and again): the last 1,024 URLs that passed are remembered. A pure function
    of the URL; a refusal is not remembered (it raises), the result is immutable."""
    target = check_fetch_url(url)
    path = urlsplit(url).path
    # draft-ietf-oauth-client-id-metadata-document, Client Identifier URL: it "MUST contain a
    # path component" and "MUST NOT contain single-dot or double-dot path components".
    if not path:
        raise FetchRefused("url", "a client id URL must have a path")
    if any(_DOT_SEGMENT.fullmatch(segment) for segment in path.split("/")):
        raise FetchRefused("url", "a client id URL must not have . or .. path segments")
    return target


def _matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def check_host(host: str, policy: FetchPolicy) -> None:
    """Refuse a host on the deny-list, or missing from a non-empty allow-list."""
    if any(_matches(host, p) for p in policy.denied_hosts):
        raise FetchRefused("host_denied", f"{host} is on the deny-list")
    if policy.allowed_hosts and not any(_matches(host, p) for p in policy.allowed_hosts):
        raise FetchRefused("host_denied", f"{host} is not on the allow-list")


def choose_address(addresses: Sequence[str], policy: FetchPolicy) -> str:
    """The address to connect to: the first one, once every address is allowed."""
    if not addresses:
        raise FetchRefused("dns", "the name has no address")
    # Every address, not just the one chosen: the draft forbids fetching a URL that *resolves*
    # to a special-use address, and a name that answers with a public and a private address is
    # either misconfigured or probing for a fallback; checking all of them also makes the
    # decision independent of the order the resolver (or its round robin) returns them in.
    for text in addresses:
        address = parse_address(text)
        if address is None:
            raise FetchRefused("dns", "the resolver returned something that is not an address")
        if not allowed(address, policy.networks):
            raise FetchRefused("private_address", f"{address} is {classify(address)}")
    return addresses[0]


def _json_media_type(value: str) -> bool:
    media_type = value.partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    structured = len(subtype) > len("+json") and subtype.endswith("+json")
    return kind == "application" and (subtype == "json" or structured)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: status, headers (lower-case names, repeated fields joined with ``", "``) and
    the body as read (cut just past the size cap when longer)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def check_reply(reply: Reply, max_bytes: int) -> dict[str, Any]:
    """The JSON object of an answer, or :class:`FetchRefused`: 200 only (a redirect is never
    followed), ``application/json`` or ``application/*+json``, not encoded, at most
    ``max_bytes`` (declared or read), one UTF-8 JSON object."""
    _check_answer(reply, max_bytes)
    try:
        return parse_json_object(reply.body)
    except InvalidClientMetadataError:
        raise FetchRefused("not_json", "not one UTF-8 JSON object (RFC 8259)") from None


def check_array_reply(reply: Reply, max_bytes: int) -> list[str]:
    """The JSON array of strings of an answer, or :class:`FetchRefused`: the rules of
    :func:`check_reply`, with one UTF-8 JSON array of strings in place of the object."""
    _check_answer(reply, max_bytes)
    try:
        value = parse_json(reply.body)
    except InvalidClientMetadataError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FetchRefused("not_json", "not one UTF-8 JSON array of strings (RFC 8259)")
    return value


def _check_answer(reply: Reply, max_bytes: int) -> None:
    status, headers = reply.status, reply.headers
    # The draft, Client Information Discovery: "The authorization server MUST NOT automatically
    # follow HTTP redirects when fetching the Client ID Metadata Document".
    if 300 <= status < 400:
        raise FetchRefused("redirect", f"answered {status}; redirects are not followed")
    if status != 200:
        raise FetchRefused("status", f"answered {status}, not 200")
    if not _json_media_type(headers.get("content-type", "")):
        raise FetchRefused("content_type", "not application/json or application/*+json")
    if headers.get("content-encoding", "identity").strip().lower() != "identity":
        raise FetchRefused("content_encoding", "the document is compressed")
    declared = headers.get("content-length", "").strip()
    if (declared.isdigit() and int(declared) > max_bytes) or len(reply.body) > max_bytes:
        raise FetchRefused("too_large", f"the document is larger than {max_bytes} bytes")


def _delta_seconds(value: str) -> int | None:
    value = value.strip().strip('"')  # RFC 9111 §5.2.2.1: senders use the token form
    return min(int(value), 2**31) if value.isascii() and value.isdigit() else None


def cache_lifetime(headers: Mapping[str, str], minimum: int, maximum: int) -> int:
    """How long an answer may be cached, in seconds, clamped into ``[minimum, maximum]``:
    ``Cache-Control: max-age`` less ``Age``; ``no-store``, ``no-cache``, an invalid or
    repeated ``max-age``, or none at all count as 0."""
    ages: list[int | None] = []
    for directive in headers.get("cache-control", "").split(","):
        name, _, argument = directive.partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return minimum  # RFC 9111 §4.2.1: the most restrictive directive is honoured
        if name == "max-age":
            ages.append(_delta_seconds(argument))
    # RFC 9111 §4.2.1: with more than one value for a directive "the response should be
    # considered stale", and so should one with "invalid freshness information".
    lifetime = ages[0] if len(ages) == 1 and ages[0] is not None else 0
    age = _delta_seconds(headers.get("age", "0")) or 0
    return max(minimum, min(lifetime - age, maximum))
