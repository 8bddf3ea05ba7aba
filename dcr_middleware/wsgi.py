"""The WSGI middleware: answers ``POST DCR_PATH`` (RFC 7591), ``GET/PUT/DELETE DCR_PATH/{id}``
(RFC 7592), the RFC 8414 metadata document when ``DCR_SERVE_METADATA`` is on, and their CORS
preflights, and passes every other request through.

Requests not aimed at the registration endpoint are handed to the wrapped app with the same
``environ`` and ``start_response``; the body is never touched. ``dcr_middleware.wsgi:app`` is
the wrapped ``DCR_APP``, built when a server first looks the attribute up (never at import).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

with warnings.catch_warnings():
    # WebOb 1.8 imports the stdlib `cgi` module, deprecated since Python 3.11: keep that warning
    # out of applications that run with warnings as errors.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webob

from . import _loader, _routes
from .core._http import Response, too_large
from .core._proxy_check import RewrittenPeerCheck
from .core.admission import RequestHead
from .core.cimd import Documents
from .core.errors import ConfigurationError, LengthRequiredError
from .core.events import EventHook
from .core.management import client_id_from_path
from .core.management_flow import ManagementFlow
from .core.metadata_endpoint import MetadataEndpoint
from .core.ops import READ_BODY, Flow
from .core.registration_flow import RegistrationFlow
from .core.settings import Settings
from .drivers import run
from .observe import observer_from_settings
from .store import ClientStore, warn_if_embedded

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from opentelemetry.metrics import MeterProvider
    from prometheus_client.registry import CollectorRegistry

_CHUNK = 65536


class DCRWSGIMiddleware:
    """Wrap a WSGI app with an RFC 7591 registration endpoint at ``settings.path``.

    ``settings=None`` reads ``DCR_*`` from the environment once, here. ``store`` lets
    applications share one :class:`ClientStore` with the authorization server.

    ``on_event`` is called with each event, an :class:`~dcr_middleware.core.events.Event` (before a
    ``DCR_EVENT_HOOK``); ``metrics_registry`` turns the Prometheus metrics on, registered there
    (``DCR_METRICS=true`` registers them on the default registry); ``meter_provider`` turns the
    OpenTelemetry metrics on, from that provider (``DCR_OTEL=true`` uses the global one). See
    docs/observability.md.

    A bad configuration raises ``ConfigurationError`` here; so does an unreachable Redis with
    ``DCR_REDIS_CHECK_ON_START`` (pinged here, once).
    """

    def __init__(
        self,
        app: WSGIApplication,
        settings: Settings | None = None,
        *,
        store: ClientStore | None = None,
        on_event: EventHook | None = None,
        metrics_registry: CollectorRegistry | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.app = app
        self.settings = Settings.from_env() if settings is None else settings
        self.store = ClientStore(self.settings) if store is None else store
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
        warn_if_embedded(self.settings)
        if self.settings.redis_check_on_start and self.settings.uses_redis:
            from .storage.connect import unreachable

            problem = unreachable(self.settings)
            if problem is not None:
                raise ConfigurationError([f"DCR_REDIS_CHECK_ON_START: {problem}"])
        self.path_checked = _routes.warn_on_collision(app, self.settings)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.metadata is not None and path == self.metadata_path:
            return _respond(self.metadata.handle(_head(environ)), environ, start_response)
        if not path.startswith(self.path):  # the fast path: almost every request goes through
            return self.app(environ, start_response)
        if not self.path_checked:  # once: the routes may have been added after __init__
            self.path_checked = True
            _routes.warn_on_collision(self.app, self.settings)
        client_id = client_id_from_path(path, self.path)
        if path != self.path and client_id is None:
            return self.app(environ, start_response)
        head = _head(environ)
        self.proxy_check.see(head.peer, head.headers)
        cors = self.registration.cors if client_id is None else self.management.cors
        flow: Flow[Response]
        if cors.is_preflight(head.method, head):
            return _respond(cors.preflight(head), environ, start_response)
        if client_id is not None:
            flow = self.management.handle(head, client_id)
        elif head.method == "POST":
            flow = self.registration.register(head)
        else:
            return self.app(environ, start_response)
        store_execute, limit = self.store.execute, self.max_body_bytes

        def execute(op: Any) -> Any:
            return _read_body(environ, limit) if op is READ_BODY else store_execute(op)

        return _respond(run(flow, execute), environ, start_response)


# WebOb's names for the environ keys that are not HTTP_<NAME> (webob.headers.key2header),
# lower-cased.
_NAMES = {
    "CONTENT_TYPE": "content-type",
    "CONTENT_LENGTH": "content-length",
    "HTTP_CONTENT_TYPE": "content_type",
    "HTTP_CONTENT_LENGTH": "content_length",
}


def _head(environ: WSGIEnvironment) -> RequestHead:
    # What webob.Request(environ) gives (its headers, method, remote_addr, scheme and host), read
    # straight from the environ: building the Request was 4% of a registration.
    headers: dict[str, str] = {}
    for key, value in environ.items():
        name = _NAMES.get(key)
        if name is None:
            if not key.startswith("HTTP_") or key == "HTTP_":
                continue
            name = key[5:].replace("_", "-").title().lower()
        headers[name] = value
    host = environ.get("HTTP_HOST")
    if host is None:
        host = "{SERVER_NAME}:{SERVER_PORT}".format_map(environ)
    return RequestHead(
        method=environ.get("REQUEST_METHOD", "GET"),
        headers=headers,
        peer=environ.get("REMOTE_ADDR"),
        scheme=environ["wsgi.url_scheme"],
        host=host,
    )


def _respond(
    response: Response, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    # WebOb answers HEAD with the headers of the full body and no content (RFC 9110 §9.3.2).
    return webob.Response(
        status=response.status, headerlist=list(response.headers), body=response.body
    )(environ, start_response)


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a chunked body (no Content-Length) is read only when the
    server says the stream is terminated (``wsgi.input_terminated``, as gunicorn does).
    The declared length was already checked against ``limit``."""
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        body: bytes = stream.read(int(declared))
        return body
    if not environ.get("wsgi.input_terminated"):
        if environ.get("HTTP_TRANSFER_ENCODING"):
            # PEP 3333 lets the app read only CONTENT_LENGTH bytes unless the server says the
            # stream ends by itself (gunicorn does; wsgiref does not).
            raise LengthRequiredError("this server needs a Content-Length for the request body")
        return b""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_CHUNK, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def __getattr__(name: str) -> Any:
    # PEP 562: `gunicorn dcr_middleware.wsgi:app` looks `app` up at server start; the
    # environment is read then, not when this module is imported.
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def build() -> DCRWSGIMiddleware:
        settings = Settings.from_env()
        return DCRWSGIMiddleware(_loader.load_wrapped_app(settings, "wsgi"), settings)

    application = _loader.entry_app(build)
    globals()["app"] = application
    return application
