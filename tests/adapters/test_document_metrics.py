"""The store a middleware builds reports its Client ID Metadata Document lookups to the
middleware's observer: its hooks, its Prometheus registry and its OpenTelemetry meter provider.

A real HTTPS server on loopback (``support/https_server.py``, its throwaway CA trusted through
``SSL_CERT_FILE``) serves the document, ``*.test`` names resolve to it, and loopback is allowed
with ``DCR_CIMD_PRIVATE_NETWORKS=127.0.0.0/8``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from support.https_server import (
    DocumentServer,
    Route,
    loopback_socket_works,
)

from dcr_middleware import AsyncClientStore, ClientStore, DCRMiddleware, DCRWSGIMiddleware, Settings
from dcr_middleware.core.events import DocumentRefused, DocumentResolved, Event, Observer

from .harness import unreachable_asgi, unreachable_wsgi

HOST = "127.0.0.2"
NAME = "metrics.test"
_prefixes = itertools.count()

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not loopback_socket_works(HOST), reason=f"{HOST} cannot be bound on this machine"
    ),
]


@pytest.fixture(scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    server = DocumentServer(tmp_path_factory.mktemp("ca"), HOST, (NAME,))
    yield server
    server.close()


@pytest.fixture
def server(_server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> DocumentServer:
    _server.trust(monkeypatch)
    url = _server.url(NAME, "/client.json")
    document = {"client_id": url, "client_name": "Doc", "redirect_uris": ["https://a.example/cb"]}
    _server.routes.clear()
    _server.routes["/client.json"] = Route(
        headers=(("Content-Type", "application/json"), ("Cache-Control", "max-age=600")),
        body=json.dumps(document).encode(),
    )
    _server.seen.clear()
    return _server


def _settings() -> Settings:
    return Settings(
        cimd=True,
        cimd_private_networks=("127.0.0.0/8",),
        cimd_timeout=3.0,
        key_prefix=f"docmetrics{next(_prefixes)}",
    )


class Built:
    """A middleware of one side with its own store, a registry, a meter provider and a hook."""

    def __init__(self, side: str, settings: Settings, store: Any = None) -> None:
        self.side = side
        self.events: list[Event] = []
        self.registry = CollectorRegistry()
        self.reader = InMemoryMetricReader()
        options: dict[str, Any] = {
            "store": store,
            "on_event": self.events.append,
            "metrics_registry": self.registry,
            "meter_provider": MeterProvider(metric_readers=[self.reader]),
        }
        middleware: Any = DCRMiddleware if side == "asgi" else DCRWSGIMiddleware
        wrapped = unreachable_asgi if side == "asgi" else unreachable_wsgi
        self.app = middleware(wrapped, settings, **options)

    async def get(self, url: str) -> Any:
        found = self.app.store.get(url)
        return await found if self.side == "asgi" else found

    def lookups(self, outcome: str) -> float | None:
        labels = {"outcome": outcome}
        return self.registry.get_sample_value("dcr_document_lookups_total", labels)

    def otel(self) -> dict[tuple[str, tuple[Any, ...]], Any]:
        data = self.reader.get_metrics_data()
        found: dict[tuple[str, tuple[Any, ...]], Any] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = tuple(sorted((point.attributes or {}).items()))
                        found[(metric.name, attributes)] = point.value
        return found


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
async def test_document_lookups_through_the_middlewares_store_reach_its_metrics(
    side: str, server: DocumentServer
) -> None:
    built = Built(side, _settings())
    url = server.url(NAME, "/client.json")
    assert (await built.get(url)) is not None  # fetched
    assert (await built.get(url)) is not None  # from the cache
    assert (await built.get(server.url(NAME, "/missing"))) is None  # 404: refused
    assert server.paths() == ["/client.json", "/missing"]

    assert built.lookups("miss") == 1
    assert built.lookups("hit") == 1
    assert built.lookups("refused") == 1
    refusal = {"reason": "status", "cached": "false"}
    assert built.registry.get_sample_value("dcr_document_refusals_total", refusal) == 1
    otel = built.otel()
    assert otel[("dcr.document.lookups", (("outcome", "miss"),))] == 1
    assert otel[("dcr.document.lookups", (("outcome", "hit"),))] == 1
    assert otel[("dcr.document.refusals", (("cached", False), ("reason", "status")))] == 1
    # The hooks hear them too; a lookup is no management request.
    kinds = [(type(e).__name__, getattr(e, "outcome", None)) for e in built.events]
    assert kinds == [
        ("DocumentResolved", "miss"),
        ("DocumentResolved", "hit"),
        ("DocumentRefused", None),
    ]
    assert isinstance(built.events[2], DocumentRefused) and built.events[2].reason == "status"
    assert not [name for name, _ in otel if name == "dcr.management.requests"]


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
async def test_document_lookups_of_a_given_store_go_to_that_stores_observer(
    side: str, server: DocumentServer
) -> None:
    # A store passed in keeps the observer it was built with: the middleware does not rewire it.
    settings = _settings()
    heard: list[Event] = []
    store_class: Any = AsyncClientStore if side == "asgi" else ClientStore
    store = store_class(settings, observer=Observer([heard.append]))
    built = Built(side, settings, store=store)
    assert (await built.get(server.url(NAME, "/client.json"))) is not None
    assert [type(e) for e in heard] == [DocumentResolved]
    assert built.events == []
    assert built.lookups("miss") is None
