"""The collector settings a sweep runs under are applied for its length and then undone."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

from orchestrator.gc_tuning import (
    STARTUP_GC_THRESHOLDS,
    SWEEP_GC_THRESHOLDS,
    imports_frozen,
    sweep_gc,
)

REPO = Path(__file__).resolve().parents[2]


def test_start_up_objects_frozen_and_thresholds_raised_only_inside_the_block() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with sweep_gc():
        assert gc.get_threshold() == SWEEP_GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # new garbage is still collected
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settings_undone_when_the_sweep_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), sweep_gc():
        raise RuntimeError("device store failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_orch_script_raises_the_thresholds_before_loading_the_cli() -> None:
    probe = (
        "import atexit, gc, sys; "
        "atexit.register(lambda: print('thresholds', gc.get_threshold(), "
        "'click' in sys.modules)); "
        "from orchestrator.console import main; "
        "print('before', gc.get_threshold(), 'click' in sys.modules); main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(" False")  # click (the CLI) not imported yet
    assert str(STARTUP_GC_THRESHOLDS) not in lines[0]
    assert lines[1].startswith("orch, version ")
    assert lines[2] == f"thresholds {STARTUP_GC_THRESHOLDS} True"


def test_orch_script_leaves_the_exit_collection_nothing_to_examine() -> None:
    """The interpreter's last collection would walk every start-up object again (~45 ms)."""
    probe = (
        "import atexit, gc; "
        "atexit.register(lambda: print('at exit', gc.get_freeze_count(), len(gc.get_objects()))); "
        "from orchestrator.console import main; main()"
    )
    for args in (["--version"], ["explain", "-"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            input="chronyd[894]: System clock wrong by 3601.2 seconds\n",
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert done.returncode in (0, 1), done.stderr
        frozen, unfrozen = map(int, done.stdout.splitlines()[-1].split()[2:])
        assert frozen > 20_000  # start-up alone makes tens of thousands
        assert unfrozen < 500  # what the atexit handlers made since


class _Node:
    __slots__ = ("peer", "payload")


def _sweep_like_allocations(devices: int, in_flight: int) -> int:
    """Each device makes a cycle of objects that is still alive when some young collections run
    (``in_flight`` devices at a time, like connections), then dies; returns how many garbage
    objects were still waiting for the collector at the end."""
    window: deque[_Node] = deque()
    for _ in range(devices):
        first, second = _Node(), _Node()
        first.peer, second.peer = second, first
        first.payload = [[] for _ in range(30)]
        window.append(first)
        if len(window) > in_flight:
            window.popleft()
    window.clear()
    return gc.collect()


def test_garbage_that_outlives_young_collections_does_not_pile_up_during_a_sweep() -> None:
    with sweep_gc():
        gc.collect()
        waiting = _sweep_like_allocations(devices=160_000, in_flight=200)
    # 160,000 devices x 33 objects: ~100 young collections, each promoting the 200 devices then
    # alive (6,600 objects), which die soon after. Older collections at CPython's pace free them
    # within ten middle collections (~68,000 objects wait at the end, however long the run);
    # with (50,000, 20, 100) they piled up (~160,000 here, growing with the run)
    assert waiting < 100_000


def test_nothing_is_collected_while_importing_and_collection_resumes_after() -> None:
    runs: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with pytest.raises(ImportError), imports_frozen():
            kept = [[] for _ in range(3 * gc.get_threshold()[0])]
            assert gc.isenabled() is False
            import orchestrator._no_such_module  # noqa: F401
        assert gc.isenabled()
        assert gc.get_count()[0] < 100  # frozen: no collection waits for the next allocation
        more = [[] for _ in range(100)]
        assert runs == []
        assert gc.get_freeze_count() >= len(kept)
        gc.disable()
        with imports_frozen():
            pass
        assert not gc.isenabled()  # a collector the caller had off stays off
        del kept, more
    finally:
        gc.unfreeze()
        gc.enable()
        gc.callbacks.remove(count)
