"""The guarded fetcher's shell: the flow of :mod:`dcr_middleware.core.fetching`, run with httpx.

:func:`fetch_json` (blocking) and :func:`afetch_json` (asyncio) execute the flow's two
operations. :class:`~dcr_middleware.core.fetching.Resolve` is ``getaddrinfo``, bounded by the
time left. :class:`~dcr_middleware.core.fetching.Request` puts the checked address in the URL,
so httpx connects there and nowhere else, and passes the real host as the TLS server name
(httpcore's ``sni_hostname`` extension) and as the ``Host`` header; the certificate is checked
for that host against the system store, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set. No
redirect is followed, no proxy or ``.netrc`` from the environment is used, no compressed body
is asked for, and the body is read only up to one byte past the cap.

Time: the connection waits at most ``connect_timeout``, every wait at most what is left of
``total_timeout``, and the deadline is checked after each read; the asyncio side also cancels
the whole request at the deadline. Every failure comes out as
:class:`~dcr_middleware.core.fetching.FetchRefused`. Needs the ``cimd`` extra (httpx).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from concurrent.futures import Future
from typing import Any

from ._extras import install_hint
from .core.fetching import Fetched, FetchPolicy, FetchRefused, Reply, Request, Resolve
from .core.fetching import fetch_json as fetch_flow
from .core.ops import Flow
from .drivers import arun, run

try:
    import httpx
except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
    raise ImportError(f"dcr_middleware.fetch needs httpx: {install_hint('cimd')}") from exc

__all__ = ["afetch_json", "fetch_json"]

# identity only: a compressed body could expand past the cap before a byte of it is counted.
_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": "dcr-middleware",
}


def _client_options(policy: FetchPolicy) -> dict[str, Any]:
    # ssl.create_default_context() loads OpenSSL's default paths, which honour SSL_CERT_FILE
    # and SSL_CERT_DIR: a private CA is trusted that way, never by turning verification off.
    return {
        "verify": ssl.create_default_context(),
        "follow_redirects": False,
        "trust_env": False,  # no proxy (it would connect elsewhere) and no .netrc credentials
        "timeout": httpx.Timeout(policy.total_timeout, connect=policy.connect_timeout),
    }


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused("timeout", "the fetch took longer than its total timeout")
    return left


def _addresses(infos: list[Any]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# The failures of I/O: anything else escaping an executor is a bug, and is not disguised.
_FAILURES = (httpx.HTTPError, httpx.InvalidURL, OSError)


def _refusal(exc: Exception) -> FetchRefused:
    """The refusal an HTTP client, resolver or socket error stands for."""
    if isinstance(exc, socket.gaierror):
        return FetchRefused("dns", exc.strerror or "the name does not resolve")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return FetchRefused("timeout", "no answer within the time allowed")
    cause: BaseException | None = exc
    while cause is not None:  # httpx wraps httpcore's error, which wraps the ssl module's
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return FetchRefused("tls", type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError | ConnectionError):
        return FetchRefused("connect", type(exc).__name__)
    return FetchRefused("protocol", type(exc).__name__)


def _check_server_name(response: httpx.Response, host: str) -> None:
    # Fail closed where the sni_hostname extension is not honoured (httpcore before 0.17.2): the
    # certificate would then have been checked for the address instead of the host.
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    if getattr(tls, "server_hostname", None) != host:
        raise FetchRefused("tls", "the certificate was not checked for the URL's host")


def _body(response: httpx.Response, op: Request) -> bytearray:
    """The buffer of a response's body, once its TLS server name is checked (before any byte
    of it is read)."""
    _check_server_name(response, op.host)
    return bytearray()


def _reply(response: httpx.Response, body: bytearray, op: Request) -> Reply:
    limit = op.policy.max_bytes + 1
    headers = dict(response.headers.items())  # lower-case names, repeated fields joined
    return Reply(response.status_code, headers, bytes(body[:limit]))


def _send(op: Request, deadline: float) -> tuple[str, dict[str, Any], int]:
    """The URL to connect to, the request options and how many body bytes to read at most."""
    left = _left(deadline)
    options: dict[str, Any] = {
        "headers": {**_HEADERS, "Host": op.host_header},
        # The certificate is checked for this name, and it is the TLS server name sent.
        "extensions": {"sni_hostname": op.host},
        "timeout": httpx.Timeout(left, connect=min(op.policy.connect_timeout, left)),
    }
    return op.connect_url, options, op.policy.max_bytes + 1


def _resolve(op: Resolve, deadline: float) -> list[str]:
    # getaddrinfo takes no timeout: it runs in a daemon thread that is waited for only as long
    # as the deadline allows (a resolver that hangs then ends on its own, holding nothing).
    answer: Future[list[Any]] = Future()

    def work() -> None:
        try:
            answer.set_result(socket.getaddrinfo(op.host, op.port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed over to the waiting thread
            answer.set_exception(exc)

    threading.Thread(target=work, name="dcr-fetch-resolve", daemon=True).start()
    return _addresses(answer.result(timeout=_left(deadline)))


def _request(client: httpx.Client, op: Request, deadline: float) -> Reply:
    url, options, limit = _send(op, deadline)
    with client.stream("GET", url, **options) as response:
        body = _body(response, op)
        for chunk in response.iter_raw():
            body += chunk
            if len(body) >= limit:
                break  # leaving the block closes the connection: the rest is never read
            _left(deadline)
        return _reply(response, body, op)


async def _aresolve(op: Resolve, deadline: float) -> list[str]:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(_left(deadline)):
        infos = await loop.getaddrinfo(op.host, op.port, type=socket.SOCK_STREAM)
    return _addresses(infos)


async def _arequest(client: httpx.AsyncClient, op: Request, deadline: float) -> Reply:
    url, options, limit = _send(op, deadline)
    async with asyncio.timeout(_left(deadline)), client.stream("GET", url, **options) as response:
        body = _body(response, op)
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= limit:
                break
        return _reply(response, body, op)


def _begin(url: str, policy: FetchPolicy | None) -> tuple[FetchPolicy, float, Flow[Fetched]]:
    policy = policy or FetchPolicy()
    return policy, time.monotonic() + policy.total_timeout, fetch_flow(url, policy, time.time())


def fetch_json(url: str, policy: FetchPolicy | None = None) -> Fetched:
    """GET the JSON object at ``url`` under ``policy`` (the defaults when ``None``), blocking.

    Raises :class:`~dcr_middleware.core.fetching.FetchRefused` for every refusal or failure: an
    error of the resolver, the socket or the HTTP client raised while the flow waited for it goes
    through the flow (which does not catch it) and is turned into the refusal it stands for."""
    policy, deadline, flow = _begin(url, policy)
    try:
        with httpx.Client(**_client_options(policy)) as client:

            def execute(op: Resolve | Request) -> Any:
                if isinstance(op, Resolve):
                    return _resolve(op, deadline)
                return _request(client, op, deadline)

            return run(flow, execute)
    except _FAILURES as exc:
        raise _refusal(exc) from None


async def afetch_json(url: str, policy: FetchPolicy | None = None) -> Fetched:
    """:func:`fetch_json` on asyncio."""
    policy, deadline, flow = _begin(url, policy)
    try:
        async with httpx.AsyncClient(**_client_options(policy)) as client:

            async def execute(op: Resolve | Request) -> Any:
                if isinstance(op, Resolve):
                    return await _aresolve(op, deadline)
                return await _arequest(client, op, deadline)

            return await arun(flow, execute)
    except _FAILURES as exc:
        raise _refusal(exc) from None
