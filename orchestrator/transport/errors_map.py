"""Translate asyncssh and socket failures into per-device ``TransportError``s.

Each message is one line that names the hop (``root@10.0.0.5:22222`` or
``gateway root@gw:22222``) and says what to do. The transport adds the details only it knows
(which keys were offered, which known_hosts file, how many bytes arrived) before calling here,
or builds the ``TransportError`` itself and this module passes it through unchanged.
"""

from __future__ import annotations

import asyncio
import errno
import socket

from orchestrator.errors import TransportError
from orchestrator.models import Route
from orchestrator.transport.sshlib import asyncssh

_UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EADDRNOTAVAIL, errno.ENETDOWN}
)
_PROTOCOL_ERRORS = (
    asyncssh.ProtocolError,
    asyncssh.ProtocolNotSupported,
    asyncssh.KeyExchangeFailed,
    asyncssh.MACError,
    asyncssh.CompressionError,
    asyncssh.ServiceNotAvailable,
)


def one_line(text: str) -> str:
    """Collapse whitespace so a message always fits on one line."""
    return " ".join(str(text).split())


def hop_name(route: Route) -> str:
    """``user@host:port`` of one hop."""
    return f"{route.user}@{route.host}:{route.port}"


def timeout_error(phase: str, where: str, limit_s: float, *, tcp: bool) -> TransportError:
    """A connect timeout (TCP plus SSH handshake) or a login timeout (authentication)."""
    if phase == "login":
        return TransportError(
            "timeout",
            f"{where}: login timeout after {limit_s:g}s (authentication did not finish); "
            "the device may be overloaded",
        )
    detail = (
        "TCP connected but no SSH handshake: is an SSH server listening there?"
        if tcp
        else "no TCP connection: the device is offline or the port is filtered"
    )
    return TransportError("timeout", f"{where}: connect timeout after {limit_s:g}s ({detail})")


def hostkey_error(
    where: str, entry: str, known_hosts_path: str, *, mismatch: bool
) -> TransportError:
    """A host key that differs from the known one, or a host with no known key at all."""
    if mismatch:
        return TransportError(
            "hostkey",
            f"{where}: HOST KEY MISMATCH: the key differs from the one in {known_hosts_path}; "
            f"if the device was reflashed, remove the stale entry (ssh-keygen -R '{entry}' "
            f"-f {known_hosts_path}), otherwise suspect an attack",
        )
    return TransportError(
        "hostkey",
        f"{where}: unknown host: no key for {entry} in {known_hosts_path}; "
        "verify the device's host key and add it (ssh-keyscan) before connecting",
    )


def auth_error(where: str, user: str, key_labels: list[str]) -> TransportError:
    """The device refused every key offered for ``user``."""
    return TransportError(
        "auth",
        f"{where}: permission denied for user {user} with key(s) {', '.join(key_labels)}; "
        "authorize your public key on the device (or in balenaCloud) or fix the user",
    )


def proxy_refusal(
    route: Route, exit_status: int | None, stdout_bytes: int
) -> TransportError | None:
    """The balena proxy's refusal: a proxy/hostvia command exiting 255 without any output."""
    if route.kind in ("proxy", "hostvia") and exit_status == 255 and stdout_bytes == 0:
        return TransportError(
            "proxy",
            f"{hop_name(route)} ({route.command}): the balena proxy refused; "
            "is your SSH key registered in balenaCloud and the device online?",
        )
    return None


def _received(received_bytes: int | None) -> str:
    if received_bytes is None:
        return ""
    return f" after {received_bytes} bytes of output"


def _channel_open_error(exc: asyncssh.ChannelOpenError, where: str) -> TransportError:
    reason = one_line(exc.reason) or "no reason given"
    if exc.code == asyncssh.OPEN_CONNECT_FAILED:
        kind = "refused" if "refused" in reason.lower() else "unreachable"
        return TransportError(
            kind,
            f"{where}: the gateway could not open a connection to the device ({reason}); "
            "check the device's LAN address and that its SSH port is open",
        )
    if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
        return TransportError(
            "unreachable",
            f"{where}: the gateway refuses to forward connections ({reason}); "
            "enable TCP forwarding on the gateway or use another route",
        )
    return TransportError("protocol", f"{where}: could not open an SSH channel ({reason})")


def _disconnect_error(
    exc: asyncssh.DisconnectError, where: str, received_bytes: int | None
) -> TransportError:
    reason = one_line(exc.reason) or "no reason given"
    if isinstance(exc, asyncssh.PermissionDenied):
        return TransportError(
            "auth",
            f"{where}: permission denied ({reason}); "
            "check the user name and that your public key is authorized on the device",
        )
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return TransportError(
            "hostkey",
            f"{where}: host key not verifiable ({reason}); add the device's key to known_hosts",
        )
    if isinstance(exc, asyncssh.ConnectionLost):
        if "login timeout" in reason.lower():
            return TransportError("timeout", f"{where}: login timeout ({reason})")
        return TransportError(
            "disconnected",
            f"{where}: connection lost{_received(received_bytes)} ({reason}); "
            "the device may have rebooted or its network dropped",
        )
    if isinstance(exc, _PROTOCOL_ERRORS):
        return TransportError(
            "protocol", f"{where}: SSH protocol failure ({reason}); is this an SSH server?"
        )
    return TransportError(
        "disconnected",
        f"{where}: the device closed the connection{_received(received_bytes)} ({reason})",
    )


def _os_error(exc: OSError, where: str, received_bytes: int | None) -> TransportError:
    if isinstance(exc, socket.gaierror):
        return TransportError(
            "unreachable",
            f"{where}: host name could not be resolved ({one_line(exc.strerror or exc)}); "
            "check the address",
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            "refused",
            f"{where}: connection refused (nothing listens on that port); "
            "check the port and that the device's SSH server runs",
        )
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return TransportError(
            "disconnected",
            f"{where}: connection reset{_received(received_bytes)}; "
            "the device may have rebooted or its network dropped",
        )
    if exc.errno in _UNREACHABLE_ERRNOS:
        return TransportError(
            "unreachable",
            f"{where}: no route to host ({one_line(exc.strerror or exc)}); "
            "the device is offline or not on a network you can reach",
        )
    if exc.errno == errno.ETIMEDOUT:
        return TransportError(
            "timeout", f"{where}: connect timeout (TCP); the device is offline or filtered"
        )
    return TransportError("error", f"{where}: {one_line(str(exc)) or type(exc).__name__}")


def classify_error(
    exc: BaseException, where: str, *, received_bytes: int | None = None
) -> TransportError:
    """Map an exception raised while talking to one device to a ``TransportError``.

    ``where`` names the hop (``root@host:port`` or ``gateway root@gw:22222``);
    ``received_bytes`` is how much output had arrived, for lost connections.
    """
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, asyncssh.ChannelOpenError):
        return _channel_open_error(exc, where)
    if isinstance(exc, asyncssh.DisconnectError):
        return _disconnect_error(exc, where, received_bytes)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return TransportError("timeout", f"{where}: timed out{_received(received_bytes)}")
    if isinstance(exc, OSError):
        return _os_error(exc, where, received_bytes)
    if isinstance(exc, asyncssh.Error):
        return TransportError("error", f"{where}: {one_line(exc.reason)}")
    text = one_line(str(exc))
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return TransportError("error", f"{where}: unexpected failure ({detail})")
