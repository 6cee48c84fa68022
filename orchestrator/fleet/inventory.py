"""Inventory file fleet source: a YAML (or JSON) list of devices orch can reach directly.

Accepted shapes: a top-level list of devices, or a mapping with a ``devices`` list. Each device
has ``uuid``, ``name``, ``address`` (``host`` is accepted as an alias), optional ``port``
(22222), ``user`` (root), ``site``, ``labels``, ``gateway`` (uuid or name of another device to
jump through) and ``public_address``. See ``config/inventory.example.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import FleetSourceError
from orchestrator.models import Device

_KNOWN_KEYS = {
    "uuid",
    "name",
    "address",
    "host",
    "port",
    "user",
    "site",
    "labels",
    "gateway",
    "public_address",
}


class InventoryFleetSource:
    """Devices listed in a local inventory file."""

    def __init__(self, path: str | Path, *, default_port: int = 22222, default_user: str = "root"):
        self.path = Path(path)
        self.default_port = default_port
        self.default_user = default_user

    @property
    def label(self) -> str:
        """``inventory:<file name>``."""
        return f"inventory:{self.path.name}"

    def list_devices(self) -> list[Device]:
        """Parse and validate the file; any problem is one FleetSourceError naming the entry."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FleetSourceError(
                f"inventory {self.path}: cannot be read: {exc.strerror}"
            ) from None
        data = self._parse(text)
        entries = data.get("devices") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise FleetSourceError(f"inventory {self.path}: expected a list of devices")
        devices = [self._device(index, entry) for index, entry in enumerate(entries, 1)]
        self._check_unique(devices)
        return devices

    def _parse(self, text: str) -> Any:
        """The file's data: JSON files by the fast json parser, the rest as YAML (a superset)."""
        if self.path.suffix.lower() == ".json":
            try:
                return json.loads(text)
            except ValueError:
                pass  # YAML also reads JSON; it reports the line of the problem
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise FleetSourceError(f"inventory {self.path}: not valid YAML{line}") from None

    def _device(self, index: int, entry: Any) -> Device:
        where = f"inventory {self.path}: device #{index}"
        if not isinstance(entry, dict):
            raise FleetSourceError(f"{where} must be a mapping")
        unknown = set(entry) - _KNOWN_KEYS
        if unknown:
            raise FleetSourceError(f"{where}: unknown key '{sorted(unknown)[0]}'")
        address = entry.get("address", entry.get("host"))
        name = entry.get("name") or entry.get("uuid")
        uuid = entry.get("uuid") or name
        if not uuid or not address:
            raise FleetSourceError(f"{where} needs a uuid (or name) and an address")
        port = entry.get("port", self.default_port)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise FleetSourceError(f"{where} ({name}): port must be 1-65535")
        labels = entry.get("labels") or ()
        if isinstance(labels, str):
            labels = (labels,)
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
            raise FleetSourceError(f"{where} ({name}): labels must be a list of strings")
        return Device(
            uuid=str(uuid),
            name=str(name),
            address=str(address),
            port=port,
            user=str(entry.get("user") or self.default_user),
            site=str(entry["site"]) if entry.get("site") else None,
            labels=tuple(labels),
            gateway=str(entry["gateway"]) if entry.get("gateway") else None,
            public_address=str(entry["public_address"]) if entry.get("public_address") else None,
        )

    def _check_unique(self, devices: list[Device]) -> None:
        seen: set[str] = set()
        for device in devices:
            if device.uuid in seen:
                raise FleetSourceError(
                    f"inventory {self.path}: duplicate device uuid {device.uuid}"
                )
            seen.add(device.uuid)
        known = seen | {d.name for d in devices}
        for device in devices:
            if device.gateway and device.gateway not in known:
                raise FleetSourceError(
                    f"inventory {self.path}: device {device.name} has unknown gateway {device.gateway}"
                )
