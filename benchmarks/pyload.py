"""A bounded HTTP/1.1 load generator, the fallback when ``wrk`` is not installed.

``N`` keep-alive connections (reconnecting when the server closes one) send the same request
in a loop for a fixed time; prints one JSON line: requests, seconds, non-2xx, errors, p50/p99.
Much slower than wrk (it is Python, and it shares the CPU with the server): compare only figures
taken with the same tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    if length:
        await reader.readexactly(length)
    return status, keep


async def _worker(
    host: str, port: int, raw: bytes, deadline: float, latencies: list[float], counts: list[int]
) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            start = time.perf_counter()
            writer.write(raw)
            status, keep = await asyncio.wait_for(_read_response(reader), timeout=5.0)
            latencies.append(time.perf_counter() - start)
            counts[0] += 1
            if not 200 <= status < 300:
                counts[1] += 1
            if not keep:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            counts[2] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def main_async(url: str, method: str, body: bytes, seconds: float, connections: int) -> None:
    """Run the load and print the JSON summary."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    raw = (head + "\r\n").encode() + body
    latencies: list[float] = []
    counts = [0, 0, 0]  # requests, non-2xx, errors
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(
        *(_worker(host, port, raw, deadline, latencies, counts) for _ in range(connections))
    )
    elapsed = time.monotonic() - start
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        json.dumps(
            {
                "requests": counts[0],
                "seconds": elapsed,
                "non_2xx": counts[1],
                "errors": counts[2],
                "p50_ms": quantiles[49] * 1000,
                "p99_ms": quantiles[98] * 1000,
            }
        )
    )


def main() -> None:
    """Command line: ``--url --method --seconds --connections [--body-file]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--body-file")
    args = parser.parse_args()
    body = b""
    if args.body_file:
        with open(args.body_file, "rb") as handle:
            body = handle.read()
    seconds = min(args.seconds, 120.0)
    factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main_async(args.url, args.method, body, seconds, args.connections))


if __name__ == "__main__":
    main()
