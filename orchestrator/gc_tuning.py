"""Garbage-collector settings for the length of a sweep.

A sweep allocates millions of short-lived objects (SSH packets, parsed lines, report rows) while
the few hundred thousand objects made at start-up (SQLAlchemy, asyncssh, click and orch's own
modules) live until exit. With CPython's defaults (a young collection every 700 allocations)
the collector re-examines the same objects over and over, and every full collection walks all
of start-up's objects again: about a third of orch's CPU per device in ``tests/bench``.

``command_line_gc()`` raises the thresholds for the whole ``orch`` process, before its imports
(about 160 collections of import-time objects otherwise). Inside ``sweep_gc()`` start-up's
objects are frozen (never examined again) and young collections happen every
``SWEEP_GC_THRESHOLDS[0]`` allocations; both are undone on exit, so a process that embeds orch
gets its own settings back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

SWEEP_GC_THRESHOLDS = (50_000, 20, 100)
"""Generation 0, 1 and 2 thresholds while sweeping (CPython's defaults are 700, 10, 10)."""


def command_line_gc() -> None:
    """Collect young objects less often for the rest of this process (the ``orch`` script)."""
    gc.set_threshold(*SWEEP_GC_THRESHOLDS)


@contextmanager
def sweep_gc() -> Iterator[None]:
    """Freeze what exists now and collect young objects less often, until the block ends."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*SWEEP_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
