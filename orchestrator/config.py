"""Settings from a TOML file plus environment overrides, validated with clear errors.

Lookup order for the file: ``--config PATH``, then ``$ORCH_CONFIG``, then ``orch.toml`` in the
user config dir (``platformdirs.user_config_dir("orch")``); no file at all means defaults.
Environment overrides: ``ORCH_DB_URL`` (database URL), ``BALENA_API_KEY`` (API token),
``ORCH_BALENA_API_URL`` (API base URL).

Every key is declared once in ``SCHEMA`` with its type and default; ``config/orch.example.toml``
documents each of them (a test keeps the two in step). An unknown key, a wrong type or a bad
value raises ``ConfigError`` naming the key and the file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.vocabulary import ROUTE_MODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_ENV = "ORCH_CONFIG"
DB_URL_ENV = "ORCH_DB_URL"
TOKEN_ENV = "BALENA_API_KEY"
API_URL_ENV = "ORCH_BALENA_API_URL"

_POSITIVE = "positive"
_FRACTION = "fraction"
_HOST_PORT = "host:port"
_ROUTE_MODE = "route mode"

SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any, str | None]]] = {
    "database": {
        "url": (str, "", None),
        "max_step_output_bytes": (int, 65536, _POSITIVE),
    },
    "ssh": {
        "keys": (list, [], None),
        "known_hosts": (str, "", None),
        "insecure_no_host_key_check": (bool, False, None),
        "user": (str, "root", None),
        "port": (int, 22222, _POSITIVE),
        "connect_timeout": ((int, float), 10.0, _POSITIVE),
        "login_timeout": ((int, float), 10.0, _POSITIVE),
        "device_timeout": ((int, float), 120.0, _POSITIVE),
        "max_output_bytes": (int, 4 * 1024 * 1024, _POSITIVE),
        "kex_algs": (str, "", None),
        "ciphers": (str, "", None),
    },
    "run": {
        "concurrency": (int, 100, _POSITIVE),
        "budget": ((int, float), 90.0, _POSITIVE),
    },
    "endpoints": {
        "api": (str, "https://api.balena-cloud.com", None),
        "cloudlink": (str, "https://cloudlink.balena-cloud.com", None),
        "registry": (str, "https://registry2.balena-cloud.com", None),
        "delta": (str, "https://delta.balena-cloud.com", None),
        "ntp_host": (str, "0.resinio.pool.ntp.org", None),
        "dns_control": (str, "8.8.8.8", None),
        "customer": (list, [], _HOST_PORT),
        "expected_issuers": (list, [], None),
    },
    "balena": {
        "api_url": (str, "https://api.balena-cloud.com/", None),
        "token": (str, "", None),
        "ssh_host": (str, "ssh.balena-devices.com", None),
        "ssh_port": (int, 22, _POSITIVE),
        "ssh_user": (str, "", None),
        "timeout": ((int, float), 30.0, _POSITIVE),
        "page_size": (int, 500, _POSITIVE),
    },
    "routes": {
        "mode": (str, "auto", _ROUTE_MODE),
        "local_network": (bool, False, None),
        "max_proxy_sessions": (int, 50, _POSITIVE),
        "max_targets_per_gateway": (int, 3, _POSITIVE),
        "sessions_per_connection": (int, 10, _POSITIVE),
    },
    "patterns": {
        "min_group": (int, 3, _POSITIVE),
        "min_share": ((int, float), 0.8, _FRACTION),
        "max_p_value": ((int, float), 0.01, _FRACTION),
    },
}


def _section(name: str) -> dict[str, Any]:
    return {key: spec[1] for key, spec in SCHEMA[name].items()}


@dataclass(frozen=True)
class Config:
    """Validated settings; each attribute is one TOML section as a plain dict."""

    path: Path | None = None
    database: dict[str, Any] = field(default_factory=lambda: _section("database"))
    ssh: dict[str, Any] = field(default_factory=lambda: _section("ssh"))
    run: dict[str, Any] = field(default_factory=lambda: _section("run"))
    endpoints: dict[str, Any] = field(default_factory=lambda: _section("endpoints"))
    balena: dict[str, Any] = field(default_factory=lambda: _section("balena"))
    routes: dict[str, Any] = field(default_factory=lambda: _section("routes"))
    patterns: dict[str, Any] = field(default_factory=lambda: _section("patterns"))

    @property
    def db_url(self) -> str | None:
        """The database URL, or None for the default SQLite file."""
        return self.database["url"] or None

    @property
    def token(self) -> str | None:
        """The balena API token (never printed)."""
        return self.balena["token"] or None

    def __repr__(self) -> str:
        return f"Config(path={self.path!r})"


def default_config_path() -> Path:
    """Where orch looks for its config when neither --config nor ORCH_CONFIG says."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("orch")) / "orch.toml"


