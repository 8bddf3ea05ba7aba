"""How much of a registration body each adapter reads, and a client that goes away mid-body.

SPEC §3: a body over ``DCR_MAX_BODY_BYTES`` is answered with 413 and "the body is not read past
the limit", with or without a Content-Length. These tests count what is actually consumed.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

from dcr_middleware import Settings

from .harness import RawASGI, asgi_side, body_messages, http_scope, record_count, wsgi_side

pytestmark = pytest.mark.anyio

LIMIT = 100
SETTINGS = Settings(max_body_bytes=LIMIT)
JSON = ("Content-Type", "application/json")
VALID = b'{"redirect_uris":["https://app.example.com/cb"]}'


async def test_asgi_register_chunked_body_stops_reading_at_limit() -> None:
    side = asgi_side(SETTINGS)
    server = RawASGI(body_messages([b" " * 40] * 10))  # 400 bytes in ten messages

    await side.app(http_scope("POST", "/register", [JSON]), server.receive, server.send)

    answer = server.answer()
    assert answer.status == 413
    assert answer.json()["error"] == "invalid_request"
    # 40 + 40 + 40 passes 100 on the third message; the other seven are never asked for.
    assert server.received == 3
    assert len(server.incoming) == 7
    assert record_count(side.backend) == 0


async def test_asgi_register_declared_length_over_limit_reads_nothing() -> None:
    side = asgi_side(SETTINGS)
    server = RawASGI(body_messages([b" " * 200]))
    headers = [JSON, ("Content-Length", "200")]

    await side.app(http_scope("POST", "/register", headers), server.receive, server.send)

    assert server.answer().status == 413
    assert server.received == 0


async def test_asgi_register_body_longer_than_declared_length_still_capped() -> None:
    side = asgi_side(SETTINGS)
    server = RawASGI(body_messages([b" " * 60] * 4))
    headers = [JSON, ("Content-Length", "10")]

    await side.app(http_scope("POST", "/register", headers), server.receive, server.send)

    assert server.answer().status == 413
    assert server.received == 2


async def test_asgi_register_body_at_limit_is_read_whole() -> None:
    side = asgi_side(SETTINGS)
    padded = VALID + b" " * (LIMIT - len(VALID))
    server = RawASGI(body_messages([padded[:50], padded[50:]]))

    await side.app(http_scope("POST", "/register", [JSON]), server.receive, server.send)

    assert server.answer().status == 201
    assert record_count(side.backend) == 1


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param([{"type": "http.disconnect"}], id="before-any-body"),
        pytest.param(
            [
                {"type": "http.request", "body": VALID[:20], "more_body": True},
                {"type": "http.disconnect"},
            ],
            id="mid-body",
        ),
        pytest.param(
            [
                {"type": "http.request", "body": b"", "more_body": True},
                {"type": "http.request", "body": VALID[:20], "more_body": True},
                {"type": "http.disconnect"},
            ],
            id="after-empty-chunk",
        ),
    ],
)
async def test_asgi_register_client_disconnect_sends_nothing(incoming: list[Any]) -> None:
    side = asgi_side(Settings())
    count = len(incoming)
    server = RawASGI(list(incoming))

    await side.app(http_scope("POST", "/register", [JSON]), server.receive, server.send)

    assert server.sent == []
    assert server.received == count
    assert record_count(side.backend) == 0


class CountingInput(io.BytesIO):
    """A request stream that remembers how many bytes the application consumed."""

    consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


def _call_wsgi(
    app: Any, body: bytes, environ_extra: dict[str, Any]
) -> tuple[str, bytes, CountingInput]:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    stream = CountingInput(body)
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO="/register",
        QUERY_STRING="",
        CONTENT_TYPE="application/json",
    )
    environ["wsgi.input"] = stream
    environ.update(environ_extra)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    result: Iterable[bytes] = validator(app)(environ, start_response)
    try:
        answer = b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    return statuses[0], answer, stream


def test_wsgi_register_chunked_body_stops_reading_at_limit() -> None:
    side = wsgi_side(SETTINGS)

    status, _, stream = _call_wsgi(side.app, b" " * 400, {"wsgi.input_terminated": True})

    assert status.startswith("413 ")
    assert stream.consumed <= LIMIT + 1
    assert record_count(side.backend) == 0


def test_wsgi_register_declared_length_over_limit_reads_nothing() -> None:
    side = wsgi_side(SETTINGS)

    status, _, stream = _call_wsgi(side.app, b" " * 200, {"CONTENT_LENGTH": "200"})

    assert status.startswith("413 ")
    assert stream.consumed == 0


def test_wsgi_register_reads_only_declared_length() -> None:
    side = wsgi_side(Settings())
    trailing = b"GARBAGE-FROM-NEXT-REQUEST"

    status, _, stream = _call_wsgi(side.app, VALID + trailing, {"CONTENT_LENGTH": str(len(VALID))})

    assert status.startswith("201 ")
    assert stream.consumed == len(VALID)


def test_wsgi_register_body_without_length_is_not_read() -> None:
    """Without Content-Length and without ``wsgi.input_terminated`` reading could block forever
    (PEP 3333), so the body is taken as empty and refused."""
    side = wsgi_side(Settings())

    status, answer, stream = _call_wsgi(side.app, VALID, {})

    assert status.startswith("400 ")
    assert b"invalid_client_metadata" in answer
    assert stream.consumed == 0
    assert record_count(side.backend) == 0


def test_wsgi_register_unterminated_chunked_body_needs_a_length() -> None:
    """A chunked body the server does not terminate gets 411, not a misleading JSON error."""
    side = wsgi_side(Settings())

    status, answer, stream = _call_wsgi(side.app, VALID, {"HTTP_TRANSFER_ENCODING": "chunked"})

    assert status.startswith("411 ")
    assert b"invalid_request" in answer
    assert stream.consumed == 0
    assert record_count(side.backend) == 0


def test_wsgi_register_chunked_terminated_body_within_limit_registers() -> None:
    side = wsgi_side(Settings())

    status, _, stream = _call_wsgi(side.app, VALID, {"wsgi.input_terminated": True})

    assert status.startswith("201 ")
    assert stream.consumed == len(VALID)
    assert record_count(side.backend) == 1


# --- rate-limit refusals: the body of a client this process saw refused is never read --------

LIMITED = Settings(rate_limit="2/minute")


async def test_asgi_remembered_refusal_is_answered_before_the_body() -> None:
    side = asgi_side(LIMITED)
    answers, reads = [], []
    for _ in range(4):
        server = RawASGI(body_messages([VALID]))
        await side.app(http_scope("POST", "/register", [JSON]), server.receive, server.send)
        answers.append(server.answer())
        reads.append(server.received)

    assert [a.status for a in answers] == [201, 201, 429, 429]
    # The third request is decided by the store together with the create, after its body was
    # read; the store's refusal is remembered, so the fourth is refused without reading.
    assert reads == [1, 1, 1, 0]
    assert int(answers[3].headers["retry-after"]) >= 1
    assert answers[3].headers["ratelimit"].startswith('"ip-2/60";r=0;t=')
    assert record_count(side.backend) == 2


def test_wsgi_remembered_refusal_is_answered_before_the_body() -> None:
    side = wsgi_side(LIMITED)
    statuses, consumed = [], []
    for _ in range(4):
        status, _, stream = _call_wsgi(side.app, VALID, {"CONTENT_LENGTH": str(len(VALID))})
        statuses.append(int(status.split()[0]))
        consumed.append(stream.consumed)

    assert statuses == [201, 201, 429, 429]
    assert consumed == [len(VALID)] * 3 + [0]
    assert record_count(side.backend) == 2


@pytest.mark.parametrize("body", [b"{}", b"not json", b'{"redirect_uris":"x"}'])
async def test_asgi_refused_body_from_an_exhausted_address_gets_429(body: bytes) -> None:
    # An invalid body is still charged to the bucket, and an exhausted bucket answers first.
    side = asgi_side(LIMITED)
    statuses = []
    for _ in range(3):
        server = RawASGI(body_messages([body]))
        await side.app(http_scope("POST", "/register", [JSON]), server.receive, server.send)
        statuses.append(server.answer().status)
    assert statuses == [400, 400, 429]
    assert record_count(side.backend) == 0
