"""Events, the observer (log line, hooks, metrics) and hook loading, without I/O."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dcr_middleware import ConfigurationError, RegisteredClient, Settings, _metrics
from dcr_middleware.core.errors import (
    InvalidRedirectURIError,
    InvalidTokenError,
    RateLimitedError,
    StorageError,
)
from dcr_middleware.core.events import (
    ClientDeleted,
    ClientRead,
    ClientRegistered,
    ClientUpdated,
    Event,
    Observer,
    RateLimited,
    RequestRefused,
    Seen,
    StorageFailed,
    check_hook,
    load_hook,
)
from dcr_middleware.observe import observer_from_settings
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

REGISTRATION = Seen("registration", "POST", "/register", "192.0.2.7", started=10.0)
CLIENT = RegisteredClient("abc_DEF-123", 1_700_000_000, {"software_id": "tool-1"})


def clock() -> float:
    return 10.25


def observer(*hooks: Any, metrics: Any = None) -> Observer:
    return Observer(hooks, metrics, clock=clock)


def emitted(*hooks: Any) -> tuple[Observer, list[Event]]:
    seen: list[Event] = []
    return observer(seen.append, *hooks), seen


def test_events_done_carries_client_address_software_and_duration() -> None:
    obs, seen = emitted()
    obs.done(REGISTRATION, ClientRegistered, CLIENT)
    assert seen == [
        ClientRegistered(
            endpoint="registration",
            method="POST",
            path="/register",
            client_ip="192.0.2.7",
            duration_seconds=0.25,
            client_id="abc_DEF-123",
            software_id="tool-1",
        )
    ]


def test_events_done_ignores_a_non_string_software_id() -> None:
    obs, seen = emitted()
    obs.done(REGISTRATION, ClientRegistered, RegisteredClient("c1", 1, {"software_id": 5}))
    assert isinstance(seen[0], ClientRegistered)
    assert seen[0].software_id is None


def test_events_done_escapes_control_characters_in_software_id() -> None:
    obs, seen = emitted()
    hostile = RegisteredClient("c1", 1, {"software_id": "tool\x1b[2K\r\n\u202eevil"})
    obs.done(REGISTRATION, ClientRegistered, hostile)
    assert isinstance(seen[0], ClientRegistered)
    assert seen[0].software_id == "tool\\x1b[2K\\x0d\\x0a\\u202eevil"


@pytest.mark.parametrize(
    "description",
    [
        pytest.param("client_name: bad\r\nFAKE log line", id="cr-lf"),
        pytest.param("x: \x1b[31mred\x07", id="esc-bel"),
        pytest.param("x: \u202eevil \x85 \u2028", id="bidi-c1-separator"),
        pytest.param("x: \ud800", id="lone-surrogate"),
    ],
)
def test_events_refused_reason_carries_no_control_character(
    description: str, caplog: pytest.LogCaptureFixture
) -> None:
    obs, seen = emitted()
    error = InvalidRedirectURIError(description)
    with caplog.at_level(logging.INFO, logger="dcr_middleware"):
        obs.refused(REGISTRATION, error)
    assert isinstance(seen[0], RequestRefused)
    reason = seen[0].reason
    # The error_description the client was sent: RFC 6749 §5.2 characters only.
    assert all(0x20 <= ord(c) <= 0x7E for c in reason), reason
    assert reason == error.public_description
    assert caplog.records[0].reason == reason  # type: ignore[attr-defined]


def test_events_duration_is_never_negative() -> None:
    seen: list[Event] = []
    Observer([seen.append], clock=lambda: 1.0).done(REGISTRATION, ClientRead, CLIENT)
    assert seen[0].duration_seconds == 0.0


@pytest.mark.parametrize(
    ("error", "kind", "extra"),
    [
        pytest.param(
            InvalidRedirectURIError("redirect_uris: bad"),
            RequestRefused,
            {},
            id="invalid-metadata",
        ),
        pytest.param(InvalidTokenError("no token"), RequestRefused, {}, id="invalid-token"),
        pytest.param(RateLimitedError("slow down", []), RateLimited, {"scope": "token"}, id="429"),
        pytest.param(StorageError("down"), StorageFailed, {"cause": None}, id="503"),
    ],
)
def test_events_refused_maps_each_error(error: Any, kind: type[Event], extra: Any) -> None:
    obs, seen = emitted()
    obs.refused(REGISTRATION, error, scope="token")
    (event,) = seen
    assert type(event) is kind
    assert isinstance(event, RequestRefused)
    assert (event.error, event.status, event.reason) == (
        error.error,
        error.status,
        error.description,
    )
    assert event.client_id is None
    for name, value in extra.items():
        assert getattr(event, name) == value


def test_events_storage_failed_names_the_cause_type_only() -> None:
    obs, seen = emitted()
    try:
        try:
            raise ConnectionError("redis://:hunter2@cache:6379 refused")
        except ConnectionError as exc:
            raise StorageError("the client store is unavailable") from exc
    except StorageError as error:
        obs.refused(REGISTRATION, error)
    assert isinstance(seen[0], StorageFailed)
    assert seen[0].cause == "ConnectionError"
    assert "hunter2" not in repr(seen[0])


@pytest.mark.parametrize(
    ("client_id", "expected_id", "expected_path"),
    [
        pytest.param("abc_DEF-123", "abc_DEF-123", "/register/abc_DEF-123", id="issued-shape"),
        pytest.param("a b\nc", None, "/register/{client_id}", id="junk"),
        pytest.param("x" * 129, None, "/register/{client_id}", id="too-long"),
    ],
)
def test_events_management_refusal_reports_only_well_formed_ids(
    client_id: str, expected_id: str | None, expected_path: str
) -> None:
    obs, seen = emitted()
    where = Seen("management", "GET", f"/register/{client_id}", None, 10.0)
    obs.refused(where, InvalidTokenError("bad token"), client_id=client_id)
    assert (seen[0].client_id, seen[0].path) == (expected_id, expected_path)


def test_events_emit_logs_a_stable_message_with_every_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dcr_middleware")
    obs = observer()
    obs.done(REGISTRATION, ClientRegistered, CLIENT)
    obs.refused(REGISTRATION, InvalidRedirectURIError("redirect_uris: bad"))
    obs.refused(REGISTRATION, StorageError("down"))
    registered, refused, failed = caplog.records
    assert registered.getMessage() == "client registered: client_id=abc_DEF-123"
    assert registered.levelno == logging.INFO
    assert registered.__dict__["event"] == "client_registered"
    for name in ("client_id", "client_ip", "software_id", "path", "method", "endpoint"):
        assert registered.__dict__[name] == getattr(
            ClientRegistered(
                endpoint="registration",
                method="POST",
                path="/register",
                client_ip="192.0.2.7",
                duration_seconds=0.25,
                client_id="abc_DEF-123",
                software_id="tool-1",
            ),
            name,
        )
    assert refused.getMessage() == "request refused: invalid_redirect_uri (400)"
    assert refused.__dict__["reason"] == "redirect_uris: bad"
    assert failed.getMessage() == "request refused: temporarily_unavailable (503)"
    assert failed.levelno == logging.WARNING
    assert failed.__dict__["event"] == "storage_failed"


@pytest.mark.parametrize(
    "kind",
    [ClientRegistered, ClientRead, ClientUpdated, ClientDeleted],
    ids=lambda kind: kind.name,
)
def test_events_fields_are_the_dataclass_fields_and_the_name(kind: type[ClientRegistered]) -> None:
    event = kind(
        endpoint="management",
        method="GET",
        path="/register/c",
        client_ip=None,
        duration_seconds=0.0,
        client_id="c",
    )
    names = {f.name for f in dataclasses.fields(event)}
    assert set(event.fields()) == names | {"event"}
    assert event.fields()["event"] == kind.name


def test_events_hook_that_raises_is_logged_by_type_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: Event) -> None:
        raise ValueError("secret-looking detail 12345")

    after: list[Event] = []
    obs = observer(broken, after.append)
    with caplog.at_level(logging.INFO, logger="dcr_middleware"):
        obs.done(REGISTRATION, ClientRegistered, CLIENT)
    assert len(after) == 1
    failures = [r for r in caplog.records if r.__dict__.get("event") == "hook_failed"]
    assert [r.getMessage() for r in failures] == ["event hook failed: ValueError"]
    assert failures[0].levelno == logging.ERROR
    assert all("12345" not in r.getMessage() and not r.exc_info for r in caplog.records)


async def _async_hook(event: Event) -> None:
    return None


class _AsyncCallable:
    async def __call__(self, event: Event) -> None:
        return None


@pytest.mark.parametrize(
    "hook",
    [
        pytest.param(_async_hook, id="coroutine-function"),
        pytest.param(_AsyncCallable(), id="async-call"),
        pytest.param("not callable", id="string"),
    ],
)
def test_events_check_hook_refuses_what_cannot_be_called_synchronously(hook: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_hook(hook)
    assert info.value.problems[0].startswith("on_event:")


def test_events_load_hook_imports_the_callable() -> None:
    assert load_hook("json:dumps") is __import__("json").dumps
    assert load_hook("os.path:join") is __import__("os").path.join


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("no_such_module_xyz:hook", "cannot import", id="module"),
        pytest.param("json:no_such_hook", "has no", id="attribute"),
        pytest.param("json:__name__", "is not callable", id="not-callable"),
        pytest.param(f"{__name__}:_async_hook", "coroutine", id="async"),
    ],
)
def test_events_load_hook_errors_name_the_setting(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_hook(spec)
    (problem,) = info.value.problems
    assert problem.startswith("DCR_EVENT_HOOK:")
    assert message in problem


def test_events_settings_event_hook_must_look_like_an_import_string() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"DCR_EVENT_HOOK": "not an import string"})
    assert info.value.problems[0].startswith("DCR_EVENT_HOOK:")
    assert Settings.from_env({"DCR_EVENT_HOOK": ""}).event_hook is None


def test_events_from_settings_calls_code_hook_then_environment_hook() -> None:
    calls: list[str] = []
    settings = Settings(event_hook=f"{__name__}:_record_env_hook")
    _ENV_CALLS.clear()
    obs = observer_from_settings(settings, on_event=lambda event: calls.append("code"))
    obs.done(REGISTRATION, ClientRegistered, CLIENT)
    assert calls == ["code"]
    assert [type(e) for e in _ENV_CALLS] == [ClientRegistered]
    assert obs.metrics is None


_ENV_CALLS: list[Event] = []


def _record_env_hook(event: Event) -> None:
    _ENV_CALLS.append(event)


# --- metrics ---


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def test_metrics_are_created_once_per_registry() -> None:
    registry = CollectorRegistry()
    first = _metrics.metrics_for(registry)
    assert _metrics.metrics_for(registry) is first
    assert _metrics.metrics_for(CollectorRegistry()) is not first
    # Two observers on one registry, as two middlewares in one process build them.
    settings = Settings(metrics=True)
    one = observer_from_settings(settings, metrics_registry=registry)
    two = observer_from_settings(settings, metrics_registry=registry)
    assert one.metrics is two.metrics is first


def test_metrics_record_each_outcome() -> None:
    registry = CollectorRegistry()
    obs = observer(metrics=_metrics.metrics_for(registry))
    management = Seen("management", "PUT", "/register/c", None, 10.0)
    obs.done(REGISTRATION, ClientRegistered, CLIENT)
    obs.refused(REGISTRATION, InvalidRedirectURIError("bad"))
    obs.refused(REGISTRATION, RateLimitedError("slow", []), scope="ip")
    obs.refused(REGISTRATION, StorageError("down"))
    obs.done(management, ClientUpdated, CLIENT)
    obs.refused(Seen("management", "PATCH", "/register/c", None, 10.0), InvalidTokenError("x"))
    obs.refused(management, StorageError("down"))
    assert value(registry, "dcr_registrations_total", outcome="created") == 1
    assert value(registry, "dcr_registrations_total", outcome="invalid_redirect_uri") == 1
    assert value(registry, "dcr_registrations_total", outcome="too_many_requests") == 1
    assert value(registry, "dcr_registrations_total", outcome="temporarily_unavailable") == 1
    assert value(registry, "dcr_rate_limited_total", scope="ip") == 1
    assert value(registry, "dcr_storage_errors_total") == 2
    assert value(registry, "dcr_registration_duration_seconds_count", outcome="created") == 1
    assert value(registry, "dcr_registration_duration_seconds_sum", outcome="created") == 0.25
    assert value(registry, "dcr_management_requests_total", method="PUT", outcome="ok") == 1
    assert (
        value(registry, "dcr_management_requests_total", method="other", outcome="invalid_token")
        == 1
    )
    assert (
        value(
            registry,
            "dcr_management_requests_total",
            method="PUT",
            outcome="temporarily_unavailable",
        )
        == 1
    )


@pytest.mark.parametrize("wrap", [False, True], ids=["sync", "async"])
def test_metrics_client_count_reads_the_embedded_cap_counter(wrap: bool) -> None:
    registry = CollectorRegistry()
    backend = MemoryBackend("count")
    store_backend: Any = AsyncMemoryBackend(backend) if wrap else backend
    settings = Settings(max_clients=10, key_prefix="count")
    observer_from_settings(settings, metrics_registry=registry, backend=store_backend)
    assert value(registry, "dcr_clients_stored", prefix="count") == 0
    assert backend.reserve(10) and backend.reserve(10)
    assert value(registry, "dcr_clients_stored", prefix="count") == 2
    assert value(registry, "dcr_clients_max", prefix="count") == 10


def test_metrics_client_count_is_absent_without_a_cap() -> None:
    registry = CollectorRegistry()
    backend = MemoryBackend("nocap")
    observer_from_settings(Settings(key_prefix="nocap"), metrics_registry=registry, backend=backend)
    assert registry.get_sample_value("dcr_clients_stored", {"prefix": "nocap"}) is None


def test_metrics_without_prometheus_client_is_a_configuration_error() -> None:
    code = """
import sys
sys.modules["prometheus_client"] = None  # as if the extra were not installed
from dcr_middleware import ConfigurationError, Settings
from dcr_middleware.observe import observer_from_settings
try:
    observer_from_settings(Settings(metrics=True))
except ConfigurationError as exc:
    print(exc.problems[0])
else:
    raise SystemExit("no error")
"""
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DCR_METRICS: needs the prometheus_client package")
    # The package may not be on the user's index: name the requirement itself, and the extra
    # of a checkout (issue 14).
    assert "pip install 'prometheus-client>=0.20'" in result.stdout
    assert "pip install '.[metrics]'" in result.stdout
    assert "dcr-middleware[" not in result.stdout


def test_events_module_does_not_import_prometheus() -> None:
    code = (
        "import sys, dcr_middleware, dcr_middleware.core.events\n"
        "from dcr_middleware import Settings\n"
        "from dcr_middleware.observe import observer_from_settings\n"
        "observer_from_settings(Settings())\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
