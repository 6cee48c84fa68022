"""A one-line progress bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from orchestrator.models import DeviceReport


class ProgressBar:
    """Counts finished devices and redraws at most ten times a second."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() and total > 0
        self.width = width
        self.done = 0
        self.problems = 0
        self.unreachable = 0
        self._last_draw = 0.0

    def __call__(self, report: DeviceReport) -> None:
        self.done += 1
        if not report.reachable:
            self.unreachable += 1
        elif not report.healthy:
            self.problems += 1
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= 0.1 or self.done == self.total):
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} devices, "
            f"{self.problems} with problems, {self.unreachable} unreachable"
        )
        self.stream.flush()

    def finish(self) -> None:
        """End the progress line so results start on a clean line."""
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()
