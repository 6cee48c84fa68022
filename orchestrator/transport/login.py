"""Open and authenticate one SSH hop under separate connect and login deadlines.

Every connection of a run shares one ``asyncssh.SSHClientConnectionOptions`` built here once,
with the run's keys and known_hosts objects. A timeout names the phase that stalled (TCP
connect, SSH handshake, authentication); a host key or authentication failure becomes a
one-line error that says how to fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress

from orchestrator.models import Route
from orchestrator.transport.credentials import (
    SSHSettings,
    load_client_keys,
    load_known_hosts,
    shared_options,
)
from orchestrator.transport.errors_map import auth_error, hostkey_error, timeout_error
from orchestrator.transport.keepalive import lazy_keepalive
from orchestrator.transport.reads import receive_in_slices
from orchestrator.transport.sshlib import asyncssh
from orchestrator.transport.tunnel import GatewayTunnel

log = logging.getLogger("orchestrator.transport")


class _PhaseWatch(asyncssh.SSHClient):
    """Records when TCP connected and when authentication began, to tell the timeouts apart;
    makes the connection take its reads in bounded slices (`reads`) and keep its keepalive
    timer still while reading (`keepalive`)."""

    def __init__(self) -> None:
        self.tcp_at: float | None = None
        self.auth_at: float | None = None
        self.auth_started = asyncio.Event()

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self.tcp_at = time.monotonic()
        receive_in_slices(conn)
        lazy_keepalive(conn)

    def begin_auth(self, username: str) -> None:
        self.auth_at = time.monotonic()
        self.auth_started.set()


class Login:
    """Connects and authenticates hops with the run's shared options."""

    def __init__(self, settings: SSHSettings) -> None:
        self.settings = settings
        keys, self.key_labels = load_client_keys(settings)
        self.known_hosts, self.known_hosts_path = load_known_hosts(settings)
        if settings.insecure_no_host_key_check:
            log.warning(
                "HOST KEY CHECKING IS DISABLED: any machine can impersonate your devices "
                "(man-in-the-middle); use a known_hosts file instead"
            )
        self.options = shared_options(
            settings,
            known_hosts=self.known_hosts,
            client_keys=keys,
            agent_path=None,
            config=None,
            password_auth=False,
            kbdint_auth=False,
            gss_host=None,
            gss_auth=False,
            gss_kex=False,
            host_based_auth=False,
            x509_trusted_certs=None,
            x509_trusted_cert_paths=[],
            connect_timeout=None,
            login_timeout=0,
            keepalive_interval=settings.keepalive_interval_s,
        )

    async def __call__(
        self,
        hop: Route,
        tunnel: asyncssh.SSHClientConnection | None,
        where: str,
        on_phase: Callable[[str], None] | None = None,
    ) -> asyncssh.SSHClientConnection:
        """Open and authenticate ``hop`` (through ``tunnel`` if given); ``where`` names it."""
        watch = _PhaseWatch()
        started = time.monotonic()
        task = asyncio.ensure_future(
            asyncssh.connect(
                hop.host,
                hop.port,
                tunnel=GatewayTunnel(tunnel) if tunnel is not None else (),
                config=None,
                options=self.options,
                username=hop.user,
                client_factory=lambda: watch,
            )
        )
        auth_wait = asyncio.ensure_future(watch.auth_started.wait())
        connect_s, login_s = self.settings.connect_timeout_s, self.settings.login_timeout_s
        try:
            while not task.done():
                if watch.auth_at is None:
                    until, phase, limit = started + connect_s, "connect", connect_s
                else:
                    until, phase, limit = watch.auth_at + login_s, "login", login_s
                    if on_phase is not None:
                        on_phase(f"logging in to {where}")
                remaining = until - time.monotonic()
                if remaining <= 0:
                    raise timeout_error(phase, where, limit, tcp=watch.tcp_at is not None)
                wake_on = {task} if auth_wait.done() else {task, auth_wait}
                await asyncio.wait(wake_on, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (auth_wait, task):
                if not pending.done():
                    pending.cancel()
                    with suppress(BaseException):
                        await pending
        try:
            return task.result()
        except asyncssh.HostKeyNotVerifiable:
            known = self.known_hosts.match(hop.host, "", hop.port)[0] if self.known_hosts else []
            entry = hop.host if hop.port == 22 else f"[{hop.host}]:{hop.port}"
            raise hostkey_error(where, entry, self.known_hosts_path, mismatch=bool(known)) from None
        except asyncssh.PermissionDenied:
            raise auth_error(where, hop.user, self.key_labels) from None
