"""The fleet source interface: something that lists devices to diagnose."""

from __future__ import annotations

from typing import Protocol

from orchestrator.models import Device


class FleetSource(Protocol):
    """Lists the devices of one fleet. Synchronous: callers run it off the event loop."""

    @property
    def label(self) -> str:
        """Short description stored with the run, e.g. `inventory:site.yaml`, `demo`, `balena:DebugFleet`."""
        ...

    def list_devices(self) -> list[Device]:
        """Every device to diagnose; raises ``FleetSourceError`` with a one-line message."""
        ...
