"""OpenTelemetry metrics (``DCR_OTEL``, extra ``otel``): counted through an SDK meter provider
with an in-memory reader, and a no-op through the API alone."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from dcr_middleware import RegisteredClient, Settings, _extras, _otel
from dcr_middleware.core.errors import (
    InvalidRedirectURIError,
    InvalidTokenError,
    RateLimitedError,
    StorageError,
)
from dcr_middleware.core.events import (
    ClientRegistered,
    ClientUpdated,
    DocumentRefused,
    DocumentResolved,
    Seen,
)
from dcr_middleware.observe import observer_from_settings

ROOT = Path(__file__).resolve().parents[2]
REGISTRATION = Seen("registration", "POST", "/register", "192.0.2.7", started=10.0)
MANAGEMENT = Seen("management", "PUT", "/register/abc", None, started=10.0)
CLIENT = RegisteredClient("abc_DEF-123", 1_700_000_000, {})


def reader_and_provider() -> tuple[InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader()
    return reader, MeterProvider(metric_readers=[reader])


def points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    """``{instrument: {sorted attributes: data point}}`` of everything recorded so far."""
    data = reader.get_metrics_data()
    found: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "dcr_middleware"
            for metric in scope.metrics:
                series = found.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    series[tuple(sorted((point.attributes or {}).items()))] = point
    return found


def test_otel_counts_registrations_refusals_and_storage_errors() -> None:
    reader, provider = reader_and_provider()
    obs = observer_from_settings(Settings(), meter_provider=provider)
    obs.clock = lambda: 10.0003
    obs.done(REGISTRATION, ClientRegistered, CLIENT)
    obs.refused(REGISTRATION, InvalidRedirectURIError("bad"))
    obs.refused(REGISTRATION, RateLimitedError("slow", []), scope="token")
    obs.refused(REGISTRATION, StorageError("down"))
    obs.done(MANAGEMENT, ClientUpdated, CLIENT)
    obs.refused(MANAGEMENT, StorageError("down"))
    obs.refused(Seen("management", "PATCH", "/register/c", None, 10.0), InvalidTokenError("x"))
    got = points(reader)
    registrations = {k: p.value for k, p in got["dcr.registrations"].items()}
    assert registrations == {
        (("outcome", "created"),): 1,
        (("outcome", "invalid_redirect_uri"),): 1,
        (("outcome", "too_many_requests"),): 1,
        (("outcome", "temporarily_unavailable"),): 1,
    }
    assert {k: p.value for k, p in got["dcr.rate_limited"].items()} == {(("scope", "token"),): 1}
    assert {k: p.value for k, p in got["dcr.storage.errors"].items()} == {(): 2}
    management = {k: p.value for k, p in got["dcr.management.requests"].items()}
    assert management == {
        (("method", "PUT"), ("outcome", "ok")): 1,
        (("method", "PUT"), ("outcome", "temporarily_unavailable")): 1,
        (("method", "other"), ("outcome", "invalid_token")): 1,
    }
    created = got["dcr.registration.duration"][(("outcome", "created"),)]
    assert created.count == 1
    assert created.sum == pytest.approx(0.0003)
    # The advisory boundaries resolve a sub-millisecond registration: 0.3 ms lands in the
    # (0.25 ms, 0.5 ms] bucket, not in the first one.
    assert list(created.explicit_bounds) == list(_otel.DURATION_BUCKETS)
    assert created.bucket_counts[list(created.explicit_bounds).index(0.0005)] == 1


def test_otel_is_off_by_default_and_on_with_the_setting() -> None:
    assert observer_from_settings(Settings()).otel is None
    assert Settings.from_env({"DCR_OTEL": "true"}).otel is True
    assert isinstance(observer_from_settings(Settings(otel=True)).otel, _otel.OTelMetrics)


def test_otel_and_prometheus_count_the_same_event() -> None:
    from prometheus_client import CollectorRegistry

    reader, provider = reader_and_provider()
    registry = CollectorRegistry()
    obs = observer_from_settings(Settings(), metrics_registry=registry, meter_provider=provider)
    obs.done(REGISTRATION, ClientRegistered, CLIENT)
    assert registry.get_sample_value("dcr_registrations_total", {"outcome": "created"}) == 1
    assert points(reader)["dcr.registrations"][(("outcome", "created"),)].value == 1


def test_otel_counts_document_lookups_like_prometheus() -> None:
    from prometheus_client import CollectorRegistry

    reader, provider = reader_and_provider()
    registry = CollectorRegistry()
    obs = observer_from_settings(Settings(), metrics_registry=registry, meter_provider=provider)
    url = "https://app.example/client.json"
    obs.emit(DocumentResolved.of(url, "miss"))
    obs.emit(DocumentResolved.of(url, "hit"))
    obs.emit(DocumentResolved.of(url, "stale", reason="tls"))
    obs.emit(DocumentRefused.of(url, "redirect", cached=False))
    obs.emit(DocumentRefused.of(url, "redirect", cached=True))
    obs.emit(DocumentRefused.of(url, f"no such token {url}", cached=False))
    got = points(reader)
    lookups = {k: p.value for k, p in got["dcr.document.lookups"].items()}
    assert lookups == {
        (("outcome", "hit"),): 1,
        (("outcome", "miss"),): 1,
        (("outcome", "stale"),): 1,
        (("outcome", "refused"),): 3,
    }
    refusals = {k: p.value for k, p in got["dcr.document.refusals"].items()}
    assert refusals == {
        (("cached", False), ("reason", "redirect")): 1,
        (("cached", True), ("reason", "redirect")): 1,
        (("cached", False), ("reason", "other")): 1,  # never the URL, never an unknown token
    }
    assert "dcr.management.requests" not in got and "dcr.registrations" not in got
    for outcome, count in (("hit", 1), ("miss", 1), ("stale", 1), ("refused", 3)):
        labels = {"outcome": outcome}
        assert registry.get_sample_value("dcr_document_lookups_total", labels) == count


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_otel_without_an_sdk_is_a_no_op() -> None:
    # The API alone (no SDK importable, no provider set): the instruments are no-ops, the
    # events are still logged and hooked, and nothing breaks.
    result = _run(
        """
