"""A device's work ends one of four ways under its deadline, the same on every Python.

Each case runs with ``asyncio.timeout`` (Python 3.11+) and with the task-and-wait fallback
that Python 3.10 uses.
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.transport import deadline
from orchestrator.transport.deadline import settle


@pytest.fixture(params=["timeout", "task"])
def way(request, monkeypatch) -> str:
    if request.param == "task":
        monkeypatch.setattr(deadline, "_TIMEOUT", None)
    elif deadline._TIMEOUT is None:
        pytest.skip("asyncio.timeout needs Python 3.11")
    return request.param


async def _finishes(log: list[str]) -> None:
    await asyncio.sleep(0)
    log.append("finished")


async def _hangs(log: list[str]) -> None:
    try:
        await asyncio.sleep(30)
    finally:
        log.append("cleaned up")


async def _fails(log: list[str]) -> None:
    await asyncio.sleep(0)
    raise ConnectionResetError("reset by peer")


async def _times_out_itself(log: list[str]) -> None:
    await asyncio.sleep(0.01)
    raise TimeoutError("the work's own timeout, not the deadline")


async def _cancelled_inside(log: list[str]) -> None:
    closed = asyncio.get_running_loop().create_future()
    closed.cancel()  # what a pool's close() does to a connection the work waits for
    await closed


async def _ignores_the_cancel(log: list[str]) -> None:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        log.append("kept going")


def run(coroutine_function, deadline_s: float = 0.2) -> tuple[deadline.Settled, list[str]]:
    log: list[str] = []
    return asyncio.run(settle(coroutine_function(log), deadline_s)), log


def test_finished_work_is_done(way) -> None:
    assert run(_finishes) == (deadline.Settled("done"), ["finished"])


def test_work_past_its_deadline_is_cancelled_and_reported(way) -> None:
    assert run(_hangs) == (deadline.Settled("timeout"), ["cleaned up"])


def test_work_that_ignores_the_cancel_still_counts_as_timed_out(way) -> None:
    assert run(_ignores_the_cancel) == (deadline.Settled("timeout"), ["kept going"])


def test_an_exception_of_the_work_is_returned_not_raised(way) -> None:
    settled, _ = run(_fails)
    assert settled.how == "failed"
    assert isinstance(settled.error, ConnectionResetError)


def test_a_timeout_error_of_the_work_itself_is_a_failure_not_the_deadline(way) -> None:
    settled, _ = run(_times_out_itself, deadline_s=5)
    assert settled.how == "failed"
    assert "own timeout" in str(settled.error)


def test_a_cancel_from_inside_the_work_is_reported(way) -> None:
    assert run(_cancelled_inside)[0] == deadline.Settled("cancelled")


def test_cancelling_the_caller_cancels_the_work_and_propagates(way) -> None:
    log: list[str] = []

    async def main() -> None:
        caller = asyncio.ensure_future(settle(_hangs(log), 30))
        await asyncio.sleep(0.05)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller

    asyncio.run(main())
    assert log == ["cleaned up"]
