"""A worker's known_hosts: parsed once, and again only when the file changes.

A fleet's known_hosts can hold 100,000 keys. Parsed for every shard it cost seconds of CPU per
shard and kept the worker's memory growing; never parsed again, a long-running worker would not
see the keys of devices added since it started. ``KnownHostsReader.current`` looks at the file's
metadata before each shard and parses it only when that changed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from orchestrator.errors import ConfigError
from orchestrator.transport.credentials import SSHSettings, known_hosts_path, load_known_hosts
from orchestrator.transport.sshlib import asyncssh

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int, int]


class KnownHostsReader:
    """The parsed known_hosts of ``settings``; raises ConfigError at once if it cannot be read."""

    def __init__(self, settings: SSHSettings) -> None:
        self._settings = replace(settings, known_hosts_loaded=None)
        self._path = known_hosts_path(settings)
        self._stamp: _Stamp | None = None
        self._loaded: asyncssh.SSHKnownHosts | None = None
        self.current()

    def current(self) -> asyncssh.SSHKnownHosts | None:
        """The keys as the file holds them now (None when host key checks are off).

        A file that became unreadable or invalid after a good read keeps the last good keys
        (with a warning), so a half-written file never fails every device of a shard.
        """
        if self._settings.insecure_no_host_key_check:
            return None
        stamp = self._stamp_now()
        if stamp is not None and stamp == self._stamp:
            return self._loaded
        try:
            loaded, _path = load_known_hosts(self._settings)
        except ConfigError as exc:
            if self._stamp is None:
                raise
            log.warning("%s; still using the host keys read before", exc)
            return self._loaded
        self._loaded, self._stamp = loaded, stamp
        return loaded

    def _stamp_now(self) -> _Stamp | None:
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
