"""Garbage-collector settings for the length of a sweep.

A sweep allocates millions of short-lived objects (SSH packets, parsed lines, report rows) while
the few hundred thousand objects made at start-up (SQLAlchemy, asyncssh, click and orch's own
modules) live until exit. With CPython's defaults (a young collection every 700 allocations)
the collector re-examines the same objects over and over, and every full collection walks all
of start-up's objects again: about a third of orch's CPU per device in ``tests/bench``.

``command_line_gc()`` raises the thresholds for the whole ``orch`` process, before its imports
(about 160 collections of import-time objects otherwise). Inside ``sweep_gc()`` start-up's
objects are frozen (never examined again), young collections happen every
``SWEEP_GC_THRESHOLDS[0]`` allocations and older ones at CPython's usual pace after that, so
garbage that outlived a young collection (a connection in flight at that moment, closed just
after) is freed within a few of them: a worker that runs shard after shard for months keeps a
flat memory profile. Both settings are undone on exit, so a process that embeds orch gets its
own back. The ``orch`` script, whose process ends with its command, freezes everything once the
command returned (``nothing_to_collect_at_exit``): the interpreter's last collection is then free.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

STARTUP_GC_THRESHOLDS = (50_000, 20, 100)
"""Generation 0, 1 and 2 thresholds of the ``orch`` process (CPython's defaults: 700, 10, 10):
imports make objects that live until exit, so examining them again is wasted work."""

SWEEP_GC_THRESHOLDS = (50_000, 2, 10)
"""Thresholds while sweeping. Start-up's objects are frozen by then, so a middle or full
collection only walks what the sweep made; with (50,000, 20, 100) a 10,000-device sweep never
ran one, and garbage promoted out of the young generation piled up (an ``orch worker`` grew to
280 MB over 5,000 devices, 181 MB with these)."""


def command_line_gc() -> None:
    """Collect young objects less often for the rest of this process (the ``orch`` script)."""
    gc.set_threshold(*STARTUP_GC_THRESHOLDS)


def nothing_to_collect_at_exit() -> None:
    """Freeze every object, so the collection the interpreter runs as it exits examines none.

    For a process about to exit (the ``orch`` script once its command returned): that last
    collection walked all of start-up's objects again (~45 ms of CPU, a sweep's included, since
    ``sweep_gc`` unfreezes on its way out). Objects are still freed as the modules are torn
    down and atexit handlers still run; only garbage caught in reference cycles is left for the
    operating system to reclaim with the process.
    """
    gc.freeze()


@contextmanager
def imports_frozen() -> Iterator[None]:
    """No collection while the block runs, and what exists after it frozen (never examined).

    Meant for imports: what they make lives until exit, so examining it is wasted (``orch
    diagnose``'s imports ran one ~10 ms young collection). Freezing also empties the young
    generation, so turning the collector back on does not start that collection at once.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


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
