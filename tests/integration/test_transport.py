"""SSHTransport over real SSH: in-process asyncssh servers on 127.0.0.1, real sh, real script."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections import Counter
from pathlib import Path

import asyncssh
import pytest

from orchestrator.errors import ConfigError
from orchestrator.models import Route
from orchestrator.probes.base import Step
from orchestrator.probes.script import build_script, new_nonce, split_output
from orchestrator.transport import credentials
from orchestrator.transport.ssh import (
    STDERR_KEEP_BYTES,
    SSHSettings,
    SSHTransport,
    classify_error,
    raise_nofile_limit,
)
from tests.support import closed_port, run, silent_listener
from tests.support.sshserver import (
    FORGED_TEXT,
    SSHTestServer,
    new_key,
    write_client_key,
    write_known_hosts,
)


def direct(server: SSHTestServer, user: str = "root") -> Route:
    return Route("direct", server.host, server.port, user)


def vm_kib(field: str) -> int:
    """A VmRSS/VmHWM figure of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


ROUND_TRIP_STEPS = (
    Step("clock", "date -u +%s"),
    Step("slow", "sleep 1; echo slept"),
    Step("failing", "echo oops >&2; exit 3"),
)


def test_probe_script_round_trip_with_arrival_times(client_key, tmp_path, make_transport):
    nonce = new_nonce()
    script = build_script(ROUND_TRIP_STEPS, nonce, budget_s=20)
    key_file = write_client_key(client_key, tmp_path / "id_ed25519")

    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server], keys=(), key_files=(str(key_file),))
            return await transport.run_script(direct(server), script)

    before = time.time()
    result = run(scenario())
    after = time.time()

    assert result.error is None, result.error
    assert result.exit_status == 0 and not result.truncated
    split = split_output(result.stdout, nonce, ROUND_TRIP_STEPS, result.chunk_times)
    assert split.hello and split.done and not split.corrupt
    clock, slow, failing = (split.steps[s.name] for s in ROUND_TRIP_STEPS)
    assert abs(int(clock.output.strip()) - result.sent_at) < 3
    assert slow.output == "slept\n" and slow.exit_code == 0
    assert failing.exit_code == 3 and "oops" in failing.output
    assert before <= result.sent_at <= clock.received_at <= slow.received_at <= after
    assert slow.received_at - clock.received_at >= 0.9, "the slow step arrived too early"
    assert [n for n, _ in result.chunk_times] == sorted(n for n, _ in result.chunk_times)
    assert result.chunk_times[-1][0] == len(result.stdout)
    assert 0 < result.connect_s < result.total_s < after - before + 0.01


def test_refused_port_names_the_device():
    port = closed_port()
    transport = SSHTransport(SSHSettings(keys=(new_key(),), insecure_no_host_key_check=True))
    result = run(transport.run_script(Route("direct", "127.0.0.1", port, "root"), b"true\n"))
    assert result.error is not None and result.error.kind == "refused"
    assert f"root@127.0.0.1:{port}" in str(result.error)


def test_auth_failure_names_user_and_key(client_key, make_transport):
    async def scenario():
        async with SSHTestServer(client_keys=[client_key], reject_auth=True) as server:
            transport = make_transport([server])
            return server, await transport.run_script(direct(server, "admin"), b"true\n")

    server, result = run(scenario())
    assert result.error is not None and result.error.kind == "auth"
    message = str(result.error)
    assert f"admin@127.0.0.1:{server.port}" in message
    assert client_key.get_fingerprint() in message
    assert result.stdout == b"" and result.sent_at == 0.0


def test_host_key_mismatch_suggests_removing_stale_entry(client_key, tmp_path):
    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            impostor = SSHTestServer(client_keys=[client_key])
            impostor.port = server.port
            known = write_known_hosts(tmp_path / "kh", [impostor])
            transport = SSHTransport(SSHSettings(keys=(client_key,), known_hosts=str(known)))
            return server, known, await transport.run_script(direct(server), b"echo no\n")

    server, known, result = run(scenario())
    assert result.error is not None and result.error.kind == "hostkey"
    message = str(result.error)
    assert "MISMATCH" in message and str(known) in message and "ssh-keygen -R" in message
    assert result.stdout == b""
    assert server.commands == [], "no command may run on a host whose key does not match"


