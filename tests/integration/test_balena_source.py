"""The balena fleet source: the real balena-sdk against a local fake of the balenaCloud API."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import AuthenticationError, FleetNotFoundError, FleetSourceError
from orchestrator.fleet.balena import (
    BalenaFleetSource,
    BalenaSettings,
    list_fleets,
    whoami_username,
)
from tests.support.fake_balena_api import FakeBalenaApi, make_devices

SLUG = "gh_tester/debugfleet"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api() -> Iterator[FakeBalenaApi]:
    with FakeBalenaApi() as server:
        server.add_fleet(SLUG, make_devices(2500), fleet_id=1234)
        server.add_fleet("gh_tester/small", make_devices(3, start_id=9000))
        yield server


@pytest.fixture
def settings(api: FakeBalenaApi) -> BalenaSettings:
    api.requests.clear()
    return BalenaSettings(api_url=api.url, token=api.token, timeout_s=5, backoff_s=0.05)


def test_lists_2500_devices_page_by_page_with_fields_mapped(
    api: FakeBalenaApi, settings: BalenaSettings
) -> None:
    devices = BalenaFleetSource(settings, "gh_tester/DebugFleet").list_devices()

    assert len(devices) == 2500 and len({d.uuid for d in devices}) == 2500
    assert api.device_pages() == [(500, skip) for skip in range(0, 3000, 500)]
    record = make_devices(2500)[9]
    device = next(d for d in devices if d.uuid == record["uuid"])
    assert device.name == record["device_name"]
    assert device.fleet == SLUG
    assert device.local_ips == tuple(record["ip_address"].split())
    assert device.macs == (record["mac_address"],)
    assert device.public_address == record["public_address"]
    assert (device.is_online, device.is_connected_to_vpn, device.heartbeat) == (
        False,
        False,
        "offline",
    )
    assert device.os_version == "balenaOS 5.3.10 (prod)"
    assert device.supervisor_version == "16.4.6"
    assert device.last_connectivity_event == record["last_connectivity_event"]
    assert device.address is None
    assert api.unexpected == []


def test_page_size_and_fleet_id(api: FakeBalenaApi, settings: BalenaSettings) -> None:
    sized = BalenaSettings(api_url=api.url, token=api.token, page_size=1000)
    devices = BalenaFleetSource(sized, "1234").list_devices()
    assert len(devices) == 2500 and devices[0].fleet == SLUG
    assert api.device_pages() == [(1000, 0), (1000, 1000), (1000, 2000)]
    assert BalenaFleetSource(sized, "1234").label == "balena:1234"


def test_bad_token_is_one_line_authentication_error(api: FakeBalenaApi) -> None:
    bad = BalenaSettings(api_url=api.url, token="wrong-secret-token")
    with pytest.raises(AuthenticationError) as caught:
        BalenaFleetSource(bad, SLUG).list_devices()
    message = str(caught.value)
    assert message == "balena API rejected the token (401): check BALENA_API_KEY"
    assert caught.value.exit_code == 2
    with pytest.raises(AuthenticationError):
        whoami_username(bad)


def test_missing_token_is_an_authentication_error(api: FakeBalenaApi) -> None:
    with pytest.raises(AuthenticationError, match="BALENA_API_KEY"):
        BalenaFleetSource(BalenaSettings(api_url=api.url), SLUG).list_devices()


def test_rate_limit_is_retried_after_the_advertised_delay(
    api: FakeBalenaApi, settings: BalenaSettings
) -> None:
    api.fail_next(429, count=2, retry_after="1")
    started = time.monotonic()
    devices = BalenaFleetSource(settings, "gh_tester/small").list_devices()
    elapsed = time.monotonic() - started
    assert len(devices) == 3
    assert elapsed >= 2.0, "Retry-After: 1 was not honoured twice"
    first_paths = [path for _, path, _ in api.requests[:3]]
    assert first_paths == ["/v7/application"] * 3


def test_server_errors_are_retried_then_reported(
    api: FakeBalenaApi, settings: BalenaSettings
) -> None:
    api.fail_next(503, count=2)
    assert len(BalenaFleetSource(settings, "gh_tester/small").list_devices()) == 3

    api.requests.clear()
    few = BalenaSettings(api_url=api.url, token=api.token, retries=2, backoff_s=0.01)
    api.fail_next(500, count=3)
    with pytest.raises(FleetSourceError, match=r"HTTP 500 to GET /v7/application"):
        BalenaFleetSource(few, "gh_tester/small").list_devices()
    assert len(api.requests) == 3


def test_stalled_api_times_out_within_the_configured_timeout(api: FakeBalenaApi) -> None:
    quick = BalenaSettings(api_url=api.url, token=api.token, timeout_s=1.0)
    api.stall_next()
    started = time.monotonic()
    with pytest.raises(FleetSourceError) as caught:
        BalenaFleetSource(quick, SLUG).list_devices()
    assert time.monotonic() - started < 3.0
    assert api.url in str(caught.value) and "did not answer within 1 s" in str(caught.value)


def test_unknown_fleet(settings: BalenaSettings) -> None:
    with pytest.raises(FleetNotFoundError, match="'gh_tester/nope' not found") as caught:
        BalenaFleetSource(settings, "gh_tester/nope").list_devices()
    assert caught.value.exit_code == 2


def test_unreachable_api_names_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(FleetSourceError, match="unreachable") as caught:
        BalenaFleetSource(BalenaSettings(api_url=url, token="t0k3n-secret"), SLUG).list_devices()
    assert url in str(caught.value) and "t0k3n-secret" not in str(caught.value)


def test_whoami_and_fleet_list(api: FakeBalenaApi, settings: BalenaSettings) -> None:
    assert whoami_username(settings) == api.username
    assert list_fleets(settings) == ["gh_tester/debugfleet", "gh_tester/small"]
    api.requests.clear()
    override = BalenaSettings(api_url=api.url, token=api.token, ssh_user="ops")
    assert whoami_username(override) == "ops" and api.requests == []
    assert api.unexpected == []


def test_token_never_reaches_messages_logs_or_repr(
    api: FakeBalenaApi, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-token-value"
    caplog.set_level(logging.DEBUG)
    good = BalenaSettings(api_url=api.url, token=api.token, backoff_s=0.01)
    api.fail_next(429, count=1, retry_after="0")
    BalenaFleetSource(good, "gh_tester/small").list_devices()
    messages = []
    for settings in (
        BalenaSettings(api_url=api.url, token=secret),
        BalenaSettings(api_url="http://127.0.0.1:9/", token=secret, timeout_s=1),
    ):
        with pytest.raises(FleetSourceError) as caught:
            BalenaFleetSource(settings, SLUG).list_devices()
        messages.append(str(caught.value))
        assert secret not in repr(settings) and "***" in repr(settings)
    assert caplog.records, "expected the retry to be logged"
    for text in (caplog.text, *messages):
        assert secret not in text and api.token not in text


def test_settings_from_config_and_environment() -> None:
    section = {"api_url": "https://api.openbalena.example", "api_key": "from-config"}
    settings = BalenaSettings.from_sources(section, environ={})
    assert (settings.api_url, settings.token) == ("https://api.openbalena.example/", "from-config")
    env = {"ORCH_BALENA_API_URL": "http://127.0.0.1:8080", "BALENA_API_KEY": "from-env"}
    settings = BalenaSettings.from_sources(section, environ=env)
    assert (settings.api_url, settings.token) == ("http://127.0.0.1:8080/", "from-env")


def test_nothing_is_written_under_home(api: FakeBalenaApi, tmp_path: Path) -> None:
    """A fresh interpreter (balena-sdk reads HOME at import) lists a fleet with HOME empty."""
    home, work = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    work.mkdir()
    code = (
        "import json, sys\n"
        "from orchestrator.fleet.balena import BalenaFleetSource, BalenaSettings, list_fleets, whoami_username\n"
        "s = BalenaSettings(api_url=sys.argv[1], token=sys.argv[2])\n"
        "print(json.dumps([len(BalenaFleetSource(s, sys.argv[3]).list_devices()),"
        " whoami_username(s), list_fleets(s)]))\n"
    )
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("BALENA_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", code, api.url, api.token, SLUG],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0] == 2500
    assert list(home.rglob("*")) == [] and list(work.rglob("*")) == []
