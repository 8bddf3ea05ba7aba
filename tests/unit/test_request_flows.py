"""The request flows driven by hand: what each asks for, in which order, and what it answers.

The flows yield operations (core/ops.py) and never touch storage or a socket, so these tests
run them with a recording executor over the embedded store and check the sequence itself: the
order the security properties depend on (429 before the body, a refused body still charged, a
management request read without noting a use).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from dcr_middleware.core import ops
from dcr_middleware.core.admission import RequestHead
from dcr_middleware.core.client import RegisteredClient
from dcr_middleware.core.errors import StorageError
from dcr_middleware.core.management_flow import ManagementFlow
from dcr_middleware.core.registration_flow import RegistrationFlow
from dcr_middleware.core.settings import Settings
from dcr_middleware.drivers import arun, run
from dcr_middleware.storage.memory import MemoryBackend

BODY = json.dumps({"redirect_uris": ["https://app.example/cb"]}).encode()
JSON = {"content-type": "application/json"}


def _head(method: str = "POST", headers: dict[str, str] | None = None) -> RequestHead:
    return RequestHead(method, {**JSON, **(headers or {})}, "192.0.2.7", "https", "as.example")


class Recorder:
    """Executes what a flow asks on a fresh embedded store and keeps the sequence."""

    def __init__(self, body: bytes = BODY, fail: type[ops.Op[Any]] | None = None) -> None:
        self.backend = MemoryBackend()
        self.body = body
        self.fail = fail
        self.asked: list[Any] = []

    def __call__(self, op: Any) -> Any:
        self.asked.append(op)
        if op is ops.READ_BODY:
            return self.body
        if self.fail is not None and isinstance(op, self.fail):
            raise StorageError("the client store is unavailable; try again later")
        return self.backend.run(op)

    def kinds(self) -> list[str]:
        return [type(op).__name__ for op in self.asked]


def _flow(settings: Settings | None = None) -> RegistrationFlow:
    return RegistrationFlow(settings or Settings(rate_limit="5/min"))


def test_registration_flow_reads_the_body_then_registers_in_one_operation() -> None:
    recorder = Recorder()
    response = run(_flow().register(_head()), recorder)
    assert response.status == 201
    assert recorder.kinds() == ["ReadBody", "Register"]


@pytest.mark.parametrize("cap", [0, 10])
def test_registration_flow_writes_the_record_once(
    cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record measured against DCR_MAX_RECORD_BYTES is the one stored (written once, not
    # once per step); under DCR_MAX_CLIENTS the stored client is marked counted, so its record
    # is written again.
    written: list[str] = []
    to_record = RegisteredClient.to_record

    def counting(client: RegisteredClient) -> str:
        written.append(record := to_record(client))
        return record

    monkeypatch.setattr(RegisteredClient, "to_record", counting)
    recorder = Recorder()
    response = run(_flow(Settings(rate_limit="5/min", max_clients=cap)).register(_head()), recorder)
    assert response.status == 201
    register = recorder.asked[-1]
    assert isinstance(register, ops.Register)
    assert register.attempt.record == written[-1]
    stored = RegisteredClient.from_record(register.attempt.record)
    assert stored.counted is bool(cap)
    assert len(written) == (2 if cap else 1)


def test_registration_flow_charges_a_refused_body() -> None:
    recorder = Recorder(body=b"{not json")
    response = run(_flow().register(_head()), recorder)
    assert response.status == 400
    assert recorder.kinds() == ["ReadBody", "Hit"]


def test_registration_flow_refuses_a_known_refusal_before_asking_for_the_body() -> None:
    flow, recorder = _flow(Settings(rate_limit="1/min")), Recorder()
    assert run(flow.register(_head()), recorder).status == 201
    assert run(flow.register(_head()), recorder).status == 429  # refused by the store...
    recorder.asked.clear()
    assert run(flow.register(_head()), recorder).status == 429  # ...then remembered
    assert recorder.asked == []


def test_registration_flow_answers_415_without_any_operation() -> None:
    recorder = Recorder()
    response = run(_flow().register(_head(headers={"content-type": "text/plain"})), recorder)
    assert response.status == 415
    assert recorder.asked == []


def test_registration_flow_turns_a_storage_error_thrown_in_into_503() -> None:
    recorder = Recorder(fail=ops.Register)
    response = run(_flow().register(_head()), recorder)
    assert response.status == 503
    assert recorder.kinds() == ["ReadBody", "Register"]


def test_registration_flow_charges_a_failed_token_to_the_address() -> None:
    settings = Settings(initial_access_tokens=("a" * 32,), rate_limit="5/min")
    recorder = Recorder()
    response = run(_flow(settings).register(_head(headers={"authorization": "Bearer x"})), recorder)
    assert response.status == 401
    assert recorder.kinds() == ["TokenGet", "Hit"]
    assert recorder.asked[1].bucket.startswith("fail:")


def test_management_flow_reads_without_noting_a_use_and_charges_a_wrong_token() -> None:
    settings = Settings(rate_limit="5/min")
    registration, recorder = _flow(settings), Recorder()
    created = json.loads(run(registration.register(_head()), recorder).body)
    management = ManagementFlow(settings, registration.admission)
    recorder.asked.clear()
    wrong = _head("GET", {"authorization": "Bearer wrong"})
    response = run(management.handle(wrong, created["client_id"]), recorder)
    assert response.status == 401
    assert recorder.kinds() == ["Read", "Hit"]
    recorder.asked.clear()
    right = _head("GET", {"authorization": f"Bearer {created['registration_access_token']}"})
    assert run(management.handle(right, created["client_id"]), recorder).status == 200
    assert recorder.kinds() == ["Read", "Lookup"]  # the use is noted once the token passed


@pytest.mark.parametrize("driver", ["run", "arun"])
def test_drivers_give_the_same_answers(driver: str) -> None:
    answers = []
    for body in (BODY, b"[]", BODY):
        recorder = Recorder(body)
        if driver == "run":
            response = run(_flow().register(_head()), recorder)
        else:

            async def execute(op: Any, recorder: Recorder = recorder) -> Any:
                return recorder(op)

            response = asyncio.run(arun(_flow().register(_head()), execute))
        answers.append((response.status, recorder.kinds()))
    assert answers == [
        (201, ["ReadBody", "Register"]),
        (400, ["ReadBody", "Hit"]),
        (201, ["ReadBody", "Register"]),
    ]


def test_drivers_let_an_exception_the_flow_does_not_handle_out() -> None:
    def flow() -> ops.Flow[None]:
        yield ops.READ_BODY

    def execute(op: Any) -> Any:
        raise KeyError("not a DCRError")

    with pytest.raises(KeyError):
        run(flow(), execute)
