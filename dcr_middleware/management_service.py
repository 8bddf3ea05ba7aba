"""The RFC 7592 client configuration endpoint service, in a sync and an async shell that
differ only in ``await``; the decisions are in :mod:`dcr_middleware.core.management`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

from .core import management, tokens
from .core._http import Response, json_response
from .core.admission import Admission, RequestHead
from .core.client import RegisteredClient
from .core.cors import CORS
from .core.errors import DCRError, InvalidTokenError, MethodNotAllowedError
from .core.events import ClientDeleted, ClientEvent, ClientRead, ClientUpdated, Observer, Seen
from .core.settings import Settings
from .service import refused, refused_scope
from .store import AsyncClientStore, ClientStore

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


class ManagementService:
    """``GET``/``PUT``/``DELETE P/{client_id}`` through a blocking :class:`ClientStore`."""

    def __init__(
        self,
        settings: Settings,
        store: ClientStore,
        admission: Admission,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.admission = admission
        self.cors = CORS(settings, methods=", ".join(management.METHODS))
        self.observer = Observer() if observer is None else observer

    def _failed(self, failures: str | None, error: InvalidTokenError) -> DCRError:
        """Charge a failed registration access token to the address (see :mod:`.throttle`)."""
        if failures is None:
            return error
        sent_at = time.monotonic()
        decision = self.store.hit(failures, self.admission.throttle.failure_limits)
        return self.admission.throttle.failed(failures, decision, sent_at, error)

    def handle(self, head: RequestHead, client_id: str, read_body: Callable[[], bytes]) -> Response:
        """Answer one request to the client configuration endpoint."""
        seen = _seen(self.admission, head, client_id)
        kind: type[ClientEvent] = ClientRead
        throttle = self.admission.throttle
        rate: list[tuple[str, str]] = []
        try:
            _check_method(head.method)
            failures = self.admission.failure_bucket(head)
            throttle.recall(failures)
            token, digest = _presented(head)
            # Read without noting a use: a refused request must not keep the client alive.
            loaded = self.store.load(client_id, note_use=False)
            try:
                client = management.authorize(loaded[0] if loaded else None, digest)
            except InvalidTokenError as exc:
                raise self._failed(failures, exc) from None
            uri = f"{self.admission.endpoint_url(head)}/{client_id}"
            if token is None or loaded is None:  # refused by authorize(); narrows the types
                raise management.unknown_registration_token()
            if head.method != "GET" and throttle.write_limits:
                decision = self.store.hit(throttle.write_bucket(client_id), throttle.write_limits)
                rate = throttle.write_headers(decision)
                throttle.enforce_write(decision)
            if head.method == "GET":
                self.store.note_use(client_id)
                response = _read(client, uri, token)
            elif head.method == "DELETE":
                self.store.replace(client_id, loaded[1], None)
                response, kind = _deleted(), ClientDeleted
            else:
                self.admission.check_head(head)
                update = management.prepare_update(
                    read_body(),
                    client,
                    self.settings,
                    presented_token=token,
                    now=int(time.time()),
                    token=secrets.token_urlsafe,
                    statements=self.admission.statements,
                )
                self.store.replace(client_id, loaded[1], update.client)
                response, kind, client = _updated(update, uri), ClientUpdated, update.client
        except DCRError as exc:
            response = refused(exc, rate)
            self.observer.refused(seen, exc, client_id=client_id, scope=refused_scope(exc))
        else:
            response.headers.extend(rate)
            self.observer.done(seen, kind, client)
        return self.cors.apply(head, response)


class AsyncManagementService:
    """``GET``/``PUT``/``DELETE P/{client_id}`` through an :class:`AsyncClientStore`."""

    def __init__(
        self,
        settings: Settings,
        store: AsyncClientStore,
        admission: Admission,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.admission = admission
        self.cors = CORS(settings, methods=", ".join(management.METHODS))
        self.observer = Observer() if observer is None else observer

    async def _failed(self, failures: str | None, error: InvalidTokenError) -> DCRError:
        """Charge a failed registration access token to the address (see :mod:`.throttle`)."""
        if failures is None:
            return error
        sent_at = time.monotonic()
        decision = await self.store.hit(failures, self.admission.throttle.failure_limits)
        return self.admission.throttle.failed(failures, decision, sent_at, error)

    async def handle(
        self, head: RequestHead, client_id: str, read_body: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """Answer one request to the client configuration endpoint."""
        seen = _seen(self.admission, head, client_id)
        kind: type[ClientEvent] = ClientRead
        throttle = self.admission.throttle
        rate: list[tuple[str, str]] = []
        try:
            _check_method(head.method)
            failures = self.admission.failure_bucket(head)
            throttle.recall(failures)
            token, digest = _presented(head)
            # Read without noting a use: a refused request must not keep the client alive.
            loaded = await self.store.load(client_id, note_use=False)
            try:
                client = management.authorize(loaded[0] if loaded else None, digest)
            except InvalidTokenError as exc:
                raise await self._failed(failures, exc) from None
            uri = f"{self.admission.endpoint_url(head)}/{client_id}"
            if token is None or loaded is None:  # refused by authorize(); narrows the types
                raise management.unknown_registration_token()
            if head.method != "GET" and throttle.write_limits:
                decision = await self.store.hit(
                    throttle.write_bucket(client_id), throttle.write_limits
                )
                rate = throttle.write_headers(decision)
                throttle.enforce_write(decision)
            if head.method == "GET":
                await self.store.note_use(client_id)
                response = _read(client, uri, token)
            elif head.method == "DELETE":
                await self.store.replace(client_id, loaded[1], None)
                response, kind = _deleted(), ClientDeleted
            else:
                self.admission.check_head(head)
                update = management.prepare_update(
                    await read_body(),
                    client,
                    self.settings,
                    presented_token=token,
                    now=int(time.time()),
                    token=secrets.token_urlsafe,
                    statements=self.admission.statements,
                )
                await self.store.replace(client_id, loaded[1], update.client)
                response, kind, client = _updated(update, uri), ClientUpdated, update.client
        except DCRError as exc:
            response = refused(exc, rate)
            self.observer.refused(seen, exc, client_id=client_id, scope=refused_scope(exc))
        else:
            response.headers.extend(rate)
            self.observer.done(seen, kind, client)
        return self.cors.apply(head, response)
