"""The collector settings a sweep runs under are applied for its length and then undone."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.gc_tuning import SWEEP_GC_THRESHOLDS, sweep_gc

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
    assert str(SWEEP_GC_THRESHOLDS) not in lines[0]
    assert lines[1].startswith("orch, version ")
    assert lines[2] == f"thresholds {SWEEP_GC_THRESHOLDS} True"
