"""Credentials: sizes of identifiers and secrets, hashing and constant-time comparison."""

from __future__ import annotations

import hashlib

import pytest

from dcr_middleware.core import credentials


def test_credentials_client_id_has_at_least_128_bits() -> None:
    assert credentials.CLIENT_ID_BYTES * 8 >= 128


def test_credentials_secret_has_at_least_256_bits() -> None:
    assert credentials.SECRET_BYTES * 8 >= 256


def test_credentials_secret_methods() -> None:
    assert sorted(credentials.SECRET_METHODS) == [
        "client_secret_basic",
        "client_secret_jwt",
        "client_secret_post",
    ]
    assert sorted(credentials.PLAINTEXT_SECRET_METHODS) == ["client_secret_jwt"]
    assert credentials.PLAINTEXT_SECRET_METHODS <= credentials.SECRET_METHODS


@pytest.mark.parametrize("secret", ["abc", "", "s3cr3t-\u00e9\u6f22", "x" * 1000])
def test_hash_secret_is_sha256_hex(secret: str) -> None:
    assert credentials.hash_secret(secret) == hashlib.sha256(secret.encode()).hexdigest()


def test_hash_secret_distinguishes_secrets() -> None:
    assert credentials.hash_secret("a") != credentials.hash_secret("b")


def test_hash_secret_accepts_lone_surrogate() -> None:
    digest = credentials.hash_secret("\ud800")
    assert len(digest) == 64
    assert digest != credentials.hash_secret("\ud801")


@pytest.mark.parametrize(
    ("presented", "matches"),
    [
        pytest.param("right", True, id="right"),
        pytest.param("wrong", False, id="wrong"),
        pytest.param("right ", False, id="trailing-space"),
        pytest.param("RIGHT", False, id="case"),
        pytest.param("", False, id="empty"),
        pytest.param("\udc80", False, id="lone-surrogate"),
    ],
)
def test_secret_matches(presented: str, matches: bool) -> None:
    digest = hashlib.sha256(b"right").hexdigest()
    assert credentials.secret_matches(presented, digest) is matches


def test_secret_matches_never_matches_the_digest_itself() -> None:
    digest = hashlib.sha256(b"right").hexdigest()
    assert not credentials.secret_matches(digest, digest)
