"""The ASGI middleware: answers ``POST DCR_PATH`` (RFC 7591), ``GET/PUT/DELETE DCR_PATH/{id}``
(RFC 7592), the RFC 8414 metadata document when ``DCR_SERVE_METADATA`` is on, and their CORS
preflights, and passes every other request through.

Pure ASGI (no ``BaseHTTPMiddleware``): lifespan and websocket scopes, and every request not
aimed at the registration endpoint, reach the wrapped app untouched, with the same ``receive``
and ``send``. ``dcr_middleware.asgi:app`` is the wrapped ``DCR_APP``, built when a server first
looks the attribute up (never at import).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from . import _loader, _routes
from .core._http import Response, too_large
from .core._proxy_check import RewrittenPeerCheck
from .core.admission import RequestHead
from .core.cimd import Documents
from .core.errors import ConfigurationError
from .core.events import EventHook
from .core.management import client_id_from_path
from .core.management_flow import ManagementFlow
from .core.metadata_endpoint import MetadataEndpoint
from .core.ops import READ_BODY, Flow
from .core.registration_flow import RegistrationFlow
from .core.settings import Settings
from .drivers import arun
from .observe import observer_from_settings
from .store import AsyncClientStore, warn_if_embedded

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from prometheus_client.registry import CollectorRegistry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Disconnected(Exception):
    """The client went away before its body was read: there is no one to answer."""


class DCRMiddleware:
    """Wrap an ASGI app with an RFC 7591 registration endpoint at ``settings.path``.

    ``settings=None`` reads ``DCR_*`` from the environment once, here. ``store`` lets tests and
    applications share one :class:`AsyncClientStore` with the authorization server.

    ``on_event`` is called with each event, an :class:`~dcr_middleware.core.events.Event` (before a
    ``DCR_EVENT_HOOK``); ``metrics_registry`` turns the Prometheus metrics on, registered there
    (``DCR_METRICS=true`` registers them on the default registry); ``meter_provider`` turns the
    OpenTelemetry metrics on, from that provider (``DCR_OTEL=true`` uses the global one). See
    docs/observability.md.

    A bad configuration raises ``ConfigurationError`` here, except when the middleware is built
    inside a running event loop, as Starlette's ``add_middleware`` does on the first ASGI call
    (the lifespan startup): then the error answers that startup (``lifespan.startup.failed``),
    so the server stops instead of answering every request 500.
    With ``DCR_REDIS_CHECK_ON_START`` the lifespan startup also pings Redis.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings | None = None,
        *,
        store: AsyncClientStore | None = None,
        on_event: EventHook | None = None,
        metrics_registry: CollectorRegistry | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.app = app
        self.startup_error: ConfigurationError | None = None
        try:
            self._build(settings, store, on_event, metrics_registry, meter_provider)
        except ConfigurationError as exc:
            if not _in_event_loop():
                raise
            # Starlette's add_middleware builds its stack on the first ASGI call, the lifespan
            # startup under uvicorn, where an exception reads as "lifespan unsupported" and the
            # server starts anyway. Answer that startup with the error instead (see _lifespan).
            self.startup_error = exc
            self.check_on_start = True
            return
        self.path_checked = _routes.warn_on_collision(app, self.settings)

    def _build(
        self,
        settings: Settings | None,
        store: AsyncClientStore | None,
        on_event: EventHook | None,
        metrics_registry: CollectorRegistry | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self.settings = Settings.from_env() if settings is None else settings
        self.store = AsyncClientStore(self.settings) if store is None else store
        self.observer = observer_from_settings(
            self.settings,
            on_event=on_event,
            metrics_registry=metrics_registry,
            meter_provider=meter_provider,
            backend=self.store.backend,
        )
        if store is None and self.store.documents is not None:
            # The store built here reports its document lookups to the middleware's observer.
            self.store.documents = Documents(self.store.documents.policy, self.observer)
        store_settings = self.store.settings
        self.registration = RegistrationFlow(
            self.settings, self.observer, store_settings=store_settings
        )
        self.management = ManagementFlow(
            self.settings, self.registration.admission, self.observer, store_settings=store_settings
        )
        self.path = self.settings.path
        self.max_body_bytes = self.settings.max_body_bytes
        self.metadata = MetadataEndpoint(self.settings) if self.settings.serve_metadata else None
        self.metadata_path = self.metadata.path if self.metadata else None
        self.proxy_check = RewrittenPeerCheck(self.settings.trusted_proxies)
        self.check_on_start = self.settings.redis_check_on_start and self.settings.uses_redis
        warn_if_embedded(self.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.check_on_start:
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if self.startup_error is not None:  # a server without lifespan: every request says it
            raise ConfigurationError(self.startup_error.problems)
        path = scope["path"]
        if self.metadata is not None and path == self.metadata_path:
            await _respond(self.metadata.handle(_head(scope)), scope, receive, send)
            return
        if not path.startswith(self.path):  # the fast path: almost every request goes through
            await self.app(scope, receive, send)
            return
        if not self.path_checked:  # once: the routes may have been added after __init__
            self.path_checked = True
            _routes.warn_on_collision(self.app, self.settings)
        client_id = client_id_from_path(path, self.path)
        if path != self.path and client_id is None:
            await self.app(scope, receive, send)
            return
        method, head = scope["method"], _head(scope)
        self.proxy_check.see(head.peer, head.headers)
        cors = self.registration.cors if client_id is None else self.management.cors
        flow: Flow[Response]
        if cors.is_preflight(method, head):
            await _respond(cors.preflight(head), scope, receive, send)
            return
        if client_id is not None:
            flow = self.management.handle(head, client_id)
        elif method == "POST":
            flow = self.registration.register(head)
        else:
            await self.app(scope, receive, send)
            return
        store_execute, limit = self.store.execute, self.max_body_bytes

        async def execute(op: Any) -> Any:
            if op is READ_BODY:
                return await _read_body(receive, limit)
            return await store_execute(op)

        try:
            response = await arun(flow, execute)
        except _Disconnected:
            return
        await _respond(response, scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check before the wrapped app starts: a configuration error kept by ``__init__``, and
        Redis with ``DCR_REDIS_CHECK_ON_START``. A failure answers ``lifespan.startup.failed``
        with the message, and the server exits (uvicorn: status 3); the app never starts."""
        message = await receive()
        if message["type"] == "lifespan.startup":
            if self.startup_error is not None:
                problem: str | None = str(self.startup_error)
            else:
                from .storage.connect import async_unreachable

                problem = await async_unreachable(self.settings)
                if problem is not None:
                    problem = f"DCR_REDIS_CHECK_ON_START: {problem}"
            if problem is not None:
                _loader.leave_report_to_first_failure()
                await send({"type": "lifespan.startup.failed", "message": problem})
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return message

        await self.app(scope, replay, send)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _respond(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    # RFC 9110 §9.3.2: a HEAD answer has the GET answer's headers (Content-Length included, when
    # the core set it) and no content. Sent as the two ASGI messages directly, as Starlette's
    # Response would (lower-case names, Content-Length unless 1xx/204/304): building one per
    # answer cost about 3% of a registration (docs/performance.md).
    body = b"" if scope["method"] == "HEAD" else response.body
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
    ]
    sized = any(name == b"content-length" for name, _ in headers)
    if response.status >= 200 and response.status not in (204, 304) and not sized:
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _head(scope: Scope) -> RequestHead:
    # One pass over the raw headers; repeated ones joined with ", " (RFC 9110 §5.3).
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    client = scope.get("client")
    return RequestHead(
        method=scope["method"],
        headers=headers,
        peer=client[0] if client else None,
        scheme=scope.get("scheme", "http"),
        host=headers.get("host") or _server_host(scope),
    )


def _server_host(scope: Scope) -> str:
    server = scope.get("server")
    if not server:
        return "localhost"
    host, port = server[0], server[1]
    host = f"[{host}]" if ":" in host else host
    default = 443 if scope.get("scheme") in ("https", "wss") else 80
    return host if port in (None, default) else f"{host}:{port}"


async def _read_body(receive: Receive, limit: int) -> bytes:
    """Read the request body, stopping as soon as it passes ``limit`` (chunked bodies too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def __getattr__(name: str) -> Any:
    # PEP 562: `uvicorn dcr_middleware.asgi:app` looks `app` up at server start; the environment
    # is read then, not when this module is imported.
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def build() -> DCRMiddleware:
        settings = Settings.from_env()
        middleware = DCRMiddleware(_loader.load_wrapped_app(settings, "asgi"), settings)
        if middleware.startup_error is not None:  # uvicorn loads the app inside its event loop
            raise middleware.startup_error
        if middleware.check_on_start:
            # Pinged here (blocking, once, before any request) rather than at the lifespan
            # startup, so that a failure ends the process as any bad setting does.
            from .storage.connect import unreachable

            problem = unreachable(settings)
            if problem is not None:
                raise ConfigurationError([f"DCR_REDIS_CHECK_ON_START: {problem}"])
            middleware.check_on_start = False
        return middleware

    application = _loader.entry_app(build)
    globals()["app"] = application
    return application
