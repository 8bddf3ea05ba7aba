"""Defaults that are safe to expose (issue 11), through both middlewares on the embedded store:
the record-size and language-tag caps, IPv6 charged per /64 and per wider prefix, failed
credentials throttled per address, management writes rate-limited, and a refused registration
giving its token use back.

The transports give every request the peer ``127.0.0.1``; with that peer trusted, an
``X-Forwarded-For`` value picks the client address, as a proxy would.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from dcr_middleware import Settings

from .harness import Answer
from .test_tokens_and_cors import JSON, MINTED, SIDES, TOKEN, WRONG, Endpoint, bearer, body

pytestmark = pytest.mark.anyio

PROXY = ("127.0.0.1",)
NAME = "n" * 2000  # under DCR_MAX_STRING_LENGTH (2048)


def tagged(count: int, value: str = "x") -> dict[str, str]:
    """``count`` language-tagged client names (``client_name#x-a0`` ...)."""
    return {f"client_name#x-a{i}": value for i in range(count)}


def from_address(address: str, **headers: str) -> dict[str, str]:
    return {**JSON, "X-Forwarded-For": address, **headers}


def assert_refused_metadata(answer: Answer, *words: str) -> str:
    assert answer.status == 400, answer.body
    error = answer.json()
    assert error["error"] == "invalid_client_metadata"
    for word in words:
        assert word in error["error_description"]
    return str(error["error_description"])


def assert_too_many(answer: Answer, policy: str) -> None:
    """A ``429`` with ``Retry-After`` and RateLimit fields naming ``policy``."""
    assert answer.status == 429, answer.body
    assert answer.json()["error"] == "too_many_requests"
    assert int(answer.headers["retry-after"]) >= 1
    assert f'"{policy}"' in answer.headers["ratelimit-policy"]
    assert re.match(rf'^"{re.escape(policy)}";r=0;t=\d+$', answer.headers["ratelimit"])


# --- the record-size cap (DCR_MAX_RECORD_BYTES) ---------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_record_size_cap_refuses_a_registration_too_large_to_store(kind: str) -> None:
    # Ten 2,000-character names pass every per-field limit but make a ~20 KB record.
    endpoint = Endpoint(kind, Settings(rate_limit="off"))
    answer = await endpoint.register(content=body(**tagged(10, NAME)))
    description = assert_refused_metadata(answer, "16384")
    assert "client_name#x-a" in description  # names the largest field
    assert endpoint.clients == 0
    # Under the cap it is stored, and the stored record is within it.
    created = await endpoint.register(content=body(**tagged(7, NAME)))
    assert created.status == 201, created.body
    assert all(len(r) <= 16384 for r in endpoint.backend._records.values())


@pytest.mark.parametrize("kind", SIDES)
async def test_record_size_cap_is_configurable(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="off", max_record_bytes=4096))
    assert_refused_metadata(await endpoint.register(content=body(**tagged(2, NAME))), "4096")
    assert (await endpoint.register(content=body(**tagged(1, NAME)))).status == 201


@pytest.mark.parametrize("kind", SIDES)
async def test_record_size_cap_refuses_an_update_too_large_to_store(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="off", management_rate_limit="off"))
    created = (await endpoint.register()).json()
    path = created["registration_client_uri"].removeprefix("http://testserver")
    headers = bearer(created["registration_access_token"])
    before = dict(endpoint.backend._records)
    update = {"client_id": created["client_id"], "redirect_uris": created["redirect_uris"]}
    answer = await endpoint.send(
        "PUT", path, content=json.dumps({**update, **tagged(10, NAME)}).encode(), headers=headers
    )
    assert_refused_metadata(answer, "16384")
    assert endpoint.backend._records == before


# --- the language-tag cap (DCR_MAX_LANGUAGE_TAGGED_FIELDS) ----------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_language_tagged_fields_are_capped(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="off"))
    answer = await endpoint.register(content=body(**tagged(21)))
    assert_refused_metadata(answer, "language-tagged", "at most 20")
    mixed = {f"tos_uri#x-b{i}": "https://app.example.com/tos" for i in range(10)}
    answer = await endpoint.register(content=body(**tagged(11), **mixed))  # 21 in all
    assert_refused_metadata(answer, "at most 20")
    assert endpoint.clients == 0
    created = await endpoint.register(content=body(**tagged(20)))
    assert created.status == 201, created.body
    assert sum("#" in key for key in created.json()) == 20


