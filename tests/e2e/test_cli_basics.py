"""CLI conventions: help everywhere, one-line errors with exit 2, probes listing, db commands."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import click
import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.store import Store


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("path", all_commands(main))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    command = main
    for name in path:
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 10, path


def test_invalid_config_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "orch.toml"
    config.write_text("[run]\nconcurrency = -3\n")
    result = CliRunner().invoke(main, ["--config", str(config), "probes"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "run.concurrency" in result.stderr and str(config) in result.stderr


def test_unknown_probe_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["diagnose", "--demo", "--probe", "nope", "--db", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 2
    assert "nope" in result.stderr and "time" in result.stderr


def test_unreachable_database_is_one_line_exit_3() -> None:
    result = CliRunner().invoke(
        main, ["runs", "--db", "postgresql+psycopg://orch:s3cret@127.0.0.1:1/orch"]
    )
    assert result.exit_code == 3
    assert "s3cret" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_probes_lists_every_probe_with_exact_commands(tmp_path: Path) -> None:
    config = tmp_path / "orch.toml"
    config.write_text('[endpoints]\napi = "https://api.example.test"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "probes", "--format", "json"])
    assert result.exit_code == 0
    probes = json.loads(result.stdout)
    names = [p["name"] for p in probes]
    assert names[0] == "time"
    assert {"time", "dns", "api", "vpn", "endpoints", "tls", "supervisor", "registry"} <= set(names)
    commands = [s["command"] for p in probes for s in p["steps"]]
    assert "date -u +%s" in commands
    assert any("https://api.example.test/ping" in c for c in commands)
    table = CliRunner().invoke(main, ["--config", str(config), "probes"])
    assert "$ date -u +%s" in table.stdout


def test_db_upgrade_and_current_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgraded = CliRunner().invoke(main, ["db", "upgrade", "--db", url])
    assert upgraded.exit_code == 0, upgraded.output
    current = CliRunner().invoke(main, ["db", "current", "--db", url])
    assert current.exit_code == 0
    assert "up to date" in current.stdout


def test_show_unknown_run_is_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    Store.open(url).close()
    result = CliRunner().invoke(main, ["show", "999", "--db", url])
    assert result.exit_code == 2
    assert "999" in result.stderr


def test_explain_names_the_seed_root_cause() -> None:
    text = (
        "Mar 23 12:00:25 9294512 openvpn[135086]: Thu Mar 23 12:00:25 2017 VERIFY ERROR: depth=1, "
        "error=certificate is not yet valid: C=US, ST=WA, L=Seattle, O=balena.io, OU=balenaCloud, "
        "CN=open-balena-vpn-rootCA\n"
    )
    result = CliRunner().invoke(main, ["explain", "--format", "json"], input=text)
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "problems"
    assert any(code.startswith("time.") for code in document["root_causes"])


def test_explain_reads_a_gzipped_journal_as_the_plain_one(tmp_path: Path) -> None:
    journal = (
        Path(__file__).resolve().parents[1] / "fixtures" / "seed" / "6.2_supervisor_eai_again.txt"
    )
    packed = tmp_path / "journal.txt.gz"
    packed.write_bytes(gzip.compress(journal.read_bytes()))
    plain = CliRunner().invoke(main, ["explain", "--format", "json", str(journal)])
    from_file = CliRunner().invoke(main, ["explain", "--format", "json", str(packed)])
    from_stdin = CliRunner().invoke(
        main, ["explain", "--format", "json"], input=packed.read_bytes()
    )
    assert plain.exit_code == from_file.exit_code == from_stdin.exit_code == 1
    assert json.loads(plain.stdout)["root_causes"]
    assert from_file.stdout == plain.stdout == from_stdin.stdout


def test_explain_of_binary_input_is_one_line_exit_2(tmp_path: Path) -> None:
    blob = tmp_path / "core.bin"
    blob.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    result = CliRunner().invoke(main, ["explain", str(blob)])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"orch: error: {blob}: binary data, not text: pass a log or command output\n"
    )


def test_no_source_and_no_token_diagnoses_the_demo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BALENA_API_KEY", raising=False)
    config = tmp_path / "orch.toml"
    config.write_text("")
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "diagnose",
            "--device",
            "demo-healthy",
            "--format",
            "json",
            "--db",
            f"sqlite:///{tmp_path}/x.db",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "demo fleet" in result.stderr
    assert json.loads(result.stdout)["run"]["source"] == "demo"


def test_no_source_with_a_token_asks_for_the_fleet(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BALENA_API_KEY", "some-token")
    config = tmp_path / "orch.toml"
    config.write_text("")
    result = CliRunner().invoke(
        main, ["--config", str(config), "diagnose", "--db", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 2
    assert "--fleet" in result.stderr and "some-token" not in result.stderr


def test_hostile_device_names_reach_the_terminal_inert_and_the_json_exact(
    tmp_path: Path,
) -> None:
    # a name set through the balena dashboard (or an inventory) carrying escape sequences
    name = "gate\x1b]0;pwned\x07\x1b[2J-01"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps(
            [{"uuid": "a" * 32, "name": name, "address": "127.0.0.1", "port": 1, "user": "root"}]
        )
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    key = tmp_path / "id_ed25519"
    key.write_text(asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode())
    base = [
        "diagnose",
        "--inventory",
        str(inventory),
        "--key",
        str(key),
        "--known-hosts",
        str(known_hosts),
        "--db",
        f"sqlite:///{tmp_path / 'orch.sqlite3'}",
    ]
    table = CliRunner().invoke(main, [*base, "--format", "table"])
    assert table.exit_code == 1, table.output
    assert "gate?]0;pwned??[2J-01" in table.stdout
    assert not any(ch in table.output for ch in "\x1b\x07")
    shown = CliRunner().invoke(main, ["show", "--db", base[-1], "--format", "csv"])
    assert "gate?]0;pwned??[2J-01" in shown.stdout
    document = CliRunner().invoke(main, ["show", "--db", base[-1], "--format", "json"])
    assert json.loads(document.stdout)["devices"][0]["name"] == name


def test_top_level_help_loads_no_model_config_or_heavy_module() -> None:
    """`orch --help` is start-up alone: the option choices come from `orchestrator.vocabulary`."""
    code = (
        "import sys; sys.argv = ['orch', '--help']\n"
        "from orchestrator.console import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=True,
    )
    assert "Usage: orch" in done.stdout and "diagnose" in done.stdout and "history" in done.stdout
    loaded = set(done.stderr.split())
    assert "orchestrator.cli.history" in loaded  # the commands themselves are registered
    unwanted = {
        "orchestrator.models",
        "orchestrator.config",
        "asyncssh",
        "sqlalchemy",
        "alembic",
        "balena",
        "procrastinate",
    }
    assert not unwanted & loaded, sorted(unwanted & loaded)
