"""The registration-duration histogram resolves sub-millisecond answers (issue 14, point 10)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from dcr_middleware._metrics import DURATION_BUCKETS, Metrics
from dcr_middleware.core.events import ClientRegistered

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
