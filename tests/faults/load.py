"""Bounded registration load through a real server, from a background thread.

A :class:`Load` sends ``POST /register`` on its own asyncio loop: a few paced workers, each request
on its own connection from its own loopback address (every 127/8 address is loopback, so the
per-IP rate limit never refuses them), plus one "greedy" worker on a single address that runs into
the rate limit (``429``). Every request carries a unique ``client_name``, which is how its record
is found again (see :mod:`.invariants`). Every request has a client deadline
(:data:`REQUEST_DEADLINE`); one not answered by then is a hang. Nothing is ever re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from support import HOST, raw_post

REQUEST_DEADLINE = 5.0
# One address that sends faster than the rate limit allows (the others send one request each).
GREEDY_SOURCE = "127.0.0.99"
HANG = -1  # Answer.status of a request that got no answer by the deadline
BROKEN = 0  # Answer.status of a request whose connection failed (never expected)


@dataclass(frozen=True)
class Answer:
    """What one registration request got."""

    name: str  # its unique client_name
    status: int  # HTTP status, or HANG / BROKEN
    latency: float
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    started: float = 0.0  # time.perf_counter() when it was sent

    @property
    def created(self) -> dict[str, Any]:
        """The registration response of a ``201``."""
        data: dict[str, Any] = json.loads(self.body)
        return data


async def _exchange(port: int, source: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("closed before answering")
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class Load:
    """Bounded registration load from a background thread: ``workers`` paced workers (one
    request per connection, each from a new loopback address) and one greedy worker.

    Stops at :meth:`stop`, after ``max_requests`` requests or after ``max_seconds``, whichever
    comes first. Nothing is ever re-sent.
    """

    def __init__(
        self,
        port: int,
        tag: str,
        *,
        workers: int = 4,
        interval: float = 0.04,
        greedy: bool = True,
        max_requests: int = 1200,
        max_seconds: float = 30.0,
    ) -> None:
        self.port = port
        self.tag = tag
        self.workers = workers
        self.interval = interval
        self.greedy = greedy
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.answers: list[Answer] = []
        self._numbers = itertools.count()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def wait_answers(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` answers are in (bounded)."""
        deadline = time.monotonic() + timeout
        while len(self.answers) < count:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"load: {len(self.answers)} of {count} answers")
            time.sleep(0.02)

    def stop(self) -> list[Answer]:
        """Stop sending; wait for the requests in flight (each has its deadline)."""
        self._stopping.set()
        self._thread.join(timeout=REQUEST_DEADLINE + 5)
        assert not self._thread.is_alive(), "the load did not stop"
        return list(self.answers)

    def _next(self) -> int | None:
        number = next(self._numbers)
        return number if number < self.max_requests and not self._stopping.is_set() else None

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.max_seconds
        paced = [self._worker(None, self.interval, ends) for _ in range(self.workers)]
        greedy = [self._worker(GREEDY_SOURCE, self.interval / 2, ends)] if self.greedy else []
        await asyncio.gather(*paced, *greedy)

    async def _worker(self, source: str | None, interval: float, ends: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < ends and (number := self._next()) is not None:
            self.answers.append(await self.send(number, source or spread_source(number)))
            await asyncio.sleep(interval)

    async def send(self, number: int, source: str) -> Answer:
        """One registration from ``source`` with the client name ``<tag>-<number>``."""
        name = f"{self.tag}-{number}"
        body = json.dumps({"redirect_uris": ["https://app.example.com/cb"], "client_name": name})
        request = raw_post("/register", body.encode(), host=f"{HOST}:{self.port}")
        started = time.perf_counter()
        try:
            status, headers, payload = await asyncio.wait_for(
                _exchange(self.port, source, request), REQUEST_DEADLINE
            )
        except TimeoutError:
            return Answer(name, HANG, time.perf_counter() - started, started=started)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            latency = time.perf_counter() - started
            return Answer(name, BROKEN, latency, body=repr(exc).encode(), started=started)
        return Answer(name, status, time.perf_counter() - started, headers, payload, started)


def spread_source(number: int) -> str:
    """A loopback address of its own for request ``number`` (127.1.x.y)."""
    return f"127.1.{number // 250 % 256}.{1 + number % 250}"


def final_batch(port: int, tag: str, count: int = 10) -> list[Answer]:
    """``count`` registrations at once from fresh addresses, after the fault (bounded)."""
    load = Load(port, tag)

    async def run() -> list[Answer]:
        sends = (load.send(n, spread_source(60_000 + n)) for n in range(count))
        return list(await asyncio.gather(*sends))

    return asyncio.run(run())
