"""JSON inventories take the json fast path and behave like their YAML equivalent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import FleetSourceError
from orchestrator.fleet.inventory import InventoryFleetSource

ENTRIES = [
    {"uuid": "a1", "name": "gw", "address": "127.0.0.1", "port": 20000, "labels": ["x"]},
    {"uuid": "b2", "name": "dev", "host": "127.0.0.1", "gateway": "gw", "site": "lab"},
]


def test_json_and_yaml_inventories_give_the_same_devices(tmp_path: Path) -> None:
    as_json = tmp_path / "fleet.json"
    as_json.write_text(json.dumps({"devices": ENTRIES}))
    as_yaml = tmp_path / "fleet.yaml"
    as_yaml.write_text(
        "devices:\n"
        + "".join(
            "  - " + "\n    ".join(f"{k}: {json.dumps(v)}" for k, v in e.items()) + "\n"
            for e in ENTRIES
        )
    )
    devices = InventoryFleetSource(as_json).list_devices()
    assert devices == InventoryFleetSource(as_yaml).list_devices()
    assert [(d.uuid, d.port, d.gateway, d.labels) for d in devices] == [
        ("a1", 20000, None, ("x",)),
        ("b2", 22222, "gw", ()),
    ]


def test_broken_json_inventory_is_one_line_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text('[\n  {"uuid": "a1", "address": "127.0.0.1"},\n  {"uuid": \n')
    with pytest.raises(FleetSourceError) as caught:
        InventoryFleetSource(path).list_devices()
    message = str(caught.value)
    assert "\n" not in message and "not valid" in message and "line" in message
