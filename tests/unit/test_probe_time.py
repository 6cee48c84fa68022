"""time probe parser on real chronyc output (a real chronyd synced to a local server, one
whose only source is dead, one not running) and on the seed's chronyd journal."""

import json
from pathlib import Path

import pytest

from orchestrator.models import StepOutput
from orchestrator.probes import clock
from orchestrator.probes.base import ProbeContext

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CODES = json.loads((FIX / "real" / "exit_codes.json").read_text())


def real(name: str, step: str) -> StepOutput:
    return StepOutput(step, (FIX / "real" / f"{name}.txt").read_text(), exit_code=CODES.get(name))


def values(observations):
    return {o.key: o.value for o in observations}


def test_offset_is_round_trip_corrected():
    ctx = ProbeContext(sent_at=1_700_000_000.0)
    date = StepOutput("time.date", "1700000100\n", exit_code=0, received_at=1_700_000_004.0)
    got = values(clock.PROBE.parse({"time.date": date}, ctx))
    assert got["time.offset_s"] == pytest.approx(98.0)
    assert got["time.offset_uncertainty_s"] == pytest.approx(3.0)


def test_no_offset_without_orchestrator_times():
    date = StepOutput("time.date", "1700000100\n", exit_code=0)
    assert "time.offset_s" not in values(clock.PROBE.parse({"time.date": date}, ProbeContext()))


def test_http_date_second_opinion_from_real_connectivity_check():
    text = (FIX / "real" / "curl_connectivity_check_204.txt").read_text()
    # the device printed its epoch first: 2017-03-23 12:00:00 against the captured Date header
    step = StepOutput("time.http_date", "1490270400\n" + text, exit_code=0)
    got = values(clock.PROBE.parse({"time.http_date": step}, ProbeContext()))
    assert got["time.connectivity_check_status"] == 204
    assert got["time.http_date_offset_s"] < -9 * 365 * 86400  # years behind


@pytest.mark.parametrize(
    ("tracking", "sources", "expected"),
    [
        (
            "chronyc_tracking_synced",
            "chronyc_sources_synced",
            {
                "time.leap_status": "Normal",
                "time.sources_count": 1,
                "time.sources_reachable": 1,
                "time.source_selected": True,
                "time.chronyd_reachable": True,
            },
        ),
        (
            "chronyc_tracking_dead_source",
            "chronyc_sources_dead_source",
            {
                "time.leap_status": "Not synchronised",
                "time.sources_count": 1,
                "time.sources_reachable": 0,
                "time.source_selected": False,
            },
        ),
        ("chronyc_tracking_stopped", "chronyc_tracking_stopped", {"time.chronyd_reachable": False}),
    ],
)
def test_real_chronyc(tracking, sources, expected):
    steps = {
        "time.tracking": real(tracking, "time.tracking"),
        "time.sources": real(sources, "time.sources"),
    }
    got = values(clock.PROBE.parse(steps, ProbeContext()))
    for key, value in expected.items():
        assert got[key] == value, key
    if tracking == "chronyc_tracking_stopped":
        assert "time.sources_count" not in got


def test_chronyd_unit_and_seed_journal():
    journal = (FIX / "seed" / "6.1_chronyd_clock_wrong.txt").read_text()
    steps = {
        "time.chronyd": StepOutput("time.chronyd", "inactive\n", exit_code=3),
        "time.journal": StepOutput("time.journal", journal, exit_code=0),
    }
    got = values(clock.PROBE.parse(steps, ProbeContext()))
    assert got["time.chronyd_active"] is False
    assert got["log.chrony.clock_wrong"] == pytest.approx(170630052.229025)


def test_date_step_comes_first():
    assert clock.PROBE.steps[0].name == "time.date"
    assert clock.PROBE.steps[0].command == "date -u +%s"