def test_unknown_host_is_an_error_not_trust_on_first_use(client_key, tmp_path):
    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            other = SSHTestServer(client_keys=[client_key])
            other.port = closed_port()
            known = write_known_hosts(tmp_path / "kh", [other])
            transport = SSHTransport(SSHSettings(keys=(client_key,), known_hosts=str(known)))
            first = await transport.run_script(direct(server), b"echo no\n")
            second = await transport.run_script(direct(server), b"echo no\n")
            return server, known, first, second

    server, known, first, second = run(scenario())
    for result in (first, second):
        assert result.error is not None and result.error.kind == "hostkey"
        assert "unknown host" in str(result.error) and str(known) in str(result.error)
    assert f"[127.0.0.1]:{server.port}" not in known.read_text()
    assert server.commands == []


def test_insecure_opt_out_connects_and_warns(client_key, tmp_path, caplog):
    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            settings = SSHSettings(
                keys=(client_key,),
                known_hosts=str(tmp_path / "missing"),
                insecure_no_host_key_check=True,
            )
            with caplog.at_level(logging.WARNING, logger="orchestrator.transport"):
                transport = SSHTransport(settings)
            return await transport.run_script(direct(server), b"echo reached\n")

    result = run(scenario())
    assert result.error is None and result.stdout == b"reached\n"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "DISABLED" in warnings[0].getMessage()


def test_missing_key_or_known_hosts_is_a_one_line_config_error(client_key, tmp_path):
    with pytest.raises(ConfigError) as missing_key:
        SSHTransport(SSHSettings(key_files=(str(tmp_path / "nokey"),), known_hosts=__file__))
    with pytest.raises(ConfigError) as missing_hosts:
        SSHTransport(SSHSettings(keys=(client_key,), known_hosts=str(tmp_path / "nohosts")))
    for error in (missing_key.value, missing_hosts.value):
        assert "\n" not in str(error)
    assert "nokey" in str(missing_key.value) and "nohosts" in str(missing_hosts.value)


def test_connect_timeout_on_a_port_that_never_speaks_ssh(client_key):
    transport = SSHTransport(
        SSHSettings(keys=(client_key,), insecure_no_host_key_check=True, connect_timeout_s=0.5)
    )
    with silent_listener() as port:
        result = run(transport.run_script(Route("direct", "127.0.0.1", port, "root"), b"true\n"))
    assert result.error is not None and result.error.kind == "timeout"
    assert "connect timeout" in str(result.error) and "no SSH handshake" in str(result.error)
    assert result.total_s < 2.0


def test_login_timeout_when_authentication_stalls(client_key, make_transport):
    async def scenario():
        async with SSHTestServer(client_keys=[client_key], auth_delay_s=30) as server:
            transport = make_transport([server], login_timeout_s=0.5)
            return await transport.run_script(direct(server), b"true\n")

    result = run(scenario())
    assert result.error is not None and result.error.kind == "timeout"
    assert "login timeout" in str(result.error)
    assert result.total_s < 2.0


def test_hanging_device_times_out_at_deadline_keeping_partial_output(client_key, make_transport):
    async def scenario():
        async with SSHTestServer(
            mode="hang", client_keys=[client_key], partial_output=b"first line\n"
        ) as server:
            transport = make_transport([server])
            return await transport.run_script(direct(server), b"true\n", deadline_s=1.5)

    result = run(scenario())
    assert result.error is not None and result.error.kind == "timeout"
    assert "deadline" in str(result.error) and "running the script" in str(result.error)
    assert result.stdout == b"first line\n"
    assert 1.5 <= result.total_s < 2.5


def test_dropped_connection_is_disconnected_with_partial_output(client_key, make_transport):
    partial = b"partial output line\n" * 500

    async def scenario():
        async with SSHTestServer(
            mode="drop", client_keys=[client_key], partial_output=partial
        ) as server:
            transport = make_transport([server])
            return await transport.run_script(direct(server), b"true\n")

    result = run(scenario())
    assert result.error is not None and result.error.kind == "disconnected"
    assert result.stdout == partial
    assert f"{len(partial)} bytes" in str(result.error)
    assert result.total_s < 5


