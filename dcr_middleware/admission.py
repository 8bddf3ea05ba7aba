"""What is decided about a registration request before its body is read: media type, declared
length, and the client's rate-limit bucket. Pure; the services call it and do the storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import client_ip
from ._http import check_content_type, check_declared_length
from .errors import RateLimitedError
from .ratelimit import Limit, RateDecision, parse_rate_limits, rate_limit_headers
from .settings import Settings


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The parts of an HTTP request the registration endpoint looks at before the body.

    ``headers`` has lower-case names; repeated headers are joined with ``", "`` (RFC 9110 §5.3).
    ``peer`` is the socket peer's address (ASGI ``scope["client"]``, WSGI ``REMOTE_ADDR``).
    """

    method: str
    headers: Mapping[str, str]
    peer: str | None


class Admission:
    """The settings' admission rules, parsed once at middleware construction."""

    def __init__(self, settings: Settings) -> None:
        self.max_body_bytes = settings.max_body_bytes
        self.limits: tuple[Limit, ...] = parse_rate_limits(settings.rate_limit)
        self.trusted = client_ip.parse_networks(settings.trusted_proxies)
        self.forwarded_header = settings.forwarded_header

    def check_head(self, head: RequestHead) -> None:
        """``415`` / ``413`` / ``400`` decided from the headers alone."""
        check_content_type(head.headers.get("content-type"))
        check_declared_length(head.headers.get("content-length"), self.max_body_bytes)

    def bucket(self, head: RequestHead) -> str:
        """The rate-limit bucket of the requesting client (see :mod:`client_ip`)."""
        forwarded = head.headers.get(self.forwarded_header)
        address = client_ip.resolve(
            head.peer,
            [forwarded] if forwarded else [],
            trusted=self.trusted,
            header=self.forwarded_header,
        )
        return client_ip.bucket(address)

    def rate_headers(self, decision: RateDecision | None) -> list[tuple[str, str]]:
        """The RateLimit fields for a response (none when rate limiting is off)."""
        if decision is None:
            return []
        return rate_limit_headers(self.limits, decision, "ip")

    def enforce(self, decision: RateDecision) -> None:
        """Refuse with ``429`` when the decision does not allow the request."""
        if not decision.allowed:
            raise RateLimitedError(
                f"too many registrations from this address; retry in "
                f"{decision.retry_after_seconds} s",
                self.rate_headers(decision),
            )
