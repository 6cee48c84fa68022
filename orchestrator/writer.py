"""Batching, durable result writer: many devices per transaction, none reported before stored.

``await writer.put(report)`` returns only after the report is committed. Reports that complete
close together share one transaction, so storage keeps up with thousands of devices a minute
while a crash still loses at most the devices whose ``put`` had not returned.

Where a commit waits on a server (PostgreSQL) the batch is saved on a background thread. Where
it is CPU work in this process (SQLite through ``sqlite3``) two threads would only trade the
GIL back and forth, so the batch is saved on the event loop's thread and only the wait for the
disk (``sync``) goes to the background thread; ``put`` still returns only once that is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from orchestrator.models import DeviceReport

SaveBatch = Callable[[Sequence[DeviceReport]], None]
SyncToDisk = Callable[[], None]


class BatchingWriter:
    """Collects reports and saves them in batches.

    Without ``sync``, ``save`` must make a batch durable and runs on one background thread.
    With ``sync``, ``save`` commits on the event loop's thread and ``sync`` then makes what it
    committed durable on the background thread.
    """

    def __init__(
        self,
        save: SaveBatch,
        *,
        sync: SyncToDisk | None = None,
        max_batch: int = 500,
        max_delay_s: float = 0.05,
    ):
        self._save = save
        self._sync = sync
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._pending: list[tuple[DeviceReport, asyncio.Future[None]]] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orch-store")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.saved = 0

    async def put(self, report: DeviceReport) -> None:
        """Queue one report and wait until it is stored (raises if storing failed)."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._flush_loop())
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((report, future))
        self._arrived.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()
        await asyncio.shield(future)

    async def _flush_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._pending) < self._max_batch and not self._closing:
                self._full.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_delay_s)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        loop = asyncio.get_running_loop()
        reports = [r for r, _ in batch]
        try:
            if self._sync is None:
                await loop.run_in_executor(self._executor, self._save, reports)
            else:
                self._save(reports)
                await loop.run_in_executor(self._executor, self._sync)
        except BaseException as exc:  # surfaced to every waiting put()
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self.saved += len(batch)
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def close(self) -> None:
        """Store everything still pending, then stop the background thread."""
        self._closing = True
        self._arrived.set()
        self._full.set()
        if self._task is not None:
            await self._task
        elif self._pending:
            await self._flush()
        self._executor.shutdown(wait=True)
