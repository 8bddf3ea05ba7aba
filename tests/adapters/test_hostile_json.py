"""Hostile JSON through both middlewares: registration (RFC 7591) and update (RFC 7592 ``PUT``).

Every body is generated as JSON *text*, so it can hold what a Python value cannot: ``NaN`` and
``Infinity`` literals, repeated member names, escaped lone surrogates, integers of thousands of
digits, numbers that overflow a float, nesting far past the limit, very wide arrays. Each body is
sent to :class:`DCRMiddleware` (``httpx.ASGITransport``) and to :class:`DCRWSGIMiddleware`
(``httpx.WSGITransport`` under ``wsgiref.validate``). The properties:

- the answer is 2xx or 4xx, never 5xx, and the same status on both sides;
- a 4xx is an RFC 7591 error object;
- exactly one event is emitted per answer, so every refusal is seen (and counted).

The ``slow`` variant runs more examples with bigger bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcr_middleware import AsyncClientStore, ClientStore, DCRMiddleware, DCRWSGIMiddleware, Settings
from dcr_middleware.core._json_depth import MAX_DEPTH
from dcr_middleware.core.events import Event
from dcr_middleware.storage.memory import AsyncMemoryBackend, MemoryBackend

from .cases import EC_PUBLIC
from .harness import Answer, asgi_request, unreachable_asgi, unreachable_wsgi, wsgi_request

CONFIG = Settings(
    allowed_auth_methods=("none", "client_secret_basic", "private_key_jwt"),
    rate_limit="off",
    # The update properties send hundreds of PUTs for one client and of 4xx answers from one
    # address: the per-client write limit and the failure throttle have tests of their own.
    management_rate_limit="off",
    failure_rate_limit="off",
    max_body_bytes=256 * 1024,
)
HEADERS = {"Content-Type": "application/json"}
REDIRECT = '"https://app.example.com/cb"'

# --- JSON text ------------------------------------------------------------------------------------

_scalars = st.one_of(
    st.sampled_from(
        [
            "null",
            "true",
            "false",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-1e999",
            "1e-400",
            "-0",
            "0.0",
            "1E+2",
            '""',
            '"\\ud800"',  # a lone high surrogate, escaped
            '"\\udfff tail"',  # a lone low surrogate, escaped
            '"\\ud83d\\ude00"',  # a valid pair
            '"\\u0000\\u001b[2J\\u0007"',  # NUL, an ANSI erase, BEL
            '"\u202eevil\u2066"',  # raw bidi controls
            '"\\u202e\\u2069"',
            '"\ufeff"',
            '"x\\/y"',
        ]
    ),
    st.integers().map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),  # past int's digit limit
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=40).map(json.dumps),
    st.text(max_size=40).map(lambda t: json.dumps(t, ensure_ascii=False)),
)

_names = st.one_of(
    st.sampled_from(
        [
            "redirect_uris",
            "client_name",
            "client_name#fr",
            "client_name#\u202e",
            "grant_types",
            "response_types",
            "token_endpoint_auth_method",
            "jwks",
            "jwks_uri",
            "scope",
            "contacts",
            "software_id",
            "software_statement",
            "client_id",
            "x-ext",
        ]
    ),
    st.text(max_size=20),
).map(lambda name: json.dumps(name, ensure_ascii=False))


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(members: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{name}:{value}" for name, value in members) + "}"


_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(_names, inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)


def _deep(depth: int, core: str) -> str:
    return "[" * depth + core + "]" * depth


# Values that must get through to the deep parts of validation: a valid EC key with an extra
# member nested deep (the report's 500), a JWKS, redirect URIs, wide arrays.
_ec_key = json.dumps(EC_PUBLIC)
_special = st.one_of(
    st.integers(min_value=1, max_value=1500).map(
        lambda n: '{"keys":[' + _ec_key[:-1] + ',"x-deep":' + _deep(n, "0") + "}]}"
    ),
    st.integers(min_value=1, max_value=3000).map(lambda n: _deep(n, "")),
    st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(min_value=1, max_value=4000).map(lambda n: _array(["0"] * n)),
    st.integers(min_value=1, max_value=500).map(lambda n: _array([REDIRECT] * n)),
    st.just('{"keys":[' + _ec_key + "]}"),
    st.just(_array([REDIRECT])),
)

_members = st.lists(st.tuples(_names, st.one_of(_values, _special)), max_size=6)

_base = st.sampled_from(
    [
        [],
        [('"redirect_uris"', _array([REDIRECT]))],
        [
            ('"grant_types"', '["client_credentials"]'),
            ('"response_types"', "[]"),
            ('"token_endpoint_auth_method"', '"private_key_jwt"'),
        ],
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> str:
    """A JSON-ish text: mostly an object with plausible members, sometimes anything at all."""
    shape = draw(st.integers(0, 9))
    if shape == 0:
        anything: str = draw(st.one_of(_values, _special))
        return anything
    members = draw(_base) + draw(_members)
    if shape == 1:
        members = members[::-1]  # a repeated member now comes before its twin
    return _object(members)


# --- driving both sides ---------------------------------------------------------------------------


class Sides:
    """One ASGI and one WSGI middleware, each with its own store and a list of its events."""

    def __init__(self) -> None:
        self.asgi_events: list[Event] = []
        self.wsgi_events: list[Event] = []
        backend = MemoryBackend(CONFIG.key_prefix)
        self.asgi = DCRMiddleware(
            unreachable_asgi,
            CONFIG,
            store=AsyncClientStore(CONFIG, backend=AsyncMemoryBackend(backend)),
            on_event=self.asgi_events.append,
        )
        wsgi_backend = MemoryBackend(CONFIG.key_prefix)
        self.wsgi = DCRWSGIMiddleware(
            unreachable_wsgi,
            CONFIG,
            store=ClientStore(CONFIG, backend=wsgi_backend),
            on_event=self.wsgi_events.append,
        )
        # One registered client per side, for RFC 7592 PUT.
        seed = b'{"redirect_uris":[' + REDIRECT.encode() + b"]}"
        self.asgi_client = self._asgi("POST", "/register", seed, {}).json()
        self.wsgi_client = wsgi_request(
            self.wsgi, "POST", "/register", content=seed, headers=HEADERS
        ).json()

    def _asgi(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return asyncio.run(
            asgi_request(self.asgi, method, path, content=body, headers={**HEADERS, **headers})
        )

    def register(self, body: bytes) -> tuple[Answer, Answer]:
        asgi = self._asgi("POST", "/register", body, {})
        wsgi = wsgi_request(self.wsgi, "POST", "/register", content=body, headers=HEADERS)
        return asgi, wsgi

    def update(self, members: Callable[[str], bytes]) -> tuple[Answer, Answer]:
        answers = []
        for client, send in (
            (self.asgi_client, self._asgi),
            (self.wsgi_client, self._wsgi),
        ):
            bearer = {"Authorization": f"Bearer {client['registration_access_token']}"}
            path = f"/register/{client['client_id']}"
            answer = send("PUT", path, members(client["client_id"]), bearer)
            if answer.status == 200 and "registration_access_token" in answer.json():
                client["registration_access_token"] = answer.json()["registration_access_token"]
            answers.append(answer)
        return answers[0], answers[1]

    def _wsgi(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        return wsgi_request(self.wsgi, method, path, content=body, headers={**HEADERS, **headers})


def check(asgi: Answer, wsgi: Answer, sides: Sides, before: tuple[int, int]) -> None:
    """2xx or 4xx, the same on both sides, an error object for a 4xx, one event each."""
    for answer in (asgi, wsgi):
        assert 200 <= answer.status < 500, answer.body[:300]
        assert answer.status < 300 or answer.status >= 400
        if answer.status >= 400:
            error = answer.json()
            assert isinstance(error["error"], str)
            assert isinstance(error["error_description"], str)
    assert asgi.status == wsgi.status, (asgi.body[:300], wsgi.body[:300])
    assert len(sides.asgi_events) == before[0] + 1
    assert len(sides.wsgi_events) == before[1] + 1


@pytest.fixture(scope="module")
def sides() -> Sides:
    return Sides()


QUICK = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
LONG = settings(QUICK, max_examples=1500, derandomize=False)


def _register_property(sides: Sides, text: str) -> None:
    before = (len(sides.asgi_events), len(sides.wsgi_events))
    asgi, wsgi = sides.register(text.encode("utf-8", "surrogatepass"))
    check(asgi, wsgi, sides, before)


def _update_property(sides: Sides, members: list[tuple[str, str]]) -> None:
    def body(client_id: str) -> bytes:
        own = [('"client_id"', json.dumps(client_id)), ('"redirect_uris"', _array([REDIRECT]))]
        return _object(own + members).encode("utf-8", "surrogatepass")

    before = (len(sides.asgi_events), len(sides.wsgi_events))
    asgi, wsgi = sides.update(body)
    check(asgi, wsgi, sides, before)


@QUICK
@given(text=bodies())
def test_register_any_json_is_answered_2xx_or_4xx(sides: Sides, text: str) -> None:
    _register_property(sides, text)


@QUICK
@given(members=_members)
def test_update_any_json_is_answered_2xx_or_4xx(
    sides: Sides, members: list[tuple[str, str]]
) -> None:
    _update_property(sides, members)


@pytest.mark.slow
@LONG
@given(text=bodies())
def test_register_any_json_is_answered_2xx_or_4xx_long(sides: Sides, text: str) -> None:
    _register_property(sides, text)


@pytest.mark.slow
@LONG
@given(members=_members)
def test_update_any_json_is_answered_2xx_or_4xx_long(
    sides: Sides, members: list[tuple[str, str]]
) -> None:
    _update_property(sides, members)


# --- the report's case, pinned --------------------------------------------------------------------


def _deep_jwks_body(depth: int) -> bytes:
    key = _ec_key[:-1] + ',"x-deep":' + _deep(depth, "0") + "}"
    return (
        '{"grant_types":["client_credentials"],"response_types":[],'
        '"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[' + key + "]}}"
    ).encode()


@pytest.mark.parametrize("depth", [973, MAX_DEPTH - 3])
def test_register_deep_jwks_member_is_invalid_client_metadata(sides: Sides, depth: int) -> None:
    # Body level 1, jwks 2, keys 3, the key 4, then `depth` arrays: MAX_DEPTH - 3 is one too many.
    before = (len(sides.asgi_events), len(sides.wsgi_events))
    asgi, wsgi = sides.register(_deep_jwks_body(depth))
    check(asgi, wsgi, sides, before)
    for answer in (asgi, wsgi):
        assert answer.status == 400
        assert answer.json()["error"] == "invalid_client_metadata"
        assert "levels deep" in answer.json()["error_description"]


def test_register_deep_jwks_member_every_depth_near_the_stack_limit(sides: Sides) -> None:
    # Without the limit, one depth in this range parsed but overflowed the stack when the record
    # was serialized (a RecursionError out of the middleware, 500 under a server): which depth
    # depends on the stack, so every depth is tried.
    for depth in range(900, 1100):
        before = (len(sides.asgi_events), len(sides.wsgi_events))
        asgi, wsgi = sides.register(_deep_jwks_body(depth))
        check(asgi, wsgi, sides, before)
        assert (asgi.status, wsgi.status) == (400, 400)


def test_register_jwks_member_at_the_limit_is_registered(sides: Sides) -> None:
    asgi, wsgi = sides.register(_deep_jwks_body(MAX_DEPTH - 4))
    assert (asgi.status, wsgi.status) == (201, 201), asgi.body[:300]


def test_update_deep_body_is_invalid_client_metadata(sides: Sides) -> None:
    before = (len(sides.asgi_events), len(sides.wsgi_events))
    asgi, wsgi = sides.update(lambda _: b'{"x":' + _deep(MAX_DEPTH, "1").encode() + b"}")
    check(asgi, wsgi, sides, before)
    assert (asgi.status, wsgi.status) == (400, 400)
    assert asgi.json()["error"] == "invalid_client_metadata"
    assert "levels deep" in asgi.json()["error_description"]
