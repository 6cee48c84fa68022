"""What every SSH connection of a run shares: settings, client keys and known hosts, read once.

Keys and known_hosts are loaded into objects a single time per run (DESIGN 8): giving asyncssh
file paths instead makes it re-read and re-validate them on every connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestrator.errors import ConfigError
from orchestrator.transport.errors_map import one_line
from orchestrator.transport.lazy_known_hosts import LazyKnownHosts
from orchestrator.transport.sshlib import asyncssh

DEFAULT_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
PREFERRED_KEX = "^curve25519-sha256,curve25519-sha256@libssh.org"
"""X25519 first: a fraction of the CPU of the hybrid post-quantum exchanges asyncssh prefers."""
PREFERRED_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
"""AES-GCM first: one cipher object per key, whereas asyncssh's ChaCha20-Poly1305 builds
several per packet (a quarter of orch's CPU at 1,000 devices before this preference)."""


@dataclass(frozen=True)
class SSHSettings:
    """How to authenticate, verify hosts and bound time and output for every device."""

    key_files: tuple[str, ...] = ()
    """Private key files; empty means ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist."""
    keys: tuple[asyncssh.SSHKey, ...] = ()
    """Preloaded keys (tests, simulator), used instead of files."""
    known_hosts: str | None = None
    """known_hosts file; None means ~/.ssh/known_hosts."""
    known_hosts_loaded: asyncssh.SSHKnownHosts | None = None
    """That file already read (an ``orch worker`` reads it once for all its shards)."""
    insecure_no_host_key_check: bool = False
    """Accept any host key. Explicit opt-out that exposes you to man-in-the-middle attacks."""
    connect_timeout_s: float = 10.0
    """TCP connect plus SSH handshake, until authentication starts."""
    login_timeout_s: float = 10.0
    """Authentication, from its start until accepted."""
    device_timeout_s: float = 120.0
    """Whole-device deadline: connect, login and script."""
    keepalive_interval_s: float = 15.0
    max_output_bytes: int = 4 * 1024 * 1024
    """Client-side cap on one device's stdout; beyond it the channel is closed."""
    proxy_sessions_per_connection: int = 10
    """Device sessions sharing one connection to the proxy host (OpenSSH MaxSessions: 10)."""
    kex_algs: str = PREFERRED_KEX
    """Key exchange preference, asyncssh/OpenSSH syntax (``^`` prepends to the defaults)."""
    encryption_algs: str = PREFERRED_CIPHERS
    """Cipher preference, same syntax; the server's list decides what is finally used."""


def _default_key_files() -> tuple[str, ...]:
    ssh_dir = os.path.expanduser("~/.ssh")
    paths = tuple(os.path.join(ssh_dir, name) for name in DEFAULT_KEY_NAMES)
    return tuple(path for path in paths if os.path.exists(path))


def load_client_keys(settings: SSHSettings) -> tuple[list[asyncssh.SSHKey], list[str]]:
    """The private keys to offer and a label for each (path or fingerprint), read once."""
    if settings.keys:
        return list(settings.keys), [key.get_fingerprint() for key in settings.keys]
    paths = settings.key_files or _default_key_files()
    if not paths:
        raise ConfigError(
            "no SSH private key found (looked for ~/.ssh/id_ed25519, id_ecdsa, id_rsa); "
            "create one with ssh-keygen or configure key files"
        )
    keys = []
    for path in paths:
        try:
            keys.append(asyncssh.public_key.read_private_key(os.path.expanduser(path)))
        except asyncssh.KeyEncryptionError:
            raise ConfigError(
                f"SSH key {path} is passphrase-protected; use an unencrypted key for orch"
            ) from None
        except (OSError, asyncssh.KeyImportError) as exc:
            raise ConfigError(f"cannot read SSH key {path}: {one_line(str(exc))}") from None
    return keys, list(paths)


def known_hosts_path(settings: SSHSettings) -> str:
    """The known_hosts file ``settings`` name (default ``~/.ssh/known_hosts``), expanded."""
    return os.path.expanduser(settings.known_hosts or "~/.ssh/known_hosts")


def load_known_hosts(settings: SSHSettings) -> tuple[asyncssh.SSHKnownHosts | None, str]:
    """The known_hosts object (None when host key checks are off) and its file path, read once."""
    path = known_hosts_path(settings)
    if settings.insecure_no_host_key_check:
        return None, path
    if settings.known_hosts_loaded is not None:
        return settings.known_hosts_loaded, path
    try:
        with open(path, encoding="utf-8") as file:
            return LazyKnownHosts(file.read()), path
    except OSError as exc:
        reason = one_line(exc.strerror or str(exc))
        raise ConfigError(
            f"cannot read known_hosts file {path} ({reason}); add your devices' host keys "
            "to it (ssh-keyscan) or, knowingly, disable host key checks"
        ) from None
    except ValueError as exc:  # a malformed line, or text that is not UTF-8
        raise ConfigError(f"invalid known_hosts file {path}: {one_line(str(exc))}") from None


def shared_options(settings: SSHSettings, **options: object) -> asyncssh.SSHClientConnectionOptions:
    """The options object every connection reuses, algorithm preferences expanded once.

    asyncssh rebuilds options for each connection; explicit algorithm lists skip its per-connection
    pattern matching of the ``^...`` preference strings.
    """
    try:
        preferred = asyncssh.SSHClientConnectionOptions(
            kex_algs=settings.kex_algs,
            encryption_algs=settings.encryption_algs,
            config=None,
            client_keys=None,
            known_hosts=None,
            agent_path=None,
        )
    except ValueError as exc:
        raise ConfigError(f"[ssh] kex_algs / ciphers: {one_line(str(exc))}") from None
    return asyncssh.SSHClientConnectionOptions(
        kex_algs=[alg.decode("ascii") for alg in preferred.kex_algs],
        encryption_algs=[alg.decode("ascii") for alg in preferred.encryption_algs],
        **options,
    )
