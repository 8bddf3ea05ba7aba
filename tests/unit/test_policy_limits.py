"""Registration policy limits: the abuse-control settings, size limits on client metadata, and the
embedded store's rate-limit buckets and client cap (in memory, on a fake clock)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from dcr_middleware.core.admission import Admission
from dcr_middleware.core.client import RegisteredClient
from dcr_middleware.core.client_metadata import validate_client_metadata
from dcr_middleware.core.errors import (
    ClientCapError,
    ConfigurationError,
    DCRError,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    StorageError,
)
from dcr_middleware.core.ratelimit import Limit, parse_rate_limits
from dcr_middleware.core.settings import Settings
from dcr_middleware.storage import memory
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend
from dcr_middleware.store import AsyncClientStore, ClientStore

WEB = "https://app.example.com/cb"

# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"DCR_RATE_LIMIT": "10"}, "DCR_RATE_LIMIT", id="rate-limit-no-period"),
        pytest.param({"DCR_RATE_LIMIT": "0/minute"}, "DCR_RATE_LIMIT", id="rate-limit-zero"),
        pytest.param({"DCR_RATE_LIMIT": "10/fortnight"}, "DCR_RATE_LIMIT", id="rate-limit-unit"),
        pytest.param(
            {"DCR_TRUSTED_PROXIES": "10.0.0.0/33"}, "DCR_TRUSTED_PROXIES", id="proxy-prefix"
        ),
        pytest.param(
            {"DCR_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"},
            "DCR_TRUSTED_PROXIES",
            id="proxy-host-name",
        ),
        pytest.param(
            {"DCR_FORWARDED_HEADER": "x-real-ip"}, "DCR_FORWARDED_HEADER", id="header-unknown"
        ),
        pytest.param(
            {"DCR_FORWARDED_HEADER": "x-real-ip"},
            "DCR_FORWARDED_HEADER",
            id="header-unsupported",
        ),
        pytest.param({"DCR_MAX_CLIENTS": "-1"}, "DCR_MAX_CLIENTS", id="max-clients-negative"),
        pytest.param({"DCR_MAX_CLIENTS": "five"}, "DCR_MAX_CLIENTS", id="max-clients-word"),
        pytest.param({"DCR_MAX_REDIRECT_URIS": "0"}, "DCR_MAX_REDIRECT_URIS", id="uris-zero"),
        pytest.param({"DCR_MAX_CONTACTS": "0"}, "DCR_MAX_CONTACTS", id="contacts-zero"),
        pytest.param(
            {"DCR_MAX_STRING_LENGTH": "0"}, "DCR_MAX_STRING_LENGTH", id="string-length-zero"
        ),
        pytest.param(
            {"DCR_MAX_STRING_LENGTH": "-5"}, "DCR_MAX_STRING_LENGTH", id="string-length-negative"
        ),
    ],
)
def test_settings_abuse_controls_reject(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert [p.split(":", 1)[0] for p in caught.value.problems] == [variable]


def test_settings_abuse_controls_every_problem_in_one_error() -> None:
    env = {
        "DCR_RATE_LIMIT": "x/minute",
        "DCR_TRUSTED_PROXIES": "not-a-network",
        "DCR_FORWARDED_HEADER": "via",
        "DCR_MAX_CLIENTS": "-3",
        "DCR_MAX_REDIRECT_URIS": "0",
        "DCR_MAX_CONTACTS": "0",
        "DCR_MAX_STRING_LENGTH": "0",
    }
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    named = sorted(p.split(":", 1)[0] for p in caught.value.problems)
    assert named == sorted(env)
    for variable in env:
        assert variable in str(caught.value)


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        pytest.param({"DCR_RATE_LIMIT": "off"}, "rate_limit", "off", id="rate-limit-off"),
        pytest.param({"DCR_RATE_LIMIT": ""}, "rate_limit", "", id="rate-limit-empty"),
        pytest.param({"DCR_RATE_LIMIT": "5/15m"}, "rate_limit", "5/15m", id="rate-limit-duration"),
        pytest.param(
            {"DCR_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1, ::1, fd00::/8"},
            "trusted_proxies",
            ("10.0.0.0/8", "192.168.1.1", "::1", "fd00::/8"),
            id="proxies",
        ),
        pytest.param({"DCR_TRUSTED_PROXIES": ""}, "trusted_proxies", (), id="no-proxies"),
        pytest.param(
            {"DCR_FORWARDED_HEADER": "forwarded"}, "forwarded_header", "forwarded", id="rfc7239"
        ),
        pytest.param({"DCR_MAX_CLIENTS": "0"}, "max_clients", 0, id="no-cap"),
        pytest.param({"DCR_MAX_STRING_LENGTH": "1"}, "max_string_length", 1, id="length-one"),
    ],
)
def test_settings_abuse_controls_accept(env: dict[str, str], field: str, value: Any) -> None:
    assert getattr(Settings.from_env(env), field) == value


def test_settings_abuse_control_defaults() -> None:
    settings = Settings()
    assert parse_rate_limits(settings.rate_limit) != ()  # on by default
    assert settings.trusted_proxies == ()
    assert settings.forwarded_header == "x-forwarded-for"
    assert settings.max_clients == 0
    assert (settings.max_redirect_uris, settings.max_contacts) == (20, 10)
    assert settings.max_string_length == 2048


# --- size limits on client metadata ---------------------------------------------------------------

SMALL = Settings(
    max_redirect_uris=2,
    max_contacts=2,
    max_string_length=64,
    allowed_grant_types=("authorization_code", "client_credentials"),
    allowed_auth_methods=("client_secret_basic", "private_key_jwt"),
)


def uri(length: int) -> str:
    """An https redirect URI of exactly ``length`` characters."""
    base = "https://app.example.com/"
    return base + "a" * (length - len(base))


def text(length: int) -> str:
    return "n" * length


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"redirect_uris": [WEB, WEB + "2"]}, id="uris-at-cap"),
        pytest.param({"redirect_uris": [WEB], "contacts": ["a@x.io", "b@x.io"]}, id="contacts"),
        pytest.param({"redirect_uris": [uri(64)]}, id="uri-at-length"),
        pytest.param({"redirect_uris": [WEB], "client_name": text(64)}, id="name-at-length"),
        pytest.param({"redirect_uris": [WEB], "client_name#ja": text(64)}, id="tagged-at-length"),
        pytest.param(
            {"redirect_uris": [WEB], "x_vendor_extension": text(5000)}, id="unknown-field-ignored"
        ),
        pytest.param(
            {"redirect_uris": [WEB], "software_statement": text(5000)},
            id="software-statement-ignored",
        ),
        pytest.param({"redirect_uris": [WEB], "scope": " ".join(["read"] * 13)}, id="scope-64"),
        pytest.param(
            {"redirect_uris": [WEB], "client_uri#en-GB": "https://app.example.com/"},
            id="short-tagged-uri",
        ),
    ],
)
def test_size_limits_admit(raw: dict[str, Any]) -> None:
    registered = validate_client_metadata(raw, SMALL)
    assert not {"x_vendor_extension", "software_statement"} & registered.keys()


@pytest.mark.parametrize(
    ("raw", "error", "field"),
    [
        pytest.param(
            {"redirect_uris": [WEB, WEB + "2", WEB + "3"]},
            InvalidRedirectURIError,
            "redirect_uris",
            id="too-many-uris",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "contacts": ["a@x.io", "b@x.io", "c@x.io"]},
            InvalidClientMetadataError,
            "contacts",
            id="too-many-contacts",
        ),
        pytest.param(
            {"redirect_uris": [WEB, uri(65)]},
            InvalidRedirectURIError,
            "redirect_uris",
            id="long-uri",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "client_name": text(65)},
            InvalidClientMetadataError,
            "client_name",
            id="long-name",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "client_name#ja-Jpan-JP": text(65)},
            InvalidClientMetadataError,
            "client_name#ja-Jpan-JP",
            id="long-tagged-name",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "logo_uri#en": uri(65)},
            InvalidClientMetadataError,
            "logo_uri#en",
            id="long-tagged-uri",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "contacts": ["a@x.io", text(65)]},
            InvalidClientMetadataError,
            "contacts",
            id="long-contact",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "scope": " ".join(["read"] * 12) + " write"},
            InvalidClientMetadataError,
            "scope",
            id="long-scope",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "software_id": text(65)},
            InvalidClientMetadataError,
            "software_id",
            id="long-software-id",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "tos_uri": uri(65)},
            InvalidClientMetadataError,
            "tos_uri",
            id="long-tos-uri",
        ),
        pytest.param(
            {
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": uri(65),
            },
            InvalidClientMetadataError,
            "jwks_uri",
            id="long-jwks-uri",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "software_version": text(65)},
            InvalidClientMetadataError,
            "software_version",
            id="long-software-version",
        ),
        pytest.param(
            {"redirect_uris": [WEB], "policy_uri": uri(65)},
            InvalidClientMetadataError,
            "policy_uri",
            id="long-policy-uri",
        ),
    ],
)
def test_size_limits_refuse(raw: dict[str, Any], error: type[DCRError], field: str) -> None:
    with pytest.raises(error) as caught:
        validate_client_metadata(raw, SMALL)
    assert type(caught.value) is error
    assert caught.value.description.startswith(f"{field}:")
    expected = (
        "invalid_redirect_uri" if error is InvalidRedirectURIError else "invalid_client_metadata"
    )
    assert caught.value.error == expected


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(RSAKey.generate_key(2048), id="rsa-2048"),
        pytest.param(ECKey.generate_key("P-521"), id="ec-p521"),
    ],
)
def test_size_limits_do_not_apply_to_jwks_key_material(key: RSAKey | ECKey) -> None:
    jwks = {"keys": [key.as_dict(private=False)]}
    assert max(len(v) for v in jwks["keys"][0].values() if isinstance(v, str)) > 64
    raw = {
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
    }
    assert validate_client_metadata(raw, SMALL)["jwks"] == jwks


# --- the embedded store: rate-limit buckets -------------------------------------------------------


class FakeClock:
    """Stands in for the ``time`` module of :mod:`dcr_middleware.storage.memory`."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(memory, "time", fake)
    return fake


