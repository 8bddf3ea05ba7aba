"""A real browser registers a client across origins: headless Chromium runs ``fetch()`` from a
page on one origin against ``POST /register`` on another, under uvicorn (ASGI) and gunicorn sync
workers (WSGI), on the test Redis.

The page sends ``Content-Type: application/json``, which is not a CORS-safelisted content type,
so Chromium sends a real preflight (``OPTIONS``) before the ``POST``; the page reads the
``RateLimit`` response field, which a script can only see when it is exposed. With an origin
list that does not name the page's origin, the same ``fetch()`` fails and nothing is stored.

Chromium is Debian's ``chromium`` (``scripts/test.sh`` installs it). When it is missing these
tests are skipped, and under ``CI=true`` they fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from support import CONFIDENTIAL, HOST, Server, processes, stored_records

from dcr_middleware import ClientStore, Settings

pytestmark = [pytest.mark.redis, pytest.mark.server]

KINDS = ["uvicorn", "gunicorn"]
RATE_LIMIT = "100/hour"
CHROMIUM_TIMEOUT = 45.0
VIRTUAL_TIME_BUDGET_MS = 15000
# As root on this kind of machine Chromium needs no sandbox, and its background connections to
# Google's hosts must be off (a closed network refuses them).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
]

PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>dcr cors</title></head>
<body>
<pre id="result">pending</pre>
<script>
const out = document.getElementById("result");
fetch(REGISTER_URL, {
  method: "POST",
  headers: {"Content-Type": "application/json"},
  body: JSON.stringify(BODY),
}).then(async (response) => {
  const body = await response.json();
  out.textContent = JSON.stringify({
    outcome: "response",
    origin: location.origin,
    status: response.status,
    client_id: body.client_id || null,
    ratelimit: response.headers.get("RateLimit"),
    ratelimit_policy: response.headers.get("RateLimit-Policy"),
  });
}).catch((error) => {
  out.textContent = JSON.stringify({
    outcome: "error",
    origin: location.origin,
    name: error.name,
    message: error.message,
  });
});
</script>
</body>
</html>
"""


def chromium_path() -> str | None:
    """Where Debian's ``chromium`` is installed, if it is."""
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class _PageServer(ThreadingHTTPServer):
    page: bytes
    requests: list[str]


class _PageHandler(BaseHTTPRequestHandler):
    server: _PageServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.page)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(self.server.page)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest shows the test's own output, not the page server's


@pytest.fixture
def page_origin() -> Iterator[Callable[[str], str]]:
    """``page_origin(register_url)`` serves the test page on origin A (a loopback port of its
    own) and returns the page's URL; the server is stopped when the test ends."""
    servers: list[tuple[_PageServer, threading.Thread]] = []

    def _serve(register_url: str) -> str:
        page = PAGE.replace("REGISTER_URL", json.dumps(register_url)).replace(
            "BODY", json.dumps(CONFIDENTIAL)
        )
        server = _PageServer((HOST, 0), _PageHandler)
        server.page = page.encode()
        server.requests = []
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://{HOST}:{server.server_address[1]}/"

    try:
        yield _serve
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def run_page(chromium: str, url: str, profile: Path) -> dict[str, Any]:
    """Load ``url`` in headless Chromium (a fresh profile), let its script run, and return what
    it wrote into ``#result``."""
    argv = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        "--dump-dom",
        url,
    ]
    # Its own process group, reaped with its helpers (crashpad, zygote) whatever happens.
    done = processes.run(argv, marker="server", timeout=CHROMIUM_TIMEOUT)
    dom = done.stdout.decode(errors="replace")
    stderr = done.stderr.decode(errors="replace")[-3000:]
    assert done.returncode == 0, f"chromium exited with {done.returncode}:\n{stderr}"
    match = re.search(r'<pre id="result">(.*?)</pre>', dom, re.DOTALL)
    assert match is not None, f"no #result in the DOM:\n{dom[-3000:]}\n{stderr}"
    text = html.unescape(match.group(1))
    assert text != "pending", f"the page's fetch() did not settle in time:\n{stderr}"
    result: dict[str, Any] = json.loads(text)
    return result


def access_log(server: Server, method: str) -> list[int]:
    """The statuses the server logged for ``method /register`` requests."""
    pattern = rf'"{method} /register HTTP/1\.1" (\d{{3}})'
    return [int(status) for status in re.findall(pattern, server.output())]


def serve_for_browser(
    serve: Callable[..., Server], kind: str, redis_url: str, key_prefix: str, **env: str
) -> Server:
    # gunicorn logs requests only with an access log; uvicorn logs them at "info".
    args = ["--access-logfile", "-"] if kind == "gunicorn" else []
    return serve(
        kind,
        redis_url,
        env={"DCR_RATE_LIMIT": RATE_LIMIT, "DCR_KEY_PREFIX": key_prefix, **env},
        args=args,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_browser_registers_client_across_origins(
    kind: str,
    chromium: str,
    serve: Callable[..., Server],
    page_origin: Callable[[str], str],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    server = serve_for_browser(serve, kind, redis_url, key_prefix)
    page_url = page_origin(f"{server.url}/register")
    assert page_url.rstrip("/") != server.url  # another origin: another port

    result = run_page(chromium, page_url, tmp_path / "profile")

    assert result["outcome"] == "response", result
    assert result["origin"] == page_url.rstrip("/")
    assert result["status"] == 201, result
    assert isinstance(result["client_id"], str) and result["client_id"], result
    # Readable by the script only because the middleware exposes it.
    assert result["ratelimit"], result
    assert result["ratelimit_policy"], result

    output = server.output()
    assert access_log(server, "OPTIONS") == [204], output
    assert access_log(server, "POST") == [201], output
    assert "Traceback" not in output

    store = ClientStore(Settings(redis_url=redis_url, key_prefix=key_prefix))
    try:
        stored = store.get(result["client_id"])
    finally:
        store.close()
    assert stored is not None
    assert stored.redirect_uris == CONFIDENTIAL["redirect_uris"]
    assert list(stored_records(redis_db)) == [f"{key_prefix}:client:{{{result['client_id']}}}"]


@pytest.mark.parametrize("kind", KINDS)
def test_browser_fetch_fails_from_an_origin_not_allowed(
    kind: str,
    chromium: str,
    serve: Callable[..., Server],
    page_origin: Callable[[str], str],
    redis_url: str,
    redis_db: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    server = serve_for_browser(
        serve, kind, redis_url, key_prefix, DCR_CORS_ORIGINS="https://other.example"
    )
    page_url = page_origin(f"{server.url}/register")

    result = run_page(chromium, page_url, tmp_path / "profile")

    assert result["outcome"] == "error", result
    assert result["name"] == "TypeError", result
    assert result["message"] == "Failed to fetch", result
    output = server.output()
    # The preflight was refused, so the browser never sent the POST.
    assert access_log(server, "OPTIONS") == [403], output
    assert access_log(server, "POST") == [], output
    assert stored_records(redis_db) == {}
