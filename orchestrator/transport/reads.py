"""Hand an SSH connection what the socket read in bounded slices.

asyncssh keeps the bytes it has not parsed yet in one ``bytes`` object and takes every packet
off its front by slicing, which copies everything still behind that packet, twice per packet.
One read from a busy socket (asyncio reads up to 256 KiB at a time) then costs time quadratic
in its size: on a connection to the balenaCloud proxy that carries ten devices' output as
hundreds of small channel packets, or to a gateway that carries whole target connections, the
copying was ~0.76 M instructions per device, more than parsing the device's output.

``receive_in_slices`` replaces a connection's ``data_received`` with one that passes data on
in slices of at most ``SLICE_BYTES``, so no copy is longer than a slice and an unfinished
packet. asyncssh parses the bytes in the same order either way; a slice that arrives after
the connection closed (it processed a disconnect, or failed) is dropped, as asyncssh drops the
rest of its buffer then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.transport.sshlib import asyncssh

SLICE_BYTES = 8192
"""Largest slice handed to asyncssh at once: big enough that a device's output takes a few
calls, small enough that the copying per packet stays under a few kilobytes."""

Receive = Callable[..., None]


def receive_in_slices(conn: asyncssh.SSHClientConnection, slice_bytes: int = SLICE_BYTES) -> None:
    """Make ``conn`` take incoming data at most ``slice_bytes`` at a time (see the module)."""
    if slice_bytes <= 0:
        raise ValueError("slice_bytes must be positive")
    receive: Receive = conn.data_received

    def data_received(data: bytes, datatype: Any = None) -> None:
        if len(data) <= slice_bytes:
            receive(data, datatype)
            return
        for start in range(0, len(data), slice_bytes):
            if start and conn.is_closed():
                return
            receive(data[start : start + slice_bytes], datatype)

    conn.data_received = data_received  # type: ignore[method-assign]
