"""The Prometheus metrics: the registration-duration histogram resolves sub-millisecond answers
(issue 14, point 10); document lookups are counted with bounded labels (issue 13)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import dcr_middleware
from dcr_middleware._metrics import DURATION_BUCKETS, Metrics
from dcr_middleware.core.events import (
    DOCUMENT_OUTCOMES,
    DOCUMENT_REASONS,
    ClientRegistered,
    DocumentRefused,
    DocumentResolved,
    document_label,
)

NAME = "dcr_registration_duration_seconds"


def _registered(duration: float) -> ClientRegistered:
    return ClientRegistered(
        endpoint="registration",
        method="POST",
        path="/register",
        client_ip="127.0.0.1",
        duration_seconds=duration,
        client_id="abc",
    )


def test_metrics_duration_buckets_span_100_microseconds_to_1_second() -> None:
    assert DURATION_BUCKETS[0] == 0.0001
    assert DURATION_BUCKETS[-1] == 10.0
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))
    assert sum(b < 0.001 for b in DURATION_BUCKETS) >= 3  # resolution below one millisecond


@pytest.mark.parametrize(
    ("duration", "first_bucket"),
    [
        pytest.param(0.00008, "0.0001", id="80us"),
        pytest.param(0.0003, "0.0005", id="300us-a-registration"),
        pytest.param(0.0009, "0.001", id="900us"),
        pytest.param(0.004, "0.005", id="4ms-with-redis"),
        pytest.param(0.7, "1.0", id="700ms"),
    ],
)
def test_metrics_registration_lands_in_its_own_bucket(duration: float, first_bucket: str) -> None:
    registry = CollectorRegistry()
    Metrics(registry).record(_registered(duration))
    labels = {"outcome": "created"}
    bounds = [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
    counts = {
        le: registry.get_sample_value(f"{NAME}_bucket", {**labels, "le": le}) for le in bounds
    }
    index = bounds.index(first_bucket)
    assert all(counts[le] == 0 for le in bounds[:index]), counts
    assert all(counts[le] == 1 for le in bounds[index:]), counts


# --- Client ID Metadata Document lookups ----------------------------------------------------


def test_metrics_count_document_lookups_by_outcome_and_refusals_by_reason() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    url = "https://app.example/client.json"
    for event in (
        DocumentResolved.of(url, "miss"),
        DocumentResolved.of(url, "hit"),
        DocumentResolved.of(url, "hit"),
        DocumentResolved.of(url, "refresh"),
        DocumentResolved.of(url, "stale", reason="timeout"),
        DocumentRefused.of(url, "private_address", cached=False),
        DocumentRefused.of(url, "private_address", cached=True),
        DocumentRefused.of(url, "busy", cached=False),
    ):
        metrics.record(event)

    def lookups(outcome: str) -> float | None:
        return registry.get_sample_value("dcr_document_lookups_total", {"outcome": outcome})

    def refusals(reason: str, cached: str) -> float | None:
        labels = {"reason": reason, "cached": cached}
        return registry.get_sample_value("dcr_document_refusals_total", labels)

    assert [lookups(o) for o in ("hit", "miss", "refresh", "stale", "refused")] == [2, 1, 1, 1, 3]
    assert refusals("private_address", "false") == 1
    assert refusals("private_address", "true") == 1
    assert refusals("busy", "false") == 1
    # A lookup is neither a registration nor a management request.
    assert (
        registry.get_sample_value(
            "dcr_management_requests_total", {"method": "GET", "outcome": "ok"}
        )
        is None
    )
    assert registry.get_sample_value("dcr_registrations_total", {"outcome": "ok"}) is None


def test_metrics_document_labels_never_hold_the_url_or_an_unknown_token() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    url = "https://app.example/\x1b[2J" + "x" * 600
    metrics.record(DocumentRefused.of(url, f"surprise {url}", cached=False))
    metrics.record(DocumentResolved.of(url, "teleported"))
    values = {
        value
        for family in registry.collect()
        if family.name.startswith("dcr_document")
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert values == {"other", "refused", "false"}


def test_metrics_document_reasons_are_every_refusal_token_the_package_raises() -> None:
    # The closed label set must not drift from the tokens the fetcher and the flow raise: a new
    # token would be counted as "other" until it is added.
    source = Path(dcr_middleware.__file__).parent
    raised = {
        token
        for path in source.rglob("*.py")
        for token in re.findall(r'FetchRefused\(\s*"([a-z_]+)"', path.read_text("utf-8"))
    }
    assert raised == DOCUMENT_REASONS
    assert document_label("busy", DOCUMENT_REASONS) == "busy"
    assert document_label(None, DOCUMENT_OUTCOMES) == "other"
