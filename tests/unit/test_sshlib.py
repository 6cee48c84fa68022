"""asyncssh imported through orchestrator.transport.sshlib: its library lookups spawn no compiler
and still find what the full lookup finds."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.transport.sshlib import (
    abi_type,
    cached_find_library,
    linker_cache_listing,
    soname_in_listing,
)

REPO = Path(__file__).resolve().parents[2]
linux_with_ldconfig = pytest.mark.skipif(
    linker_cache_listing() is None, reason="no glibc ldconfig to list the linker cache"
)


@linux_with_ldconfig
def test_names_in_the_linker_cache_resolve_as_the_full_lookup_does() -> None:
    listing = linker_cache_listing()
    assert listing is not None
    names = ("c", "m", "z", "ssl", "crypto", "nettle", "ffi")
    answers = {name: soname_in_listing(listing, name, abi_type()) for name in names}
    assert answers["c"] is not None and answers["c"].startswith("libc.so")
    for name, answer in answers.items():
        assert answer == ctypes.util.find_library(name), name


@linux_with_ldconfig
def test_a_name_absent_from_the_cache_is_none_without_the_full_lookup(monkeypatch) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.delenv("LIBRARY_PATH", raising=False)
    full: list[str] = []
    listings: list[int] = []

    def counted_listing() -> bytes | None:
        listings.append(1)
        return linker_cache_listing()

    find = cached_find_library(lambda name: full.append(name) or None, counted_listing)
    assert find("orch-no-such-library") is None
    assert find("oqs-orch-absent") is None
    assert find("c") is not None
    assert full == []
    assert len(listings) == 1  # one listing answers every name


def test_the_full_lookup_answers_when_a_search_path_could_hold_the_library(monkeypatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/oqs/lib")
    listing = b"1 libs found in cache `/etc/ld.so.cache'\n"
    listing += b"\tlibz.so.1 (%s) => /lib/libz.so.1\n" % abi_type().encode()
    find = cached_find_library(lambda name: f"lib{name}.so.from-full-lookup", lambda: listing)
    assert find("z") == "libz.so.1"
    assert find("oqs") == "liboqs.so.from-full-lookup"


def test_without_a_linker_cache_every_name_gets_the_full_lookup() -> None:
    find = cached_find_library(lambda name: f"lib{name}.so.9", lambda: None)
    assert find("nettle") == "libnettle.so.9"


def test_another_abi_in_the_cache_is_not_taken() -> None:
    listing = (
        b"2 libs found in cache `/etc/ld.so.cache'\n"
        b"\tlibnettle.so.8 (libc6) => /usr/lib32/libnettle.so.8\n"
        b"\tlibnettle.so.8 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnettle.so.8\n"
    )
    assert soname_in_listing(listing, "nettle", "libc6,x86-64") == "libnettle.so.8"
    assert (
        soname_in_listing(listing.replace(b"x86-64", b"AArch64"), "nettle", "libc6,x86-64") is None
    )


def test_a_listing_tool_that_fails_or_prints_something_else_means_no_cache(tmp_path) -> None:
    assert linker_cache_listing(str(tmp_path / "missing-ldconfig")) is None
    odd = tmp_path / "ldconfig"
    odd.write_text("#!/bin/sh\necho 'ldconfig: unrecognized option: p'\n")
    odd.chmod(0o755)
    assert linker_cache_listing(str(odd)) is None


def _spawned_compilers(tmp_path: Path, code: str) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter whose PATH starts with recording gcc/cc/ld stand-ins:
    the tools it spawned, and what it printed."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    log = tmp_path / "spawned.log"
    log.write_text("")
    for tool in ("gcc", "cc", "ld"):
        script = fake_bin / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit 1\n')
        script.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}", PYTHONPATH=str(REPO))
    env.pop("LD_LIBRARY_PATH", None)
    env.pop("LIBRARY_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, timeout=120, capture_output=True
    )
    return log.read_text().splitlines(), done.stdout.decode()


FOUND = (
    "import ctypes.util, asyncssh.crypto.pq as pq, asyncssh.crypto.umac as umac\n"
    "print(umac._nettle_lib, pq.mlkem_available, pq.sntrup_available,"
    " ctypes.util.find_library.__module__)\n"
)


@linux_with_ldconfig
def test_importing_the_transport_runs_no_compiler_and_finds_the_same_libraries(tmp_path) -> None:
    plain_spawned, plain_found = _spawned_compilers(tmp_path, "import asyncssh\n" + FOUND)
    assert plain_spawned, "asyncssh's own import should reach the gcc/ld stand-ins (harness check)"
    spawned, found = _spawned_compilers(tmp_path, "import orchestrator.transport.ssh\n" + FOUND)
    assert spawned == []
    assert found == plain_found  # same libraries; find_library itself is the stdlib's again
