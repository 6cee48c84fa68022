"""Names every layer and the CLI share: finding categories and route modes.

Plain tuples with no imports, so the CLI can build its option choices (and `orch --help`) without
loading the models or the configuration.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "time",
    "dns",
    "vpn",
    "api",
    "firewall",
    "dpi",
    "supervisor",
    "registry",
    "os_config",
    "access",
    "link",
)
"""Stable finding categories (DESIGN 4), used by storage, reports, exit codes and explain.
``link`` is the device's own network link (Wi-Fi signal, loss to its gateway, IPv4 vs IPv6)."""

ROUTE_MODES: tuple[str, ...] = ("auto", "proxy", "hostvia", "direct", "jump")
"""How a sweep may reach devices: ``auto`` tries the others in order of preference."""
