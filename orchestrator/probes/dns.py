"""dns: dnsmasq, its resolver files, its upstreams, and resolution through each of them.

Observations (``probe="dns"``):

- ``dns.dnsmasq_active`` (bool), ``dns.resolv_file_present`` (bool, ``/etc/resolv.dnsmasq``)
- ``dns.upstreams`` (tuple of IPs from ``/run/dnsmasq.servers`` and ``/etc/resolv.dnsmasq``)
- ``dns.config_servers`` (str): ``dnsServers`` from config.json (only that key is read)
- ``dns.resolves_api`` / ``dns.resolves_ntp`` (bool): through the local resolver (127.0.0.2)
- ``dns.upstream_answers`` (dict IP -> ``ok``/``timeout``/``nxdomain``/``refused``/
  ``servfail``/``error``): the API name asked of every upstream directly, plus the control
  server ``CONTROL_SERVER`` (balenaOS's default extra upstream) to tell a dead upstream from
  port 53 blocked.
- ``log.dns.*`` from the dnsmasq journal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from orchestrator.diagnosis.signatures import scan
from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.journal import journal_step
from orchestrator.probes.textscan import search_from_line_of

NAME = "dns"
CONTROL_SERVER = Endpoints().dns_control
"""The default control resolver (config ``[endpoints] dns_control``)."""
CONFIG = '"$R/mnt/boot/config.json"'
_SERVER_LINE = re.compile(r"^(?:server=|nameserver\s+)([0-9A-Fa-f.:]+)", re.MULTILINE)
_CONFIG_DNS = re.compile(r'"dnsServers"\s*:\s*(?:"([^"]*)"|null)')
_ANSWER = re.compile(r"^Name:\s*\S", re.MULTILINE)
_CHUNK = re.compile(r"^== server (\S+)\n(.*?)^== rc (\d+)$", re.MULTILINE | re.DOTALL)


def host_of(url: str) -> str:
    """The host name of an endpoint URL."""
    return urlsplit(url if "//" in url else f"//{url}").hostname or url


def _upstream_loop(name: str, control: str) -> str:
    servers = (
        "sed -n -e 's/^server=\\([0-9A-Fa-f.:]*\\).*/\\1/p' "
        "-e 's/^nameserver[[:space:]]*\\([0-9A-Fa-f.:]*\\).*/\\1/p' "
        '"$R/run/dnsmasq.servers" "$R/etc/resolv.dnsmasq"; '
        f'grep -o \'"dnsServers"[[:space:]]*:[[:space:]]*"[^"]*"\' {CONFIG} '
        "| sed -e 's/^[^:]*:[[:space:]]*\"//' -e 's/\"$//' | tr ',' ' '"
    )
    return (
        f"seen=' '; for s in $( {{ {servers}; }} 2>/dev/null ) {control}; do "
        "case \"$s\" in ''|*[!0-9A-Fa-f.:]*) continue;; esac; "
        'case "$seen" in *" $s "*) continue;; esac; seen="$seen$s "; '
        f'echo "== server $s"; nslookup {name} "$s" 2>&1; echo "== rc $?"; done'
    )


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """dnsmasq state, resolver files, the dnsServers key, and lookups."""
    api_host = host_of(endpoints.api)
    return (
        Step("dns.dnsmasq", "systemctl is-active dnsmasq.service", timeout_s=5),
        Step("dns.resolv_file", 'cat "$R/etc/resolv.dnsmasq"', timeout_s=5),
        Step("dns.servers_file", 'cat "$R/run/dnsmasq.servers"', timeout_s=5),
        Step(
            "dns.config",
            f'grep -o -E \'"dnsServers"[[:space:]]*:[[:space:]]*("[^"]*"|null)\' {CONFIG}',
            timeout_s=5,
        ),
        Step("dns.local_api", f"nslookup {api_host}", timeout_s=15),
        Step("dns.local_ntp", f"nslookup {endpoints.ntp_host}", timeout_s=15),
        Step("dns.upstreams", _upstream_loop(api_host, endpoints.dns_control), timeout_s=40),
        journal_step("dns.journal", "dnsmasq.service"),
    )


def lookup_result(text: str) -> str:
    """Classify one nslookup answer (BusyBox or BIND wording)."""
    if search_from_line_of(_ANSWER, "Name:", text):
        return "ok"
    lowered = text.lower()
    if "nxdomain" in lowered:
        return "nxdomain"
    if "refused" in lowered:
        return "refused"
    if "timed out" in lowered or "no servers could be reached" in lowered:
        return "timeout"
    if "servfail" in lowered:
        return "servfail"
    return "error"


def _obs(key: str, value: object, *evidence: str) -> Observation:
    return Observation(key, value, tuple(filter(None, evidence)), NAME)


def _first_line(out: StepOutput) -> str:
    lines = out.output.strip().splitlines()
    return lines[0] if lines else ""


def _lookup(out: StepOutput | None, key: str) -> list[Observation]:
    if out is None:
        return []
    result = lookup_result(out.output)
    lines = [line for line in out.output.splitlines() if line.strip()][-3:]
    return [_obs(key, result == "ok", *lines)]


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """DNS observations (see the module docstring)."""
    found: list[Observation] = []
    unit = step_output(steps, "dns.dnsmasq")
    if unit is not None and unit.output.strip():
        state = _first_line(unit)
        found.append(_obs("dns.dnsmasq_active", state == "active", f"dnsmasq.service: {state}"))
    resolv = step_output(steps, "dns.resolv_file")
    upstreams: list[str] = []
    if resolv is not None:
        present = resolv.exit_code == 0 and "No such file" not in resolv.output
        found.append(_obs("dns.resolv_file_present", present, _first_line(resolv)))
        upstreams += _SERVER_LINE.findall(resolv.output) if present else []
    servers = step_output(steps, "dns.servers_file")
    if servers is not None and servers.exit_code == 0:
        upstreams += _SERVER_LINE.findall(servers.output)
    if resolv is not None or servers is not None:
        unique = tuple(dict.fromkeys(upstreams))
        found.append(_obs("dns.upstreams", unique, *(f"upstream {ip}" for ip in unique)))
    config = step_output(steps, "dns.config")
    if config is not None:
        match = _CONFIG_DNS.search(config.output)
        value = (match.group(1) if match.group(1) is not None else "null") if match else None
        found.append(_obs("dns.config_servers", value, match.group(0) if match else ""))
    found += _lookup(step_output(steps, "dns.local_api"), "dns.resolves_api")
    found += _lookup(step_output(steps, "dns.local_ntp"), "dns.resolves_ntp")
    loop = step_output(steps, "dns.upstreams")
    if loop is not None:
        answers = {m.group(1): lookup_result(m.group(2)) for m in _CHUNK.finditer(loop.output)}
        if answers:
            lines = [f"nslookup via {ip}: {result}" for ip, result in answers.items()]
            found.append(_obs("dns.upstream_answers", answers, *lines))
            found.append(_obs("dns.control_server", ctx.endpoints.dns_control))
    journal = step_output(steps, "dns.journal")
    if journal is not None:
        found += scan(journal.output, NAME, default_source="dns")
    return found


PROBE = make_probe(
    NAME,
    "dnsmasq, resolver files, dnsServers, lookups via 127.0.0.2 and via each upstream",
    build_steps,
    parse,
)
