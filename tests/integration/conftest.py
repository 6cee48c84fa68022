"""Fixtures for real-SSH integration tests (servers themselves start inside each test's loop)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from orchestrator.transport.ssh import SSHSettings, SSHTransport
from tests.support.sshserver import SSHTestServer, new_key, write_known_hosts

TransportFactory = Callable[..., SSHTransport]


@pytest.fixture(scope="session")
def client_key() -> asyncssh.SSHKey:
    """One client key shared by every server a test starts."""
    return new_key()


@pytest.fixture
def make_transport(tmp_path: Path, client_key: asyncssh.SSHKey) -> TransportFactory:
    """Build an ``SSHTransport`` trusting the given servers' host keys (known_hosts in tmp)."""

    def factory(servers: Iterable[SSHTestServer] = (), **overrides: Any) -> SSHTransport:
        known_hosts = write_known_hosts(tmp_path / "known_hosts", servers)
        fields: dict[str, Any] = {"keys": (client_key,), "known_hosts": str(known_hosts)}
        fields.update(overrides)
        return SSHTransport(SSHSettings(**fields))

    return factory
