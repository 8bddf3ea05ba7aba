"""Client ID Metadata Documents in the core: the document checks, and the resolve flow driven
by hand (what it asks the store and the fetcher for, in which order, and what it caches)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dcr_middleware import Settings
from dcr_middleware.core import cimd, client_flows
from dcr_middleware.core._fetch_rules import check_client_id_url
from dcr_middleware.core.events import DocumentRefused, DocumentResolved, Event, Observer
from dcr_middleware.core.fetching import Fetched, FetchPolicy, FetchRefused
from dcr_middleware.core.ops import Hit, Lifetime
from dcr_middleware.drivers import run
from dcr_middleware.storage.memory import MemoryBackend

URL = "https://app.example/oauth/client.json"
SETTINGS = Settings(cimd=True)
DOCUMENT = {
    "client_id": URL,
    "client_name": "App",
    "redirect_uris": ["https://app.example/cb"],
    "token_endpoint_auth_method": "none",
}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"client_id": URL + "/"}, "client_id", id="trailing-slash"),
        pytest.param({"client_id": URL.upper()}, "client_id", id="not-normalized"),
        pytest.param({"client_id": None}, "client_id", id="missing"),
        pytest.param({"client_secret": "x"}, "secret", id="client-secret"),
        pytest.param({"client_secret_expires_at": 0}, "secret", id="secret-expiry"),
        pytest.param({"token_endpoint_auth_method": "client_secret_basic"}, "secret", id="basic"),
        pytest.param({"token_endpoint_auth_method": "client_secret_post"}, "secret", id="post"),
        pytest.param({"token_endpoint_auth_method": "client_secret_jwt"}, "secret", id="jwt"),
        pytest.param({"redirect_uris": ["http://app.example/cb"]}, "metadata", id="http-redirect"),
        pytest.param({"grant_types": "authorization_code"}, "metadata", id="not-a-list"),
    ],
)
def test_cimd_document_metadata_refuses(changes: dict[str, Any], reason: str) -> None:
    document = {k: v for k, v in {**DOCUMENT, **changes}.items() if v is not None}
    with pytest.raises(FetchRefused) as refused:
        cimd.document_metadata(URL, document, SETTINGS)
    assert refused.value.reason == reason


def test_cimd_document_metadata_is_the_registration_validation() -> None:
    document = {k: v for k, v in DOCUMENT.items() if k != "token_endpoint_auth_method"}
    metadata = cimd.document_metadata(URL, document, SETTINGS)
    assert metadata["token_endpoint_auth_method"] == "none"  # omitted: a public client
    assert metadata["grant_types"] == ["authorization_code"]  # the registration defaults
    assert "client_id" not in metadata


def test_cimd_is_document_url_never_matches_issued_ids() -> None:
    assert cimd.is_document_url(URL)
    assert not cimd.is_document_url("Xk3-_abc")
    assert not cimd.is_document_url("http://app.example/x")
    assert not cimd.is_document_url(None)


class Fake:
    """Executes the resolve flow's operations: the embedded store, and scripted fetches."""

    def __init__(self, *answers: Any) -> None:
        self.backend = MemoryBackend()
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, op: Any) -> Any:
        self.asked.append(type(op).__name__)
        if isinstance(op, cimd.Fetch):
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return self.backend.run(op)


def _fetched(document: dict[str, Any] = DOCUMENT, max_age: int = 600) -> Fetched:
    return Fetched(URL, document, max_age, 0.0)


def _resolve(fake: Fake, now: float, policy: cimd.DocumentPolicy | None = None) -> Any:
    events: list[Event] = []
    policy = policy or cimd.DocumentPolicy.from_settings(SETTINGS)
    client = run(cimd.resolve(URL, policy, Observer([events.append]), now), fake)
    outcome = [
        e.outcome if isinstance(e, DocumentResolved) else f"refused:{e.reason}"
        for e in events
        if isinstance(e, DocumentResolved | DocumentRefused)
    ]
    return client, outcome


def test_cimd_resolve_fetches_then_answers_from_the_cache() -> None:
    fake = Fake(_fetched())
    client, outcome = _resolve(fake, 1000.0)
    assert client.client_id == URL and client.from_document
    assert outcome == ["miss"]
    assert fake.asked == ["DocumentGet", "Hit", "Hit", "Fetch", "DocumentPut"]
    fake.asked.clear()
    again, outcome = _resolve(fake, 1500.0)
    assert again == client
    assert outcome == ["hit"]
    assert fake.asked == ["DocumentGet"]


def test_cimd_resolve_refetches_after_max_age_and_serves_stale_on_failure() -> None:
    fake = Fake(_fetched(max_age=600), FetchRefused("timeout"), _fetched(max_age=600))
    _resolve(fake, 1000.0)
    client, outcome = _resolve(fake, 1700.0)  # expired at 1600, stale until 1600 + 3600
    assert client is not None and outcome == ["stale"]
    client, outcome = _resolve(fake, 1800.0)
    assert client is not None and outcome == ["refresh"]


