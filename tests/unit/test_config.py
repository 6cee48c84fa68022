"""Configuration: lookup order, validation errors naming key and file, env overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator.config import SCHEMA, load_config
from orchestrator.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLE = Path(__file__).parents[2] / "config" / "orch.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orch.toml"
    path.write_text(text)
    return path


def test_example_documents_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert set(data) == set(SCHEMA)
    for section, keys in SCHEMA.items():
        assert set(data[section]) == set(keys), section
        for key, (_type, default, _rule) in keys.items():
            assert data[section][key] == default, f"{section}.{key}"


def test_example_loads_cleanly() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.run["concurrency"] == 100
    assert config.db_url is None


def test_lookup_order_flag_then_env_then_user_dir(tmp_path: Path, monkeypatch) -> None:
    flag = write(tmp_path, "[run]\nconcurrency = 7\n")
    env_file = tmp_path / "env.toml"
    env_file.write_text("[run]\nconcurrency = 8\n")
    user_dir = tmp_path / "user"
    (user_dir).mkdir()
    (user_dir / "orch.toml").write_text("[run]\nconcurrency = 9\n")
    monkeypatch.setattr("orchestrator.config.default_config_path", lambda: user_dir / "orch.toml")
    assert load_config(flag, env={"ORCH_CONFIG": str(env_file)}).run["concurrency"] == 7
    assert load_config(None, env={"ORCH_CONFIG": str(env_file)}).run["concurrency"] == 8
    assert load_config(None, env={}).run["concurrency"] == 9


def test_missing_user_config_means_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("orchestrator.config.default_config_path", lambda: tmp_path / "none.toml")
    assert load_config(None, env={}).ssh["port"] == 22222


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\nconcurency = 5\n", "unknown key 'run.concurency'"),
        ("[runs]\nx = 1\n", r"unknown section \[runs\]"),
        ("[run]\nconcurrency = 'many'\n", "key 'run.concurrency' must be a number, got str"),
        ("[run]\nconcurrency = 0\n", "key 'run.concurrency' must be greater than 0"),
        ("[ssh]\nport = true\n", "key 'ssh.port' must be a number, not a boolean"),
        ("[routes]\nmode = 'teleport'\n", "key 'routes.mode' must be one of"),
        ("[patterns]\nmin_share = 1.5\n", "key 'patterns.min_share' must be between 0 and 1"),
        ("[endpoints]\ncustomer = ['db.example.com']\n", "'db.example.com' is not host:port"),
        ("[run\n", "not valid TOML"),
    ],
)
def test_invalid_config_names_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_environment_overrides_database_token_and_api(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurl = 'sqlite:///x.db'\n[balena]\ntoken = 'from-file'\n")
    env = {
        "ORCH_DB_URL": "postgresql+psycopg://u@h/db",
        "BALENA_API_KEY": "secret-token",
        "ORCH_BALENA_API_URL": "http://127.0.0.1:9/",
    }
    config = load_config(path, env=env)
    assert config.db_url == "postgresql+psycopg://u@h/db"
    assert config.token == "secret-token"
    assert config.balena["api_url"] == "http://127.0.0.1:9/"
    assert "secret-token" not in repr(config)


def test_integer_timeouts_become_floats(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[ssh]\ndevice_timeout = 30\n"), env={})
    assert config.ssh["device_timeout"] == 30.0
    assert isinstance(config.ssh["device_timeout"], float)


def test_invalid_ssh_algorithm_preference_is_a_config_error(tmp_path):
    from orchestrator.sweep import ssh_settings_from
    from orchestrator.transport.credentials import shared_options

    path = tmp_path / "orch.toml"
    path.write_text('[ssh]\nciphers = "^no-such-cipher"\n')
    settings = ssh_settings_from(load_config(path))
    assert settings.encryption_algs == "^no-such-cipher"
    with pytest.raises(ConfigError, match=r"\[ssh\] kex_algs / ciphers: .*no-such-cipher"):
        shared_options(settings, config=None)
