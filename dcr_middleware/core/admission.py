"""What is decided about a registration request before its body is read: media type, declared
length, the initial access token, and which rate-limit bucket to charge. Pure; the services
call it and do the storage.

With a valid initial access token the token is the accountable party: it is charged against
``DCR_TOKEN_RATE_LIMIT`` (or its own policy's limit) instead of the client address.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from . import client_ip, tokens
from ._http import check_content_type, check_declared_length
from .errors import RateLimitedError
from .ratelimit import Limit, RateDecision, parse_rate_limits, rate_limit_headers
from .settings import Settings
from .software_statement import SoftwareStatements
from .throttle import Throttle
from .tokens import Grant, TokenPolicy

logger = logging.getLogger("dcr_middleware")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The parts of an HTTP request the registration endpoint looks at before the body.

    ``headers`` has lower-case names; repeated headers are joined with ``", "`` (RFC 9110 §5.3).
    ``peer`` is the socket peer's address (ASGI ``scope["client"]``, WSGI ``REMOTE_ADDR``);
    ``scheme`` and ``host`` the URL scheme and authority the server saw (``Host``, else the
    server's own address).
    """

    method: str
    headers: Mapping[str, str]
    peer: str | None
    scheme: str = "http"
    host: str = "localhost"


@dataclass(frozen=True, slots=True)
class RatePlan:
    """Which bucket a request is charged to, under which limits (empty: not limited)."""

    bucket: str
    limits: tuple[Limit, ...]
    scope: str


class Admission:
    """The settings' admission rules, parsed once at middleware construction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.max_body_bytes = settings.max_body_bytes
        self.limits: tuple[Limit, ...] = parse_rate_limits(settings.rate_limit)
        self.ipv6_prefix = settings.rate_limit_ipv6_prefix
        factor = settings.rate_limit_ipv6_factor
        self.wide_limits = tuple(Limit(lim.count * factor, lim.period) for lim in self.limits)
        self.trusted = client_ip.parse_networks(settings.trusted_proxies)
        self.forwarded_header = settings.forwarded_header.lower()
        self.token_limits = parse_rate_limits(settings.token_rate_limit)
        self.static_tokens = tokens.parse_static_tokens(settings.initial_access_tokens)
        self.token_required = bool(self.static_tokens) or settings.require_initial_access_token
        self.issuer = settings.issuer.rstrip("/") if settings.issuer else None
        self.path = settings.path
        # The software-statement key set is read and parsed here, never per request.
        self.statements = SoftwareStatements.from_settings(settings)
        # Failed credentials and management writes (shared by both endpoints).
        self.throttle = Throttle(settings)

    def checks_token(self, head: RequestHead) -> bool:
        """Whether the request's initial access token is looked at (sent or required)."""
        return self.token_required or "authorization" in head.headers

    def failure_bucket(self, head: RequestHead) -> str | None:
        """The bucket a failed credential from this request's address is charged to."""
        return self.throttle.failure_bucket(self.bucket(head))

    def check_head(self, head: RequestHead) -> None:
        """``415`` / ``413`` / ``400`` decided from the headers alone."""
        check_content_type(head.headers.get("content-type"))
        check_declared_length(head.headers.get("content-length"), self.max_body_bytes)

    def endpoint_url(self, head: RequestHead) -> str:
        """The absolute URL of the registration endpoint, for ``registration_client_uri``.

        ``DCR_ISSUER`` when set. Otherwise the request's scheme and ``Host``; behind a trusted
        proxy (the peer is in ``DCR_TRUSTED_PROXIES``) the rightmost ``X-Forwarded-Proto`` /
        ``X-Forwarded-Host`` (or ``Forwarded`` ``proto``/``host``) it set win.
        """
        if self.issuer is not None:
            return self.issuer + self.path
        scheme, host = head.scheme, client_ip.safe_host(head.host)
        peer = client_ip.parse_ip(head.peer) if head.peer else None
        if peer is not None and any(peer in net for net in self.trusted):
            scheme, host = client_ip.forwarded_origin(
                head.headers, scheme, host, self.forwarded_header
            )
        return f"{scheme}://{host}{self.path}"

    def token_digest(self, head: RequestHead) -> str | None:
        """The digest of the request's Bearer token; ``None`` when it sent none and none is
        required (401 when one is required, or when the header is malformed)."""
        token = tokens.bearer_token(head.headers.get("authorization"))
        if token is None:
            if self.token_required:
                raise tokens.missing_token()
            return None
        return tokens.digest(token)

    def static_grant(self, digest: str) -> Grant | None:
        """The grant of a static ``DCR_INITIAL_ACCESS_TOKENS`` token, if it is one."""
        if tokens.matches_static(digest, self.static_tokens):
            return Grant(digest, minted=False, policy=TokenPolicy())
        return None

    def minted_grant(self, digest: str, fields: dict[str, str] | None) -> Grant:
        """The grant of a minted token from its stored fields (401 when unknown or used up).

        A stored policy that does not parse (a record edited by hand) refuses the token too.
        """
        if fields is None or fields.get("uses") == "0":
            raise tokens.unknown_token()
        try:
            policy = TokenPolicy.from_json(fields.get("policy"))
            parse_rate_limits(policy.rate_limit or "off")
            policy.apply(self.settings)
        except (ValueError, TypeError, AttributeError):  # ConfigurationError is a ValueError
            logger.warning("initial access token %s has an unusable policy", digest[:16])
            raise tokens.unknown_token() from None
        return Grant(digest, minted=True, policy=policy)

    def rate_plan(self, head: RequestHead, grant: Grant | None) -> RatePlan:
        """The bucket and limits to charge: the token's when there is one, else the address's."""
        if grant is None:
            address = self._address(head)
            wide = client_ip.wide_bucket(address, self.ipv6_prefix) if self.limits else None
            if wide is None:
                return RatePlan(client_ip.bucket(address), self.limits, "ip")
            # The /64 and its wider prefix, charged together (own limits first).
            charged = tuple(dataclasses.replace(lim, bucket=wide) for lim in self.wide_limits)
            return RatePlan(client_ip.bucket(address), self.limits + charged, "ip")
        own = grant.policy.rate_limit
        limits = parse_rate_limits(own) if own is not None else self.token_limits
        return RatePlan(grant.bucket, limits, "token")

    def bucket(self, head: RequestHead) -> str:
        """The rate-limit bucket of the requesting client (see :mod:`client_ip`)."""
        return client_ip.bucket(self._address(head))

    def address(self, head: RequestHead) -> str | None:
        """The requesting client's address as the rate limit sees it (for events and logs)."""
        address = self._address(head)
        return None if address is None else str(address)

    def _address(self, head: RequestHead) -> client_ip.IPAddress | None:
        forwarded = head.headers.get(self.forwarded_header)
        return client_ip.resolve(
            head.peer,
            [forwarded] if forwarded else [],
            trusted=self.trusted,
            header=self.forwarded_header,
        )

    @staticmethod
    def rate_headers(plan: RatePlan | None, decision: RateDecision | None) -> list[tuple[str, str]]:
        """The RateLimit fields for a response (none when no limit was checked)."""
        if plan is None or decision is None:
            return []
        return rate_limit_headers(plan.limits, decision, plan.scope)

    def enforce(self, plan: RatePlan, decision: RateDecision) -> None:
        """Refuse with ``429`` when the decision does not allow the request."""
        if not decision.allowed:
            who = "this address" if plan.scope == "ip" else "this initial access token"
            raise RateLimitedError(
                f"too many registrations from {who}; retry in {decision.retry_after_seconds} s",
                self.rate_headers(plan, decision),
                plan.scope,
            )
