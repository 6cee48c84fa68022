"""Simulated balenaOS devices over real SSH, for the demo fleet, tests and benchmarks.

``model`` holds a device's state and derives its consequences, ``render`` writes each device's
files once, ``server`` serves the fleet over real asyncssh listeners on 127.0.0.1, and
``fakebin/`` holds the fake device commands (POSIX sh) that answer from the rendered state.
"""

from orchestrator.sim.model import (
    SCENARIOS,
    Lan,
    SimDeviceSpec,
    apply_scenario,
    make_fleet,
    misbehaving_specs,
)
from orchestrator.sim.server import SimFleet

__all__ = [
    "SCENARIOS",
    "Lan",
    "SimDeviceSpec",
    "SimFleet",
    "apply_scenario",
    "make_fleet",
    "misbehaving_specs",
]
