"""asyncssh's logging, made to cost nothing where it would write nothing.

- Packet dumps. For every packet it sends or receives, asyncssh builds a description (the
  packet type's name, its size) and hands it to its logger, which writes it only at asyncssh's
  debug level 3: a level whose packet dumps, asyncssh's documentation warns, can show passwords
  in clear text. orch never writes packet dumps (secrets never reach logs), so the two hooks
  every packet goes through do nothing. With ~90 packets per device on the jump route, the
  descriptions alone were ~0.7 M instructions per device.
- Messages. asyncssh's log adapter turns every argument of a message into text before asking
  whether the message's level is enabled. The replacement asks first and, when it is, calls
  asyncssh's own method: what gets logged does not change, only what is skipped costs less.

``install`` changes asyncssh's classes, once, for the whole process; ``sshlib`` calls it right
after importing asyncssh.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

PACKET_HOOKS = ("log_sent_packet", "log_received_packet")
"""The methods of asyncssh's ``SSHPacketLogger`` every packet passes through."""


def _no_packet_dump(self: Any, *args: Any, **kwargs: Any) -> None:
    """Stands in for asyncssh's per-packet log hooks: packet dumps are never written."""


def _enabled_first(log: Any) -> Any:
    """asyncssh's ``SSHLogger.log``, called only when ``level`` is enabled."""

    def log_if_enabled(self: Any, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            log(self, level, msg, *args, **kwargs)

    log_if_enabled.wrapped = log  # type: ignore[attr-defined]
    return log_if_enabled


def install(packet_module: ModuleType, logging_module: ModuleType) -> None:
    """Apply both changes to asyncssh's ``packet`` and ``logging`` modules (idempotent)."""
    packet_logger = packet_module.SSHPacketLogger
    for name in PACKET_HOOKS:
        setattr(packet_logger, name, _no_packet_dump)
    ssh_logger = logging_module.SSHLogger
    if not hasattr(ssh_logger.log, "wrapped"):
        ssh_logger.log = _enabled_first(ssh_logger.log)