def test_cimd_resolve_stale_is_bounded() -> None:
    fake = Fake(_fetched(max_age=600), FetchRefused("timeout"))
    _resolve(fake, 1000.0)
    client, outcome = _resolve(fake, 1000.0 + 600 + 3600 + 1)
    assert client is None and outcome == ["refused:timeout"]


def test_cimd_resolve_caches_a_refusal_for_the_negative_ttl() -> None:
    fake = Fake(FetchRefused("private_address"), _fetched())
    assert _resolve(fake, 1000.0) == (None, ["refused:private_address"])
    assert _resolve(fake, 1059.0) == (None, ["refused:private_address"])
    assert fake.asked.count("Fetch") == 1
    client, outcome = _resolve(fake, 1061.0)
    assert client is not None and outcome == ["miss"]


def test_cimd_resolve_spent_budget_is_not_cached() -> None:
    policy = cimd.DocumentPolicy.from_settings(Settings(cimd=True, cimd_fetch_rate_limit="1/hour"))
    fake = Fake(_fetched())
    fake.backend.run(Hit("cimd:app.example", policy.per_host))  # the host's budget is spent
    assert _resolve(fake, 1000.0, policy) == (None, ["refused:busy"])
    assert "Fetch" not in fake.asked and "DocumentPut" not in fake.asked


def test_cimd_resolve_refuses_a_bad_url_without_any_operation() -> None:
    fake = Fake()
    events: list[Event] = []
    policy = cimd.DocumentPolicy.from_settings(SETTINGS)
    flow = cimd.resolve("https://app.example/a/../b", policy, Observer([events.append]), 0.0)
    assert run(flow, fake) is None
    assert fake.asked == []
    assert [e.reason for e in events if isinstance(e, DocumentRefused)] == ["url"]


def test_cimd_cache_entry_holds_the_validated_metadata_not_the_document() -> None:
    fake = Fake(_fetched({**DOCUMENT, "unknown_member": "x" * 100}))
    _resolve(fake, 1000.0)
    entry = json.loads(fake.backend.document_get(cimd.document_key(URL)) or "")
    assert entry["url"] == URL
    assert "unknown_member" not in entry["metadata"]
    assert entry["stale_until"] == entry["expires_at"] + 3600


def test_cimd_policy_from_settings() -> None:
    policy = cimd.DocumentPolicy.from_settings(
        Settings(cimd=True, cimd_private_networks=("10.0.0.0/8",), cimd_max_bytes=1000)
    )
    assert policy.fetch == FetchPolicy(
        max_bytes=1000,
        allowed_networks=("10.0.0.0/8",),
        cache_min=300,
        cache_max=86_400,
    )


def _lookup(fake: Fake, documents: cimd.Documents) -> Any:
    # A store's lookup of URL: the flow of client_flows.get, answering ResolveDocument (the
    # store's single flight) by running the full resolution with the same executor.
    def execute(op: Any) -> Any:
        if isinstance(op, cimd.ResolveDocument):
            fake.asked.append("ResolveDocument")
            return run(documents.resolve(op.url), fake)
        return fake(op)

    return run(client_flows.get(URL, Lifetime(), documents), execute)


def test_cimd_lookup_of_a_fresh_entry_skips_the_single_flight() -> None:
    # A hit is one GET in the lookup's own flow: ResolveDocument (the store's single flight: a
    # lock and a future, or an asyncio task, per lookup) is only asked for when a fetch is due.
    fake = Fake(_fetched())
    documents = cimd.Documents.from_settings(SETTINGS)
    first = _lookup(fake, documents)
    miss = ["DocumentGet", "ResolveDocument", "DocumentGet", "Hit", "Hit", "Fetch", "DocumentPut"]
    assert fake.asked == miss
    fake.asked.clear()
    for _ in range(3):
        again = _lookup(fake, documents)
        assert again is not None and again.client_id == first.client_id == URL
    assert fake.asked == ["DocumentGet"] * 3


def test_cimd_lookup_of_a_cached_refusal_skips_the_single_flight() -> None:
    fake = Fake(FetchRefused("status", "404"))
    documents = cimd.Documents.from_settings(SETTINGS)
    assert _lookup(fake, documents) is None
    fake.asked.clear()
    assert _lookup(fake, documents) is None
    assert fake.asked == ["DocumentGet"]


def test_cimd_lookup_of_a_refused_url_asks_nothing() -> None:
    fake = Fake()
    documents = cimd.Documents.from_settings(SETTINGS)
    flow = client_flows.get("https://app.example/a/../b", Lifetime(), documents)
    assert run(flow, fake) is None
    assert fake.asked == []


def test_cimd_url_check_remembers_what_passed_not_what_was_refused() -> None:
    check = check_client_id_url
    assert check(URL) is check(URL)  # the same immutable result, from the cache
    for _ in range(2):
        with pytest.raises(FetchRefused):
            check("https://app.example/a/../b")
    assert check.cache_info().maxsize == 1024
