"""Await one device's work under its deadline and say how it ended, without raising.

On Python 3.11 and later the work runs in the caller's own task under ``asyncio.timeout``; a
task of its own and ``asyncio.wait`` (what Python 3.10 offers) cost ~15 us more per device.
Either way the outcome is the same: the work finished, failed with an exception, ran out of
time (and was cancelled), or was cancelled from inside (a connection it waited for was closed
under it). Cancelling the caller still cancels the work and propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Literal, NamedTuple

_TIMEOUT: Any = getattr(asyncio, "timeout", None)
"""``asyncio.timeout`` where it exists (Python 3.11+), else None."""


class Settled(NamedTuple):
    """How awaited work ended; ``error`` is set only when ``how`` is ``failed``."""

    how: Literal["done", "failed", "timeout", "cancelled"]
    error: Exception | None = None


async def settle(work: Coroutine[Any, Any, None], deadline_s: float) -> Settled:
    """Await ``work`` for at most ``deadline_s`` seconds and report how it ended."""
    if _TIMEOUT is None:
        return await _settle_in_task(work, deadline_s)
    scope = _TIMEOUT(deadline_s)
    try:
        async with scope:
            await work
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return Settled("cancelled")
    except Exception as exc:  # the deadline's TimeoutError, or whatever the work raised
        if scope.expired():
            return Settled("timeout")
        return Settled("failed", exc)
    return Settled("timeout" if scope.expired() else "done")  # expired: it ignored the cancel


async def _settle_in_task(work: Coroutine[Any, Any, None], deadline_s: float) -> Settled:
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
    except asyncio.CancelledError:
        await _cancelled(task)
        raise
    if not done:
        await _cancelled(task)
        return Settled("timeout")
    if task.cancelled():
        return Settled("cancelled")
    error = task.exception()
    if error is None:
        return Settled("done")
    if not isinstance(error, Exception):
        raise error
    return Settled("failed", error)


async def _cancelled(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):  # the work's end is not the caller's concern now
        await task
