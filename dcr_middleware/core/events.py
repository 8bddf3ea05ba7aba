"""Typed events for audit trails, structured logs and metrics.

Every request the registration endpoint or a client configuration endpoint answers (CORS
preflights aside) ends in exactly one event: :class:`ClientRegistered`, :class:`ClientRead`,
:class:`ClientUpdated`, :class:`ClientDeleted`, or a :class:`RequestRefused` (with its two
special cases :class:`RateLimited` and :class:`StorageFailed`). One :class:`Observer` hands each
event to three places: a log line on the ``dcr_middleware`` logger (a stable message, and every
field in ``extra`` for JSON formatters), the hooks (``on_event=`` and ``DCR_EVENT_HOOK``), and the
metrics it was given (any :class:`Recorder`): :func:`dcr_middleware.observe.observer_from_settings`
builds it with Prometheus (:mod:`dcr_middleware._metrics`) and OpenTelemetry
(:mod:`dcr_middleware._otel`) when they are enabled.

Events carry identifiers and outcomes only: never a client secret, a registration access
token, an initial access token or a request body. This module does no I/O of its own.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ._printable import printable
from .client import RegisteredClient
from .errors import ConfigurationError, DCRError, RateLimitedError, StorageError

logger = logging.getLogger("dcr_middleware")

# Only an identifier of the shape this library issues is put into an event (see store.py); a
# refused request to P/<anything else> is reported without it.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")

# Histogram boundaries of the registration duration, shared by the Prometheus and the
# OpenTelemetry metrics. A registration takes about 0.3 ms in process and a few ms with a Redis
# round trip (docs/performance.md), and at worst the pool wait plus the command timeout: the
# usual defaults (5 ms to 10 s) would put nearly every one in the first bucket. These resolve
# 100 µs to 10 s, about three per decade.
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the service knows about a request when it starts answering it."""

    endpoint: str  # "registration" (POST P) or "management" (P/{client_id})
    method: str
    path: str
    client_ip: str | None
    started: float  # time.monotonic() at the start


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """Base class of every event: where, from whom, and how long it took."""

    name: ClassVar[str] = "event"
    message: ClassVar[str] = "%s"
    level: ClassVar[int] = logging.INFO

    endpoint: str
    method: str
    path: str
    client_ip: str | None
    duration_seconds: float
    client_id: str | None = None

    def fields(self) -> dict[str, Any]:
        """The event's fields and its ``event`` name, as the log record's ``extra``."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # dataclasses.fields() is slow: once per event class
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        return {"event": self.name, **{name: getattr(self, name) for name in names}}

    def _args(self) -> tuple[Any, ...]:
        return (self.client_id,)


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientEvent(Event):
    """A request about one client that succeeded."""

    software_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientRegistered(ClientEvent):
    """``201``: a client was registered (RFC 7591)."""

    name: ClassVar[str] = "client_registered"
    message: ClassVar[str] = "client registered: client_id=%s"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientRead(ClientEvent):
    """``200``: a client read its configuration (RFC 7592 ``GET``)."""

    name: ClassVar[str] = "client_read"
    message: ClassVar[str] = "client read: client_id=%s"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientUpdated(ClientEvent):
    """``200``: a client replaced its metadata (RFC 7592 ``PUT``)."""

    name: ClassVar[str] = "client_updated"
    message: ClassVar[str] = "client updated: client_id=%s"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientDeleted(ClientEvent):
    """``204``: a client deleted itself (RFC 7592 ``DELETE``)."""

    name: ClassVar[str] = "client_deleted"
    message: ClassVar[str] = "client deleted: client_id=%s"


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestRefused(Event):
    """A refusal: ``error`` is the RFC error code, ``reason`` the ``error_description`` the
    client was sent (it may quote 120 characters of a rejected redirect URI, never a secret)."""

    name: ClassVar[str] = "request_refused"
    message: ClassVar[str] = "request refused: %s (%s)"

    error: str
    status: int
    reason: str

    def _args(self) -> tuple[Any, ...]:
        return (self.error, self.status)


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimited(RequestRefused):
    """``429``: the ``scope`` bucket (``ip`` or ``token``) is exhausted."""

    name: ClassVar[str] = "rate_limited"

    scope: str = "ip"


@dataclass(frozen=True, kw_only=True, slots=True)
class StorageFailed(RequestRefused):
    """``503``: the store failed or timed out; ``cause`` names the exception type, if any."""

    name: ClassVar[str] = "storage_failed"
    level: ClassVar[int] = logging.WARNING

    cause: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentEvent(Event):
    """A Client ID Metadata Document lookup (``endpoint`` ``"lookup"``): ``client_id`` is the
    document's URL, its control characters escaped (it is the client's text)."""

    @classmethod
    def _lookup(cls, url: str) -> dict[str, Any]:
        return {
            "endpoint": "lookup",
            "method": "GET",
            "path": "",
            "client_ip": None,
            "duration_seconds": 0.0,
            "client_id": printable(url[:_URL_SHOWN]),
        }


_URL_SHOWN = 512  # characters of a document URL an event carries


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentResolved(DocumentEvent):
    """A document lookup answered with a client: ``outcome`` is ``hit`` (from the cache),
    ``miss`` (fetched, nothing cached), ``refresh`` (fetched again once the cached copy expired)
    or ``stale`` (a refetch failed for ``reason``: the expired copy was served)."""

    name: ClassVar[str] = "document_resolved"
    message: ClassVar[str] = "client metadata document %s: %s"

    outcome: str
    reason: str | None = None

    @classmethod
    def of(cls, url: str, outcome: str, *, reason: str | None = None) -> DocumentResolved:
        """The event for ``url``."""
        return cls(**cls._lookup(url), outcome=outcome, reason=reason)

    def _args(self) -> tuple[Any, ...]:
        return (self.outcome, self.client_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentRefused(DocumentEvent):
    """A document lookup refused (the caller answers ``invalid_client``): ``reason`` is the
    fetcher's or the validation's token (``private_address``, ``redirect``, ``too_large``,
    ``timeout``, ``client_id``, ``secret``, ``metadata``, ``busy``...); ``cached`` when the
    refusal came from the negative cache."""

    name: ClassVar[str] = "document_refused"
    message: ClassVar[str] = "client metadata document refused: %s (%s)"

    reason: str
    cached: bool = False

    @classmethod
    def of(cls, url: str, reason: str, *, cached: bool) -> DocumentRefused:
        """The event for ``url``."""
        return cls(**cls._lookup(url), reason=reason, cached=cached)

    def _args(self) -> tuple[Any, ...]:
        return (self.reason, self.client_id)


# The outcomes of a resolved lookup and the reason tokens of a refused one: the fetcher's, the
# validation's, and ``busy`` (a spent fetch budget). Closed sets, so that a metric labelled with
# them has a bounded number of series; :func:`document_label` maps anything else to ``other``.
DOCUMENT_OUTCOMES = frozenset({"hit", "miss", "refresh", "stale"})
DOCUMENT_REASONS = frozenset(
    {
        # the fetcher's (core/_fetch_rules.py, fetch.py)
        "scheme",
        "url",
        "host_denied",
        "dns",
        "private_address",
        "timeout",
        "tls",
        "connect",
        "protocol",
        "redirect",
        "status",
        "content_type",
        "content_encoding",
        "too_large",
        "not_json",
        # the document's validation and the fetch budgets (core/cimd.py)
        "client_id",
        "secret",
        "metadata",
        "busy",
    }
)


def document_label(value: str | None, known: frozenset[str]) -> str:
    """``value`` when it is one of ``known``, else ``other``: a metric label of bounded
    cardinality (a document lookup's ``outcome`` or ``reason``; never its URL)."""
    return value if value in known else "other"


EventHook = Callable[[Event], object]


class Recorder(Protocol):
    """Metrics that count events (:class:`dcr_middleware._metrics.Metrics`,
    :class:`dcr_middleware._otel.OTelMetrics`)."""

    def record(self, event: Event) -> None:
        """Count one event."""
        ...


def load_hook(spec: str) -> EventHook:
    """Import the ``module.path:callable`` of ``DCR_EVENT_HOOK``; :class:`ConfigurationError`
    when it cannot be imported or is not a plain (synchronous) callable."""
    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError([f"DCR_EVENT_HOOK: cannot import {module_name!r}: {exc}"]) from exc
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigurationError([f"DCR_EVENT_HOOK: {module_name!r} has no {attribute!r}"])
    return check_hook(target, "DCR_EVENT_HOOK")


def check_hook(hook: Any, where: str = "on_event") -> EventHook:
    """``hook`` when it is a synchronous callable; hooks are called on the request path, in the
    event loop under ASGI, so a coroutine function is refused rather than never awaited."""
    if not callable(hook):
        raise ConfigurationError([f"{where}: {hook!r} is not callable"])
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        raise ConfigurationError([f"{where}: must be a plain function, not a coroutine function"])
    hooked: EventHook = hook
    return hooked


class Observer:
    """Logs each event, calls the hooks and updates the metrics it is given (``metrics``:
    Prometheus, ``otel``: OpenTelemetry; :func:`dcr_middleware.observe.observer_from_settings`
    gives each when enabled).

    A hook that raises is logged (its exception type only: its message could hold data) and
    the request is answered as if there were no hook.
    """

    def __init__(
        self,
        hooks: Sequence[EventHook] = (),
        metrics: Recorder | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        otel: Recorder | None = None,
    ) -> None:
        self.hooks = tuple(hooks)
        self.metrics = metrics
        self.otel = otel
        self.clock = clock

    def emit(self, event: Event) -> None:
        """Log ``event``, update the metrics, then call each hook."""
        if logger.isEnabledFor(event.level):  # the extra fields are built only when logged
            logger.log(event.level, event.message, *event._args(), extra=event.fields())
        if self.metrics is not None:
            self.metrics.record(event)
        if self.otel is not None:
            self.otel.record(event)
        for hook in self.hooks:
            try:
                hook(event)
            except Exception as exc:  # a hook must never break a request
                logger.error(
                    "event hook failed: %s",
                    type(exc).__name__,
                    extra={"event": "hook_failed", "hook_error": type(exc).__name__},
                )

    def done(self, seen: Seen, kind: type[ClientEvent], client: RegisteredClient) -> None:
        """Emit the success event ``kind`` about ``client``."""
        software_id = client.metadata.get("software_id")
        self.emit(
            kind(
                **self._common(seen),
                client_id=client.client_id,
                # Client-chosen text: its control characters escaped, as the CLI shows it.
                software_id=printable(software_id) if isinstance(software_id, str) else None,
            )
        )

    def refused(
        self, seen: Seen, error: DCRError, *, client_id: str | None = None, scope: str | None = None
    ) -> None:
        """Emit the refusal event for ``error`` (``scope``: the rate-limit bucket's kind)."""
        common = self._common(seen)
        common["client_id"] = client_id if client_id and _CLIENT_ID.match(client_id) else None
        if common["client_id"] is None and seen.endpoint == "management":
            common["path"] = seen.path.rpartition("/")[0] + "/{client_id}"
        described: dict[str, Any] = {
            "error": error.error,
            "status": error.status,
            # The description as the client was sent it: RFC 6749 §5.2 characters only, so no
            # control character reaches a text log formatter (log injection).
            "reason": error.public_description,
        }
        event: RequestRefused
        if isinstance(error, RateLimitedError):
            event = RateLimited(**common, **described, scope=scope or "ip")
        elif isinstance(error, StorageError):
            cause = error.__cause__
            event = StorageFailed(
                **common, **described, cause=None if cause is None else type(cause).__name__
            )
        else:
            event = RequestRefused(**common, **described)
        self.emit(event)

    def _common(self, seen: Seen) -> dict[str, Any]:
        return {
            "endpoint": seen.endpoint,
            "method": seen.method,
            "path": seen.path,
            "client_ip": seen.client_ip,
            "duration_seconds": max(0.0, self.clock() - seen.started),
        }
