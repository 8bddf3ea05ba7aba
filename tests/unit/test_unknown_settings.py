"""Unknown ``DCR_*`` variables are reported with the closest setting's name (difflib)."""

from __future__ import annotations

import logging

import pytest

from dcr_middleware.core.settings import Settings, unknown_variables


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("DCR_RATE_LIMT", "DCR_RATE_LIMT (did you mean DCR_RATE_LIMIT?)", id="typo"),
        pytest.param("DCR_REDIS_UR", "DCR_REDIS_UR (did you mean DCR_REDIS_URL?)", id="cut"),
        pytest.param("DCR_METRIC", "DCR_METRIC (did you mean DCR_METRICS?)", id="singular"),
        pytest.param("DCR_NOTHING_LIKE_IT", "DCR_NOTHING_LIKE_IT", id="no-suggestion"),
    ],
)
def test_unknown_variables_suggest_the_closest_setting(name: str, expected: str) -> None:
    assert unknown_variables({name: "x", "DCR_PATH": "/r", "HOME": "/root"}) == [expected]


def test_unknown_variables_none_for_known_ones() -> None:
    assert unknown_variables({"DCR_RATE_LIMIT": "off", "DCR_REDIS_CHECK_ON_START": "1"}) == []


def test_unknown_variables_logged_by_from_env(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
        Settings.from_env({"DCR_RATE_LIMT": "3/hour"})
    assert "DCR_RATE_LIMT (did you mean DCR_RATE_LIMIT?)" in caplog.text
