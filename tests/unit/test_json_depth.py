"""The JSON nesting limit, checked on the text before any parser or validator recurses."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcr_middleware.core._json_depth import MAX_DEPTH, too_deep
from dcr_middleware.core._statement_keys import strict_object
from dcr_middleware.core.errors import InvalidClientMetadataError
from dcr_middleware.core.registration import parse_json_object


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    """``depth`` levels in total: the top-level object, then ``depth - 1`` arrays."""
    inner = opener * (depth - 1) + closer * (depth - 1)
    return '{"x-deep":' + inner + "}" if depth > 1 else "{}"


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        pytest.param("{}", False, id="empty-object"),
        pytest.param(nested(MAX_DEPTH), False, id="at-the-limit"),
        pytest.param(nested(MAX_DEPTH + 1), True, id="one-past-the-limit"),
        pytest.param(nested(973), True, id="the-973-arrays-of-the-report"),
        pytest.param('{"a":' + '{"b":' * 40 + "1" + "}" * 41, True, id="objects-nest-too"),
        pytest.param('{"a":"' + "[" * 100 + '"}', False, id="brackets-inside-a-string"),
        pytest.param('{"a":"\\"' + "[" * 100 + '"}', False, id="escaped-quote-in-string"),
        pytest.param('{"a":"\\\\",' + '"b":' + "[" * 40 + "]" * 40 + "}", True, id="escaped-bs"),
        pytest.param("[" * 20 + "]" * 20 + "[" * 20 + "]" * 20, False, id="wide-not-deep"),
        pytest.param('{"a":"' + "[" * 100, True, id="unterminated-string-counts"),
        pytest.param("]" * 100 + "[" * 20, False, id="stray-closers-do-not-credit"),
        pytest.param("]" * 100 + "[" * 40, True, id="stray-closers-then-deep"),
    ],
)
def test_too_deep_counts_only_structural_brackets(text: str, deep: bool) -> None:
    assert too_deep(text) is deep


@given(
    st.recursive(st.none() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_too_deep_agrees_with_the_value_depth(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    text = json.dumps(value)
    for limit in (0, 1, 2, 3, 5):
        assert too_deep(text, limit) is (depth(value) > limit)


def test_parse_json_object_refuses_deep_body_as_invalid_client_metadata() -> None:
    with pytest.raises(InvalidClientMetadataError, match="more than 32 levels deep"):
        parse_json_object(nested(MAX_DEPTH + 1).encode())


def test_parse_json_object_accepts_body_at_the_limit() -> None:
    value = parse_json_object(nested(MAX_DEPTH).encode())["x-deep"]
    levels = 1
    while value:
        value, levels = value[0], levels + 1
    assert levels == MAX_DEPTH - 1


def test_parse_json_object_refuses_bad_utf8_before_depth() -> None:
    with pytest.raises(InvalidClientMetadataError, match="not valid UTF-8 JSON"):
        parse_json_object(b'{"a":"\xff"}' + b"[" * 100)


@pytest.mark.parametrize("text", [nested(MAX_DEPTH + 1), nested(MAX_DEPTH + 1).encode()])
def test_strict_object_refuses_deep_text(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="the payload nests more than 32 levels deep"):
        strict_object(text, "the payload")