def test_memory_hit_admits_n_then_refuses_on_the_wall_clock() -> None:
    # 3/hour: one more is due after 20 minutes, so the real clock cannot refill during the test.
    backend, limits = MemoryBackend(), parse_rate_limits("3/hour")
    decisions = [backend.hit("ip:198.51.100.7", limits) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert decisions[3].retry_after_seconds > 1190


def test_memory_hit_buckets_are_independent(clock: FakeClock) -> None:
    backend, limits = MemoryBackend(), parse_rate_limits("1/hour")
    assert backend.hit("ip:198.51.100.7", limits).allowed
    assert not backend.hit("ip:198.51.100.7", limits).allowed
    assert backend.hit("ip:198.51.100.8", limits).allowed
    assert backend.hit("token:abc", limits).allowed
    assert MemoryBackend().hit("ip:198.51.100.7", limits).allowed  # another store, another state


def test_memory_hit_refills_one_per_interval(clock: FakeClock) -> None:
    backend, limits = MemoryBackend(), parse_rate_limits("3/minute")
    assert [backend.hit("b", limits).allowed for _ in range(4)] == [True, True, True, False]
    clock.now += 19.999
    assert not backend.hit("b", limits).allowed
    clock.now += 0.001
    assert backend.hit("b", limits).allowed
    assert not backend.hit("b", limits).allowed
    clock.now += 60
    assert [backend.hit("b", limits).allowed for _ in range(4)] == [True, True, True, False]


def test_memory_hit_refusals_charge_no_limit(clock: FakeClock) -> None:
    backend, limits = MemoryBackend(), parse_rate_limits("3/minute;5/hour")
    for _ in range(50):  # 3 admitted, 47 refused by the minute limit
        backend.hit("b", limits)
    clock.now += 60
    # Had the refusals charged the hour limit it would be exhausted; it has room for 2.
    assert [backend.hit("b", limits).allowed for _ in range(3)] == [True, True, False]
    refused = backend.hit("b", limits)
    assert refused.limit == Limit(5, 3600)


@pytest.mark.anyio
async def test_async_memory_hit_shares_the_sync_state(clock: FakeClock) -> None:
    backend, limits = MemoryBackend(), parse_rate_limits("2/hour")
    wrapped = AsyncMemoryBackend(backend)
    assert backend.hit("b", limits).allowed
    assert (await wrapped.hit("b", limits)).allowed
    assert not (await wrapped.hit("b", limits)).allowed


# --- the embedded store: the client cap -----------------------------------------------------------


@pytest.mark.parametrize("cap", [pytest.param(1, id="one"), pytest.param(5, id="five")])
def test_memory_reserve_exactly_cap_times(cap: int) -> None:
    backend = MemoryBackend()
    assert [backend.reserve(cap) for _ in range(cap + 3)] == [True] * cap + [False] * 3


def test_memory_release_gives_one_place_back() -> None:
    backend = MemoryBackend()
    assert [backend.reserve(2) for _ in range(3)] == [True, True, False]
    backend.release()
    assert [backend.reserve(2) for _ in range(2)] == [True, False]


def test_memory_release_never_goes_below_zero() -> None:
    backend = MemoryBackend()
    backend.release()
    backend.release()
    assert [backend.reserve(1) for _ in range(2)] == [True, False]


def client(n: int) -> RegisteredClient:
    return RegisteredClient(
        client_id=f"client-{n}", client_id_issued_at=1_700_000_000, metadata={"n": n}
    )


def test_client_store_cap_admits_exactly_max_clients() -> None:
    store = ClientStore(Settings(max_clients=2), backend=MemoryBackend())
    store.create(client(1))
    store.create(client(2))
    with pytest.raises(ClientCapError) as caught:
        store.create(client(3))
    assert (caught.value.status, caught.value.error) == (403, "access_denied")
    assert "2 clients" in caught.value.description
    assert store.get("client-3") is None
    assert store.get("client-2") is not None


def test_client_store_without_cap_takes_no_place() -> None:
    backend = MemoryBackend()
    store = ClientStore(Settings(max_clients=0), backend=backend)
    for n in range(5):
        store.create(client(n))
    assert backend.reserve(1)  # nothing was reserved by the uncapped creates


def test_client_store_collision_takes_no_place() -> None:
    # The cap and the create are one atomic step: an id that holds another client is refused
    # (503, retry) without taking a place, so the next registration still fits under the cap.
    backend = MemoryBackend()
    backend.create("client-1", "another client's record")
    store = ClientStore(Settings(max_clients=1), backend=backend)
    with pytest.raises(StorageError, match="already taken"):
        store.create(client(1))
    store.create(client(2))
    with pytest.raises(ClientCapError):
        store.create(client(3))


def test_client_store_retried_create_is_one_client_and_one_place() -> None:
    # Re-sending the identical record (a retry after a lost reply) succeeds without a 2nd place.
    store = ClientStore(Settings(max_clients=2), backend=MemoryBackend())
    store.create(client(1))
    store.create(client(1))
    store.create(client(2))
    with pytest.raises(ClientCapError):
        store.create(client(3))


@pytest.mark.anyio
async def test_async_client_store_cap_and_collision() -> None:
    backend = MemoryBackend()
    backend.create("client-1", "another client's record")
    store = AsyncClientStore(Settings(max_clients=2), backend=AsyncMemoryBackend(backend))
    with pytest.raises(StorageError):
        await store.create(client(1))
    await store.create(client(2))
    await store.create(client(3))
    with pytest.raises(ClientCapError):
        await store.create(client(4))
    assert await store.get("client-3") is not None


def test_memory_backend_prunes_idle_rate_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcr_middleware.storage import memory

    monkeypatch.setattr(memory, "_PRUNE_AT", 3)
    backend = memory.MemoryBackend()
    limits = (Limit(5, 1),)
    clock = [1000.0]
    monkeypatch.setattr(memory.time, "time", lambda: clock[0])
    for address in ("a", "b", "c"):
        backend.hit(f"ip:{address}", limits)
    clock[0] += 10  # every bucket is idle again
    backend.hit("ip:d", limits)
    assert set(backend._buckets) == {"ip:d"}


def test_settings_forwarded_header_any_case() -> None:
    settings = Settings.from_env({"DCR_FORWARDED_HEADER": "X-Forwarded-For"})
    assert Admission(settings).forwarded_header == "x-forwarded-for"


@pytest.mark.parametrize(
    ("raw", "period"),
    [("10/h", 3600), ("10/s", 1), ("10/m", 60), ("10/d", 86400), ("10/week", 604800)],
)
def test_parse_rate_limits_short_units(raw: str, period: int) -> None:
    assert parse_rate_limits(raw) == (Limit(10, period),)