def _check_value(where: str, key: str, value: Any, spec: tuple) -> Any:
    expected, _default, rule = spec
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{where}: key '{key}' must be {_type_name(types)}, not a boolean")
    if not isinstance(value, types):
        raise ConfigError(
            f"{where}: key '{key}' must be {_type_name(types)}, got {type(value).__name__}"
        )
    if rule == _POSITIVE and value <= 0:
        raise ConfigError(f"{where}: key '{key}' must be greater than 0, got {value}")
    if rule == _FRACTION and not 0 < value <= 1:
        raise ConfigError(f"{where}: key '{key}' must be between 0 and 1, got {value}")
    if rule == _ROUTE_MODE and value not in ROUTE_MODES:
        raise ConfigError(f"{where}: key '{key}' must be one of {', '.join(ROUTE_MODES)}")
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where}: key '{key}' must be a list of strings")
        if rule == _HOST_PORT:
            for item in value:
                host, _, port = item.rpartition(":")
                if not host or not port.isdigit() or not 0 < int(port) < 65536:
                    raise ConfigError(f"{where}: key '{key}' entry {item!r} is not host:port")
    return float(value) if float in types and isinstance(value, int) else value


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "a number", float: "a number", str: "a string"}
    return " or ".join(sorted({names.get(t, f"a {t.__name__}") for t in types}))


def parse_config(data: dict[str, Any], path: Path | None) -> Config:
    """Validate a parsed TOML document into a Config (no environment applied)."""
    where = str(path) if path else "configuration"
    sections: dict[str, dict[str, Any]] = {}
    for name, body in data.items():
        if name not in SCHEMA:
            known = ", ".join(f"[{s}]" for s in SCHEMA)
            raise ConfigError(f"{where}: unknown section [{name}] (known: {known})")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        values = _section(name)
        for key, value in body.items():
            if key not in SCHEMA[name]:
                raise ConfigError(f"{where}: unknown key '{name}.{key}'")
            values[key] = _check_value(where, f"{name}.{key}", value, SCHEMA[name][key])
        sections[name] = values
    return Config(path=path, **sections)


def _apply_environment(config: Config, env: dict[str, str]) -> Config:
    if env.get(DB_URL_ENV):
        config.database["url"] = env[DB_URL_ENV]
    if env.get(TOKEN_ENV):
        config.balena["token"] = env[TOKEN_ENV]
    if env.get(API_URL_ENV):
        config.balena["api_url"] = env[API_URL_ENV]
    return config


def load_config(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Config:
    """Find, read and validate the configuration, then apply environment overrides."""
    env = dict(os.environ) if env is None else env
    explicit = path or env.get(CONFIG_ENV)
    candidate = Path(explicit).expanduser() if explicit else default_config_path()
    if not candidate.exists():
        if explicit:
            raise ConfigError(f"config file {candidate} does not exist")
        return _apply_environment(Config(), env)
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{candidate}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{candidate}: cannot be read: {exc}") from None
    return _apply_environment(parse_config(data, candidate), env)
