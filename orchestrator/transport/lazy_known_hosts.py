"""A known_hosts whose keys are read when a host is first looked up, not all at start.

asyncssh decodes every key of a known_hosts file when loading it (~6 us each): a fleet's file
of 100,000 devices costs over half a second at every start, though a sweep through the
balenaCloud proxy checks one host key, and a shard of a distributed sweep a few hundred.

``LazyKnownHosts`` checks every line's layout at once (so a malformed file still fails at
start) and hands the lines to asyncssh's own ``SSHKnownHosts.load`` unchanged, so matching is
asyncssh's: lines whose host field holds a pattern (wildcards, negations, hashed names, address
ranges) are loaded at once, as asyncssh must try them against every host; a line of plain names
is kept as text under each name and loaded the first time ``match`` asks for one of the names
asyncssh looks up exactly (the host and address, alone and as ``[name]:port``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.transport.sshlib import asyncssh

_PATTERN_CHARACTERS = frozenset("*?|/!")
"""Characters that make asyncssh match a host field as a pattern rather than exactly."""
_MARKERS = ("cert-authority", "revoked")


class LazyKnownHosts(asyncssh.SSHKnownHosts):
    """``asyncssh.SSHKnownHosts`` that decodes a plain-named line's key on its first match."""

    def __init__(self, known_hosts: str | None = None) -> None:
        self._lines: list[str | None] = []
        """Plain-named lines, each None once loaded."""
        self._by_name: dict[str, list[int]] = {}
        """Positions in ``_lines`` of the lines naming each host."""
        super().__init__(known_hosts)

    def load(self, known_hosts: str) -> None:
        """Take known_hosts text; raises ValueError for a line asyncssh could not read."""
        patterns: list[str] = []
        for line in known_hosts.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            hosts = _host_field(line)
            if _PATTERN_CHARACTERS.isdisjoint(hosts):
                for name in hosts.split(","):
                    self._by_name.setdefault(name, []).append(len(self._lines))
                self._lines.append(line)
            else:
                patterns.append(line)
        if patterns:
            super().load("\n".join(patterns))

    def match(self, host: str, addr: str, port: int | None) -> Any:
        """asyncssh's match, once the lines naming what it looks up are loaded."""
        names = {host, addr}
        if port:
            names |= {f"[{host}]:{port}", f"[{addr}]:{port}"}
        due = sorted({at for name in names for at in self._by_name.pop(name, ())})
        lines = [line for at in due if (line := self._lines[at]) is not None]
        for at in due:
            self._lines[at] = None
        if lines:
            super().load("\n".join(lines))
        return super().match(host, addr, port)


def _host_field(line: str) -> str:
    """The host names or patterns of a known_hosts line (as asyncssh splits it)."""
    try:
        if line.startswith("@"):
            marker, hosts, _data = line[1:].split(None, 2)
        else:
            hosts, _data = line.split(None, 1)
    except ValueError:
        raise ValueError(f"Invalid known hosts entry: {line}") from None
    if line.startswith("@") and marker not in _MARKERS:
        raise ValueError(f"Invalid known hosts marker: {marker}") from None
    return hosts
