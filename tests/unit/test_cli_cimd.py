"""``dcr-middleware cimd``: how a cached entry is described (its state at a given time, and
entries this version did not write), and how its argument names an entry. The commands against
Redis are in tests/integration/test_cli_cimd.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dcr_middleware.cli import build_parser
from dcr_middleware.cli import cimd as cli_cimd
from dcr_middleware.core.cimd import ENTRY_VERSION, document_key

URL = "https://app.example/client.json"
DOCUMENT = {
    "v": ENTRY_VERSION,
    "url": URL,
    "metadata": {"client_name": "App"},
    "fetched_at": 1000.0,
    "expires_at": 1600.0,
    "stale_until": 5200.0,
}
REFUSAL = {"v": ENTRY_VERSION, "url": URL, "refused": "redirect", "expires_at": 1060.0}


@pytest.mark.parametrize(
    ("entry", "now", "state", "reason"),
    [
        pytest.param(DOCUMENT, 1000.0, "fresh", None, id="fetched-now"),
        pytest.param(DOCUMENT, 1599.9, "fresh", None, id="fresh-until-expires"),
        pytest.param(DOCUMENT, 1600.0, "stale", None, id="stale-from-expires"),
        pytest.param(DOCUMENT, 5199.0, "stale", None, id="stale-until-stale-until"),
        pytest.param(DOCUMENT, 5200.0, "expired", None, id="expired"),
        pytest.param(REFUSAL, 1000.0, "refused", "redirect", id="refused"),
        pytest.param(REFUSAL, 1060.0, "expired", "redirect", id="refusal-ended"),
    ],
)
def test_cli_cimd_describes_an_entry_by_its_state_at_a_time(
    entry: dict[str, Any], now: float, state: str, reason: str | None
) -> None:
    row = cli_cimd.described("k", json.dumps(entry), now)
    assert (row["state"], row["reason"], row["url"], row["key"]) == (state, reason, URL, "k")
    assert row["expires_at"] == entry["expires_at"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[1]", id="not-an-object"),
        pytest.param(json.dumps({**DOCUMENT, "v": ENTRY_VERSION + 1}), id="another-version"),
    ],
)
def test_cli_cimd_shows_an_entry_it_cannot_read_by_its_key(raw: str) -> None:
    row = cli_cimd.described("k", raw, 1000.0)
    assert (row.pop("key"), row.pop("state")) == ("k", "unreadable")
    assert set(row.values()) == {None}
    assert set(row) == set(cli_cimd.described("k", json.dumps(DOCUMENT), 1000.0)) - {"key", "state"}


def test_cli_cimd_tolerates_fields_of_the_wrong_type() -> None:
    odd = {**DOCUMENT, "url": 7, "expires_at": "soon", "stale_until": True, "metadata": [1]}
    row = cli_cimd.described("k", json.dumps(odd), 1000.0)
    assert row["url"] is None and row["metadata"] is None
    assert (row["state"], row["expires_at"], row["stale_until"]) == ("expired", None, None)


def test_cli_cimd_shows_a_time_it_cannot_convert_as_a_question_mark() -> None:
    assert cli_cimd._when(1e300) == "?"
    assert cli_cimd._when(None) == "-"
    assert cli_cimd._when(0) == "1970-01-01 00:00:00Z"


def test_cli_cimd_names_an_entry_by_url_or_by_key() -> None:
    key = document_key(URL)
    parser = build_parser()
    assert cli_cimd._key(URL) == key
    assert cli_cimd._key(key) == key
    assert cli_cimd._key(key.upper()) == document_key(key.upper())  # keys are lower-case hex
    assert parser.parse_args(["cimd", "show", URL]).target == URL
    evict = parser.parse_args(["cimd", "evict", "--refused"])
    assert (evict.target, evict.all, evict.refused) == (None, False, True)