@pytest.mark.parametrize("kind", SIDES)
async def test_language_tagged_fields_cap_is_configurable(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="off", max_language_tagged_fields=0))
    assert_refused_metadata(await endpoint.register(content=body(**tagged(1))), "at most 0")


# --- IPv6: per /64 and per wider prefix -----------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_ipv6_wider_prefix_caps_many_slash_64s(kind: str) -> None:
    # 2/minute per /64, so 10/minute per /48 (factor 5): twenty /64s of one /48 get ten.
    endpoint = Endpoint(kind, Settings(rate_limit="2/minute", trusted_proxies=PROXY))
    answers = [
        await endpoint.register(headers=from_address(f"2001:db8:1:{n:x}::1")) for n in range(20)
    ]
    assert [a.status for a in answers] == [201] * 10 + [429] * 10
    for refused in answers[10:]:
        assert_too_many(refused, "ip/48-10/60")
    assert answers[0].headers["ratelimit-policy"] == ('"ip-2/60";q=2;w=60, "ip/48-10/60";q=10;w=60')
    # Another /48 has its own budget; an IPv4 address is not affected.
    assert (await endpoint.register(headers=from_address("2001:db8:2:1::1"))).status == 201
    ipv4 = await endpoint.register(headers=from_address("203.0.113.7"))
    assert ipv4.status == 201
    assert ipv4.headers["ratelimit-policy"] == '"ip-2/60";q=2;w=60'
    assert endpoint.clients == 12


@pytest.mark.parametrize("kind", SIDES)
async def test_ipv6_per_slash_64_limit_still_binds_first(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="2/minute", trusted_proxies=PROXY))
    same_64 = [from_address(f"2001:db8:1:1::{n}") for n in range(1, 4)]
    statuses = [(await endpoint.register(headers=h)).status for h in same_64]
    assert statuses == [201, 201, 429]


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    ("prefix", "factor", "admitted"),
    [pytest.param(0, 5, 20, id="off"), pytest.param(56, 1, 2, id="slash-56-factor-1")],
)
async def test_ipv6_wider_prefix_is_configurable(
    kind: str, prefix: int, factor: int, admitted: int
) -> None:
    settings = Settings(
        rate_limit="2/minute",
        trusted_proxies=PROXY,
        rate_limit_ipv6_prefix=prefix,
        rate_limit_ipv6_factor=factor,
    )
    endpoint = Endpoint(kind, settings)
    answers = [
        await endpoint.register(headers=from_address(f"2001:db8:1:{n:x}::1")) for n in range(20)
    ]
    assert sum(a.status == 201 for a in answers) == admitted


# --- failed credentials per address -----------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {WRONG}", id="wrong"),
        pytest.param(None, id="missing"),
        pytest.param("Basic dXNlcjpwYXNz", id="malformed"),
    ],
)
async def test_failed_initial_access_tokens_are_throttled_per_address(
    kind: str, authorization: str | None
) -> None:
    settings = Settings(initial_access_tokens=(TOKEN,), trusted_proxies=PROXY)
    endpoint = Endpoint(kind, settings)
    extra = {} if authorization is None else {"Authorization": authorization}
    attacker = from_address("198.51.100.66", **extra)
    answers = [await endpoint.register(headers=attacker) for _ in range(21)]
    assert [a.status for a in answers] == [401] * 20 + [429]
    assert "ratelimit" not in answers[0].headers  # a 401 looks the same, failure after failure
    assert_too_many(answers[20], "auth-20/60")
    assert "failed credentials" in answers[20].json()["error_description"]
    # Refused before the token is looked at: the right token from that address waits too.
    right = await endpoint.register(headers=from_address("198.51.100.66", **bearer(TOKEN)))
    assert_too_many(right, "auth-20/60")
    # Another address is not affected.
    other = await endpoint.register(headers=from_address("198.51.100.67", **bearer(TOKEN)))
    assert other.status == 201, other.body
    assert endpoint.clients == 1


