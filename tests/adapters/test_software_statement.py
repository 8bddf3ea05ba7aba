"""Software statements (RFC 7591 §2.3, §3.1.1) through both middlewares.

One case table runs through the ASGI side and the WSGI side, each with its own embedded store;
every case must give its expected answer on both, and the two sides' answers must be identical
(client identifiers and credentials aside). RFC 7592 reads and updates show the stored statement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from dcr_middleware import Settings

from .harness import Answer, asgi_request, asgi_side, wsgi_request, wsgi_side

pytestmark = pytest.mark.anyio

P = "/register"
JSON = {"Content-Type": "application/json"}
ISSUER = "https://statements.example.com"
REDIRECT = "https://app.example.com/cb"
NOW = int(time.time())
SERVER_SET = (
    "client_id",
    "client_id_issued_at",
    "client_secret",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
)

RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec"})
ED = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})
STRANGER = ECKey.generate_key("P-256", parameters={"kid": "ec"})
JWKS = json.dumps({"keys": [k.as_dict(private=False) for k in (RSA, EC, ED)]})

ENABLED = Settings(software_statement_jwks=JWKS)
REQUIRED = Settings(software_statement_jwks=JWKS, software_statement_required=True)
ISSUERS = Settings(software_statement_jwks=JWKS, software_statement_issuers=(ISSUER,))
SETTINGS = {"off": Settings(), "on": ENABLED, "required": REQUIRED, "issuers": ISSUERS}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(claims: dict[str, Any], key: Key | bytes | None = RSA, alg: str = "RS256") -> str:
    head = b64(json.dumps({"alg": alg}).encode())
    body = b64(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    if key is None:
        signature = b""
    elif isinstance(key, bytes):  # an attacker's hand-made HMAC
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    else:
        signature = JWSRegistry.algorithms[alg].sign(signing_input, key)
    return f"{head}.{body}.{b64(signature)}"


def claims(**extra: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "software_id": "statement-software",
        "client_name": "From Statement",
        "redirect_uris": [REDIRECT],
        **extra,
    }


GOOD = sign(claims())
TAMPERED = ".".join(
    (GOOD.split(".")[0], b64(json.dumps(claims(client_name="Evil")).encode()), GOOD.split(".")[2])
)


@dataclass(frozen=True)
class Case:
    settings: str
    body: dict[str, Any]
    status: int
    error: str | None = None
    client_name: str | None = None


CASES = [
    pytest.param(Case("on", {"software_statement": GOOD}, 201, None, "From Statement"), id="RS256"),
    pytest.param(Case("on", {"software_statement": sign(claims(), EC, "ES256")}, 201), id="ES256"),
    pytest.param(Case("on", {"software_statement": sign(claims(), ED, "EdDSA")}, 201), id="EdDSA"),
    pytest.param(
        Case(
            "on",
            {"software_statement": GOOD, "client_name": "From Body"},
            201,
            None,
            "From Statement",
        ),
        id="statement-wins-over-body",
    ),
    pytest.param(
        Case(
            "off",
            {"software_statement": "junk", "redirect_uris": [REDIRECT], "client_name": "Body"},
            201,
            None,
            "Body",
        ),
        id="ignored-without-keys",
    ),
    pytest.param(Case("on", {"redirect_uris": [REDIRECT]}, 201), id="optional-and-absent"),
    pytest.param(
        Case("required", {"redirect_uris": [REDIRECT]}, 400, "unapproved_software_statement"),
        id="required-and-absent",
    ),
    pytest.param(Case("required", {"software_statement": GOOD}, 201), id="required-and-present"),
    pytest.param(Case("issuers", {"software_statement": GOOD}, 201), id="issuer-allowed"),
    pytest.param(
        Case(
            "issuers",
            {"software_statement": sign(claims(iss="https://other.example"))},
            400,
            "unapproved_software_statement",
        ),
        id="issuer-not-allowed",
    ),
    pytest.param(
        Case(
            "on",
            {"software_statement": sign(claims(), None, "none")},
            400,
            "invalid_software_statement",
        ),
        id="alg-none",
    ),
    pytest.param(
        Case(
            "on",
            {"software_statement": sign(claims(), RSA.as_pem(private=False), "HS256")},
            400,
            "invalid_software_statement",
        ),
        id="HS256-with-public-key",
    ),
    pytest.param(
        Case(
            "on",
            {"software_statement": sign(claims(exp=NOW - 3600))},
            400,
            "invalid_software_statement",
        ),
        id="expired",
    ),
    pytest.param(
        Case(
            "on",
            {"software_statement": sign(claims(iat=NOW + 3600))},
            400,
            "invalid_software_statement",
        ),
        id="issued-in-the-future",
    ),
    pytest.param(
        Case("on", {"software_statement": TAMPERED}, 400, "invalid_software_statement"),
        id="tampered-payload",
    ),
    pytest.param(
        Case(
            "on",
            {"software_statement": sign(claims(), STRANGER, "ES256")},
            400,
            "invalid_software_statement",
        ),
        id="key-not-in-set",
    ),
    pytest.param(
        Case("on", {"software_statement": 42}, 400, "invalid_software_statement"),
        id="not-a-string",
    ),
    pytest.param(
        Case("on", {"software_statement": "a.b"}, 400, "invalid_software_statement"),
        id="not-compact",
    ),
    pytest.param(
        Case(
            "on",
            {"software_statement": sign(claims(redirect_uris=["http://evil.example/cb"]))},
            400,
            "invalid_redirect_uri",
        ),
        id="statement-claims-validated",
    ),
]


async def post(kind: str, settings: Settings, body: dict[str, Any]) -> Answer:
    content = json.dumps(body).encode()
    if kind == "asgi":
        app = asgi_side(settings).app
        return await asgi_request(app, "POST", P, content=content, headers=JSON)
    return wsgi_request(wsgi_side(settings).app, "POST", P, content=content, headers=JSON)


def comparable(answer: Answer) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = answer.json()
    return answer.status, {k: v for k, v in body.items() if k not in SERVER_SET}


@pytest.mark.parametrize("case", CASES)
async def test_software_statement_case_table_both_middlewares(case: Case) -> None:
    settings = SETTINGS[case.settings]
    answers = [await post(kind, settings, case.body) for kind in ("asgi", "wsgi")]
    for answer in answers:
        assert answer.status == case.status, answer.body
        body = answer.json()
        if case.error is not None:
            assert body["error"] == case.error
            assert set(body) == {"error", "error_description"}
            continue
        sent = case.body.get("software_statement")
        if case.settings != "off" and sent is not None:
            # RFC 7591 §3.2.1: returned unmodified.
            assert body["software_statement"] == sent
        else:
            assert "software_statement" not in body
        if case.client_name is not None:
            assert body["client_name"] == case.client_name
    assert comparable(answers[0]) == comparable(answers[1])


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
async def test_software_statement_management_shows_and_keeps_statement(kind: str) -> None:
    side = asgi_side(ENABLED) if kind == "asgi" else wsgi_side(ENABLED)

    async def send(method: str, path: str, token: str | None = None, body: Any = None) -> Answer:
        headers = dict(JSON)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = None if body is None else json.dumps(body).encode()
        if kind == "asgi":
            return await asgi_request(side.app, method, path, content=content, headers=headers)
        return wsgi_request(side.app, method, path, content=content, headers=headers)

    created = (await send("POST", P, body={"software_statement": GOOD})).json()
    client_id, token = created["client_id"], created["registration_access_token"]
    read = await send("GET", f"{P}/{client_id}", token)
    assert read.status == 200
    assert read.json()["software_statement"] == GOOD
    resent = {k: v for k, v in read.json().items() if k not in SERVER_SET[1:]}
    updated = await send("PUT", f"{P}/{client_id}", token, {**resent, "client_name": "Renamed"})
    assert updated.status == 200, updated.body
    assert updated.json()["software_statement"] == GOOD
    assert updated.json()["client_name"] == "From Statement"  # the statement still wins
    token = updated.json()["registration_access_token"]
    bad = {**resent, "software_statement": TAMPERED}
    refused = await send("PUT", f"{P}/{client_id}", token, bad)
    assert refused.status == 400
    assert refused.json()["error"] == "invalid_software_statement"
    stored = (await send("GET", f"{P}/{client_id}", token)).json()
    assert stored["software_statement"] == GOOD
