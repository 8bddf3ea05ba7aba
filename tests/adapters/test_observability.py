"""Events, log records and metrics through both middlewares (``on_event``, caplog, a registry).

Each answer the middleware gives (201, 400, 401, 429, 503 and the RFC 7592 requests) must end
in one event of the right type with the client's address, and a log record carrying the same
fields; no secret or token value may appear in any event or log record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dcr_middleware import (
    AsyncClientStore,
    ClientStore,
    DCRMiddleware,
    DCRWSGIMiddleware,
    Settings,
)
from dcr_middleware.core.events import (
    ClientDeleted,
    ClientRead,
    ClientRegistered,
    ClientUpdated,
    Event,
    RateLimited,
    RequestRefused,
    StorageFailed,
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

SIDES = ("asgi", "wsgi")
P = "/register"
JSON = {"Content-Type": "application/json"}
WEB = {"redirect_uris": ["https://app.example.com/cb"], "software_id": "tool-7"}
TOKEN = "initial-access-token-0123456789"
LOGGER = "dcr_middleware"


@dataclass
class Probe:
    """One middleware side with its recorded events."""

    side: str
    app: Any
    events: list[Event] = field(default_factory=list)

    async def send(
        self,
        method: str,
        path: str = P,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        content = None if body is None else json.dumps(body).encode()
        headers = {**(JSON if body is not None else {}), **(headers or {})}
        if self.side == "asgi":
            return await asgi_request(self.app, method, path, content=content, headers=headers)
        return wsgi_request(self.app, method, path, content=content, headers=headers)


def probe(
    side: str,
    settings: Settings,
    backend: MemoryBackend | None = None,
    registry: CollectorRegistry | None = None,
    hook: Callable[[Event], object] | None = None,
) -> Probe:
    """A middleware over its own embedded store, recording its events (or calling ``hook``)."""
    events: list[Event] = []
    backend = MemoryBackend(settings.key_prefix) if backend is None else backend
    on_event = events.append if hook is None else hook
    app: Any
    if side == "asgi":
        store = AsyncClientStore(settings, backend=AsyncMemoryBackend(backend))
        app = DCRMiddleware(
            unreachable_asgi, settings, store=store, on_event=on_event, metrics_registry=registry
        )
    else:
        sync = ClientStore(settings, backend=backend)
        app = DCRWSGIMiddleware(
            unreachable_wsgi, settings, store=sync, on_event=on_event, metrics_registry=registry
        )
    return Probe(side, app, events)


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and "event" in r.__dict__]


def all_text(caplog: pytest.LogCaptureFixture, events: list[Event]) -> str:
    """Everything a log handler or a hook could see: messages, every record attribute, events."""
    parts = [repr(e) for e in events]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


@pytest.mark.parametrize("side", SIDES)
async def test_observability_201_emits_client_registered(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    p = probe(side, Settings(rate_limit="off"))
    answer = await p.send("POST", body=WEB)
    assert answer.status == 201
    (event,) = p.events
    assert isinstance(event, ClientRegistered)
    assert event.client_id == answer.json()["client_id"]
    assert (event.software_id, event.path, event.method) == ("tool-7", P, "POST")
    assert event.endpoint == "registration"
    assert event.client_ip == "127.0.0.1"
    assert event.duration_seconds >= 0
    (record,) = records(logs)
    assert record.getMessage() == f"client registered: client_id={event.client_id}"
    assert {k: record.__dict__[k] for k in event.fields()} == event.fields()
    assert answer.json()["client_secret"] not in all_text(logs, p.events)
    assert answer.json()["registration_access_token"] not in all_text(logs, p.events)


@pytest.mark.parametrize("side", SIDES)
async def test_observability_400_emits_request_refused_with_reason(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    p = probe(side, Settings(rate_limit="off"))
    body = {"redirect_uris": ["http://evil.example.com/cb"], "client_secret": "chosen-secret-1"}
    answer = await p.send("POST", body=body)
    assert answer.status == 400
    (event,) = p.events
    assert type(event) is RequestRefused
    assert (event.error, event.status) == (answer.json()["error"], 400)
    assert event.reason == answer.json()["error_description"]
    assert event.client_id is None
    (record,) = records(logs)
    assert record.getMessage() == f"request refused: {event.error} (400)"
    assert "chosen-secret-1" not in all_text(logs, p.events)


@pytest.mark.parametrize("side", SIDES)
async def test_observability_401_never_logs_the_initial_access_token(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    p = probe(side, Settings(rate_limit="off", initial_access_tokens=(TOKEN,)))
    wrong = await p.send("POST", body=WEB, headers={"Authorization": f"Bearer {TOKEN}x"})
    missing = await p.send("POST", body=WEB)
    good = await p.send("POST", body=WEB, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (wrong.status, missing.status, good.status) == (401, 401, 201)
    assert [type(e) for e in p.events] == [RequestRefused, RequestRefused, ClientRegistered]
    assert [getattr(e, "error", None) for e in p.events[:2]] == ["invalid_token"] * 2
    text = all_text(logs, p.events)
    assert TOKEN not in text
    assert good.json()["client_secret"] not in text


@pytest.mark.parametrize("side", SIDES)
async def test_observability_429_emits_rate_limited_with_scope(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    p = probe(side, Settings(rate_limit="1/hour"))
    first = await p.send("POST", body=WEB)
    second = await p.send("POST", body=WEB)
    third = await p.send("POST", body=WEB)  # answered from this process's memory of refusals
    assert (first.status, second.status, third.status) == (201, 429, 429)
    assert [type(e) for e in p.events] == [ClientRegistered, RateLimited, RateLimited]
    for event in p.events[1:]:
        assert isinstance(event, RateLimited)
        assert (event.scope, event.status, event.error) == ("ip", 429, "too_many_requests")
        assert event.client_ip == "127.0.0.1"
    assert [r.__dict__["event"] for r in records(logs)] == [
        "client_registered",
        "rate_limited",
        "rate_limited",
    ]


@pytest.mark.parametrize("side", SIDES)
async def test_observability_429_for_a_token_bucket_says_token(side: str) -> None:
    settings = Settings(initial_access_tokens=(TOKEN,), token_rate_limit="1/hour")
    p = probe(side, settings)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await p.send("POST", body=WEB, headers=auth)).status == 201
    assert (await p.send("POST", body=WEB, headers=auth)).status == 429
    assert isinstance(p.events[1], RateLimited)
    assert p.events[1].scope == "token"
    assert TOKEN not in repr(p.events)


@pytest.mark.parametrize("side", SIDES)
async def test_observability_503_emits_storage_failed(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    p = probe(side, Settings(), backend=DownBackend())
    answer = await p.send("POST", body=WEB)
    assert answer.status == 503
    (event,) = p.events
    assert isinstance(event, StorageFailed)
    assert (event.error, event.status) == ("temporarily_unavailable", 503)
    (record,) = records(logs)
    assert record.levelno == logging.WARNING
    assert record.__dict__["event"] == "storage_failed"


@pytest.mark.parametrize("side", SIDES)
async def test_observability_client_ip_is_the_resolved_address_not_the_bucket(side: str) -> None:
    settings = Settings(rate_limit="off", trusted_proxies=("127.0.0.1",))
    p = probe(side, settings)
    forwarded = {"X-Forwarded-For": "198.51.100.1, 2001:db8::1:2"}
    assert (await p.send("POST", body=WEB, headers=forwarded)).status == 201
    assert p.events[0].client_ip == "2001:db8::1:2"


@pytest.mark.parametrize("side", SIDES)
async def test_observability_management_events_and_no_token_in_logs(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    p = probe(side, Settings(rate_limit="off"))
    created = (await p.send("POST", body=WEB)).json()
    client_id, first_token = created["client_id"], created["registration_access_token"]
    path = f"{P}/{client_id}"
    auth = {"Authorization": f"Bearer {first_token}"}
    read = await p.send("GET", path, headers=auth)
    secret = created["client_secret"]
    replacement = {**WEB, "client_id": client_id, "client_secret": secret}
    updated = await p.send("PUT", path, body=replacement, headers=auth)
    second_token = updated.json()["registration_access_token"]
    stale = await p.send("GET", path, headers=auth)  # the rotated-out token
    deleted = await p.send("DELETE", path, headers={"Authorization": f"Bearer {second_token}"})
    statuses = [read.status, updated.status, stale.status, deleted.status]
    assert statuses == [200, 200, 401, 204]
    kinds = [type(e) for e in p.events]
    assert kinds == [ClientRegistered, ClientRead, ClientUpdated, RequestRefused, ClientDeleted]
    for event in p.events[1:]:
        assert (event.endpoint, event.path, event.client_id) == ("management", path, client_id)
    assert [e.method for e in p.events[1:]] == ["GET", "PUT", "GET", "DELETE"]
    assert p.events[2].software_id == "tool-7"
    messages = [r.getMessage() for r in records(logs)]
    assert messages[1:] == [
        f"client read: client_id={client_id}",
        f"client updated: client_id={client_id}",
        "request refused: invalid_token (401)",
        f"client deleted: client_id={client_id}",
    ]
    text = all_text(logs, p.events)
    secrets = [secret, updated.json().get("client_secret", secret), first_token, second_token]
    assert [s for s in secrets if s in text] == []


@pytest.mark.parametrize("side", SIDES)
async def test_observability_hook_that_raises_does_not_break_the_request(
    side: str, logs: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError(f"hook saw {event!r}")

    p = probe(side, Settings(rate_limit="off"), hook=broken)
    answer = await p.send("POST", body=WEB)
    assert answer.status == 201
    failures = [r for r in logs.records if r.__dict__.get("event") == "hook_failed"]
    assert [r.getMessage() for r in failures] == ["event hook failed: RuntimeError"]
    assert answer.json()["client_id"] in records(logs)[0].getMessage()


@pytest.mark.parametrize("side", SIDES)
async def test_observability_metrics_count_requests(side: str) -> None:
    registry = CollectorRegistry()
    backend = MemoryBackend("metrics")
    settings = Settings(rate_limit="1/hour", max_clients=5, key_prefix="metrics")
    p = probe(side, settings, backend=backend, registry=registry)
    created = (await p.send("POST", body=WEB)).json()
    assert (await p.send("POST", body=WEB)).status == 429
    auth = {"Authorization": f"Bearer {created['registration_access_token']}"}
    assert (await p.send("GET", f"{P}/{created['client_id']}", headers=auth)).status == 200
    assert (await p.send("GET", f"{P}/{created['client_id']}")).status == 401

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("dcr_registrations_total", outcome="created") == 1
    assert sample("dcr_registrations_total", outcome="too_many_requests") == 1
    assert sample("dcr_rate_limited_total", scope="ip") == 1
    assert sample("dcr_registration_duration_seconds_count", outcome="created") == 1
    assert sample("dcr_management_requests_total", method="GET", outcome="ok") == 1
    assert sample("dcr_management_requests_total", method="GET", outcome="invalid_token") == 1
    assert sample("dcr_clients_stored", prefix="metrics") == 1
    assert sample("dcr_clients_max", prefix="metrics") == 5
    assert sample("dcr_storage_errors_total") == 0


@pytest.mark.parametrize("side", SIDES)
async def test_observability_metrics_on_the_default_registry_survive_two_middlewares(
    side: str,
) -> None:
    from prometheus_client import REGISTRY

    settings = Settings(metrics=True, rate_limit="off")
    before = REGISTRY.get_sample_value("dcr_registrations_total", {"outcome": "created"}) or 0
    first, second = probe(side, settings), probe(side, settings)
    assert (await first.send("POST", body=WEB)).status == 201
    assert (await second.send("POST", body=WEB)).status == 201
    after = REGISTRY.get_sample_value("dcr_registrations_total", {"outcome": "created"})
    assert after == before + 2


@pytest.mark.parametrize("side", SIDES)
async def test_observability_storage_errors_are_counted(side: str) -> None:
    registry = CollectorRegistry()
    p = probe(side, Settings(), backend=DownBackend(), registry=registry)
    assert (await p.send("POST", body=WEB)).status == 503
    assert registry.get_sample_value("dcr_storage_errors_total") == 1
    outcome = {"outcome": "temporarily_unavailable"}
    assert registry.get_sample_value("dcr_registrations_total", outcome) == 1
