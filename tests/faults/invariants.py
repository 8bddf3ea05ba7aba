"""The invariants checked after each fault, and the table they are printed in.

A ``503`` or a request the client gave up on has no ``client_id`` to look for, and its outcome is
unknown (a command that timed out may still run): its record is found by its unique
``client_name``, and the invariant for it is "absent or complete", never "absent".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from support import assert_complete

from dcr_middleware import ClientStore, Settings

from .load import HANG, REQUEST_DEADLINE, Answer


class LostWritesError(AssertionError):
    """Clients answered ``201`` are missing from Redis afterwards (and nothing else broke)."""


@dataclass
class Row:
    """One line of the invariant table, plus what the assertions need."""

    fault: str
    server: str
    requests: int = 0
    created: int = 0
    limited: int = 0
    unavailable: int = 0
    other: int = 0
    hangs: int = 0
    max_latency: float = 0.0
    readable: int = 0
    partial: int = 0
    orphans: int = 0  # complete records of requests answered 503 or given up on
    lost: list[Answer] = field(default_factory=list)  # answered 201, not stored afterwards
    lost_during: int = 0  # of those, answered while the fault ran (not in the final batch)
    resumed: str = ""
    problems: list[str] = field(default_factory=list)

    COLUMNS = (
        ("fault", 24),
        ("server", 9),
        ("requests", 8),
        ("201/429/503/other", 17),
        ("hangs", 5),
        ("max latency", 11),
        ("readable-after", 14),
        ("partial", 7),
        ("503 stored", 10),
        ("resumed", 7),
    )

    def cells(self) -> list[str]:
        return [
            self.fault,
            self.server,
            str(self.requests),
            f"{self.created}/{self.limited}/{self.unavailable}/{self.other}",
            str(self.hangs),
            f"{self.max_latency * 1000:.0f} ms",
            f"{self.readable}/{self.created}",
            str(self.partial),
            str(self.orphans),
            self.resumed,
        ]


def table(rows: Iterable[Row]) -> str:
    """The invariant table, as Markdown."""
    widths = [w for _, w in Row.COLUMNS]
    lines = [
        "| " + " | ".join(n.ljust(w) for n, w in Row.COLUMNS) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row.cells(), widths, strict=True)) + " |"
        )
    return "\n".join(lines)


def _check_refusal(answer: Answer, error: str, problems: list[str]) -> None:
    if "retry-after" not in answer.headers or int(answer.headers["retry-after"]) <= 0:
        problems.append(f"{answer.name}: {answer.status} without Retry-After")
    if json.loads(answer.body).get("error") != error:
        problems.append(f"{answer.name}: {answer.status} body {answer.body[:200]!r}")


def _records(admin: redis.Redis, prefix: str, problems: list[str]) -> tuple[dict[str, Any], int]:
    """Every stored client by client_name; how many records are not whole clients."""
    by_name: dict[str, Any] = {}
    partial = 0
    for key in admin.scan_iter(match=f"{prefix}:client:{{*}}", count=500):
        value = admin.get(key)
        try:
            assert value is not None
            client = assert_complete(str(key), str(value), prefix)
        except (AssertionError, ValueError, KeyError, TypeError) as exc:
            partial += 1
            problems.append(f"partial record at {key}: {exc!r}")
            continue
        name = client.metadata.get("client_name")
        if name in by_name:
            problems.append(f"two records for one request {name}")
        by_name[str(name)] = client
    return by_name, partial


def check(
    row: Row,
    answers: Sequence[Answer],
    final: Sequence[Answer],
    admin: redis.Redis,
    settings: Settings,
) -> Row:
    """Fill ``row`` from the answers and from what Redis holds; list every broken invariant
    in ``row.problems`` (empty when all held)."""
    problems = row.problems
    everything = [*answers, *final]
    row.requests = len(answers)
    statuses = [a.status for a in answers]
    row.created = statuses.count(201)
    row.limited = statuses.count(429)
    row.unavailable = statuses.count(503)
    row.hangs = statuses.count(HANG)
    row.other = len(statuses) - row.created - row.limited - row.unavailable - row.hangs
    row.max_latency = max((a.latency for a in everything), default=0.0)
    for answer in everything:
        if answer.status == 429:
            _check_refusal(answer, "too_many_requests", problems)
        elif answer.status == 503:
            _check_refusal(answer, "temporarily_unavailable", problems)
        elif answer.status not in (201, HANG):
            problems.append(f"{answer.name}: status {answer.status} {answer.body[:300]!r}")
    if row.hangs:
        problems.append(f"{row.hangs} request(s) unanswered after {REQUEST_DEADLINE} s")
    row.resumed = f"{sum(a.status == 201 for a in final)}/{len(final)}"
    if any(a.status != 201 for a in final):
        problems.append(f"service not resumed: final batch {[a.status for a in final]}")

    by_name, row.partial = _records(admin, settings.key_prefix, problems)
    sent = {a.name: a for a in everything}
    for name in by_name.keys() - sent.keys():
        problems.append(f"a record no request asked for: {name}")
    during = {a.name for a in answers}
    store = ClientStore(settings)
    try:
        for answer in everything:
            stored = by_name.get(answer.name)
            if answer.status == 201:
                created = answer.created
                if stored is None or stored.client_id != created["client_id"]:
                    row.lost.append(answer)
                    row.lost_during += answer.name in during
                elif store.authenticate(created["client_id"], created["client_secret"]) is None:
                    problems.append(f"201 {answer.name} not readable through ClientStore")
                elif answer.name in during:
                    row.readable += 1
            elif answer.status == 429 and stored is not None:
                problems.append(f"429 {answer.name} stored a client")
            elif stored is not None:
                row.orphans += 1  # absent or complete: it is complete (checked above)
    finally:
        store.close()
    counted = int(admin.get(f"{settings.key_prefix}:{{client-count}}") or 0)
    if counted != len(by_name) + row.partial:
        problems.append(f"client counter {counted} but {len(by_name)} records")
    return row