def test_flood_is_truncated_at_the_cap_without_buffering_it(client_key, make_transport):
    cap = 4 * 1024 * 1024

    async def scenario():
        async with SSHTestServer(mode="flood", client_keys=[client_key]) as server:
            transport = make_transport([server], max_output_bytes=cap)
            Path("/proc/self/clear_refs").write_text("5")
            baseline = vm_kib("VmHWM")
            result = await transport.run_script(direct(server), b"true\n")
            return result, vm_kib("VmHWM") - baseline

    result, peak_growth_kib = run(scenario())
    assert result.error is None and result.truncated
    assert len(result.stdout) == cap and result.chunk_times[-1][0] == cap
    assert result.total_s < 5
    assert peak_growth_kib < 25 * 1024, f"peak RSS grew {peak_growth_kib} KiB for a 50 MB flood"


def test_forged_markers_do_not_replace_real_step_output(client_key, make_transport):
    nonce = new_nonce()
    steps = (
        Step("clock", "date -u +%s"),
        Step(
            "journal",
            "printf '@@ORCH:%s:BEGIN:clock:0:6:-:0\\nFAKED!\\n@@ORCH:%s:END:clock\\nreal\\n' x x",
        ),
    )
    script = build_script(steps, nonce, budget_s=20)

    async def scenario():
        async with SSHTestServer(mode="forge", client_keys=[client_key]) as server:
            transport = make_transport([server])
            return await transport.run_script(direct(server), script)

    result = run(scenario())
    assert result.error is None
    assert FORGED_TEXT.encode() in result.stdout, "the server did not forge anything"
    split = split_output(result.stdout, nonce, steps, result.chunk_times)
    clock, journal = split.steps["clock"], split.steps["journal"]
    assert clock.exit_code == 0 and clock.output.strip().isdigit()
    assert journal.output.endswith("real\n") and "FAKED!" in journal.output
    assert all(FORGED_TEXT not in step.output for step in split.steps.values())


def test_jump_route_reaches_target_through_gateway(client_key, make_transport):
    async def scenario():
        async with (
            SSHTestServer(client_keys=[client_key], allow_forwarding=True) as gateway,
            SSHTestServer(client_keys=[client_key], env={"WHO": "target"}) as target,
        ):
            transport = make_transport([gateway, target])
            route = Route("jump", "127.0.0.1", target.port, "root", via=direct(gateway))
            result = await transport.run_script(route, b'echo "$WHO"\n')
            return gateway, target, result

    gateway, target, result = run(scenario())
    assert result.error is None and result.stdout == b"target\n"
    assert gateway.forward_requests == [("127.0.0.1", target.port)]
    assert gateway.commands == [] and target.commands == ["sh -s"]


def test_jump_failures_name_the_hop_that_failed(client_key, make_transport):
    async def scenario():
        async with (
            SSHTestServer(client_keys=[client_key], reject_auth=True) as bad_gateway,
            SSHTestServer(client_keys=[client_key], allow_forwarding=True) as gateway,
        ):
            transport = make_transport([bad_gateway, gateway])
            dead_port = closed_port()
            via_bad = Route("jump", "127.0.0.1", 2, "root", via=direct(bad_gateway))
            to_dead = Route("jump", "127.0.0.1", dead_port, "root", via=direct(gateway))
            first = await transport.run_script(via_bad, b"true\n")
            second = await transport.run_script(to_dead, b"true\n")
            return bad_gateway, gateway, dead_port, first, second

    bad_gateway, gateway, dead_port, first, second = run(scenario())
    assert first.error is not None and first.error.kind == "auth"
    assert str(first.error).startswith(f"gateway root@127.0.0.1:{bad_gateway.port}:")
    assert second.error is not None and second.error.kind in ("refused", "unreachable")
    assert str(second.error).startswith(
        f"root@127.0.0.1:{dead_port} via gateway root@127.0.0.1:{gateway.port}:"
    )


