"""The pure parts of the exposure defaults: the two-bucket rate-limit arithmetic and its
headers, the wider IPv6 bucket, the record-size check, the failure and write throttle, and the
settings that configure them."""

from __future__ import annotations

import ipaddress
import json
import secrets

import pytest

from dcr_middleware import ConfigurationError, InvalidClientMetadataError, Settings
from dcr_middleware.core.client_ip import wide_bucket
from dcr_middleware.core.errors import RateLimitedError
from dcr_middleware.core.ratelimit import (
    Limit,
    RateDecision,
    attached,
    combine,
    decide,
    detached,
    own_part,
    rate_limit_headers,
    script_args,
    wide_part,
)
from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.core.throttle import Throttle

WIDE = "ip:2001:db8:1::/48"
OWN = (Limit(2, 60),)
BOTH = (*OWN, Limit(10, 60, WIDE))


@pytest.mark.parametrize(
    ("address", "prefix", "expected"),
    [
        pytest.param("2001:db8:1:2:3:4:5:6", 48, "ip:2001:db8:1::/48", id="slash-48"),
        pytest.param("2001:db8:1:2a3::1", 56, "ip:2001:db8:1:200::/56", id="slash-56"),
        pytest.param("2001:db8:1:2:3:4:5:6", 0, None, id="off"),
        pytest.param("203.0.113.7", 48, None, id="ipv4"),
        pytest.param(None, 48, None, id="unknown-peer"),
    ],
)
def test_wide_bucket_names_the_prefix(address: str | None, prefix: int, expected: str) -> None:
    parsed = None if address is None else ipaddress.ip_address(address)
    assert wide_bucket(parsed, prefix) == expected


def test_script_args_put_each_bucket_in_its_own_group() -> None:
    assert script_args(OWN, 7) == [7, 1, "2/60", 30000, 60000]
    assert script_args(BOTH, 7) == [7, 1, "2/60", 30000, 60000, 7, 1, "10/60", 6000, 60000]
    assert script_args((), 7) == [7, 0]
    assert own_part(BOTH) == OWN
    assert wide_part(BOTH) == (WIDE, BOTH[1:])
    assert wide_part(OWN) == ("", ())


def test_headers_name_the_wider_limits_by_prefix_length() -> None:
    decision = RateDecision(False, BOTH[1], 0, 6, 6, 5500)
    headers = dict(rate_limit_headers(BOTH, decision, "ip"))
    assert headers["RateLimit-Policy"] == '"ip-2/60";q=2;w=60, "ip/48-10/60";q=10;w=60'
    assert headers["RateLimit"] == '"ip/48-10/60";r=0;t=6'
    assert headers["Retry-After"] == "6"


