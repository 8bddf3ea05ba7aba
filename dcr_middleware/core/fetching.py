"""The guarded fetch, written once as a flow: the one way the library makes outbound requests
(Client ID Metadata Documents, :mod:`.cimd`; OpenID Connect ``sector_identifier_uri``,
:mod:`.sector`).

Theory of operation. :func:`fetch_json` checks the URL and the host lists, resolves the host
(it yields :class:`Resolve`), checks every address the name resolves to, then asks for one
request to the very address it checked (it yields :class:`Request`): the executor connects
there, with the TLS server name and certificate check of the URL's host, follows no redirect
and caps bytes and time. A name whose DNS answer changes between the check and the connection
(DNS rebinding) gains nothing: no second answer is ever asked for. The answer is checked here:
200 only, a JSON media type, the size cap, one JSON object (or, when the policy expects one,
one JSON array of strings). Every refusal and every failure is a
:class:`FetchRefused` with a short reason token.

:mod:`dcr_middleware.fetch` runs this flow with httpx, blocking or asyncio. Nothing here does
I/O: the decisions are in :mod:`._fetch_rules`, the address classes in :mod:`._addresses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._addresses import classify, parse_address
from ._fetch_rules import (
    FetchPolicy,
    FetchRefused,
    Reply,
    Target,
    cache_lifetime,
    check_array_reply,
    check_client_id_url,
    check_fetch_url,
    check_host,
    check_reply,
    choose_address,
)
from .ops import Flow

__all__ = [
    "FetchPolicy",
    "FetchRefused",
    "Fetched",
    "Reply",
    "Request",
    "Resolve",
    "Target",
    "cache_lifetime",
    "check_array_reply",
    "check_client_id_url",
    "check_fetch_url",
    "check_host",
    "check_reply",
    "choose_address",
    "classify",
    "fetch_json",
    "parse_address",
]


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve ``host`` (for ``port``); the result is a list of its addresses as strings, in
    the resolver's order. A failure is :class:`FetchRefused` (``dns`` or ``timeout``)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Request:
    """GET ``url`` by connecting to exactly ``address``, with the TLS server name (SNI) and the
    certificate check of ``host``; no redirect followed, at most ``policy.max_bytes + 1`` body
    bytes read, ``policy``'s time bounds kept. The result is a :class:`Reply`; a failure is
    :class:`FetchRefused` (``timeout``, ``tls``, ``connect`` or ``protocol``)."""

    url: str
    address: str
    host: str
    policy: FetchPolicy

    @property
    def connect_url(self) -> str:
        """``url`` with the address in place of the host: what the HTTP client connects to."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return parts._replace(netloc=f"{literal}:{parts.port or 443}").geturl()

    @property
    def host_header(self) -> str:
        """The ``Host`` header ``url`` calls for (RFC 9110 §7.2: the host, and the port if the
        URL has one)."""
        return urlsplit(self.url).netloc


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched JSON object, how long it may be cached (seconds, already clamped into the
    policy's bounds) and when it was fetched (the ``now`` the flow was given). For a policy that
    expects an array, ``values`` is the array of strings and ``document`` is empty."""

    url: str
    document: dict[str, Any]
    max_age: int
    fetched_at: float
    values: tuple[str, ...] = ()


def fetch_json(url: str, policy: FetchPolicy, now: float) -> Flow[Fetched]:
    """GET the JSON object at ``url`` under ``policy`` (the JSON array of strings, when
    ``policy.expect`` is ``"array"``), as a flow; ``now`` (seconds since the epoch) becomes
    :attr:`Fetched.fetched_at`. Raises :class:`FetchRefused`.

    A Client Identifier URL is checked with :func:`check_client_id_url` before it is fetched."""
    target = check_fetch_url(url)
    check_host(target.host, policy)
    if parse_address(target.host) is not None:
        addresses = [target.host]  # an IP literal: nothing to resolve, still checked
    else:
        addresses = yield Resolve(target.host, target.port)
    address = choose_address(addresses, policy)
    reply: Reply = yield Request(url, address, target.host, policy)
    document: dict[str, Any] = {}
    values: tuple[str, ...] = ()
    if policy.expect == "array":
        values = tuple(check_array_reply(reply, policy.max_bytes))
    else:
        document = check_reply(reply, policy.max_bytes)
    max_age = cache_lifetime(reply.headers, policy.cache_min, policy.cache_max)
    return Fetched(url, document, max_age, now, values)
