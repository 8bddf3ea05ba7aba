"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client whose
``client_id`` is an HTTPS URL is described by the JSON document at that URL.

Theory of operation. :func:`resolve` is the lookup, written once as a flow. It reads the cached
entry (one storage operation: a cached lookup is one round trip), answers from it while it is
fresh, and otherwise charges the fetch to two budgets (per host and in total, so a flood of
unknown URL client ids cannot turn the server into a request amplifier), asks for the document
(:class:`Fetch`: the guarded fetcher of :mod:`.fetching`, one fetch per URL per worker at a
time) and validates it: ``client_id`` equal to the URL, no secret, then the same RFC 7591 /
OpenID Connect validation a registration runs. The result is cached within the operator's bounds;
a refusal is cached for a short time (negative caching); when a refetch fails, the stale entry
is served for a bounded time. Every outcome is an event; a refusal reaches the caller as "no
such client" (``invalid_client``), never as a hang or a 500.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from .client import RegisteredClient
from .client_metadata import validate_client_metadata
from .credentials import SECRET_METHODS
from .errors import DCRError
from .events import DocumentRefused, DocumentResolved, Observer
from .fetching import Fetched, FetchPolicy, FetchRefused, check_client_id_url
from .ops import DocumentGet, DocumentPut, Flow, Hit, ask
from .ratelimit import Limit, parse_rate_limits
from .settings import Settings

ENTRY_VERSION = 1
# RFC 7591 §2 members a document cannot use: no shared secret can exist with a URL client id.
_SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")


def is_document_url(client_id: object) -> bool:
    """Whether ``client_id`` is shaped like a Client ID Metadata Document URL (checked in full
    when resolved). Client ids this library issues are base64url, so the two never collide."""
    return isinstance(client_id, str) and client_id.startswith("https://")


def document_key(url: str) -> str:
    """The name of a document's cache entry (a digest: a URL may be long or unprintable)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class DocumentPolicy:
    """What resolving a document may do: the fetch policy, how long refusals are cached
    (``negative_ttl``), how long a stale document may be served when a refetch fails
    (``stale``, seconds) and the fetch budgets (rate limits per host and in total)."""

    fetch: FetchPolicy
    negative_ttl: int = 60
    stale: int = 3600
    per_host: tuple[Limit, ...] = ()
    total: tuple[Limit, ...] = ()
    settings: Settings = field(default_factory=Settings, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentPolicy:
        """The policy of ``DCR_CIMD_*``."""
        fetch = FetchPolicy(
            max_bytes=settings.cimd_max_bytes,
            connect_timeout=min(settings.cimd_connect_timeout, settings.cimd_timeout),
            total_timeout=settings.cimd_timeout,
            allowed_networks=settings.cimd_private_networks,
            allowed_hosts=settings.cimd_allowed_hosts,
            denied_hosts=settings.cimd_denied_hosts,
            cache_min=settings.cimd_cache_min,
            cache_max=settings.cimd_cache_max,
        )
        return cls(
            fetch,
            negative_ttl=settings.cimd_negative_ttl,
            stale=settings.cimd_stale,
            per_host=parse_rate_limits(settings.cimd_fetch_rate_limit),
            total=parse_rate_limits(settings.cimd_fetch_total_rate_limit),
            settings=settings,
        )


@dataclass(frozen=True, slots=True)
class ResolveDocument:
    """Resolve the document at ``url`` (answered by the client store: it runs
    :meth:`Documents.resolve` once for all its concurrent lookups of one URL)."""

    url: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """Fetch the JSON object at ``url`` under ``policy`` (the guarded fetcher; answered by the
    store's fetcher). The result is a :class:`~.fetching.Fetched`; a failure is
    :class:`~.fetching.FetchRefused`."""

    url: str
    policy: FetchPolicy


def charge_fetch(host: str, per_host: tuple[Limit, ...], total: tuple[Limit, ...]) -> Flow[None]:
    """Charge one outbound fetch to ``host``'s budget and to the total one (every fetch of the
    library shares them: documents and ``sector_identifier_uri``); ``FetchRefused("busy")``
    when either is spent. A flow step: two ``Hit`` operations."""
    for bucket, limits in ((f"cimd:{host}", per_host), ("cimd:*", total)):
        if limits and not (yield from ask(Hit(bucket, limits))).allowed:
            raise FetchRefused("busy", f"the fetch budget of {bucket} is spent")


def resolve_document(url: str, documents: Documents) -> Flow[RegisteredClient | None]:
    """The client of the document at ``url``: from a fresh cache entry, or else asked of the
    store (:class:`ResolveDocument`, the fetch). A flow step."""
    found = yield from cached(url, documents.observer, time.time())
    if not isinstance(found, _Miss):
        return found
    client: RegisteredClient | None = yield ResolveDocument(url)
    return client


def document_metadata(url: str, document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The registered metadata of the document fetched from ``url``, validated; raises
    :class:`~.fetching.FetchRefused` (``client_id``, ``secret`` or ``metadata``)."""
    # The draft: the document's client_id "MUST match the URL of the document using simple
    # string comparison", and the server "MUST NOT normalize Client Identifier URLs".
    if document.get("client_id") != url:
        raise FetchRefused("client_id", "the document's client_id is not its URL")
    if any(member in document for member in _SECRET_MEMBERS):
        raise FetchRefused("secret", "a metadata document must not carry a client secret")
    if "sector_identifier_uri" in document:  # checked at registration only (core/sector.py)
        raise FetchRefused("metadata", "a metadata document must not have a sector_identifier_uri")
    raw = {k: v for k, v in document.items() if k != "client_id"}
    # A document cannot agree a secret with the server: a method that needs one is refused,
    # and an omitted method means a public client (RFC 7591's default, client_secret_basic,
    # cannot apply).
    raw.setdefault("token_endpoint_auth_method", "none")
    if raw["token_endpoint_auth_method"] in SECRET_METHODS:
        raise FetchRefused("secret", "a metadata document must not use a secret-based method")
    try:
        return validate_client_metadata(raw, settings)
    except DCRError as exc:
        raise FetchRefused("metadata", exc.public_description or exc.error) from None