def decision(allowed: bool, limit: Limit, remaining: int = 0, retry_ms: int = 0) -> RateDecision:
    wait = -(-retry_ms // 1000)
    return RateDecision(allowed, limit, remaining, wait, wait, retry_ms)


@pytest.mark.parametrize(
    ("own", "wide", "winner"),
    [
        pytest.param((True, 1, 0), (True, 5, 0), "own", id="both-allow-own-fewer"),
        pytest.param((True, 5, 0), (True, 1, 0), "wide", id="both-allow-wide-fewer"),
        pytest.param((True, 3, 0), (True, 3, 0), "own", id="both-allow-tie"),
        pytest.param((True, 3, 0), (False, 0, 900), "wide", id="wide-refuses"),
        pytest.param((False, 0, 900), (True, 3, 0), "own", id="own-refuses"),
        pytest.param((False, 0, 900), (False, 0, 1900), "wide", id="both-refuse-wide-longer"),
        pytest.param((False, 0, 900), (False, 0, 900), "own", id="both-refuse-tie"),
    ],
)
def test_combine_matches_decide_over_both_buckets(
    own: tuple[bool, int, int], wide: tuple[bool, int, int], winner: str
) -> None:
    first = decision(own[0], BOTH[0], own[1], own[2])
    second = decision(wide[0], BOTH[1], wide[1], wide[2])
    assert combine(first, second) is (first if winner == "own" else second)


def test_decide_over_two_buckets_refuses_on_the_wider_one() -> None:
    # The own /64 is fresh, the /48 is full: the /48 refuses and nothing is charged.
    full = 10 * 6000
    result, tats = decide([None, full], 0, BOTH)
    assert tats is None
    assert not result.allowed
    assert result.limit == BOTH[1]
    assert result.retry_after_ms == 6000


def test_record_size_is_checked_on_the_stored_record() -> None:
    body = {"redirect_uris": ["https://app.example.com/cb"], "client_name": "n" * 2000}
    raw = json.dumps(body).encode()
    new = prepare_registration(raw, Settings(), now=1, token=secrets.token_urlsafe)
    size = len(new.client.to_record())
    settings = Settings(max_record_bytes=size)
    prepare_registration(raw, settings, now=1, token=secrets.token_urlsafe)  # exactly fits
    with pytest.raises(InvalidClientMetadataError) as raised:
        prepare_registration(
            raw, Settings(max_record_bytes=size - 1), now=1, token=secrets.token_urlsafe
        )
    assert f"stored as {size} bytes" in raised.value.description
    assert f"at most {size - 1}" in raised.value.description
    assert "largest field is client_name" in raised.value.description


def test_throttle_refuses_and_remembers_failures() -> None:
    throttle = Throttle(Settings(failure_rate_limit="2/minute"))
    bucket = throttle.failure_bucket("ip:198.51.100.1")
    assert bucket == "fail:ip:198.51.100.1"
    error = RateLimitedError("x", [])
    allowed = RateDecision(True, throttle.failure_limits[0], 1, 30)
    assert throttle.failed(bucket, allowed, 0.0, error) is error
    throttle.recall(bucket)  # nothing remembered yet
    refused = RateDecision(False, throttle.failure_limits[0], 0, 20, 20, 20_000)
    answer = throttle.failed(bucket, refused, throttle.refusals.clock(), error)
    assert isinstance(answer, RateLimitedError)
    assert answer.scope == "auth"
    assert dict(answer.headers())["Retry-After"] == "20"
    with pytest.raises(RateLimitedError) as raised:
        throttle.recall(bucket)
    assert "failed credentials" in raised.value.description
    throttle.recall("fail:ip:198.51.100.2")  # another address is not affected
    throttle.recall(None)  # throttling off


def test_throttle_off() -> None:
    throttle = Throttle(Settings(failure_rate_limit="off", management_rate_limit="off"))
    assert throttle.failure_bucket("ip:198.51.100.1") is None
    assert throttle.write_limits == ()


def test_throttle_writes() -> None:
    throttle = Throttle(Settings(management_rate_limit="3/hour"))
    assert throttle.write_bucket("abc") == "client:abc"
    ok = RateDecision(True, throttle.write_limits[0], 2, 1200)
    throttle.enforce_write(ok)
    assert dict(throttle.write_headers(ok))["RateLimit"] == '"client-3/3600";r=2;t=1200'
    with pytest.raises(RateLimitedError) as raised:
        throttle.enforce_write(RateDecision(False, throttle.write_limits[0], 0, 9, 9, 9000))
    assert raised.value.scope == "client"
    assert "changes to this client" in raised.value.description


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("max_record_bytes", 1024, id="record-too-small"),
        pytest.param("max_record_bytes", 32 * 1024 * 1024, id="record-too-large"),
        pytest.param("max_language_tagged_fields", -1, id="tags-negative"),
        pytest.param("rate_limit_ipv6_prefix", 64, id="prefix-64"),
        pytest.param("rate_limit_ipv6_prefix", 8, id="prefix-8"),
        pytest.param("rate_limit_ipv6_factor", 0, id="factor-0"),
        pytest.param("failure_rate_limit", "often", id="failure-limit"),
        pytest.param("management_rate_limit", "10/fortnight", id="write-limit"),
    ],
)
def test_exposure_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings(**{field: value})  # type: ignore[arg-type]
    assert any(p.startswith(f"DCR_{field.upper()}:") for p in raised.value.problems)


def test_detached_and_attached_round_trip_the_wider_bucket() -> None:
    # On Redis Cluster the /48 is charged alone: its limits without the bucket, the decision
    # reported back on the limit that names it.
    plain = detached(BOTH[1:])
    assert plain == (Limit(10, 60),)
    alone = RateDecision(False, plain[0], 0, 3, 3, 2500)
    assert attached(alone, WIDE).limit == BOTH[1]
