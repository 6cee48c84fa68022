"""link: the device's own network link (Wi-Fi signal, loss to the gateway, IPv4 vs IPv6).

Covers the network side of balena's device-diagnostics checks that the other probes do not:
Wi-Fi signal, packet loss and IPv4/IPv6 reachability. Loss is computed from the transmitted
and received counts ping prints (iputils and BusyBox wordings), so a lossy link really shows.

Observations:
``link.interface`` (default-route interface), ``link.type`` (NetworkManager's GENERAL.TYPE,
e.g. ``wifi`` or ``ethernet``), ``link.wifi_signal`` (percent of the access point in use, only
when the default route is Wi-Fi), ``link.gateway`` (IPv4 default gateway pinged),
``link.loss_pct`` (float), ``link.rtt_avg_ms`` (float or None), ``link.ping_error`` (ping's
own error line when it printed no statistics), ``link.ipv6_route`` (bool),
``link.api_v4_outcome`` / ``link.api_v6_outcome`` (curl_result outcomes; only when an IPv6
default route exists, since the comparison means nothing on an IPv4-only device).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl
from orchestrator.probes.textscan import search_from_line_of

NAME = "link"
_DEV = r"""dev=$(ip -4 route show default | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)"""
_GW = r"""gw=$(ip -4 route show default | sed -n 's/^default via \([^ ]*\).*/\1/p' | head -n 1)"""
_HAS_V6 = 'test -n "$(ip -6 route show default)"'
_TRANSMITTED = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = [\d.]+/([\d.]+)/")
_TERSE_SPLIT = re.compile(r"(?<!\\):")


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """Wi-Fi state, ping to the gateway, IPv6 route, and the API over IPv4 and IPv6."""
    url = endpoints.api.rstrip("/") + "/ping"
    wifi = (
        f'{_DEV}; echo "dev=$dev"; '
        'test -n "$dev" && nmcli -t -f GENERAL.TYPE,GENERAL.STATE,GENERAL.CONNECTION '
        'device show "$dev"; echo "-- wifi list"; '
        "nmcli -t -f IN-USE,SIGNAL,SSID,CHAN device wifi list --rescan no"
    )
    ping = f'{_GW}; echo "gateway=$gw"; if test -n "$gw"; then ping -c 5 -i 0.2 -W 1 "$gw"; fi'
    return (
        Step("link.wifi", wifi, timeout_s=8),
        Step("link.ping", ping, timeout_s=8),
        Step("link.route6", "ip -6 route show default", timeout_s=5),
        Step(
            "link.api_v4",
            f"{_HAS_V6} && " + curl_command(url, max_time=8, connect_timeout=5, extra="-4"),
            timeout_s=10,
        ),
        Step(
            "link.api_v6",
            f"{_HAS_V6} && " + curl_command(url, max_time=8, connect_timeout=5, extra="-6"),
            timeout_s=10,
        ),
    )


def terse_fields(line: str) -> list[str]:
    """Split one ``nmcli -t`` line on unescaped colons, then unescape (``\\:`` and ``\\\\``)."""
    return [part.replace("\\:", ":").replace("\\\\", "\\") for part in _TERSE_SPLIT.split(line)]


def parse_wifi(text: str) -> tuple[dict[str, str], int | None, str | None]:
    """(device show fields, signal % of the in-use access point, the evidence line)."""
    show, _, listing = text.partition("-- wifi list")
    fields: dict[str, str] = {}
    for line in show.splitlines():
        if line.startswith("dev="):
            fields["dev"] = line[4:].strip()
        elif line.startswith("GENERAL.") and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value
    for line in listing.splitlines():
        parts = terse_fields(line)
        if len(parts) >= 2 and parts[0].strip() == "*" and parts[1].strip().isdigit():
            return fields, int(parts[1]), line
    return fields, None, None


def parse_ping(text: str) -> tuple[float | None, float | None, str | None]:
    """(loss %, average RTT ms, ping's error line) from iputils or BusyBox ping output."""
    counts = search_from_line_of(_TRANSMITTED, " packets transmitted, ", text)
    if counts is None or int(counts.group(1)) == 0:
        error = next((ln for ln in text.splitlines() if ln.startswith("ping:")), None)
        return None, None, error
    sent, received = int(counts.group(1)), int(counts.group(2))
    rtt = _RTT.search(text)
    loss = round(100.0 * (sent - received) / sent, 1)
    return loss, float(rtt.group(1)) if rtt else None, None


def _wifi(out: StepOutput | None) -> list[Observation]:
    if out is None:
        return []
    fields, signal, line = parse_wifi(out.output)
    found: list[Observation] = []
    dev, kind = fields.get("dev"), fields.get("GENERAL.TYPE")
    if dev:
        found.append(Observation("link.interface", dev, (f"default route dev {dev}",), NAME))
    if kind:
        found.append(Observation("link.type", kind, (f"{dev}: GENERAL.TYPE:{kind}",), NAME))
    if kind == "wifi" and signal is not None:
        ssid = terse_fields(line or "")[2:3] or ["?"]
        evidence = (f"{dev}: Wi-Fi {ssid[0]!r} signal {signal} %",)
        found.append(Observation("link.wifi_signal", signal, evidence, NAME))
    return found


def _ping(out: StepOutput | None) -> list[Observation]:
    if out is None:
        return []
    lines = out.output.splitlines()
    gateway = next((ln[8:].strip() for ln in lines if ln.startswith("gateway=")), "")
    if not gateway:
        return []
    loss, rtt, error = parse_ping(out.output)
    summary = [ln for ln in lines if "transmitted" in ln or "min/avg/max" in ln]
    evidence = (f"ping -c 5 {gateway}", *(summary or ([error] if error else [])))
    found = [Observation("link.gateway", gateway, evidence, NAME)]
    if loss is not None:
        found.append(Observation("link.loss_pct", loss, evidence, NAME))
        found.append(Observation("link.rtt_avg_ms", rtt, evidence, NAME))
    elif error:
        found.append(Observation("link.ping_error", error, evidence, NAME))
    return found


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Link facts (see the module docstring)."""
    found = _wifi(step_output(steps, "link.wifi")) + _ping(step_output(steps, "link.ping"))
    route6 = step_output(steps, "link.route6")
    if route6 is None or route6.exit_code not in (0, None):
        return found
    routes = [ln for ln in route6.output.splitlines() if ln.startswith("default")]
    found.append(Observation("link.ipv6_route", bool(routes), tuple(routes[:2]), NAME))
    if not routes:
        return found
    for family in ("v4", "v6"):
        out = step_output(steps, f"link.api_{family}")
        if out is None:
            continue
        result = parse_curl(out)
        flag = "-4" if family == "v4" else "-6"
        evidence = (f"curl {flag} {ctx.endpoints.api.rstrip('/')}/ping", *result.evidence)
        outcome = result.outcome
        if outcome == "http" and (result.http_status != 200 or result.body.strip() != "OK"):
            outcome = "http_error"
        found.append(Observation(f"link.api_{family}_outcome", outcome, evidence, NAME))
    return found


PROBE = make_probe(
    NAME, "own link: Wi-Fi signal, packet loss to the gateway, IPv4 vs IPv6", build_steps, parse
)
