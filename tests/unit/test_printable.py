"""Operator-facing text: control, bidi and separator characters escaped, letters kept."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcr_middleware.core._printable import printable, printable_lines


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("Example App", "Example App", id="plain-ascii"),
        pytest.param("名前 café 😀", "名前 café 😀", id="letters-and-emoji-kept"),
        pytest.param("a\x1b]0;pwned\x07b", "a\\x1b]0;pwned\\x07b", id="esc-title-and-bel"),
        pytest.param("\x1b[2J\x1b[1;1H", "\\x1b[2J\\x1b[1;1H", id="erase-screen"),
        pytest.param("row\r\nfake row", "row\\x0d\\x0afake row", id="cr-lf"),
        pytest.param("tab\there", "tab\\x09here", id="tab"),
        pytest.param("\x00\x7f", "\\x00\\x7f", id="nul-and-del"),
        pytest.param("\x85\x9b31m", "\\x85\\x9b31m", id="c1-nel-and-csi"),
        pytest.param("abc\u202edcba", "abc\\u202edcba", id="rlo"),
        pytest.param("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d", id="embeddings"),
        pytest.param("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069", id="isolates"),
        pytest.param("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c", id="marks"),
        pytest.param("\u200b\u200d\ufeff", "\\u200b\\u200d\\ufeff", id="zero-width-and-bom"),
        pytest.param("a\u2028b\u2029c", "a\\u2028b\\u2029c", id="line-paragraph-separators"),
        pytest.param("\ud800x", "\\ud800x", id="lone-surrogate"),
        pytest.param("\U000e0041", "\\U000e0041", id="tag-character"),
    ],
)
def test_printable_escapes_controls_only(text: str, shown: str) -> None:
    assert printable(text) == shown


@given(st.text())
def test_printable_output_has_no_control_format_or_separator_character(text: str) -> None:
    shown = printable(text)
    assert all(unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Zl", "Zp"} for c in shown)
    # Nothing else changes: with no such character the text is returned as it is.
    if all(unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Zl", "Zp"} for c in text):
        assert shown == text


def test_printable_lines_keeps_newlines_only() -> None:
    assert printable_lines("one\x1b[2K\ntwo\r") == "one\\x1b[2K\ntwo\\x0d"
