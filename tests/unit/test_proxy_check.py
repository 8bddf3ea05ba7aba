"""Noticing a server that rewrote the peer address from a forwarding header."""

from __future__ import annotations

import logging

import pytest

from dcr_middleware.core._proxy_check import RewrittenPeerCheck, rewritten_from


@pytest.mark.parametrize(
    ("peer", "headers", "found"),
    [
        pytest.param(
            "198.51.100.7", {"x-forwarded-for": "198.51.100.7"}, "x-forwarded-for", id="xff"
        ),
        pytest.param(
            "198.51.100.7",
            {"x-forwarded-for": "6.6.6.6, 198.51.100.7, 127.0.0.1"},
            "x-forwarded-for",
            id="xff-chain",
        ),
        pytest.param(
            "2001:db8::1",
            {"x-forwarded-for": "[2001:db8::1]:4711"},
            "x-forwarded-for",
            id="v6-port",
        ),
        pytest.param(
            "198.51.100.7",
            {"forwarded": 'for="198.51.100.7:80";proto=https'},
            "forwarded",
            id="fwd",
        ),
        pytest.param(
            "2001:db8::1",
            {"forwarded": 'for=192.0.2.1, for="[2001:db8::1]"'},
            "forwarded",
            id="fwd-v6",
        ),
        pytest.param("127.0.0.1", {"x-forwarded-for": "198.51.100.7"}, None, id="real-proxy-peer"),
        pytest.param("127.0.0.1", {}, None, id="no-header"),
        pytest.param(None, {"x-forwarded-for": "198.51.100.7"}, None, id="no-peer"),
        pytest.param("garbage", {"x-forwarded-for": "garbage"}, None, id="not-an-address"),
        pytest.param("198.51.100.7", {"x-forwarded-for": ", ,"}, None, id="empty-items"),
    ],
)
def test_rewritten_from_finds_the_peer_in_the_header(
    peer: str | None, headers: dict[str, str], found: str | None
) -> None:
    assert rewritten_from(peer, headers) == found


def test_check_warns_once_when_trusted_proxies_is_unset(caplog: pytest.LogCaptureFixture) -> None:
    check = RewrittenPeerCheck(())
    with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
        check.see("127.0.0.1", {"x-forwarded-for": "198.51.100.7"})  # a real proxy: nothing
        assert caplog.records == []
        for _ in range(3):
            check.see("198.51.100.7", {"x-forwarded-for": "198.51.100.7"})
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "x-forwarded-for" in record.getMessage()
    assert "--no-proxy-headers" in record.getMessage()
    assert "DCR_TRUSTED_PROXIES is unset" in record.getMessage()
    assert record.event == "peer_rewritten_by_server"  # type: ignore[attr-defined]


def test_check_is_off_with_trusted_proxies(caplog: pytest.LogCaptureFixture) -> None:
    check = RewrittenPeerCheck(("10.0.0.0/8",))
    with caplog.at_level(logging.WARNING, logger="dcr_middleware"):
        check.see("198.51.100.7", {"x-forwarded-for": "198.51.100.7"})
    assert caplog.records == []
