"""Through a gateway, a target's packets reach the gateway channel gathered, bytes unchanged."""

from __future__ import annotations

import asyncssh

from orchestrator.models import Route
from tests.support import run
from tests.support.sshserver import SSHTestServer

SCRIPT = b'printf "%s\\n" "$WHO"; head -c 20000 /dev/zero | tr "\\0" x; echo\n'


def test_gateway_gets_fewer_messages_than_an_ungathered_tunnel_and_the_same_output(
    client_key, make_transport
):
    async def scenario():
        async with (
            SSHTestServer(
                client_keys=[client_key], allow_forwarding=True, record_forwarded=True
            ) as gateway,
            SSHTestServer(client_keys=[client_key], env={"WHO": "target"}) as target,
        ):
            transport = make_transport([gateway, target])
            via = Route("direct", gateway.host, gateway.port, "root")
            route = Route("jump", "127.0.0.1", target.port, "root", via=via)
            gathered = await transport.run_script(route, SCRIPT)
            gathered_messages = list(gateway.forwarded_messages)
            await transport.close()

            gateway.forwarded_messages.clear()
            options = transport.login.options
            async with (
                asyncssh.connect(
                    gateway.host, gateway.port, username="root", options=options
                ) as hop,
                asyncssh.connect(
                    "127.0.0.1", target.port, username="root", options=options, tunnel=hop
                ) as conn,
            ):
                plain = await conn.run("sh -s", input=SCRIPT, encoding=None, check=False)
            return gathered, gathered_messages, plain, list(gateway.forwarded_messages)

    gathered, gathered_messages, plain, plain_messages = run(scenario())
    assert gathered.error is None
    assert gathered.stdout == plain.stdout == b"target\n" + b"x" * 20000 + b"\n"
    # every packet asyncssh sends once keys are set comes after an empty MSG_IGNORE packet:
    # gathered, the two share one channel message
    assert len(gathered_messages) <= 0.7 * len(plain_messages)