import sys
sys.modules["opentelemetry.sdk"] = None  # as if only opentelemetry-api were installed
from dcr_middleware import RegisteredClient, Settings
from dcr_middleware.core.errors import StorageError
from dcr_middleware.core.events import ClientRegistered, Seen
from dcr_middleware.observe import observer_from_settings
seen = []
obs = observer_from_settings(Settings.from_env({"DCR_OTEL": "true"}), on_event=seen.append)
at = Seen("registration", "POST", "/register", None, 0.0)
obs.done(at, ClientRegistered, RegisteredClient("abc", 1, {}))
obs.refused(at, StorageError("down"))
assert obs.otel is not None and len(seen) == 2
assert not any(name.startswith("opentelemetry.sdk") and sys.modules[name] is not None
               for name in sys.modules), "the SDK was imported"
print(type(obs.otel.registrations).__name__)
"""
    )
    assert result.returncode == 0, result.stderr
    assert "Proxy" in result.stdout or "NoOp" in result.stdout


def test_otel_without_the_api_is_a_configuration_error() -> None:
    result = _run(
        """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
from dcr_middleware import ConfigurationError, Settings
from dcr_middleware.observe import observer_from_settings
try:
    observer_from_settings(Settings(otel=True))
except ConfigurationError as exc:
    print(exc.problems[0])
else:
    raise SystemExit("no error")
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DCR_OTEL: needs the opentelemetry-api package")
    assert "pip install 'opentelemetry-api>=1.30'" in result.stdout
    assert "pip install '.[otel]'" in result.stdout


def test_otel_module_is_imported_only_when_enabled() -> None:
    result = _run(
        """
import sys
from dcr_middleware import Settings
from dcr_middleware.observe import observer_from_settings
observer_from_settings(Settings())
assert "opentelemetry" not in sys.modules and "dcr_middleware._otel" not in sys.modules
"""
    )
    assert result.returncode == 0, result.stderr


def test_extras_install_hints_name_the_requirements_of_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"
    ]
    for extra, requirement in _extras.EXTRAS.items():
        assert extras[extra][0] == requirement
        hint = _extras.install_hint(extra)
        assert f"pip install '{requirement}'" in hint
        assert f"pip install '.[{extra}]'" in hint
