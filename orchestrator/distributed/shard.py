"""What one shard job carries, and its JSON form (procrastinate job arguments are JSON).

A shard is a slice of one run's devices plus the run's settings and each device's planned
routes. It never carries secrets: no balena token, no database URL or password, no SSH keys.
Workers read those from their own configuration.

The devices travel packed (``devices_packed``: JSON, zlib, base64): procrastinate writes job
arguments through a composite type whose text form escapes every quote of the JSON with a
Python regex substitution, which cost ~0.2 s of coordinator CPU per 250-device shard (80 s
for 100,000 devices); packed, a shard is 12 KB instead of 150 KB and has no quotes to escape.
The settings stay plain JSON, readable in ``procrastinate_jobs``. Jobs with a plain
``devices`` list (older coordinators) are still read; older workers cannot read packed jobs.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

from orchestrator.models import Device, Route
from orchestrator.probes.base import Endpoints

_DEVICE_TUPLES = frozenset({"labels", "local_ips", "macs"})
_ENDPOINT_TUPLES = frozenset({"customer", "expected_issuers"})


@dataclass(frozen=True)
class ShardSettings:
    """The run's settings every shard of it applies (no secrets)."""

    probes: tuple[str, ...]
    endpoints: Endpoints
    concurrency: int
    budget_s: float
    device_timeout_s: float
    connect_timeout_s: float
    login_timeout_s: float
    max_output_bytes: int
    proxy_sessions_per_connection: int
    max_proxy_sessions: int
    max_targets_per_gateway: int
    route_mode: str
    insecure_no_host_key_check: bool = False
    """The operator's explicit opt-out, chosen for the run on the coordinator."""


@dataclass(frozen=True)
class PlannedDevice:
    """A device with the route candidates the coordinator planned for it (best first)."""

    device: Device
    routes: tuple[Route, ...]
    unreachable_reason: str = ""
    """Why there is no route, when ``routes`` is empty."""


@dataclass(frozen=True)
class ShardJob:
    """One procrastinate job: which run, which devices, under which settings."""

    run_id: int
    index: int
    devices: tuple[PlannedDevice, ...]
    settings: ShardSettings


def split(items: Sequence[Any], size: int) -> list[list[Any]]:
    """Consecutive slices of at most ``size`` items (the last one may be shorter)."""
    if size < 1:
        raise ValueError("shard size must be at least 1")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def shard_to_json(job: ShardJob) -> dict[str, Any]:
    """The job as plain JSON-ready data (procrastinate task keyword arguments)."""
    devices = [
        {
            "device": _fields_of(planned.device),
            "routes": [_route_fields(route) for route in planned.routes],
            "unreachable_reason": planned.unreachable_reason,
        }
        for planned in job.devices
    ]
    return {
        "run_id": job.run_id,
        "index": job.index,
        "device_count": len(devices),
        "devices_packed": pack(devices),
        "settings": asdict(job.settings),
    }


def _fields_of(record: Any) -> dict[str, Any]:
    """A flat dataclass's fields by name (``asdict`` deep-copies every value: it was the
    coordinator's largest cost once shards were packed)."""
    return {name: getattr(record, name) for name in _field_names(type(record))}


def _route_fields(route: Route) -> dict[str, Any]:
    values = _fields_of(route)
    if route.via is not None:
        values["via"] = _route_fields(route.via)
    return values


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in fields(cls))


def pack(value: Any) -> str:
    """``value`` as compact JSON, zlib-compressed, in base64 (ASCII without quotes)."""
    text = json.dumps(value, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(text, 6)).decode("ascii")


def unpack(packed: str) -> Any:
    """What ``pack`` packed; raises ValueError when it is not such a string."""
    try:
        return json.loads(zlib.decompress(base64.b64decode(packed, validate=True)))
    except (binascii.Error, zlib.error, UnicodeDecodeError, TypeError) as exc:
        raise ValueError(f"packed devices unreadable: {exc}") from None


def shard_from_json(data: dict[str, Any]) -> ShardJob:
    """Rebuild a job from ``shard_to_json`` output; raises ValueError on malformed data."""
    try:
        settings = dict(data["settings"])
        settings["probes"] = tuple(settings["probes"])
        settings["endpoints"] = _endpoints_from(settings["endpoints"])
        devices = tuple(
            PlannedDevice(
                device=_device_from(item["device"]),
                routes=tuple(_route_from(route) for route in item["routes"]),
                unreachable_reason=item.get("unreachable_reason", ""),
            )
            for item in _devices_of(data)
        )
        return ShardJob(
            run_id=int(data["run_id"]),
            index=int(data["index"]),
            devices=devices,
            settings=ShardSettings(**settings),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed shard job: {type(exc).__name__}: {exc}") from None


def _devices_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    if "devices_packed" in data:
        return unpack(data["devices_packed"])
    return data["devices"]


def _device_from(data: dict[str, Any]) -> Device:
    known = {f.name for f in fields(Device)}
    values = {k: tuple(v) if k in _DEVICE_TUPLES else v for k, v in data.items() if k in known}
    return Device(**values)


def _route_from(data: dict[str, Any]) -> Route:
    via = data.get("via")
    return Route(**{**data, "via": _route_from(via) if via else None})


def _endpoints_from(data: dict[str, Any]) -> Endpoints:
    return Endpoints(**{k: tuple(v) if k in _ENDPOINT_TUPLES else v for k, v in data.items()})
