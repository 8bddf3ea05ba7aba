"""OpenID Connect Dynamic Client Registration 1.0 §5 ``sector_identifier_uri``, checked by
fetching it.

Theory of operation. A client that registers a ``sector_identifier_uri`` names the host whose
pairwise subject identifiers it shares (OpenID Connect Core §8.1); the URL must lead to a JSON
array that lists every redirect URI of the client, so that a client cannot claim the sector of
a host it does not control. With ``DCR_SECTOR_IDENTIFIER_URIS`` on, the validation
(:mod:`.oidc`) accepts the field and the registration and management flows ask :func:`verify`
for it once the metadata is valid and before the client is stored: it charges the fetch to the
budgets of :mod:`.cimd` (per host and in total: one budget for every outbound fetch), asks for
the array (a :class:`~.cimd.Fetch` under the ``DCR_CIMD_*`` fetch policy, expecting an array)
and checks that it lists every redirect URI (:func:`check_listed`). Every refusal, the fetch's
included, is ``400 invalid_client_metadata`` naming the field; the fetched array is not cached
(registrations are rare and rate-limited).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._values import shown
from .cimd import DocumentPolicy, Fetch, charge_fetch
from .errors import ConfigurationError, InvalidClientMetadataError
from .fetching import Fetched, FetchPolicy, FetchRefused, check_fetch_url
from .oidc import sector_not_supported
from .ops import Flow
from .ratelimit import Limit
from .settings import Settings

FIELD = "sector_identifier_uri"

# What a client is told about a refused fetch: the reason in words, never the fetcher's detail
# (which names addresses the client need not learn).
_REASONS = {
    "scheme": "it must be an https URL",
    "url": "it is not a valid https URL (a host, no userinfo, no fragment)",
    "host_denied": "its host is not allowed",
    "private_address": "its host is not allowed",
    "dns": "its host does not resolve",
    "timeout": "its host did not answer in time",
    "tls": "its host's certificate did not verify",
    "connect": "its host could not be reached",
    "protocol": "its host did not answer in HTTP",
    "redirect": "it answered with a redirect, which is not followed",
    "status": "it did not answer 200",
    "content_type": "it is not served as application/json",
    "content_encoding": "it is served compressed",
    "too_large": "it is too large",
    "not_json": "it is not a JSON array of strings",
    "busy": "too many fetches right now; try again later",
}


@dataclass(frozen=True, slots=True)
class SectorPolicy:
    """How a ``sector_identifier_uri`` is fetched: the ``DCR_CIMD_*`` fetch policy expecting a
    JSON array, and the fetch budgets (per host and in total)."""

    fetch: FetchPolicy
    per_host: tuple[Limit, ...] = ()
    total: tuple[Limit, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> SectorPolicy | None:
        """The policy of ``DCR_SECTOR_IDENTIFIER_URIS`` and ``DCR_CIMD_*``; ``None`` when off."""
        if not settings.sector_identifier_uris:
            return None
        documents = DocumentPolicy.from_settings(settings)
        fetch = dataclasses.replace(documents.fetch, expect="array")
        return cls(fetch, documents.per_host, documents.total)


def check_fetcher(settings: Settings, store_settings: Settings) -> None:
    """Fail at startup when ``DCR_SECTOR_IDENTIFIER_URIS`` is on for the middleware but the
    client store it runs its flows on was built without a fetcher (its settings have neither
    ``DCR_SECTOR_IDENTIFIER_URIS`` nor ``DCR_CIMD``)."""
    if settings.sector_identifier_uris and not (
        store_settings.sector_identifier_uris or store_settings.cimd
    ):
        raise ConfigurationError(
            [
                "DCR_SECTOR_IDENTIFIER_URIS: the client store given to the middleware has no "
                "fetcher; build it with settings that turn DCR_SECTOR_IDENTIFIER_URIS on too"
            ]
        )


def check_listed(redirect_uris: Iterable[str], listed: Iterable[str]) -> None:
    """Raise ``invalid_client_metadata`` unless ``listed`` holds every one of ``redirect_uris``
    (compared as strings, exactly)."""
    known = set(listed)
    # OIDC Registration §5: "the values in this file MUST include all redirect_uri values in
    # the request".
    missing = [uri for uri in redirect_uris if uri not in known]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidClientMetadataError(
            f"{FIELD}: its JSON array does not list the redirect URI {shown(missing[0])}{more} "
            "(OpenID Connect Registration section 5)"
        )


def _refusal(exc: FetchRefused) -> InvalidClientMetadataError:
    reason = _REASONS.get(exc.reason, "it could not be fetched")
    return InvalidClientMetadataError(f"{FIELD}: could not be used: {reason} ({exc.reason})")


def verify(metadata: Mapping[str, Any], policy: SectorPolicy | None) -> Flow[None]:
    """Check the ``sector_identifier_uri`` of validated ``metadata``, if it has one: charge the
    fetch budgets, fetch the array and check that it lists every redirect URI. A flow step;
    raises ``invalid_client_metadata``."""
    url = metadata.get(FIELD)
    if url is None:
        return
    if policy is None:  # the validation refuses the field first; never trusted unchecked
        raise sector_not_supported()
    try:
        target = check_fetch_url(url)
        yield from charge_fetch(target.host, policy.per_host, policy.total)
        fetched: Fetched = yield Fetch(url, policy.fetch)
    except FetchRefused as exc:
        raise _refusal(exc) from None
    check_listed(metadata.get("redirect_uris", ()), fetched.values)
