"""The fleet runner over real SSH: route fallback, unreachable reasons, concurrency bound."""

from __future__ import annotations

import asyncio

import asyncssh

from orchestrator.models import Device, DeviceReport, Route
from orchestrator.probes.registry import get_probes, steps_for
from orchestrator.runner import FleetRunner, RunPlan
from tests.support import closed_port, run
from tests.support.sshserver import SSHTestServer


def plan() -> RunPlan:
    probes = get_probes(["time", "network"])
    return RunPlan(probes=probes, steps=steps_for(probes, RunPlan(probes, ()).endpoints))


def test_next_route_is_tried_when_the_first_cannot_connect(
    client_key: asyncssh.SSHKey, make_transport
) -> None:
    device = Device(uuid="a" * 32, name="dev")

    async def scenario() -> DeviceReport:
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server])
            dead = Route("direct", "127.0.0.1", closed_port(), "root", reason="LAN")
            good = Route("direct", "127.0.0.1", server.port, "root", reason="fallback")
            runner = FleetRunner(plan(), transport, lambda _d: [dead, good])
            return await runner.diagnose(device)

    report = run(scenario())
    assert report.reachable
    assert report.route.startswith("direct root@127.0.0.1:")
    assert "after direct:" in report.route and "refused" in report.route


def test_no_working_route_lists_every_attempt(client_key, make_transport) -> None:
    device = Device(uuid="b" * 32, name="dev")

    async def scenario() -> DeviceReport:
        transport = make_transport([])
        first = Route("direct", "127.0.0.1", closed_port(), "root")
        second = Route("direct", "127.0.0.1", closed_port(), "root")
        return await FleetRunner(plan(), transport, lambda _d: [first, second]).diagnose(device)

    report = run(scenario())
    assert not report.reachable
    assert report.error.startswith("no route worked:")
    assert report.error.count("refused") == 2
    assert report.root_causes == ("access.refused",)


def test_a_device_without_route_says_why(make_transport) -> None:
    device = Device(uuid="c" * 32, name="lonely")
    runner = FleetRunner(
        plan(),
        make_transport([]),
        lambda _d: [],
        explain_unreachable=lambda d: f"{d.name} is offline and has no online sibling",
    )
    report = run(runner.diagnose(device))
    assert not report.reachable
    assert report.error == "lonely is offline and has no online sibling"


def test_concurrency_is_bounded(client_key, make_transport) -> None:
    devices = [Device(uuid=f"{i:032x}", name=f"d{i}") for i in range(12)]

    async def scenario() -> tuple[int, int]:
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server])
            runner = time_runner(transport, server, concurrency=3)
            in_flight = peak = done = 0
            original = transport.run_script

            async def counting(*args, **kwargs):
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    await asyncio.sleep(0.05)
                    return await original(*args, **kwargs)
                finally:
                    in_flight -= 1

            transport.run_script = counting

            async def sink(report: DeviceReport) -> None:
                nonlocal done
                done += report.reachable

            await runner.run(devices, sink)
            return peak, done

    peak, done = run(scenario())
    assert done == 12
    assert peak == 3


def time_runner(transport, server: SSHTestServer, concurrency: int) -> FleetRunner:
    """A runner of the time probe against ``server`` with ``concurrency`` slots."""
    route = Route("direct", "127.0.0.1", server.port, "root")
    probes = get_probes(["time"])
    steps = steps_for(probes, plan().endpoints)
    limited = RunPlan(probes=probes, steps=steps, concurrency=concurrency)
    return FleetRunner(limited, transport, lambda _d: [route])


def test_probing_goes_on_while_reports_are_stored_and_progress_waits_for_storage(
    client_key, make_transport
) -> None:
    devices = [Device(uuid=f"{i:032x}", name=f"d{i}") for i in range(8)]

    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server])
            runner = time_runner(transport, server, concurrency=2)
            store_open = asyncio.Event()
            probed: list[str] = []
            stored: list[str] = []
            shown: list[str] = []
            original = transport.run_script

            async def probing(r, *args, **kwargs):
                probed.append(r.host)
                return await original(r, *args, **kwargs)

            transport.run_script = probing

            async def slow_store(report: DeviceReport) -> None:
                await store_open.wait()
                stored.append(report.uuid)

            def progress(report: DeviceReport) -> None:
                assert report.uuid in stored  # shown only once stored
                shown.append(report.uuid)

            running = asyncio.ensure_future(runner.run(devices, slow_store, progress))
            for _ in range(200):
                await asyncio.sleep(0.02)
                if len(probed) == 6:
                    break
            probed_while_blocked = len(probed)
            await asyncio.sleep(0.2)
            still_blocked = len(probed)
            store_open.set()
            await running
            return probed_while_blocked, still_blocked, stored, shown

    probed_while_blocked, still_blocked, stored, shown = run(scenario())
    # 2 slots x 2 reports waiting for storage, plus the 2 slots' next devices probed
    assert probed_while_blocked == still_blocked == 6
    assert sorted(stored) == sorted(shown) == sorted(d.uuid for d in devices)


def test_a_storage_failure_stops_the_run_with_its_error(client_key, make_transport) -> None:
    devices = [Device(uuid=f"{i:032x}", name=f"d{i}") for i in range(20)]

    async def scenario():
        async with SSHTestServer(client_keys=[client_key]) as server:
            transport = make_transport([server])
            runner = time_runner(transport, server, concurrency=2)
            calls = 0

            async def failing_store(report: DeviceReport) -> None:
                nonlocal calls
                calls += 1
                if calls == 3:
                    raise OSError("disk full")

            try:
                await runner.run(devices, failing_store)
            except OSError as exc:
                return str(exc), calls
            return "no error", calls

    message, calls = run(scenario())
    assert message == "disk full"
    assert calls < 20
