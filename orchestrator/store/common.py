"""What both ways of writing a run share, without SQLAlchemy: the run statuses, the not-found
error, the default database, a new run's row, and whether the process of a run still lives.

A sweep on a current SQLite database writes through `orchestrator.store.sqlite_sweep` (the
sqlite3 module alone); everything else goes through `orchestrator.store.db.Store`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from orchestrator import __version__
from orchestrator.errors import StoreError
from orchestrator.models import DeviceReport, NetworkFinding, RunSummary
from orchestrator.store.convert import filter_secrets

RUN_STATUSES: tuple[str, ...] = ("running", "completed", "interrupted", "failed")
DEFAULT_MAX_STEP_OUTPUT_BYTES = 64 * 1024
PID_REUSE_SLACK_S = 2.0


class RunNotFoundError(StoreError):
    """The requested run id is not in the database."""

    exit_code = 2


def not_found(run_id: int) -> RunNotFoundError:
    return RunNotFoundError(f"no run {run_id}; `orch runs` lists them")


def check_status(status: str) -> None:
    """Refuse a run status the schema does not allow."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")


def default_url() -> str:
    """The SQLite file in the user data dir (the directory is created on open)."""
    import platformdirs

    return f"sqlite:///{Path(platformdirs.user_data_dir('orch')) / 'orch.sqlite3'}"


def new_run_values(
    *, source: str, fleet: str | None, devices_total: int, options: dict[str, Any]
) -> dict[str, Any]:
    """The `runs` row of a run starting now on this host and process."""
    return {
        "status": "running",
        "started_at": datetime.now(timezone.utc),
        "finished_at": None,
        "source": source,
        "fleet": fleet,
        "devices_total": devices_total,
        "devices_reached": 0,
        "devices_with_problems": 0,
        "options": filter_secrets(options),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "orch_version": __version__,
    }


def process_alive(pid: int, run_started_at: datetime) -> bool:
    """Whether the process that started a run still runs on this host.

    A zombie counts as gone, and so does a process with a reused pid: one that started after the
    run did (read from /proc on Linux; elsewhere only the pid is checked).
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return True
    if stat[0] == "Z":
        return False
    process_started = boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")
    return process_started <= run_started_at.timestamp() + PID_REUSE_SLACK_S


class SweepStore(Protocol):
    """What a sweep needs from the database (both `Store` and the SQLite sweep writer)."""

    def start_run(
        self, *, source: str, fleet: str | None, devices_total: int, options: dict[str, Any]
    ) -> int: ...

    def save_reports(self, run_id: int, reports: Sequence[DeviceReport]) -> None: ...

    def set_network_causes(self, run_id: int, causes: dict[str, str]) -> None: ...

    def save_network_findings(self, run_id: int, findings: Sequence[NetworkFinding]) -> None: ...

    def finish_run(self, run_id: int, status: str) -> RunSummary: ...

    def recover_orphans(self) -> list[int]: ...

    def close(self) -> None: ...
