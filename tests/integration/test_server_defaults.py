"""The documented server commands, run as written by real uvicorn and gunicorn processes.

- ``uvicorn dcr_middleware.asgi:app`` with uvicorn's own defaults trusts ``X-Forwarded-For`` from
  ``127.0.0.1``: the middleware cannot stop that rewrite, but it notices it (the peer it is
  given is an address written in the header) and logs one warning naming the fix.
- The commands the docs give (``uvicorn --no-proxy-headers``, ``gunicorn -k
  uvicorn_worker.UvicornWorker --forwarded-allow-ips ''``) charge a loopback peer's requests to
  the peer, whatever ``X-Forwarded-For`` it sends, and log no such warning.
- The report's deep ``jwks`` member gets ``400`` from a real server (it was a ``500``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from support import JSON, Server

pytestmark = [pytest.mark.server, pytest.mark.redis]

NOTICE = "the server rewrote the client address from the x-forwarded-for header"
BODY = json.dumps({"redirect_uris": ["https://app.example.com/cb"]})
EC_PUBLIC = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}


def _env(**extra: str) -> dict[str, str]:
    return {"DCR_KEY_PREFIX": f"t{uuid.uuid4().hex[:12]}", "DCR_RATE_LIMIT": "2/hour", **extra}


def _post_from(client: httpx.Client, forwarded_for: str) -> int:
    headers = {**JSON, "X-Forwarded-For": forwarded_for}
    return client.post("/register", content=BODY, headers=headers).status_code


def test_uvicorn_default_flags_rewrite_is_reported_once(
    serve: Callable[..., Server], redis_url: str
) -> None:
    server = serve("uvicorn", redis_url, env=_env(), log_level="warning")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # uvicorn's defaults: each spoofed address is its own bucket (the hole being reported).
        assert [_post_from(client, f"198.51.100.{i}") for i in range(1, 4)] == [201] * 3
    server.stop()
    output = server.output()
    assert output.count(NOTICE) == 1, output
    assert "--no-proxy-headers" in output
    assert "DCR_TRUSTED_PROXIES is unset" in output


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        pytest.param("uvicorn", ["--no-proxy-headers"], id="uvicorn-no-proxy-headers"),
        pytest.param(
            "gunicorn-uvicorn",
            ["--forwarded-allow-ips", "", "-w", "1"],
            id="gunicorn-uvicorn-forwarded-allow-ips-empty",
        ),
    ],
)
def test_documented_commands_charge_the_peer_whatever_it_forwards(
    serve: Callable[..., Server], redis_url: str, kind: str, args: list[str]
) -> None:
    server = serve(kind, redis_url, env=_env(), log_level="warning", args=args)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = [_post_from(client, f"198.51.100.{i}") for i in range(1, 4)]
    assert statuses == [201, 201, 429]  # one bucket, the peer's: DCR_RATE_LIMIT=2/hour
    server.stop()
    assert NOTICE not in server.output()


def _deep_jwks_body(depth: int) -> str:
    key = json.dumps(EC_PUBLIC)[:-1] + ', "x-deep": ' + "[" * depth + "0" + "]" * depth + "}"
    return (
        '{"grant_types": ["client_credentials"], "response_types": [], '
        '"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [' + key + "]}}"
    )


def test_uvicorn_deep_jwks_member_is_invalid_client_metadata(
    serve: Callable[..., Server], redis_url: str
) -> None:
    env = _env(DCR_ALLOWED_AUTH_METHODS="private_key_jwt", DCR_RATE_LIMIT="off")
    server = serve("uvicorn", redis_url, env=env, args=["--no-proxy-headers"])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/register", content=_deep_jwks_body(1), headers=JSON).status_code == 201
        # Which depth parsed and then overflowed the stack in to_record (500, no event) depends
        # on how deep the server's stack is: the report saw 973. Every depth around it is tried.
        answers = {
            depth: client.post("/register", content=_deep_jwks_body(depth), headers=JSON)
            for depth in range(900, 1060)
        }
    assert {d: a.status_code for d, a in answers.items() if a.status_code != 400} == {}
    for answer in answers.values():
        assert answer.json()["error"] == "invalid_client_metadata"
        assert "levels deep" in answer.json()["error_description"]
    server.stop()
    assert "Traceback" not in server.output()