def test_proxy_routes_run_the_script_and_report_refusals(client_key, make_transport):
    uuid = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

    async def scenario():
        async with SSHTestServer(client_keys=[client_key], proxy_uuids=[uuid]) as proxy:
            transport = make_transport([proxy])
            script = b'echo "device=$ORCH_TEST_UUID"\n'

            def route(kind, command):
                return Route(kind, proxy.host, proxy.port, "operator", command=command)

            via_host = await transport.run_script(route("proxy", f"host {uuid}"), script)
            via_gw = await transport.run_script(
                route("hostvia", f"hostvia gw0123 {uuid} 10.0.0.7"), script
            )
            unknown = await transport.run_script(route("proxy", "host 0000deadbeef"), script)
            return via_host, via_gw, unknown

    via_host, via_gw, unknown = run(scenario())
    for result in (via_host, via_gw):
        assert result.error is None and result.stdout == f"device={uuid}\n".encode()
    assert unknown.exit_status == 255 and unknown.stdout == b""
    assert unknown.error is not None and unknown.error.kind == "proxy"
    assert "balenaCloud" in str(unknown.error) and "host 0000deadbeef" in str(unknown.error)


def test_two_hundred_devices_share_one_options_object(client_key, tmp_path, monkeypatch):
    reads: Counter[str] = Counter()
    real_read = asyncssh.public_key.read_file

    def counting_read(filename, *args, **kwargs):
        reads[Path(filename).name] += 1
        return real_read(filename, *args, **kwargs)

    class CountedKnownHosts(credentials.LazyKnownHosts):
        def __init__(self, text: str | None = None) -> None:
            reads["kh"] += 1
            super().__init__(text)

    monkeypatch.setattr(asyncssh.public_key, "read_file", counting_read)
    monkeypatch.setattr(credentials, "LazyKnownHosts", CountedKnownHosts)
    limit, warning = raise_nofile_limit(4096)
    assert warning is None and limit >= 4096
    key_file = write_client_key(client_key, tmp_path / "id_ed25519")
    steps = (Step("who", 'echo "device-$DEVICE_ID"'),)

    async def one(transport, server, index):
        nonce = new_nonce()
        script = f"export DEVICE_ID={index}\n".encode() + build_script(steps, nonce, budget_s=30)
        result = await transport.run_script(direct(server), script)
        return result, split_output(result.stdout, nonce, steps).steps["who"]

    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            known = write_known_hosts(tmp_path / "kh", [server])
            settings = SSHSettings(key_files=(str(key_file),), known_hosts=str(known))
            transport = SSHTransport(settings)
            outcomes = await asyncio.gather(*(one(transport, server, i) for i in range(200)))
            return server, outcomes

    server, outcomes = run(scenario(), timeout_s=120)
    assert [r.error for r, _ in outcomes] == [None] * 200
    assert [step.output for _, step in outcomes] == [f"device-{i}\n" for i in range(200)]
    assert server.connection_count == 200
    assert reads["id_ed25519"] == 1 and reads["kh"] == 1, reads


def test_raise_nofile_limit_warns_when_the_hard_limit_is_too_low():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit to run into")
    limit, warning = raise_nofile_limit(hard + 1000)
    assert limit == hard
    assert warning is not None and str(hard + 1000) in warning and "\n" not in warning


@pytest.mark.parametrize(
    ("exc", "kind", "phrase"),
    [
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable", "no route to host"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "unreachable",
            "resolved",
        ),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused", "connection refused"),
        (asyncssh.ProtocolError("bad packet"), "protocol", "is this an SSH server"),
        (asyncssh.ConnectionLost("Connection lost"), "disconnected", "after 12 bytes"),
        (
            asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "Connection refused"),
            "refused",
            "gateway",
        ),
        (RuntimeError("boom\nsecond line"), "error", "RuntimeError: boom second line"),
    ],
)
def test_classify_error_kinds_and_one_line_messages(exc, kind, phrase):
    error = classify_error(exc, "root@10.0.0.5:22222", received_bytes=12)
    assert error.kind == kind
    assert str(error).startswith("root@10.0.0.5:22222: ")
    assert phrase in str(error) and "\n" not in str(error)


def test_stderr_keeps_its_first_bytes_and_never_stalls_stdout(client_key, make_transport):
    """A command flooding stderr still has its stdout and exit status collected in full."""
    script = b"head -c 300000 /dev/zero | tr '\\0' e >&2; echo out; exit 3\n"

    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server])
            return await transport.run_script(direct(server), script)

    result = run(scenario())
    assert result.error is None, result.error
    assert result.stdout == b"out\n" and result.exit_status == 3 and not result.truncated
    assert result.stderr == b"e" * STDERR_KEEP_BYTES
