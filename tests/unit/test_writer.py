"""The batching writer: batches concurrent devices, never acknowledges before saving."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orchestrator.models import DeviceReport
from orchestrator.writer import BatchingWriter


def report(i: int) -> DeviceReport:
    return DeviceReport(uuid=f"u{i}", name=f"d{i}", reachable=True)


def test_concurrent_puts_share_batches_and_return_only_once_saved() -> None:
    saved: list[str] = []
    calls: list[int] = []
    lock = threading.Lock()

    def save(batch):
        with lock:
            calls.append(len(batch))
            saved.extend(r.uuid for r in batch)

    async def main() -> None:
        writer = BatchingWriter(save, max_batch=50, max_delay_s=0.02)

        async def one(i: int) -> None:
            await writer.put(report(i))
            assert f"u{i}" in saved  # acknowledged only after it was stored

        await asyncio.gather(*(one(i) for i in range(500)))
        await writer.close()

    asyncio.run(main())
    assert sorted(saved) == sorted(f"u{i}" for i in range(500))
    assert len(calls) < 50, calls  # batched, not one transaction per device


def test_storage_failure_reaches_the_waiting_device() -> None:
    def save(batch):
        raise RuntimeError("disk full")

    async def main() -> None:
        writer = BatchingWriter(save)
        with pytest.raises(RuntimeError, match="disk full"):
            await writer.put(report(1))
        await writer.close()

    asyncio.run(main())


def test_close_flushes_reports_of_cancelled_waiters() -> None:
    saved: list[str] = []

    async def main() -> None:
        writer = BatchingWriter(lambda batch: saved.extend(r.uuid for r in batch), max_delay_s=5)
        task = asyncio.create_task(writer.put(report(7)))
        await asyncio.sleep(0.01)
        task.cancel()
        await writer.close()

    asyncio.run(main())
    assert saved == ["u7"]


def test_one_device_at_a_time_is_stored_promptly() -> None:
    saved: list[str] = []

    async def main() -> None:
        writer = BatchingWriter(lambda b: saved.extend(r.uuid for r in b), max_delay_s=0.01)
        for i in range(5):  # each put must complete although nothing else arrives
            await asyncio.wait_for(writer.put(report(i)), timeout=2)
        await writer.close()

    asyncio.run(main())
    assert saved == [f"u{i}" for i in range(5)]


def test_with_sync_it_commits_on_the_loop_thread_and_acknowledges_after_the_disk() -> None:
    loop_thread = threading.get_ident()
    committed: list[str] = []
    durable: set[str] = set()
    calls: list[tuple[str, bool]] = []

    def save(batch):
        calls.append(("save", threading.get_ident() == loop_thread))
        committed.extend(r.uuid for r in batch)

    def sync():
        calls.append(("sync", threading.get_ident() == loop_thread))
        durable.update(committed)

    async def main() -> None:
        writer = BatchingWriter(save, sync=sync, max_batch=50, max_delay_s=0.02)

        async def one(i: int) -> None:
            await writer.put(report(i))
            assert f"u{i}" in durable  # acknowledged only once on disk, not just committed

        await asyncio.gather(*(one(i) for i in range(200)))
        await writer.close()

    asyncio.run(main())
    assert sorted(durable) == sorted(f"u{i}" for i in range(200))
    assert [kind for kind, _ in calls] == ["save", "sync"] * (len(calls) // 2)
    assert all(on_loop for kind, on_loop in calls if kind == "save")  # the loop's thread
    assert not any(on_loop for kind, on_loop in calls if kind == "sync")  # waits elsewhere
    assert len(calls) // 2 < 50  # still batched


def test_a_failed_sync_reaches_the_waiting_devices() -> None:
    def sync():
        raise OSError("I/O error")

    async def main() -> None:
        writer = BatchingWriter(lambda batch: None, sync=sync)
        results = await asyncio.gather(
            writer.put(report(1)), writer.put(report(2)), return_exceptions=True
        )
        assert [str(r) for r in results] == ["I/O error", "I/O error"]
        await writer.close()

    asyncio.run(main())
