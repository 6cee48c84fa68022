"""The orch error tree.

Every error a user can see is an ``OrchError`` with a one-line, actionable message.
Errors from dependencies (asyncssh, requests, SQLAlchemy) are translated into these at the
boundary of the layer that talks to them.

::

    OrchError                     exit code 3 unless said otherwise
    ├── ConfigError               invalid or unreadable configuration (exit 2)
    ├── UsageError                bad command-line input (exit 2)
    ├── FleetSourceError          the fleet could not be listed
    │   ├── AuthenticationError   the API refused the token (exit 2)
    │   └── FleetNotFoundError    no such fleet (exit 2)
    ├── StoreError                the database is unreachable or inconsistent
    └── TransportError            one device could not be reached (stored per device, never raised
                                  out of a run); ``kind`` is one of TRANSPORT_ERROR_KINDS
"""

from __future__ import annotations

TRANSPORT_ERROR_KINDS: tuple[str, ...] = (
    "timeout",
    "refused",
    "unreachable",
    "auth",
    "hostkey",
    "disconnected",
    "proxy",
    "protocol",
    "error",
)


class OrchError(Exception):
    """Base of all orch errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 3


class ConfigError(OrchError):
    """The configuration file or environment is invalid."""

    exit_code = 2


class UsageError(OrchError):
    """The command line asks for something impossible."""

    exit_code = 2


class FleetSourceError(OrchError):
    """The fleet source failed (API unreachable, malformed inventory...)."""


class AuthenticationError(FleetSourceError):
    """The API rejected the credentials."""

    exit_code = 2


class FleetNotFoundError(FleetSourceError):
    """The requested fleet does not exist or is not visible to the token."""

    exit_code = 2


class StoreError(OrchError):
    """The results database failed."""


class TransportError(OrchError):
    """A device could not be reached; ``kind`` classifies why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind if kind in TRANSPORT_ERROR_KINDS else "error"
