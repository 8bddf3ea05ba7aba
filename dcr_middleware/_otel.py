"""OpenTelemetry metrics, imported only when ``DCR_OTEL`` is on (extra ``otel``).

Only ``opentelemetry-api`` is needed. The instruments come from
``opentelemetry.metrics.get_meter("dcr_middleware")``, that is from the meter provider the
application configured (``opentelemetry.metrics.set_meter_provider``, or the
``opentelemetry-instrument`` agent). With no SDK, or an SDK that nobody configured, the API hands
out no-op instruments: recording costs one method call and goes nowhere.

The instruments mirror the Prometheus metrics of :mod:`dcr_middleware._metrics` (names in the
OpenTelemetry style, the same attributes), so one event updates both the same way.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ._extras import install_hint
from .core.errors import ConfigurationError
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

try:
    from opentelemetry import metrics as otel_metrics
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ConfigurationError(
        [f"DCR_OTEL: needs the opentelemetry-api package; install it: {install_hint('otel')}"]
    ) from exc

METER_NAME = "dcr_middleware"
_METHODS = frozenset({"GET", "PUT", "DELETE"})


def _version() -> str:
    # The instrumentation scope's version: the installed distribution's, read from its metadata
    # (importing the package for its __version__ would import every middleware module).
    try:
        return metadata.version("dcr-middleware")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return ""


class OTelMetrics:
    """The instruments of one meter; :meth:`record` takes each event."""

    def __init__(self, meter_provider: Any = None) -> None:
        meter = otel_metrics.get_meter(METER_NAME, _version(), meter_provider=meter_provider)
        self.registrations = meter.create_counter(
            "dcr.registrations",
            unit="{request}",
            description="Registration requests (POST to DCR_PATH) by outcome: created, or the "
            "error code",
        )
        self.duration = meter.create_histogram(
            "dcr.registration.duration",
            unit="s",
            description="Time to answer a registration request, body read and storage included",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.rate_limited = meter.create_counter(
            "dcr.rate_limited",
            unit="{request}",
            description="Registration requests refused 429, by bucket kind (ip or token)",
        )
        self.storage_errors = meter.create_counter(
            "dcr.storage.errors",
            unit="{request}",
            description="Requests answered 503 because the client store failed or timed out",
        )
        self.management = meter.create_counter(
            "dcr.management.requests",
            unit="{request}",
            description="Client configuration endpoint requests (RFC 7592) by method and outcome",
        )
        self.document_lookups = meter.create_counter(
            "dcr.document.lookups",
            unit="{lookup}",
            description="Client ID Metadata Document lookups by outcome: hit, miss, refresh, "
            "stale, refused",
        )
        self.document_refusals = meter.create_counter(
            "dcr.document.refusals",
            unit="{lookup}",
            description="Client ID Metadata Document lookups refused, by reason and whether the "
            "refusal came from the negative cache",
        )

    def record(self, event: Event) -> None:
        """Count one event."""
        if isinstance(event, DocumentResolved):
            outcome = document_label(event.outcome, DOCUMENT_OUTCOMES)
            self.document_lookups.add(1, {"outcome": outcome})
            return
        if isinstance(event, DocumentRefused):
            self.document_lookups.add(1, {"outcome": "refused"})
            reason = document_label(event.reason, DOCUMENT_REASONS)
            self.document_refusals.add(1, {"reason": reason, "cached": event.cached})
            return
        outcome = getattr(event, "error", None) or "ok"
        if event.endpoint == "registration":
            outcome = "created" if isinstance(event, ClientRegistered) else outcome
            attributes = {"outcome": outcome}
            self.registrations.add(1, attributes)
            self.duration.record(event.duration_seconds, attributes)
        else:
            method = event.method if event.method in _METHODS else "other"
            self.management.add(1, {"method": method, "outcome": outcome})
        if isinstance(event, RateLimited):
            self.rate_limited.add(1, {"scope": event.scope})
        elif isinstance(event, StorageFailed):
            self.storage_errors.add(1)
