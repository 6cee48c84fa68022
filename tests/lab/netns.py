"""Network namespaces, veth links and lab processes, with guaranteed teardown.

Everything the lab creates is registered here the moment it exists: namespaces (named with
``PREFIX``), and every process it starts (by pid). :meth:`Lab.teardown` kills the processes by
pid, then deletes the namespaces (which removes their veths). It is idempotent and is called
from the pytest finalizer, from ``atexit`` and from SIGINT/SIGTERM handlers, so a failed or
interrupted run leaves nothing behind. :func:`leftovers` lists what would be left.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

PREFIX = "orchlab-"
"""Every lab namespace name starts with this (leftover checks look for it)."""


class LabCommandError(RuntimeError):
    """A lab set-up command failed; the message carries its output."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kw) -> str:
    """Run ``argv`` and return stdout+stderr; raise :class:`LabCommandError` when it fails."""
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    output = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise LabCommandError(f"{' '.join(argv)} exited {proc.returncode}: {output.strip()}")
    return output


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped to run in network namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]


class Lab:
    """Registry of everything the lab built; tear it down exactly once, from anywhere."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.pids: list[int] = []
        self._lock = threading.Lock()
        self._torn_down = False
        self._previous: dict[int, object] = {}

    def install_guards(self) -> None:
        """Tear down at interpreter exit and on SIGINT/SIGTERM (then re-raise the signal)."""
        atexit.register(self.teardown)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.teardown()
        previous = self._previous.get(signum)
        signal.signal(signum, previous if callable(previous) else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signum)

    def add_namespace(self, name: str) -> str:
        """Create namespace ``PREFIX + name`` with loopback up and forwarding on."""
        ns = PREFIX + name
        run(["ip", "netns", "add", ns])
        with self._lock:
            self.namespaces.append(ns)
        run(in_ns(ns, ["ip", "link", "set", "lo", "up"]))
        run(in_ns(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        return ns

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair with one end in each namespace (created inside ``ns_a``)."""
        run(
            in_ns(
                ns_a,
                [
                    "ip",
                    "link",
                    "add",
                    name_a,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    name_b,
                    "netns",
                    ns_b,
                ],
            )
        )

    def spawn(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
        """Start a long-running lab process (stdout+stderr to ``log``); returns its pid."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.track(proc.pid)
        return proc.pid

    def track(self, pid: int) -> None:
        """Register a pid the lab must kill at teardown (daemons that fork report theirs)."""
        with self._lock:
            self.pids.append(pid)

    def kill(self, pid: int) -> None:
        """Stop one lab process now (SIGTERM, then SIGKILL) and reap it if it is our child."""
        _terminate([pid])

    def teardown(self) -> None:
        """Kill every lab process by pid, then delete every lab namespace. Idempotent."""
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
            pids, namespaces = list(self.pids), list(self.namespaces)
        _terminate(pids + namespace_pids(namespaces))
        for ns in namespaces:
            run(["ip", "netns", "delete", ns], check=False)


def namespace_pids(namespaces: Sequence[str]) -> list[int]:
    """Pids of processes still living in any of ``namespaces``."""
    found: list[int] = []
    for ns in namespaces:
        out = run(["ip", "netns", "pids", ns], check=False)
        found.extend(int(word) for word in out.split() if word.isdigit())
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def _terminate(pids: Sequence[int]) -> None:
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        live = [pid for pid in pids if _alive(pid)]
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while live and time.monotonic() < deadline:
            live = [pid for pid in live if _alive(pid)]
            if live:
                time.sleep(0.05)
        if not live:
            return


def leftovers(lab: Lab) -> list[str]:
    """What a teardown left behind: lab namespaces, live lab pids, stray veths. Empty is clean."""
    found = [
        f"namespace {ns}" for ns in run(["ip", "netns", "list"]).split() if ns.startswith(PREFIX)
    ]
    found += [f"process {pid}" for pid in lab.pids if _alive(pid)]
    links = run(["ip", "-o", "link", "show"], check=False)
    found += [
        f"interface {line.split(':')[1].strip()}"
        for line in links.splitlines()
        if ":" in line and line.split(":")[1].strip().startswith("ol")
    ]
    return found
