"""The lab session fixture: build the namespaces once, always tear them down, check nothing is left.

Skips (with the reason) only when not root or when ``ip netns`` cannot create a namespace.
Teardown runs from the fixture finalizer, and also from ``atexit`` and SIGINT/SIGTERM handlers
(see :class:`tests.lab.netns.Lab`), so Ctrl-C or a crash leaves nothing behind. Anything left
after teardown (namespace, process, interface) fails the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.builder import LabWorld, build_world
from tests.lab.netns import PREFIX, Lab, leftovers

REQUIRED_TOOLS = (
    "ip",
    "iptables",
    "sshd",
    "chronyd",
    "chronyc",
    "dnsmasq",
    "openvpn",
    "openssl",
    "curl",
    "busybox",
    "nsenter",
    "ssh-keygen",
)


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the device lab needs root (network namespaces, iptables): run it with sudo"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the device lab needs {', '.join(missing)} (tests/setup.sh installs them)"
    probe = f"{PREFIX}probe-{os.getpid()}"
    made = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        return f"ip netns is unavailable here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False)
    return None


@pytest.fixture(scope="session")
def world() -> Iterator[LabWorld]:
    """The running lab (built once per session)."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    lab = Lab(Path(tempfile.mkdtemp(prefix=PREFIX)))
    lab.install_guards()
    try:
        yield build_world(lab)
    finally:
        lab.teardown()
        left = leftovers(lab)
        if not left:
            shutil.rmtree(lab.workdir, ignore_errors=True)
        assert not left, f"the lab left behind: {', '.join(left)} (work dir {lab.workdir})"
