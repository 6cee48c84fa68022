"""Reusable test helpers: real servers (asyncssh, OpenSSH) on loopback, and a loop runner.

pytest has no asyncio plugin here, so each async test drives its own event loop with ``run``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
    """Run one test coroutine in a fresh event loop, failing it after ``timeout_s``."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback TCP port that accepts connections (kernel backlog) but never speaks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
