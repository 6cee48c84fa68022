"""The built wheel ships the migrations, so an installed `orch db upgrade` works."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from orchestrator import __version__
from orchestrator.store import Store

REPO = Path(__file__).resolve().parents[2]


def _can_build_without_isolation() -> bool:
    """setuptools builds wheels itself from 70.1 on; before that it needs the `wheel` package."""
    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.slow
def test_wheel_contains_migrations(tmp_path: Path) -> None:
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    for package in ("orchestrator", "migrations"):
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source)]
    if _can_build_without_isolation():
        command.append("--no-build-isolation")
    command += ["-w", str(tmp_path / "dist")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]

    (wheel,) = (tmp_path / "dist").glob("orch-*.whl")
    assert wheel.name.startswith(f"orch-{__version__}-")  # the version runs record
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "migrations/__init__.py",
        "migrations/env.py",
        "migrations/script.py.mako",
        "migrations/versions/0001_initial.py",
        "migrations/versions/0002_observations_document.py",
        "orchestrator/store/schema.py",
    } <= names

    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = (
        "import migrations, sys; from orchestrator.store import Store; "
        f"s = Store.open('sqlite:///{tmp_path / 'installed.sqlite3'}'); "
        "print(s.current_revision(), migrations.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    revision, location = done.stdout.split()
    assert revision == Store.head_revision()
    assert Path(location).is_relative_to(site)
