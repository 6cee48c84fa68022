"""asyncssh's logging as orch runs it: no packet dumps ever, messages unchanged where enabled."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from orchestrator.models import Route
from orchestrator.probes.base import Step
from orchestrator.probes.script import build_script, new_nonce, split_output
from orchestrator.transport.sshlib import asyncssh
from tests.support import run
from tests.support.sshserver import SSHTestServer

SECRET_OUTPUT = "orch-test-secret-4f1c9e"
STEPS = (Step("secret", f"echo {SECRET_OUTPUT}"),)


@pytest.fixture
def packet_dump_level() -> Iterator[None]:
    """asyncssh at its most verbose: debug level 3, the one that dumps packets."""
    asyncssh.set_debug_level(3)
    try:
        yield
    finally:
        asyncssh.set_debug_level(1)


def test_no_packet_dump_even_at_debug_level_3(
    packet_dump_level, client_key, make_transport, caplog
):
    nonce = new_nonce()

    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server])
            route = Route("direct", server.host, server.port, "root")
            return await transport.run_script(route, build_script(STEPS, nonce, budget_s=20))

    with caplog.at_level(logging.DEBUG, logger="asyncssh"):
        result = run(scenario())

    assert result.error is None, result.error
    assert split_output(result.stdout, nonce, STEPS).steps["secret"].output.strip() == SECRET_OUTPUT
    messages = [
        record.getMessage() for record in caplog.records if record.name.startswith("asyncssh")
    ]
    assert any("Auth for user root succeeded" in m for m in messages), "asyncssh logged nothing"
    assert not [r for r in caplog.records if getattr(r, "packet", None)], "a packet was dumped"
    assert not [m for m in messages if m.startswith(("Sent MSG_", "Received MSG_"))]
    assert not [m for m in messages if SECRET_OUTPUT in m]


class _CountsText:
    """A log argument that counts how often it is turned into text (asyncssh turns the items
    of a list argument into text itself, before the standard logging module sees them)."""

    def __init__(self) -> None:
        self.converted = 0

    def __str__(self) -> str:
        self.converted += 1
        return "converted"


def test_disabled_messages_are_not_formatted(caplog):
    argument = _CountsText()
    with caplog.at_level(logging.WARNING, logger="asyncssh"):
        asyncssh.logging.logger.info("skipped %s", [argument])
    assert argument.converted == 0
    assert not caplog.records


def test_enabled_messages_are_asyncssh_own_text(caplog):
    argument = _CountsText()
    with caplog.at_level(logging.INFO, logger="asyncssh"):
        asyncssh.logging.logger.info("kept %s to %s", [argument, b"ok"], ("198.18.0.7", 2222))
    assert argument.converted == 1
    assert [r.getMessage() for r in caplog.records] == [
        "kept converted,ok to 198.18.0.7, port 2222"
    ]
