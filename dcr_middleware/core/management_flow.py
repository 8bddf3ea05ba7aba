"""The RFC 7592 client configuration endpoint's flow (``GET``/``PUT``/``DELETE P/{client_id}``),
written once as a generator of operations (:mod:`.ops`); the decisions are in :mod:`.management`.
"""

from __future__ import annotations

import secrets
import time

from . import client_flows, management, sector, tokens
from ._http import Response, json_response
from .admission import Admission, RequestHead
from .client import RegisteredClient
from .cors import CORS
from .errors import DCRError, InvalidTokenError, MethodNotAllowedError
from .events import ClientDeleted, ClientEvent, ClientRead, ClientUpdated, Observer, Seen
from .ops import Flow, Hit, Lifetime, ask, read_body
from .registration_flow import charge_failure, refused, refused_scope
from .settings import Settings

_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


def _presented(head: RequestHead) -> tuple[str | None, str | None]:
    try:
        token = tokens.bearer_token(head.headers.get("authorization"))
    except InvalidTokenError:
        return None, None  # answered like any other bad token
    return token, None if token is None else tokens.digest(token)


def _check_method(method: str) -> None:
    if method not in management.METHODS:
        raise MethodNotAllowedError(
            f"{method} is not supported here", ", ".join(management.METHODS)
        )


def _seen(admission: Admission, head: RequestHead, client_id: str) -> Seen:
    path = f"{admission.path}/{client_id}"
    return Seen("management", head.method, path, admission.address(head), time.monotonic())


def _read(client: RegisteredClient, uri: str, token: str) -> Response:
    return json_response(200, management.client_information(client, uri, token))


def _deleted() -> Response:
    return Response(204, list(_NO_STORE), b"")


def _updated(update: management.Update, uri: str) -> Response:
    body = management.client_information(update.client, uri, update.access_token, update.secret)
    return json_response(200, body)


class ManagementFlow:
    """The client configuration endpoint: :meth:`handle` is the flow of one request.

    ``admission`` is shared with the registration flow (one throttle of failed credentials);
    ``store_settings`` are those of the store the flow runs against (the clients' idle TTL).
    """

    def __init__(
        self,
        settings: Settings,
        admission: Admission,
        observer: Observer | None = None,
        *,
        store_settings: Settings | None = None,
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.lifetime = Lifetime.of((store_settings or settings).client_idle_ttl)
        self.sector = sector.SectorPolicy.from_settings(settings)
        self.cors = CORS(settings, methods=", ".join(management.METHODS))
        self.observer = Observer() if observer is None else observer

    def handle(self, head: RequestHead, client_id: str) -> Flow[Response]:
        """Answer one request to the client configuration endpoint."""
        seen = _seen(self.admission, head, client_id)
        kind: type[ClientEvent] = ClientRead
        throttle = self.admission.throttle
        rate: list[tuple[str, str]] = []
        lifetime = self.lifetime
        try:
            _check_method(head.method)
            failures = self.admission.failure_bucket(head)
            throttle.recall(failures)
            token, digest = _presented(head)
            # Read without noting a use: a refused request must not keep the client alive.
            loaded = yield from client_flows.load(client_id, lifetime, note_use=False)
            try:
                client = management.authorize(loaded[0] if loaded else None, digest)
            except InvalidTokenError as exc:
                raise (yield from charge_failure(self.admission, failures, exc)) from None
            uri = f"{self.admission.endpoint_url(head)}/{client_id}"
            if token is None or loaded is None:  # refused by authorize(); narrows the types
                raise management.unknown_registration_token()
            if head.method != "GET" and throttle.write_limits:
                bucket = throttle.write_bucket(client_id)
                decision = yield from ask(Hit(bucket, throttle.write_limits))
                rate = throttle.write_headers(decision)
                throttle.enforce_write(decision)
            if head.method == "GET":
                yield from client_flows.note_use(client_id, lifetime)
                response = _read(client, uri, token)
            elif head.method == "DELETE":
                yield from client_flows.replace(client_id, loaded[1], None, lifetime)
                response, kind = _deleted(), ClientDeleted
            else:
                self.admission.check_head(head)
                body = yield from read_body()
                update = management.prepare_update(
                    body,
                    client,
                    self.settings,
                    presented_token=token,
                    now=int(time.time()),
                    token=secrets.token_urlsafe,
                    statements=self.admission.statements,
                )
                # The metadata is validated again, and so is its sector_identifier_uri.
                yield from sector.verify(update.client.metadata, self.sector)
                yield from client_flows.replace(client_id, loaded[1], update.client, lifetime)
                response, kind, client = _updated(update, uri), ClientUpdated, update.client
        except DCRError as exc:
            response = refused(exc, rate)
            self.observer.refused(seen, exc, client_id=client_id, scope=refused_scope(exc))
        else:
            response.headers.extend(rate)
            self.observer.done(seen, kind, client)
        return self.cors.apply(head, response)
