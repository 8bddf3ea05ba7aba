"""OpenID Connect ``sector_identifier_uri`` (Registration §5): the pure check, the validation,
the :func:`~dcr_middleware.core.sector.verify` step and the registration and management flows
driven by hand with a recording executor that answers the fetch itself (no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcr_middleware.core import ops, sector
from dcr_middleware.core.admission import RequestHead
from dcr_middleware.core.cimd import Fetch, document_metadata
from dcr_middleware.core.client_metadata import validate_client_metadata
from dcr_middleware.core.errors import ConfigurationError, InvalidClientMetadataError
from dcr_middleware.core.fetching import Fetched, FetchRefused
from dcr_middleware.core.management_flow import ManagementFlow
from dcr_middleware.core.ratelimit import parse_rate_limits
from dcr_middleware.core.registration_flow import RegistrationFlow
from dcr_middleware.core.settings import Settings
from dcr_middleware.drivers import run
from dcr_middleware.storage.memory import MemoryBackend

URL = "https://rp.example.org/sector.json"
WEB = "https://app.example.com/cb"
OTHER = "https://other.example.net/cb"
ON = Settings(sector_identifier_uris=True, allowed_subject_types=("public", "pairwise"))
POLICY = sector.SectorPolicy.from_settings(ON)


# --- the pure check ---


@pytest.mark.parametrize(
    ("redirect_uris", "listed"),
    [
        pytest.param([WEB], [WEB], id="one"),
        pytest.param([WEB, OTHER], [OTHER, "https://x.example/cb", WEB], id="more-listed"),
        pytest.param([], [], id="no-redirect-uri"),
        pytest.param([WEB], [WEB, WEB], id="repeated"),
    ],
)
def test_check_listed_accepts_every_redirect_uri_listed(
    redirect_uris: list[str], listed: list[str]
) -> None:
    sector.check_listed(redirect_uris, listed)


@pytest.mark.parametrize(
    ("redirect_uris", "listed", "shown"),
    [
        pytest.param([WEB], [], repr(WEB), id="empty-array"),
        pytest.param([WEB, OTHER], [WEB], repr(OTHER), id="one-missing"),
        pytest.param([WEB, OTHER], [], f"{WEB!r} (and 1 more)", id="two-missing"),
        pytest.param([WEB], [WEB + "/"], repr(WEB), id="no-normalization"),
        pytest.param([WEB], [WEB.upper()], repr(WEB), id="case-matters"),
    ],
)
def test_check_listed_refuses_a_missing_redirect_uri(
    redirect_uris: list[str], listed: list[str], shown: str
) -> None:
    with pytest.raises(InvalidClientMetadataError) as refused:
        sector.check_listed(redirect_uris, listed)
    assert refused.value.status == 400
    assert refused.value.error == "invalid_client_metadata"
    assert refused.value.description.startswith("sector_identifier_uri: ")
    assert shown in refused.value.description


def test_check_listed_shows_a_bounded_part_of_the_uri() -> None:
    long = "https://app.example.com/" + "x" * 5000
    with pytest.raises(InvalidClientMetadataError) as refused:
        sector.check_listed([long], [])
    assert len(refused.value.description) < 300


@given(st.lists(st.text(max_size=30), max_size=5), st.lists(st.text(max_size=30), max_size=5))
def test_check_listed_raises_only_our_error(redirect_uris: list[str], listed: list[str]) -> None:
    try:
        sector.check_listed(redirect_uris, listed)
    except InvalidClientMetadataError:
        assert not set(redirect_uris) <= set(listed)
    else:
        assert set(redirect_uris) <= set(listed)


# --- the settings and the validation ---


def test_sector_policy_is_none_when_off() -> None:
    assert sector.SectorPolicy.from_settings(Settings()) is None


def test_sector_policy_takes_the_cimd_bounds_and_expects_an_array() -> None:
    settings = Settings(
        sector_identifier_uris=True,
        cimd_max_bytes=2048,
        cimd_timeout=3.0,
        cimd_private_networks=("10.0.0.0/8",),
        cimd_denied_hosts=("bad.example",),
        cimd_fetch_rate_limit="2/minute",
        cimd_fetch_total_rate_limit="off",
    )
    policy = sector.SectorPolicy.from_settings(settings)
    assert policy is not None
    assert policy.fetch.expect == "array"
    assert (policy.fetch.max_bytes, policy.fetch.total_timeout) == (2048, 3.0)
    assert policy.fetch.allowed_networks == ("10.0.0.0/8",)
    assert policy.fetch.denied_hosts == ("bad.example",)
    assert policy.per_host == parse_rate_limits("2/minute")
    assert policy.total == ()


def test_validation_refuses_the_field_naming_the_setting_when_off() -> None:
    with pytest.raises(InvalidClientMetadataError) as refused:
        validate_client_metadata({"redirect_uris": [WEB], "sector_identifier_uri": URL}, Settings())
    assert "sector_identifier_uri is not supported" in refused.value.description
    assert "DCR_SECTOR_IDENTIFIER_URIS" in refused.value.description


def test_validation_keeps_the_field_when_on() -> None:
    metadata = validate_client_metadata({"redirect_uris": [WEB], "sector_identifier_uri": URL}, ON)
    assert metadata["sector_identifier_uri"] == URL


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("http://rp.example.org/sector.json", id="http"),
        pytest.param("rp.example.org/sector.json", id="relative"),
        pytest.param("https://rp.example.org/s.json#frag", id="fragment"),
        pytest.param("https://user@rp.example.org/s.json", id="userinfo"),
        pytest.param("", id="empty"),
        pytest.param(["https://rp.example.org/s.json"], id="array"),
        pytest.param(7, id="number"),
    ],
)
def test_validation_refuses_a_bad_value_when_on(value: Any) -> None:
    with pytest.raises(InvalidClientMetadataError) as refused:
        validate_client_metadata({"redirect_uris": [WEB], "sector_identifier_uri": value}, ON)
    assert refused.value.description.startswith("sector_identifier_uri: ")


def test_validation_lets_a_pairwise_client_on_two_hosts_register_a_sector() -> None:
    raw = {"redirect_uris": [WEB, OTHER], "subject_type": "pairwise"}
    with pytest.raises(InvalidClientMetadataError, match="or a sector_identifier_uri"):
        validate_client_metadata(raw, ON)
    metadata = validate_client_metadata({**raw, "sector_identifier_uri": URL}, ON)
    assert metadata["subject_type"] == "pairwise"


def test_documents_never_carry_a_sector_identifier_uri() -> None:
    document = {"client_id": URL, "redirect_uris": [WEB], "sector_identifier_uri": URL}
    for settings in (Settings(), ON):
        with pytest.raises(FetchRefused) as refused:
            document_metadata(URL, document, settings)
        assert refused.value.reason == "metadata"


def test_check_fetcher_refuses_a_store_without_one() -> None:
    with pytest.raises(ConfigurationError, match="DCR_SECTOR_IDENTIFIER_URIS"):
        sector.check_fetcher(ON, Settings())
    sector.check_fetcher(ON, ON)
    sector.check_fetcher(ON, Settings(cimd=True))  # a CIMD store has a fetcher
    sector.check_fetcher(Settings(), Settings())


# --- the verify step, driven by hand ---


def _fetched(*values: str) -> Fetched:
    return Fetched(URL, {}, 0, 0.0, values)


def _allowed(op: ops.Hit) -> Any:
    return MemoryBackend().run(op)


def test_verify_asks_nothing_without_the_field() -> None:
    flow = sector.verify({"redirect_uris": [WEB]}, POLICY)
    with pytest.raises(StopIteration):
        next(flow)


def test_verify_charges_both_budgets_then_fetches_an_array() -> None:
    flow = sector.verify({"redirect_uris": [WEB], "sector_identifier_uri": URL}, POLICY)
    per_host = next(flow)
    assert isinstance(per_host, ops.Hit) and per_host.bucket == "cimd:rp.example.org"
    total = flow.send(_allowed(per_host))
    assert isinstance(total, ops.Hit) and total.bucket == "cimd:*"  # the budgets of core/cimd.py
    fetch = flow.send(_allowed(total))
    assert isinstance(fetch, Fetch)
    assert fetch.url == URL and fetch.policy.expect == "array"
    with pytest.raises(StopIteration):
        flow.send(_fetched(WEB))


def test_verify_refuses_an_unlisted_redirect_uri() -> None:
    asked: list[Any] = []

    def execute(op: Any) -> Any:
        asked.append(op)
        return _fetched(WEB) if isinstance(op, Fetch) else _allowed(op)

    metadata = {"redirect_uris": [WEB, OTHER], "sector_identifier_uri": URL}
    with pytest.raises(InvalidClientMetadataError, match="does not list the redirect URI"):
        run(sector.verify(metadata, POLICY), execute)
    assert [type(op) for op in asked] == [ops.Hit, ops.Hit, Fetch]


def test_verify_turns_a_fetch_refusal_into_invalid_client_metadata() -> None:
    flow = sector.verify({"redirect_uris": [WEB], "sector_identifier_uri": URL}, POLICY)
    op = next(flow)
    while not isinstance(op, Fetch):
        op = flow.send(_allowed(op))
    with pytest.raises(InvalidClientMetadataError) as refused:
        flow.throw(FetchRefused("private_address", "10.1.2.3 is private"))
    description = refused.value.description
    assert description.startswith("sector_identifier_uri: could not be used")
    assert "(private_address)" in description
    assert "10.1.2.3" not in description  # the fetcher's detail is for the operator only


def test_verify_refuses_a_spent_budget_without_fetching() -> None:
    settings = Settings(sector_identifier_uris=True, cimd_fetch_total_rate_limit="1/hour")
    policy = sector.SectorPolicy.from_settings(settings)
    backend = MemoryBackend()
    asked: list[Any] = []

    def execute(op: Any) -> Any:
        asked.append(op)
        return _fetched(WEB) if isinstance(op, Fetch) else backend.run(op)

    metadata = {"redirect_uris": [WEB], "sector_identifier_uri": URL}
    run(sector.verify(metadata, policy), execute)
    asked.clear()
    with pytest.raises(InvalidClientMetadataError, match=r"\(busy\)"):
        run(sector.verify(metadata, policy), execute)
    assert not any(isinstance(op, Fetch) for op in asked)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://rp.example.org:0/s.json", id="port-0"),
        pytest.param("https://rp_example..org/s.json", id="bad-host"),
    ],
)
def test_verify_refuses_a_url_the_fetcher_refuses_before_any_operation(url: str) -> None:
    flow = sector.verify({"redirect_uris": [WEB], "sector_identifier_uri": url}, POLICY)
    with pytest.raises(InvalidClientMetadataError, match=r"\(url\)"):
        next(flow)


def test_verify_never_trusts_the_field_without_a_policy() -> None:
    flow = sector.verify({"redirect_uris": [WEB], "sector_identifier_uri": URL}, None)
    with pytest.raises(InvalidClientMetadataError, match="is not supported"):
        next(flow)


# --- the registration and management flows, driven by hand ---


def _head(method: str = "POST", token: str | None = None) -> RequestHead:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return RequestHead(method, headers, "192.0.2.7", "https", "as.example")


class Recorder:
    """Executes a flow's operations on a fresh embedded store, answers ``ReadBody`` with
    ``body`` and the fetch with ``answer`` (a list of values, or a refusal to raise)."""

    def __init__(self, body: dict[str, Any], answer: Any = (WEB,)) -> None:
        self.backend = MemoryBackend()
        self.body = json.dumps(body).encode()
        self.answer = answer
        self.asked: list[Any] = []

    def __call__(self, op: Any) -> Any:
        self.asked.append(op)
        if op is ops.READ_BODY:
            return self.body
        if isinstance(op, Fetch):
            if isinstance(self.answer, FetchRefused):
                raise self.answer
            return Fetched(op.url, {}, 0, 0.0, tuple(self.answer))
        return self.backend.run(op)

    def kinds(self) -> list[str]:
        return [type(op).__name__ for op in self.asked]


SECTOR_BODY = {"redirect_uris": [WEB], "sector_identifier_uri": URL}
SETTINGS = Settings(sector_identifier_uris=True, rate_limit="5/min")


def test_registration_flow_fetches_the_sector_after_validation_and_before_storing() -> None:
    recorder = Recorder(SECTOR_BODY)
    response = run(RegistrationFlow(SETTINGS).register(_head()), recorder)
    assert response.status == 201
    assert recorder.kinds() == ["ReadBody", "Hit", "Hit", "Fetch", "Register"]
    assert json.loads(response.body)["sector_identifier_uri"] == URL


def test_registration_flow_without_the_field_fetches_nothing() -> None:
    recorder = Recorder({"redirect_uris": [WEB]})
    assert run(RegistrationFlow(SETTINGS).register(_head()), recorder).status == 201
    assert recorder.kinds() == ["ReadBody", "Register"]


@pytest.mark.parametrize(
    ("answer", "mentions"),
    [
        pytest.param((OTHER,), repr(WEB), id="unlisted"),
        pytest.param(FetchRefused("status", "answered 404, not 200"), "(status)", id="refused"),
        pytest.param(FetchRefused("timeout", "no answer"), "(timeout)", id="timeout"),
    ],
)
def test_registration_flow_refuses_with_400_and_charges_the_refusal(
    answer: Any, mentions: str
) -> None:
    recorder = Recorder(SECTOR_BODY, answer)
    response = run(RegistrationFlow(SETTINGS).register(_head()), recorder)
    assert response.status == 400
    body = json.loads(response.body)
    assert body["error"] == "invalid_client_metadata"
    assert mentions in body["error_description"]
    # A refused registration is charged to its bucket like any refused body; nothing is stored.
    assert recorder.kinds() == ["ReadBody", "Hit", "Hit", "Fetch", "Hit"]
    assert not recorder.asked[-1].bucket.startswith("cimd:")


def test_registration_flow_refuses_the_field_without_a_fetch_when_off() -> None:
    recorder = Recorder(SECTOR_BODY)
    response = run(RegistrationFlow(Settings(rate_limit="5/min")).register(_head()), recorder)
    assert response.status == 400
    assert "DCR_SECTOR_IDENTIFIER_URIS" in json.loads(response.body)["error_description"]
    assert recorder.kinds() == ["ReadBody", "Hit"]


def test_management_flow_checks_the_sector_of_an_update_before_replacing() -> None:
    registration = RegistrationFlow(SETTINGS)
    recorder = Recorder({"redirect_uris": [WEB]})
    created = json.loads(run(registration.register(_head()), recorder).body)
    client_id, token = created["client_id"], created["registration_access_token"]
    management = ManagementFlow(SETTINGS, registration.admission)

    recorder.body = json.dumps({"client_id": client_id, **SECTOR_BODY}).encode()
    recorder.answer = (OTHER,)
    recorder.asked.clear()
    refused = run(management.handle(_head("PUT", token), client_id), recorder)
    assert refused.status == 400
    assert "sector_identifier_uri" in json.loads(refused.body)["error_description"]
    assert recorder.kinds() == ["Read", "Hit", "ReadBody", "Hit", "Hit", "Fetch"]

    recorder.answer = (WEB,)
    recorder.asked.clear()
    updated = run(management.handle(_head("PUT", token), client_id), recorder)
    assert updated.status == 200
    assert json.loads(updated.body)["sector_identifier_uri"] == URL
    assert recorder.kinds() == ["Read", "Hit", "ReadBody", "Hit", "Hit", "Fetch", "Replace"]


def test_registration_flow_refuses_a_store_without_a_fetcher_at_construction() -> None:
    with pytest.raises(ConfigurationError):
        RegistrationFlow(SETTINGS, store_settings=Settings())
