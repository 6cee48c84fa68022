"""Inventory files: YAML and peerbench-style JSON, with one-line errors naming the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import FleetSourceError
from orchestrator.fleet.inventory import InventoryFleetSource

EXAMPLE = Path(__file__).parents[2] / "config" / "inventory.example.yaml"


def test_example_inventory_loads() -> None:
    devices = InventoryFleetSource(EXAMPLE).list_devices()
    assert [d.name for d in devices] == ["depot3-gateway", "depot3-scanner-1"]
    gateway, scanner = devices
    assert gateway.port == 22222 and gateway.user == "root"
    assert gateway.site == "depot-3" and gateway.labels == ("warehouse", "eth")
    assert gateway.public_address == "203.0.113.7"
    assert scanner.gateway == "depot3-gateway"


def test_json_list_with_host_alias(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    path.write_text(
        json.dumps(
            [{"name": "d1", "host": "127.0.0.1", "port": 20000, "user": "root", "uuid": "ab" * 16}]
        )
    )
    (device,) = InventoryFleetSource(path).list_devices()
    assert (device.address, device.port, device.uuid) == ("127.0.0.1", 20000, "ab" * 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("devices: 3", "expected a list of devices"),
        ("- name: a\n", "device #1 needs a uuid \\(or name\\) and an address"),
        ("- {name: a, address: h, port: 70000}", "port must be 1-65535"),
        ("- {name: a, address: h, colour: red}", "unknown key 'colour'"),
        ("- {name: a, address: h}\n- {name: a, address: h2}", "duplicate device uuid a"),
        ("- {name: a, address: h, gateway: nobody}", "unknown gateway nobody"),
        ("- {name: a, address: [h\n", "not valid YAML at line"),
    ],
)
def test_bad_inventory_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(FleetSourceError, match=message) as caught:
        InventoryFleetSource(path).list_devices()
    assert "\n" not in str(caught.value)


def test_unreadable_inventory(tmp_path: Path) -> None:
    with pytest.raises(FleetSourceError, match="cannot be read"):
        InventoryFleetSource(tmp_path / "missing.yaml").list_devices()
