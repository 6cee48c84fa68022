"""asyncssh, imported without running a C compiler.

While it imports, asyncssh looks for optional C libraries (liboqs for sntrup761 key exchange,
nettle for UMAC) with ``ctypes.util.find_library``. On Linux every name the dynamic linker's
cache lacks then costs a run of gcc (with collect2 and ld) and of ld where they are installed:
for the usually absent liboqs, eight processes and ~30 ms of CPU on every orch start. orch
imports asyncssh from here, answering those lookups from one listing of the linker cache
(``ldconfig -p``, find_library's own first source). A name the cache lacks still gets the full
lookup when LD_LIBRARY_PATH or LIBRARY_PATH could hold it, and so does every name when the
cache cannot be listed (no glibc ldconfig), so asyncssh finds exactly what it found before.
It also makes asyncssh's logging cheap where it writes nothing (``asyncssh_logging``).
"""

from __future__ import annotations

import ctypes.util
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LDCONFIG = "/sbin/ldconfig"

_ABI_TYPES = {
    "x86_64-64": "libc6,x86-64",
    "ppc64-64": "libc6,64bit",
    "sparc64-64": "libc6,64bit",
    "s390x-64": "libc6,64bit",
    "ia64-64": "libc6,IA-64",
}


def abi_type() -> str:
    """This interpreter's ABI as ``ldconfig -p`` labels libraries (``libc6,x86-64``)."""
    bits = "-32" if struct.calcsize("l") == 4 else "-64"
    return _ABI_TYPES.get(os.uname().machine + bits, "libc6")


def linker_cache_listing(ldconfig: str = LDCONFIG) -> bytes | None:
    """``ldconfig -p`` output, or None when there is no glibc linker cache to list."""
    try:
        done = subprocess.run(
            [ldconfig, "-p"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"LC_ALL": "C", "LANG": "C"},
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first_line = done.stdout.split(b"\n", 1)[0]
    if done.returncode != 0 or b"found in cache" not in first_line:
        return None
    return done.stdout


def soname_in_listing(listing: bytes, name: str, abi: str) -> str | None:
    """The first library ``lib<name>.*`` of ``abi`` in an ``ldconfig -p`` listing."""
    pattern = rb"\s+(lib%s\.[^\s]+)\s+\(%s" % (re.escape(name).encode(), re.escape(abi).encode())
    found = re.search(pattern, listing)
    return os.fsdecode(found.group(1)) if found else None


def cached_find_library(
    full_lookup: Callable[[str], str | None],
    listing: Callable[[], bytes | None] = linker_cache_listing,
) -> Callable[[str], str | None]:
    """A ``find_library`` that reads the linker cache once and falls back to ``full_lookup``
    only where the cache cannot be the whole answer (see the module docstring)."""
    cache: list[bytes | None] = []
    abi = abi_type()

    def find_library(name: str) -> str | None:
        if not cache:
            cache.append(listing())
        if cache[0] is None:
            return full_lookup(name)
        found = soname_in_listing(cache[0], name, abi)
        if found is None and (os.environ.get("LD_LIBRARY_PATH") or os.environ.get("LIBRARY_PATH")):
            return full_lookup(name)
        return found

    return find_library


@contextmanager
def cached_library_lookup() -> Iterator[None]:
    """``ctypes.util.find_library`` answered from the linker cache while the block runs."""
    if not sys.platform.startswith("linux"):
        yield
        return
    original = ctypes.util.find_library
    ctypes.util.find_library = cached_find_library(original)
    try:
        yield
    finally:
        ctypes.util.find_library = original


with cached_library_lookup():
    import asyncssh
    import asyncssh.logging
    import asyncssh.packet

from orchestrator.transport import asyncssh_logging  # noqa: E402 (after asyncssh, on purpose)

asyncssh_logging.install(asyncssh.packet, asyncssh.logging)

__all__ = ["asyncssh"]
