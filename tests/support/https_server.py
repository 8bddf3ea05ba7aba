"""A real HTTPS server on loopback, in threads of the test process, for the guarded fetcher.

Its certificate comes from a throwaway CA made by ``trustme``: a client trusts it only through
``SSL_CERT_FILE`` pointing at :attr:`DocumentServer.ca_file`. Each path answers as its
:class:`Route` says; every connection is recorded (:class:`Seen`: the path asked for, the
``Host`` header, the TLS server name the client sent, the local address it connected to, and
how many body bytes went out before the client hung up). No process is started, so no cost
marker is needed; the server stops when :meth:`DocumentServer.close` is called.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme


@dataclass(frozen=True)
class Route:
    """How a path answers: ``status``, ``headers`` and ``body``; ``hang`` accepts the request
    and never answers (until the server closes); ``raw`` is sent as it is, instead of HTTP;
    ``delay`` waits that long before answering."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: bytes = b"{}"
    hang: bool = False
    raw: bytes = b""
    delay: float = 0.0  # seconds to wait before answering (bounded by the server's closing)


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    host: str | None
    sni: str | None
    local_address: str
    sent: int = 0  # body bytes written before the client went away
    cut_short: bool = False  # the client closed the connection before the whole body
    done: threading.Event = field(default_factory=threading.Event)  # the answer is over


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def do_GET(self) -> None:
        owner = self.server.owner
        sni = owner.names.pop(id(self.connection), None)
        seen = Seen(self.path, self.headers.get("Host"), sni, self.connection.getsockname()[0])
        owner.seen.append(seen)
        try:
            self._answer(seen, owner.routes.get(self.path, Route(404, body=b"not found")))
        finally:
            seen.done.set()

    def _answer(self, seen: Seen, route: Route) -> None:
        owner = self.server.owner
        if route.hang:
            owner.stopping.wait(60)
            return
        if route.delay:
            owner.stopping.wait(route.delay)
        if route.raw:
            self.wfile.write(route.raw)
            self.close_connection = True
            return
        self.send_response(route.status)
        for name, value in route.headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in route.headers):
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        try:
            for start in range(0, len(route.body), 16384):
                self.wfile.write(route.body[start : start + 16384])
                self.wfile.flush()
                seen.sent = min(start + 16384, len(route.body))
        except OSError:
            seen.cut_short = True
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: DocumentServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the address up in reverse DNS (socket.getfqdn): skipped.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake in the connection's own thread, never in the accepting one.
        try:
            tls = self.owner.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            self.owner.handshake_failures += 1
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            tls.close()


class DocumentServer:
    """An HTTPS server on ``host`` (a loopback address) with a certificate for ``names``."""

    def __init__(self, directory: Path, host: str, names: tuple[str, ...]) -> None:
        self.ca = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names).configure_cert(self.context)
        self.context.sni_callback = self._remember_name
        self.names: dict[int, str | None] = {}
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.handshake_failures = 0
        self.stopping = threading.Event()
        self._server = _Server((host, 0), _Handler)
        self._server.owner = self
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _remember_name(self, tls: Any, name: str | None, context: ssl.SSLContext) -> None:
        self.names[id(tls)] = name

    def url(self, name: str, path: str) -> str:
        """``https://<name>:<port><path>``."""
        return f"https://{name}:{self.port}{path}"

    def trust(self, monkeypatch: Any, *, resolve_test_names: bool = True) -> None:
        """For one test: trust this server's CA through ``SSL_CERT_FILE`` alone and, unless told
        not to, resolve every ``*.test`` name to the server (:func:`resolving_test_names_to`)."""
        monkeypatch.setenv("SSL_CERT_FILE", str(self.ca_file))
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        if resolve_test_names:
            monkeypatch.setattr(socket, "getaddrinfo", resolving_test_names_to(self.host))

    def paths(self) -> list[str]:
        """The paths asked for, in order."""
        return [seen.path for seen in self.seen]

    def close(self) -> None:
        """Release the hanging handlers and stop serving."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def loopback_socket_works(host: str) -> bool:
    """Whether ``host`` can be bound here (any of 127.0.0.0/8 can on Linux)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


def resolving_test_names_to(host: str) -> Callable[..., Any]:
    """A stand-in for ``socket.getaddrinfo`` (to monkeypatch) that resolves every ``*.test``
    name to ``host`` and any other name as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        test_name = isinstance(name, str) and name.endswith(".test")
        return real(host if test_name else name, port, *args, **kwargs)

    return getaddrinfo