def _client(url: str, entry: dict[str, Any]) -> RegisteredClient:
    return RegisteredClient(
        client_id=url,
        client_id_issued_at=int(entry["fetched_at"]),
        metadata=entry["metadata"],
        from_document=True,
    )


def read_entry(raw: str | None) -> dict[str, Any] | None:
    """A cached entry (see :func:`resolve`), or ``None`` for none or one of another version."""
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and entry.get("v") == ENTRY_VERSION else None


class _Miss:
    """No fresh cache entry: the document has to be fetched."""


MISS = _Miss()


def cached(url: str, observer: Observer, now: float) -> Flow[RegisteredClient | _Miss | None]:
    """What the cache says of the document at ``url`` without a fetch: the client of a fresh
    entry (a hit), ``None`` for a URL the rules refuse or a cached refusal, :data:`MISS` when
    the document has to be fetched. One storage operation (a ``GET``), none for a refused URL.

    A lookup runs this first, outside the store's single flight (a hit costs no more than a
    registered client's lookup); on a miss the store runs :func:`resolve` once for all the
    concurrent lookups of the URL, which reads the entry again (another lookup may have just
    written it)."""
    found = yield from _read(url, observer)
    if found is None or isinstance(found, _Miss):
        return found
    return _fresh_answer(url, found, observer, now)


def _read(url: str, observer: Observer) -> Flow[dict[str, Any] | _Miss | None]:
    # The cached entry of a URL that passes the rules (None: refused, an event; MISS: none).
    try:
        check_client_id_url(url)
    except FetchRefused as exc:
        observer.emit(DocumentRefused.of(url, exc.reason, cached=False))
        return None
    entry = read_entry((yield from ask(DocumentGet(document_key(url)))))
    return MISS if entry is None else entry


def _fresh_answer(
    url: str, entry: dict[str, Any], observer: Observer, now: float
) -> RegisteredClient | _Miss | None:
    if now >= entry["expires_at"]:
        return MISS
    if "refused" in entry:
        observer.emit(DocumentRefused.of(url, entry["refused"], cached=True))
        return None
    observer.emit(DocumentResolved.of(url, "hit"))
    return _client(url, entry)


def resolve(
    url: str, policy: DocumentPolicy, observer: Observer, now: float
) -> Flow[RegisteredClient | None]:
    """The client described by the document at ``url``, or ``None`` (a refusal: the caller
    answers ``invalid_client``). ``now`` is the wall clock, in seconds."""
    found = yield from _read(url, observer)
    if found is None:
        return None
    cached = None if isinstance(found, _Miss) else found
    if cached is not None:
        answer = _fresh_answer(url, cached, observer, now)
        if not isinstance(answer, _Miss):
            return answer
    target = check_client_id_url(url)  # passed in _read (remembered: see its cache)
    key = document_key(url)
    stale = cached if cached is not None and "metadata" in cached else None
    try:
        yield from charge_fetch(target.host, policy.per_host, policy.total)
        fetched: Fetched = yield Fetch(url, policy.fetch)
        metadata = document_metadata(url, fetched.document, policy.settings)
    except FetchRefused as exc:
        if stale is not None and now < stale["stale_until"]:
            observer.emit(DocumentResolved.of(url, "stale", reason=exc.reason))
            return _client(url, stale)
        observer.emit(DocumentRefused.of(url, exc.reason, cached=False))
        if exc.reason != "busy":  # a spent budget says nothing about the document
            entry = {"v": ENTRY_VERSION, "url": url, "refused": exc.reason}
            entry["expires_at"] = now + policy.negative_ttl
            yield from ask(DocumentPut(key, json.dumps(entry), policy.negative_ttl * 1000))
        return None
    expires_at = now + fetched.max_age
    entry = {
        "v": ENTRY_VERSION,
        "url": url,
        "metadata": metadata,
        "fetched_at": now,
        "expires_at": expires_at,
        "stale_until": expires_at + policy.stale,
    }
    ttl_ms = int((fetched.max_age + policy.stale) * 1000)
    yield from ask(DocumentPut(key, json.dumps(entry, separators=(",", ":")), max(ttl_ms, 1)))
    observer.emit(DocumentResolved.of(url, "refresh" if stale is not None else "miss"))
    return _client(url, entry)


@dataclass(frozen=True, slots=True)
class Documents:
    """What a client store needs to resolve URL client ids: the policy, and the observer that
    hears each lookup's outcome."""

    policy: DocumentPolicy
    observer: Observer

    @classmethod
    def from_settings(cls, settings: Settings, observer: Observer | None = None) -> Documents:
        """The resolution of ``DCR_CIMD_*`` (``observer``: a plain one when not given)."""
        return cls(DocumentPolicy.from_settings(settings), observer or Observer())

    def resolve(self, url: str) -> Flow[RegisteredClient | None]:
        """The client described by the document at ``url``, or ``None``; see :func:`resolve`."""
        return resolve(url, self.policy, self.observer, time.time())
