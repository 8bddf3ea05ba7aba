"""Building the :class:`~dcr_middleware.core.events.Observer` a middleware uses, from settings.

The observer (in the pure core) logs each event and hands it to the hooks and to whatever
metrics it is given; this module decides which: Prometheus (:mod:`._metrics`) and OpenTelemetry
(:mod:`._otel`), each imported only when enabled, so a deployment without them never imports
``prometheus_client`` or ``opentelemetry``.
"""

from __future__ import annotations

from typing import Any

from .core.events import EventHook, Observer, check_hook, load_hook
from .core.settings import Settings


def observer_from_settings(
    settings: Settings,
    *,
    on_event: EventHook | None = None,
    metrics_registry: Any = None,
    backend: Any = None,
    meter_provider: Any = None,
) -> Observer:
    """The observer a middleware uses: ``on_event`` then ``DCR_EVENT_HOOK``; Prometheus metrics
    when ``DCR_METRICS`` is on or a registry is given (the client count read from ``backend``'s
    cap counter, when ``DCR_MAX_CLIENTS`` is set); OpenTelemetry metrics when ``DCR_OTEL`` is on
    (the global meter provider) or a ``meter_provider`` is given."""
    hooks = [] if on_event is None else [check_hook(on_event)]
    if settings.event_hook is not None:
        hooks.append(load_hook(settings.event_hook))
    metrics = None
    if settings.metrics or metrics_registry is not None:
        from . import _metrics

        metrics = _metrics.metrics_for(metrics_registry)
        count = _metrics.client_count(settings, backend) if settings.max_clients else None
        if count is not None:
            metrics.count_clients(settings.key_prefix, settings.max_clients, count)
    otel = None
    if settings.otel or meter_provider is not None:
        from . import _otel

        otel = _otel.OTelMetrics(meter_provider)
    return Observer(hooks, metrics, otel=otel)
