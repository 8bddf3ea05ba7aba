"""Prometheus metrics, imported only when ``DCR_METRICS`` is on (extra ``metrics``).

The metrics of one registry are created once per process and shared by every middleware that
uses that registry, so building several middlewares never registers a name twice. The stored
client count is read from the ``DCR_MAX_CLIENTS`` counter when Prometheus scrapes (the
:class:`~dcr_middleware.core.ops.ClientCount` operation: one ``GET`` in Redis, cached for
:data:`COUNT_TTL` seconds), never on the request path and never with ``SCAN``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ._extras import install_hint
from .core.errors import ConfigurationError, StorageError
from .core.events import (
    DOCUMENT_OUTCOMES,
    DOCUMENT_REASONS,
    DURATION_BUCKETS,
    ClientRegistered,
    DocumentRefused,
    DocumentResolved,
    Event,
    RateLimited,
    StorageFailed,
    document_label,
)
from .core.ops import ClientCount
from .core.settings import Settings
from .storage.base import SyncBackend

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ConfigurationError(
        [f"DCR_METRICS: needs the prometheus_client package; install it: {install_hint('metrics')}"]
    ) from exc

logger = logging.getLogger("dcr_middleware")

COUNT_TTL = 15.0  # seconds a scraped client count is reused
_METHODS = frozenset({"GET", "PUT", "DELETE"})
_LOCK = threading.Lock()
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()

CountReader = Callable[[], int | None]


def metrics_for(registry: CollectorRegistry | None = None) -> Metrics:
    """The metrics registered on ``registry`` (default ``prometheus_client.REGISTRY``), created
    on first use."""
    target = prometheus_client.REGISTRY if registry is None else registry
    with _LOCK:
        metrics = _BY_REGISTRY.get(target)
        if metrics is None:
            metrics = _BY_REGISTRY[target] = Metrics(target)
        return metrics


class Metrics:
    """The counters, histogram and gauges of one registry; :meth:`record` takes each event."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registrations = prometheus_client.Counter(
            "dcr_registrations",
            "Registration requests (POST to DCR_PATH) by outcome: created, or the error code",
            ["outcome"],
            registry=registry,
        )
        self.duration = prometheus_client.Histogram(
            "dcr_registration_duration_seconds",
            "Time to answer a registration request, body read and storage included",
            ["outcome"],
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.rate_limited = prometheus_client.Counter(
            "dcr_rate_limited",
            "Registration requests refused 429, by bucket kind (ip or token)",
            ["scope"],
            registry=registry,
        )
        self.storage_errors = prometheus_client.Counter(
            "dcr_storage_errors",
            "Requests answered 503 because the client store failed or timed out",
            registry=registry,
        )
        self.management = prometheus_client.Counter(
            "dcr_management_requests",
            "Client configuration endpoint requests (RFC 7592) by method and outcome",
            ["method", "outcome"],
            registry=registry,
        )
        self.document_lookups = prometheus_client.Counter(
            "dcr_document_lookups",
            "Client ID Metadata Document lookups by outcome: hit, miss, refresh, stale, refused",
            ["outcome"],
            registry=registry,
        )
        self.document_refusals = prometheus_client.Counter(
            "dcr_document_refusals",
            "Client ID Metadata Document lookups refused, by reason and whether the refusal "
            "came from the negative cache",
            ["reason", "cached"],
            registry=registry,
        )
        self.clients = _ClientCount()
        registry.register(self.clients)

    def record(self, event: Event) -> None:
        """Count one event."""
        if isinstance(event, DocumentResolved):
            self.document_lookups.labels(document_label(event.outcome, DOCUMENT_OUTCOMES)).inc()
            return
        if isinstance(event, DocumentRefused):
            self.document_lookups.labels("refused").inc()
            reason = document_label(event.reason, DOCUMENT_REASONS)
            self.document_refusals.labels(reason, "true" if event.cached else "false").inc()
            return
        outcome = getattr(event, "error", None) or "ok"
        if event.endpoint == "registration":
            outcome = "created" if isinstance(event, ClientRegistered) else outcome
            self.registrations.labels(outcome).inc()
            self.duration.labels(outcome).observe(event.duration_seconds)
        else:
            method = event.method if event.method in _METHODS else "other"
            self.management.labels(method, outcome).inc()
        if isinstance(event, RateLimited):
            self.rate_limited.labels(event.scope).inc()
        elif isinstance(event, StorageFailed):
            self.storage_errors.inc()

    def count_clients(self, prefix: str, cap: int, read: CountReader) -> None:
        """Report the ``DCR_MAX_CLIENTS`` counter of ``prefix`` (the last store given wins)."""
        self.clients.readers[prefix] = (cap, read)


class _ClientCount(Collector):
    """``dcr_clients_stored`` and ``dcr_clients_max``, per key prefix, read at scrape time."""

    def __init__(self) -> None:
        self.readers: dict[str, tuple[int, CountReader]] = {}

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stored, cap = self._families()
        for prefix, (limit, read) in list(self.readers.items()):
            value = read()
            if value is not None:
                stored.add_metric([prefix], value)
            cap.add_metric([prefix], limit)
        yield stored
        yield cap

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "dcr_clients_stored",
                "Clients holding a DCR_MAX_CLIENTS place (the cap counter)",
                labels=["prefix"],
            ),
            GaugeMetricFamily("dcr_clients_max", "DCR_MAX_CLIENTS", labels=["prefix"]),
        )


def client_count(settings: Settings, backend: Any) -> CountReader | None:
    """A reader of the cap counter: with Redis, through a blocking backend of its own, opened on
    the first scrape (also under ASGI: scrapes are rare, the value is cached and the timeouts are
    short); else through ``backend``, the embedded store (``None``: no reader)."""
    if settings.uses_redis:
        return _Counted(lambda: _redis_backend(settings))
    # The asyncio embedded store wraps the blocking one (its ``backend``): read that directly.
    embedded: SyncBackend | None = getattr(backend, "backend", backend)
    if embedded is None:
        return None
    return _Counted(lambda: embedded, ttl=0.0)


def _redis_backend(settings: Settings) -> SyncBackend:
    from .storage.redis import RedisBackend

    return RedisBackend(settings)


class _Counted:
    """Runs :class:`ClientCount` on the backend ``connect`` gives (called on the first scrape),
    reusing the value for ``ttl`` seconds; ``None`` when it cannot be read."""

    def __init__(self, connect: Callable[[], SyncBackend], ttl: float = COUNT_TTL) -> None:
        self.connect = connect
        self.ttl = ttl
        self.backend: SyncBackend | None = None
        self.value: int | None = None
        self.read_at = float("-inf")
        self.lock = threading.Lock()

    def __call__(self) -> int | None:
        with self.lock:
            if time.monotonic() - self.read_at < self.ttl:
                return self.value
            try:
                if self.backend is None:
                    self.backend = self.connect()
                self.value = self.backend.run(ClientCount())
            except (StorageError, ValueError) as exc:
                logger.warning("client count not read: %s", type(exc).__name__)
                self.value = None
            self.read_at = time.monotonic()
            return self.value
