"""The lab harness tears everything down when its process is interrupted or crashes.

A child process builds a one-namespace lab with a long-running process inside, then is sent
SIGINT or SIGTERM, or raises; afterwards neither the namespace nor the process may exist.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.netns import run

pytestmark = pytest.mark.lab
ROOT = Path(__file__).parents[2]

CHILD = """
import os, sys, tempfile, time
from pathlib import Path
from tests.lab.netns import PREFIX, Lab, in_ns
lab = Lab(Path(tempfile.mkdtemp(prefix=PREFIX)))
lab.install_guards()
ns = lab.add_namespace(f"guard-{os.getpid()}")
pid = lab.spawn(in_ns(ns, ["sleep", "300"]), lab.workdir / "sleep.log")
print(ns, pid, flush=True)
if sys.argv[1] == "crash":
    raise RuntimeError("a failed lab build")
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and ip")
@pytest.mark.parametrize("how", ["sigint", "sigterm", "crash"])
def test_lab_is_torn_down_after_interrupt_or_crash(how: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ns, pid = child.stdout.readline().split()
        if how != "crash":
            assert ns in run(["ip", "netns", "list"]).split()
            time.sleep(0.2)
            child.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert ns not in run(["ip", "netns", "list"]).split(), f"{how} left namespace {ns}"
    deadline = time.monotonic() + 5
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid)), f"{how} left process {pid}"
