"""Admission: what is decided from the request head before the body is read (media type,
declared length, the rate-limit bucket and plan) and the 429 refusal."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from dcr_middleware.core.admission import Admission, RatePlan, RequestHead
from dcr_middleware.core.errors import (
    DCRError,
    InvalidRequestError,
    PayloadTooLargeError,
    RateLimitedError,
    UnsupportedMediaTypeError,
)
from dcr_middleware.core.ratelimit import Limit, RateDecision, parse_rate_limits
from dcr_middleware.core.settings import Settings
from dcr_middleware.core.tokens import Grant, TokenPolicy

JSON = "application/json"
CLIENT = "198.51.100.7"
PROXY = "10.0.0.1"


def head(peer: str | None = CLIENT, **headers: str) -> RequestHead:
    names: Mapping[str, str] = {k.replace("_", "-"): v for k, v in headers.items()}
    return RequestHead(method="POST", headers=names, peer=peer)


# --- check_head -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(head(content_type=JSON), id="json"),
        pytest.param(head(content_type="application/json; charset=utf-8"), id="json-utf-8"),
        pytest.param(head(content_type="Application/JSON ; charset=UTF8"), id="json-case"),
        pytest.param(head(content_type=JSON, content_length="100"), id="declared-length"),
        pytest.param(head(content_type=JSON, content_length="1024"), id="length-at-limit"),
        pytest.param(head(content_type=JSON, content_length=""), id="empty-length-is-chunked"),
    ],
)
def test_check_head_admits(request_head: RequestHead) -> None:
    Admission(Settings(max_body_bytes=1024)).check_head(request_head)


@pytest.mark.parametrize(
    ("request_head", "error", "status"),
    [
        pytest.param(head(), UnsupportedMediaTypeError, 415, id="no-content-type"),
        pytest.param(head(content_type="text/plain"), UnsupportedMediaTypeError, 415, id="text"),
        pytest.param(
            head(content_type="application/x-www-form-urlencoded"),
            UnsupportedMediaTypeError,
            415,
            id="form",
        ),
        pytest.param(
            head(content_type="application/json; charset=latin-1"),
            UnsupportedMediaTypeError,
            415,
            id="json-not-utf-8",
        ),
        pytest.param(
            head(content_type=JSON, content_length="1025"),
            PayloadTooLargeError,
            413,
            id="length-over-limit",
        ),
        pytest.param(
            head(content_type=JSON, content_length="99999999999999999999"),
            PayloadTooLargeError,
            413,
            id="huge-length",
        ),
        pytest.param(
            head(content_type=JSON, content_length="ten"), InvalidRequestError, 400, id="words"
        ),
        pytest.param(
            head(content_type=JSON, content_length="-1"), InvalidRequestError, 400, id="negative"
        ),
        pytest.param(
            head(content_type=JSON, content_length="1e3"), InvalidRequestError, 400, id="exponent"
        ),
        pytest.param(
            head(content_type=JSON, content_length="\u0661\u0660"),
            InvalidRequestError,
            400,
            id="non-ascii-digits",
        ),
    ],
)
def test_check_head_refuses(request_head: RequestHead, error: type[DCRError], status: int) -> None:
    with pytest.raises(error) as caught:
        Admission(Settings(max_body_bytes=1024)).check_head(request_head)
    assert caught.value.status == status


def test_check_head_media_type_is_checked_before_length() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        Admission(Settings(max_body_bytes=10)).check_head(
            head(content_type="text/plain", content_length="1000")
        )


# --- bucket ---------------------------------------------------------------------------------------

BEHIND_PROXY = Settings(trusted_proxies=("10.0.0.0/8",))
FORWARDED = Settings(trusted_proxies=("10.0.0.0/8",), forwarded_header="forwarded")
BOTH_HEADERS = {"x_forwarded_for": "203.0.113.9", "forwarded": "for=192.0.2.60"}


@pytest.mark.parametrize(
    ("settings", "request_head", "expected"),
    [
        pytest.param(Settings(), head(), f"ip:{CLIENT}", id="peer"),
        pytest.param(Settings(), head(PROXY, **BOTH_HEADERS), f"ip:{PROXY}", id="no-trust"),
        pytest.param(BEHIND_PROXY, head(PROXY), f"ip:{PROXY}", id="proxy-without-header"),
        pytest.param(
            BEHIND_PROXY, head(PROXY, **BOTH_HEADERS), "ip:203.0.113.9", id="x-forwarded-for"
        ),
        pytest.param(FORWARDED, head(PROXY, **BOTH_HEADERS), "ip:192.0.2.60", id="forwarded"),
        pytest.param(
            FORWARDED,
            head(PROXY, x_forwarded_for="203.0.113.9"),
            f"ip:{PROXY}",
            id="forwarded-setting-ignores-x-forwarded-for",
        ),
        pytest.param(
            BEHIND_PROXY,
            head(PROXY, forwarded="for=192.0.2.60"),
            f"ip:{PROXY}",
            id="x-forwarded-for-setting-ignores-forwarded",
        ),
        pytest.param(
            BEHIND_PROXY,
            head("203.0.113.5", x_forwarded_for="192.0.2.1"),
            "ip:203.0.113.5",
            id="spoof-from-untrusted-peer",
        ),
        pytest.param(
            BEHIND_PROXY,
            head(PROXY, x_forwarded_for="192.0.2.1, 2001:db8:1:2::7, 10.2.2.2"),
            "ip:2001:db8:1:2::/64",
            id="ipv6-client-slash-64",
        ),
        pytest.param(
            BEHIND_PROXY,
            head(PROXY, x_forwarded_for=""),
            f"ip:{PROXY}",
            id="empty-header",
        ),
        pytest.param(Settings(), head(None), "ip:unknown", id="unix-socket"),
    ],
)
def test_bucket(settings: Settings, request_head: RequestHead, expected: str) -> None:
    assert Admission(settings).bucket(request_head) == expected


# --- rate plan, headers, enforcement --------------------------------------------------------------


def test_rate_plan_without_token_is_the_address_bucket() -> None:
    admission = Admission(Settings(rate_limit="10/minute;200/day"))
    assert admission.rate_plan(head(), None) == RatePlan(
        f"ip:{CLIENT}", (Limit(10, 60), Limit(200, 86400)), "ip"
    )


def test_rate_plan_off_has_no_limits() -> None:
    assert Admission(Settings(rate_limit="off")).rate_plan(head(), None).limits == ()


@pytest.mark.parametrize(
    ("policy", "limits"),
    [
        pytest.param(TokenPolicy(), (Limit(60, 3600),), id="token-rate-limit"),
        pytest.param(TokenPolicy(rate_limit="2/hour"), (Limit(2, 3600),), id="own-limit"),
    ],
)
def test_rate_plan_with_token_charges_the_token(
    policy: TokenPolicy, limits: tuple[Limit, ...]
) -> None:
    grant = Grant("ab" * 32, minted=True, policy=policy)
    plan = Admission(Settings(token_rate_limit="60/hour")).rate_plan(head(), grant)
    assert plan == RatePlan(f"token:{'ab' * 16}", limits, "token")


PLAN = RatePlan(f"ip:{CLIENT}", parse_rate_limits("3/minute;5/hour"), "ip")
ALLOWED = RateDecision(True, Limit(3, 60), 2, 20)
REFUSED = RateDecision(False, Limit(3, 60), 0, 20, 20)


@pytest.mark.parametrize(
    ("plan", "decision"),
    [
        pytest.param(None, None, id="nothing-checked"),
        pytest.param(PLAN, None, id="no-decision"),
        pytest.param(None, ALLOWED, id="no-plan"),
    ],
)
def test_rate_headers_empty_without_a_decision(
    plan: RatePlan | None, decision: RateDecision | None
) -> None:
    assert Admission.rate_headers(plan, decision) == []


def test_rate_headers_allowed() -> None:
    assert Admission.rate_headers(PLAN, ALLOWED) == [
        ("RateLimit-Policy", '"ip-3/60";q=3;w=60, "ip-5/3600";q=5;w=3600'),
        ("RateLimit", '"ip-3/60";r=2;t=20'),
    ]


def test_enforce_allows() -> None:
    Admission(Settings()).enforce(PLAN, ALLOWED)


@pytest.mark.parametrize(
    ("scope", "who"),
    [
        pytest.param("ip", "this address", id="ip"),
        pytest.param("token", "this initial access token", id="token"),
    ],
)
def test_enforce_refuses_with_429_and_headers(scope: str, who: str) -> None:
    plan = RatePlan("b", PLAN.limits, scope)
    with pytest.raises(RateLimitedError) as caught:
        Admission(Settings()).enforce(plan, REFUSED)
    error = caught.value
    assert (error.status, error.error) == (429, "too_many_requests")
    assert who in error.description
    assert "20 s" in error.description
    assert error.headers() == [
        ("RateLimit-Policy", f'"{scope}-3/60";q=3;w=60, "{scope}-5/3600";q=5;w=3600'),
        ("RateLimit", f'"{scope}-3/60";r=0;t=20'),
        ("Retry-After", "20"),
    ]


def test_admission_parses_settings_once() -> None:
    admission = Admission(
        Settings(
            max_body_bytes=2048,
            rate_limit="1/second",
            trusted_proxies=("10.0.0.0/8", "::1"),
            forwarded_header="forwarded",
        )
    )
    assert admission.max_body_bytes == 2048
    assert admission.limits == (Limit(1, 1),)
    assert [str(net) for net in admission.trusted] == ["10.0.0.0/8", "::1/128"]
    assert admission.forwarded_header == "forwarded"
