"""OpenTelemetry metrics through both middlewares (``meter_provider=``, an in-memory reader)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
)
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

from .harness import (
    Answer,
    DownBackend,
    asgi_request,
    unreachable_asgi,
    unreachable_wsgi,
    wsgi_request,
)

pytestmark = pytest.mark.anyio

WEB = {"redirect_uris": ["https://app.example.com/cb"]}
JSON = {"Content-Type": "application/json"}


def middleware(side: str, settings: Settings, backend: MemoryBackend, provider: Any) -> Any:
    if side == "asgi":
        store = AsyncClientStore(settings, backend=AsyncMemoryBackend(backend))
        return DCRMiddleware(unreachable_asgi, settings, store=store, meter_provider=provider)
    sync = ClientStore(settings, backend=backend)
    return DCRWSGIMiddleware(unreachable_wsgi, settings, store=sync, meter_provider=provider)


async def post(side: str, app: Any, body: Any) -> Answer:
    content = json.dumps(body).encode()
    if side == "asgi":
        return await asgi_request(app, "POST", "/register", content=content, headers=JSON)
    return wsgi_request(app, "POST", "/register", content=content, headers=JSON)


def sums(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], Any]:
    data = reader.get_metrics_data()
    found: dict[tuple[str, tuple[Any, ...]], Any] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    found[key] = getattr(point, "value", None) or getattr(point, "count", None)
    return found


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
async def test_otel_metrics_count_registrations_refusals_and_storage_errors(side: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    settings = Settings(rate_limit="1/hour")
    app = middleware(side, settings, MemoryBackend("otel"), provider)
    assert (await post(side, app, WEB)).status == 201
    assert (await post(side, app, WEB)).status == 429
    down = middleware(side, Settings(rate_limit="off"), DownBackend("otel"), provider)
    assert (await post(side, down, WEB)).status == 503
    assert (await post(side, down, {"redirect_uris": "nope"})).status == 400
    got = sums(reader)
    assert got[("dcr.registrations", (("outcome", "created"),))] == 1
    assert got[("dcr.registrations", (("outcome", "too_many_requests"),))] == 1
    assert got[("dcr.registrations", (("outcome", "temporarily_unavailable"),))] == 1
    assert got[("dcr.registrations", (("outcome", "invalid_redirect_uri"),))] == 1
    assert got[("dcr.rate_limited", (("scope", "ip"),))] == 1
    assert got[("dcr.storage.errors", ())] == 1
    assert got[("dcr.registration.duration", (("outcome", "created"),))] == 1
