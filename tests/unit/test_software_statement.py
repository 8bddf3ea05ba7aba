"""Software statements (RFC 7591 §2.3, §3.1.1): verification, the classic JWS attacks, claims
precedence, echo, updates, and the settings that configure them.

Statements are signed here with keys generated for the test run (RSA, P-256, Ed25519) by calling
joserfc's algorithm models directly, so hand-built attack tokens go through the same helper.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from dcr_middleware.core import software_statement as ss
from dcr_middleware.core._statement_keys import SYMMETRIC_ALGS
from dcr_middleware.core.admission import Admission
from dcr_middleware.core.errors import (
    ConfigurationError,
    DCRError,
    InvalidSoftwareStatementError,
    UnapprovedSoftwareStatementError,
)
from dcr_middleware.core.management import prepare_update
from dcr_middleware.core.registration import prepare_registration
from dcr_middleware.core.settings import Settings
from dcr_middleware.core.software_statement import SoftwareStatements

NOW = 1_700_000_000
ISSUER = "https://statements.example.com"
REDIRECT = "https://app.example.com/cb"

RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
ED = OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"})
STRANGER = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # same kid, not in the set
SECRET = OctKey.generate_key(256, parameters={"kid": "hs-1"})


def public_jwks(*keys: Key) -> str:
    return json.dumps({"keys": [k.as_dict(private=False) for k in keys]})


JWKS = public_jwks(RSA, EC, ED)
ENABLED = Settings(software_statement_jwks=JWKS)
STATEMENTS = SoftwareStatements.from_settings(ENABLED)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(claims: Any, key: Key | bytes | None = RSA, alg: str = "RS256", **header: Any) -> str:
    """A compact JWS; ``key`` None gives an empty signature (``alg: none``), bytes an HMAC-SHA256
    made by hand (as an attacker would: joserfc refuses public keys as HMAC secrets)."""
    head = b64(json.dumps({"alg": alg, **header}).encode())
    body = b64(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    if key is None:
        signature = b""
    elif isinstance(key, bytes):
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    else:
        signature = JWSRegistry.algorithms[alg].sign(signing_input, key)
    return f"{head}.{body}.{b64(signature)}"


def relabel(token: str, alg: str) -> str:
    _, body, signature = token.split(".")
    return f"{b64(json.dumps({'alg': alg}).encode())}.{body}.{signature}"


def raw_token(header: bytes) -> str:
    return f"{b64(header)}.{b64(b'{}')}.AAAA"


def claims(**extra: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "client_name": "Statement Client",
        "redirect_uris": [REDIRECT],
        **extra,
    }


def register(body: dict[str, Any], settings: Settings = ENABLED) -> Any:
    counter = iter(range(100))
    return prepare_registration(
        json.dumps(body).encode(),
        settings,
        now=NOW,
        token=lambda n: f"tok{next(counter)}-{n}",
        statements=SoftwareStatements.from_settings(settings),
    )


# --- verification --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        pytest.param(RSA, "RS256", id="RS256"),
        pytest.param(RSA, "PS256", id="PS256"),
        pytest.param(EC, "ES256", id="ES256"),
        pytest.param(ED, "EdDSA", id="EdDSA"),
        pytest.param(ED, "Ed25519", id="Ed25519"),
    ],
)
def test_software_statement_verify_accepts_default_algorithms(key: Key, alg: str) -> None:
    assert STATEMENTS.verify(sign(claims(), key, alg, kid=key.kid), NOW)["iss"] == ISSUER


def test_software_statement_verify_without_kid_tries_each_key() -> None:
    assert STATEMENTS.verify(sign(claims(), EC, "ES256"), NOW)["iss"] == ISSUER


@pytest.mark.parametrize(
    "exp",
    [pytest.param(NOW - 30, id="expired-within-leeway"), pytest.param(NOW + 1, id="valid")],
)
def test_software_statement_verify_allows_small_clock_skew(exp: int) -> None:
    token = sign(claims(exp=exp, iat=NOW + 30, nbf=NOW + 30))
    assert STATEMENTS.verify(token, NOW)["exp"] == exp


def pem_secret() -> bytes:
    return RSA.as_pem(private=False)


def jwk_secret() -> bytes:
    return public_jwks(RSA).encode()


ATTACKS = [
    pytest.param(sign(claims(), None, "none"), id="alg-none-empty-signature"),
    pytest.param(sign(claims(), None, "none") + "AAAA", id="alg-none-with-signature"),
    pytest.param(sign(claims(), None, "None") + "AAAA", id="alg-None-capitalised"),
    pytest.param(sign(claims(), pem_secret(), "HS256"), id="HS256-with-public-pem"),
    pytest.param(sign(claims(), jwk_secret(), "HS256"), id="HS256-with-public-jwk"),
    pytest.param(
        sign(claims(), pem_secret(), "HS256", kid="rsa-1"), id="HS256-with-public-pem-and-kid"
    ),
    pytest.param(sign(claims(), RSA, "RS512"), id="alg-not-listed"),
    pytest.param(sign(claims(), STRANGER, "RS256", kid="rsa-1"), id="key-not-in-set"),
    pytest.param(sign(claims(), RSA, "RS256", kid="other"), id="unknown-kid"),
    pytest.param(relabel(sign(claims(), EC, "ES256"), "RS256"), id="alg-and-key-type-mismatch"),
    pytest.param(relabel(sign(claims(), RSA, "RS256"), "PS256"), id="alg-relabelled"),
    pytest.param(sign(claims(exp=NOW - 61)), id="expired"),
    pytest.param(sign(claims(nbf=NOW + 61)), id="not-yet-valid"),
    pytest.param(sign(claims(iat=NOW + 61)), id="issued-in-the-future"),
    pytest.param(sign({k: v for k, v in claims().items() if k != "iss"}), id="no-iss"),
    pytest.param(sign(claims(iss=7)), id="iss-not-a-string"),
    pytest.param(sign(claims(exp="tomorrow")), id="exp-not-a-number"),
    pytest.param(sign(b'{"iss": "a", "exp": NaN}'), id="payload-nan"),
    pytest.param(sign(b'{"iss": "a", "iss": "b"}'), id="payload-repeated-member"),
    pytest.param(sign(b"[1, 2]"), id="payload-array"),
    pytest.param(sign(b"not json"), id="payload-not-json"),
    pytest.param(sign(claims(), b64=False, crit=["b64"]), id="unencoded-payload"),
    pytest.param(sign(claims(), crit=["x-unknown"], **{"x-unknown": 1}), id="unknown-crit"),
]


@pytest.mark.parametrize("token", ATTACKS)
def test_software_statement_verify_refuses_attack(token: str) -> None:
    with pytest.raises(InvalidSoftwareStatementError) as info:
        STATEMENTS.verify(token, NOW)
    assert info.value.error == "invalid_software_statement"
    assert info.value.status == 400


def test_software_statement_verify_refuses_tampered_payload() -> None:
    head, _, signature = sign(claims()).split(".")
    forged = b64(json.dumps(claims(client_name="Evil")).encode())
    with pytest.raises(InvalidSoftwareStatementError, match="signature"):
        STATEMENTS.verify(f"{head}.{forged}.{signature}", NOW)


def test_software_statement_verify_refuses_tampered_signature() -> None:
    head, body, signature = sign(claims()).split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    with pytest.raises(InvalidSoftwareStatementError, match="signature"):
        STATEMENTS.verify(f"{head}.{body}.{flipped}", NOW)


def test_software_statement_hs256_with_public_key_refused_even_when_hs256_allowed() -> None:
    # The operator allowed HS256 with a shared key; an RSA key must still never act as a secret.
    jwks = json.dumps({"keys": [RSA.as_dict(private=False), SECRET.as_dict()]})
    policy = SoftwareStatements.from_settings(
        Settings(software_statement_jwks=jwks, software_statement_algs=("RS256", "HS256"))
    )
    assert policy.verify(sign(claims(), SECRET, "HS256"), NOW)["iss"] == ISSUER
    with pytest.raises(InvalidSoftwareStatementError):
        policy.verify(sign(claims(), pem_secret(), "HS256", kid="rsa-1"), NOW)
    with pytest.raises(InvalidSoftwareStatementError):
        policy.verify(sign(claims(), pem_secret(), "HS256"), NOW)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(42, id="number"),
        pytest.param(["a.b.c"], id="array"),
        pytest.param({"alg": "RS256"}, id="object"),
        pytest.param(True, id="boolean"),
        pytest.param("", id="empty"),
        pytest.param("a.b", id="two-segments"),
        pytest.param("a.b.c.d.e", id="five-segments-jwe"),
        pytest.param("a..c", id="empty-payload"),
        pytest.param("a+b.c.d", id="not-base64url"),
        pytest.param("A.b.c", id="base64-one-char"),
        pytest.param(raw_token(b"[1]"), id="header-array"),
        pytest.param(raw_token(b"{}"), id="header-without-alg"),
        pytest.param(raw_token(b'{"alg": 5}'), id="alg-not-a-string"),
        pytest.param(raw_token(b"nope"), id="header-not-json"),
        pytest.param(raw_token(b'"alg"'), id="header-string"),
        pytest.param(raw_token(b'{"alg": "RS256", "alg": "none"}'), id="header-repeated-alg"),
    ],
)
def test_software_statement_verify_refuses_malformed_value(value: Any) -> None:
    with pytest.raises(InvalidSoftwareStatementError):
        STATEMENTS.verify(value, NOW)


def test_software_statement_issuer_not_in_allowlist_is_unapproved() -> None:
    policy = SoftwareStatements.from_settings(
        Settings(software_statement_jwks=JWKS, software_statement_issuers=("https://other",))
    )
    with pytest.raises(UnapprovedSoftwareStatementError) as info:
        policy.verify(sign(claims()), NOW)
    assert (info.value.error, info.value.status) == ("unapproved_software_statement", 400)
    assert SoftwareStatements.from_settings(
        Settings(software_statement_jwks=JWKS, software_statement_issuers=(ISSUER,))
    ).verify(sign(claims()), NOW)


@given(st.text(max_size=300) | st.from_regex(r"\A[A-Za-z0-9_-]{0,40}(\.[A-Za-z0-9_-]{0,40}){2}\Z"))
def test_software_statement_verify_only_raises_library_errors(value: str) -> None:
    with contextlib.suppress(DCRError):
        STATEMENTS.verify(value, NOW)


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4))
def test_software_statement_verify_any_header_only_raises_library_errors(
    header: dict[str, Any],
) -> None:
    token = raw_token(json.dumps(header).encode())
    with contextlib.suppress(DCRError):
        STATEMENTS.verify(token, NOW)


# --- registration and update ---------------------------------------------------------------------


def test_software_statement_claims_take_precedence_over_body() -> None:
    statement = sign(claims(client_name="From Statement"))
    new = register(
        {"software_statement": statement, "client_name": "From Body", "client_uri": REDIRECT}
    )
    assert new.response["client_name"] == "From Statement"
    assert new.response["software_id"] == "4NRB1-0XZABZI9E6-5SM3R"
    assert new.response["client_uri"] == REDIRECT  # body fields the statement lacks remain


def test_software_statement_echoed_unmodified_and_stored() -> None:
    statement = sign(claims())
    new = register({"software_statement": statement})
    assert new.response["software_statement"] == statement
    assert new.client.metadata["software_statement"] == statement
    for claim in ("iss", "iat", "exp"):
        assert claim not in new.response


def test_software_statement_server_fields_in_claims_are_ignored() -> None:
    statement = sign(claims(client_id="chosen", registration_access_token="x", client_secret="s"))
    new = register({"software_statement": statement})
    assert new.client_id != "chosen"
    assert new.response["registration_access_token"] != "x"
    assert new.response["client_secret"] != "s"


def test_software_statement_claims_are_validated_like_body() -> None:
    statement = sign(claims(redirect_uris=["http://evil.example.com/cb"]))
    with pytest.raises(DCRError) as info:
        register({"software_statement": statement, "redirect_uris": [REDIRECT]})
    assert info.value.error == "invalid_redirect_uri"


def test_software_statement_ignored_without_keys() -> None:
    new = register(
        {"software_statement": "not even a JWS", "redirect_uris": [REDIRECT]}, Settings()
    )
    assert "software_statement" not in new.response
    assert "software_statement" not in new.client.metadata


def test_software_statement_null_is_omitted() -> None:
    new = register({"software_statement": None, "redirect_uris": [REDIRECT]})
    assert "software_statement" not in new.response


def test_software_statement_required_and_missing_is_unapproved() -> None:
    required = Settings(software_statement_jwks=JWKS, software_statement_required=True)
    with pytest.raises(UnapprovedSoftwareStatementError):
        register({"redirect_uris": [REDIRECT]}, required)
    assert register({"software_statement": sign(claims())}, required).response["client_name"]


def test_software_statement_bad_statement_is_refused_at_registration() -> None:
    with pytest.raises(InvalidSoftwareStatementError):
        register({"software_statement": sign(claims(exp=NOW - 3600))})


def test_software_statement_key_set_parsed_once_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Admission(ENABLED)

    def forbidden(raw: str, algs: tuple[str, ...]) -> Any:
        raise AssertionError("the key set was parsed per request")

    monkeypatch.setattr(ss, "load_key_set", forbidden)
    new = prepare_registration(
        json.dumps({"software_statement": sign(claims())}).encode(),
        ENABLED,
        now=NOW,
        token=lambda n: "t" * n,
        statements=gate.statements,
    )
    assert new.response["software_statement"]


def update(current: Any, body: dict[str, Any], now: int, settings: Settings = ENABLED) -> Any:
    return prepare_update(
        json.dumps({"client_id": current.client_id, **body}).encode(),
        current,
        settings,
        presented_token="tok",
        now=now,
        token=lambda n: "u" * n,
        statements=SoftwareStatements.from_settings(settings),
    )


def test_software_statement_update_keeps_stored_statement_after_expiry() -> None:
    statement = sign(claims(exp=NOW + 100))
    client = register({"software_statement": statement}).client
    later = update(client, {"software_statement": statement, "client_name": "Renamed"}, NOW + 9999)
    assert later.client.metadata["software_statement"] == statement
    assert later.client.metadata["client_name"] == "Statement Client"  # the statement still wins


def test_software_statement_update_verifies_a_new_statement() -> None:
    client = register({"software_statement": sign(claims())}).client
    newer = sign(claims(client_name="Newer"))
    assert update(client, {"software_statement": newer}, NOW).client.metadata["client_name"] == (
        "Newer"
    )
    with pytest.raises(InvalidSoftwareStatementError):
        update(client, {"software_statement": sign(claims(), STRANGER, kid="rsa-1")}, NOW)


def test_software_statement_update_without_statement_when_required_is_unapproved() -> None:
    required = Settings(software_statement_jwks=JWKS, software_statement_required=True)
    client = register({"software_statement": sign(claims())}, required).client
    with pytest.raises(UnapprovedSoftwareStatementError):
        update(client, {"redirect_uris": [REDIRECT]}, NOW, required)


# --- settings ------------------------------------------------------------------------------------


def problems_of(**kwargs: Any) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        Settings(**kwargs)
    return list(info.value.problems)


@pytest.mark.parametrize(
    ("kwargs", "variable", "mentions"),
    [
        pytest.param({"software_statement_jwks": "{not json"}, "JWKS", "JSON", id="bad-json"),
        pytest.param({"software_statement_jwks": "{}"}, "JWKS", "keys", id="no-keys-member"),
        pytest.param({"software_statement_jwks": '{"keys": []}'}, "JWKS", "keys", id="empty-keys"),
        pytest.param(
            {"software_statement_jwks": json.dumps({"keys": [RSA.as_dict(private=True)]})},
            "JWKS",
            "private",
            id="private-rsa-key",
        ),
        pytest.param(
            {"software_statement_jwks": json.dumps({"keys": [EC.as_dict(private=True)]})},
            "JWKS",
            "private",
            id="private-ec-key",
        ),
        pytest.param(
            {"software_statement_jwks": json.dumps({"keys": [SECRET.as_dict()]})},
            "JWKS",
            "oct",
            id="secret-key-without-hs-alg",
        ),
        pytest.param(
            {"software_statement_jwks": '{"keys": [{"kty": "XYZ"}]}'},
            "JWKS",
            "key type",
            id="unknown-kty",
        ),
        pytest.param(
            {"software_statement_jwks": '{"keys": [{"kty": "RSA", "n": "AQAB"}]}'},
            "JWKS",
            "",
            id="broken-rsa-key",
        ),
        pytest.param(
            {"software_statement_jwks": "/nonexistent/jwks.json"},
            "JWKS",
            "cannot read",
            id="missing-file",
        ),
        pytest.param(
            {"software_statement_jwks": JWKS, "software_statement_algs": ("RS256", "none")},
            "ALGS",
            "none",
            id="alg-none",
        ),
        pytest.param(
            {"software_statement_jwks": JWKS, "software_statement_algs": ("RS256", "HS256")},
            "JWKS",
            "oct",
            id="hs256-without-secret-key",
        ),
        pytest.param({"software_statement_algs": ("RS257",)}, "ALGS", "RS257", id="unknown-alg"),
        pytest.param({"software_statement_algs": ()}, "ALGS", "", id="no-alg"),
        pytest.param(
            {"software_statement_required": True}, "REQUIRED", "JWKS", id="required-without-keys"
        ),
        pytest.param(
            {"software_statement_issuers": (ISSUER,)}, "ISSUERS", "JWKS", id="issuers-no-keys"
        ),
    ],
)
def test_software_statement_settings_reject(
    kwargs: dict[str, Any], variable: str, mentions: str
) -> None:
    named = [
        p for p in problems_of(**kwargs) if p.startswith(f"DCR_SOFTWARE_STATEMENT_{variable}:")
    ]
    assert named, kwargs
    assert mentions in named[0]


def test_software_statement_settings_read_jwks_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(JWKS, encoding="utf-8")
    settings = Settings.from_env({"DCR_SOFTWARE_STATEMENT_JWKS": str(path)})
    policy = SoftwareStatements.from_settings(settings)
    assert policy.enabled
    assert policy.verify(sign(claims()), NOW)["iss"] == ISSUER
    assert str(path) in repr(settings)


def test_software_statement_settings_repr_hides_inline_jwks() -> None:
    jwks = json.dumps({"keys": [SECRET.as_dict()]})
    settings = Settings(software_statement_jwks=jwks, software_statement_algs=("HS256",))
    text = repr(settings)
    assert "<inline JWKS>" in text
    assert str(SECRET.as_dict()["k"]) not in text
    assert "keys=1" in repr(SoftwareStatements.from_settings(settings))


def test_software_statement_settings_defaults_are_asymmetric() -> None:
    assert set(Settings().software_statement_algs).isdisjoint({"none", *SYMMETRIC_ALGS})
    assert not SoftwareStatements.from_settings(Settings()).enabled


def test_software_statement_settings_default_matches_module_default() -> None:
    assert Settings().software_statement_algs == ss.DEFAULT_ALGS


def test_software_statement_jwks_file_not_read_again_for_derived_settings(tmp_path: Path) -> None:
    # A token policy derives Settings per request (dataclasses.replace re-validates them): the
    # key set must come from the cache, not from the file again.
    path = tmp_path / "jwks-cached.json"
    path.write_text(JWKS)
    settings = Settings(software_statement_jwks=str(path))
    path.unlink()
    derived = dataclasses.replace(settings, allowed_scopes=("read",))
    assert derived.software_statement_jwks == str(path)