@pytest.mark.parametrize("kind", SIDES)
async def test_successful_credentials_are_never_charged(kind: str) -> None:
    settings = Settings(initial_access_tokens=(TOKEN,), token_rate_limit="off")
    endpoint = Endpoint(kind, settings)
    answers = [await endpoint.register(TOKEN) for _ in range(25)]
    assert {a.status for a in answers} == {201}
    assert not [b for b in endpoint.backend._buckets if b.startswith("fail:")]


@pytest.mark.parametrize("kind", SIDES)
async def test_open_registration_is_not_throttled_by_failures(kind: str) -> None:
    # An open server: a request without a token is no failure, and is admitted even while the
    # address is throttled for the bad tokens it sent.
    endpoint = Endpoint(kind, Settings(rate_limit="off", failure_rate_limit="2/minute"))
    statuses = [(await endpoint.register(WRONG)).status for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert (await endpoint.register()).status == 201


@pytest.mark.parametrize("kind", SIDES)
async def test_failure_throttle_off(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(initial_access_tokens=(TOKEN,), failure_rate_limit="off"))
    assert {(await endpoint.register(WRONG)).status for _ in range(25)} == {401}
    assert not endpoint.backend._buckets


async def registered(endpoint: Endpoint) -> tuple[str, dict[str, Any]]:
    created = (await endpoint.register()).json()
    return created["registration_client_uri"].removeprefix("http://testserver"), created


@pytest.mark.parametrize("kind", SIDES)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_failed_registration_access_tokens_are_throttled_per_address(
    kind: str, method: str
) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="off", trusted_proxies=PROXY))
    path, created = await registered(endpoint)
    attacker = from_address("198.51.100.66", Authorization=f"Bearer {WRONG}")
    answers = [await endpoint.send(method, path, headers=attacker) for _ in range(21)]
    assert [a.status for a in answers] == [401] * 20 + [429]
    assert_too_many(answers[20], "auth-20/60")
    # Unknown clients count too (the same answer as a wrong token, so the same charge).
    other = await endpoint.send("GET", "/register/nonexistent", headers=attacker)
    assert_too_many(other, "auth-20/60")
    token = bearer(created["registration_access_token"])
    right = await endpoint.send("GET", path, headers=from_address("198.51.100.66", **token))
    assert_too_many(right, "auth-20/60")
    assert (await endpoint.send("GET", path, headers=token)).status == 200


# --- management writes per client -------------------------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_management_writes_are_rate_limited_per_client(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(rate_limit="off", management_rate_limit="3/hour"))
    path, created = await registered(endpoint)
    update = {"client_id": created["client_id"], "redirect_uris": created["redirect_uris"]}
    token = created["registration_access_token"]
    # Wrong tokens do not use up the client's budget.
    for _ in range(5):
        wrong = await endpoint.send("PUT", path, content=b"{}", headers=bearer(WRONG))
        assert wrong.status == 401
    for remaining in (2, 1, 0):
        answer = await endpoint.send(
            "PUT", path, content=json.dumps(update).encode(), headers=bearer(token)
        )
        assert answer.status == 200, answer.body
        assert answer.headers["ratelimit"].startswith(f'"client-3/3600";r={remaining};')
        token = answer.json()["registration_access_token"]
    refused = await endpoint.send(
        "PUT", path, content=json.dumps(update).encode(), headers=bearer(token)
    )
    assert_too_many(refused, "client-3/3600")
    assert "changes to this client" in refused.json()["error_description"]
    assert_too_many(await endpoint.send("DELETE", path, headers=bearer(token)), "client-3/3600")
    # Reads are not limited; another client has its own budget.
    assert (await endpoint.send("GET", path, headers=bearer(token))).status == 200
    other_path, other = await registered(endpoint)
    deleted = await endpoint.send(
        "DELETE", other_path, headers=bearer(other["registration_access_token"])
    )
    assert deleted.status == 204
    assert deleted.headers["ratelimit"].startswith('"client-3/3600";r=2;')


# --- a refused registration gives its token use back ------------------------------------------


@pytest.mark.parametrize("kind", SIDES)
async def test_registration_refused_at_the_cap_keeps_the_token_use(kind: str) -> None:
    endpoint = Endpoint(kind, Settings(max_clients=1))
    endpoint.mint(uses=3)
    statuses = [(await endpoint.register(MINTED)).status for _ in range(3)]
    assert statuses == [201, 403, 403]
    assert endpoint.uses_left() == "2"
    assert endpoint.clients == 1
