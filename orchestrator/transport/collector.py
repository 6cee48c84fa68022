"""One remote command's output, collected by channel callbacks as it arrives.

asyncssh's process API wraps a channel in three streams and needs a reader task per stream; a
sweep runs one command per device, so orch takes the bytes straight from the channel's
``data_received`` instead: stdout up to a cap with each chunk's arrival time, the first bytes of
stderr, and a future that resolves when the channel has closed (or stdout hit the cap).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from orchestrator.transport.sshlib import asyncssh


class Output(Protocol):
    """Where a device's output goes (the transport's per-device progress)."""

    stdout: bytearray
    stderr: bytearray
    chunk_times: list[tuple[int, float]]
    truncated: bool


class OutputCollector(asyncssh.SSHClientSession[bytes]):
    """Fills ``output`` from one channel; ``finished`` resolves once there is nothing more to
    collect: the channel closed (raising what broke it, if something did) or stdout reached
    ``max_stdout`` bytes, in which case the channel is closed without waiting for the device."""

    def __init__(self, output: Output, max_stdout: int, keep_stderr: int) -> None:
        self._output = output
        self._max_stdout = max_stdout
        self._keep_stderr = keep_stderr
        self._channel: asyncssh.SSHClientChannel[bytes] | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._channel = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        output = self._output
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            room = self._keep_stderr - len(output.stderr)
            if room > 0:
                output.stderr += data[:room]
            return
        if output.truncated:
            return
        room = self._max_stdout - len(output.stdout)
        if len(data) > room:
            if room > 0:
                output.stdout += data[:room]
                output.chunk_times.append((len(output.stdout), time.time()))
            output.truncated = True
            if self._channel is not None:
                self._channel.close()
            self._finish(None)
            return
        output.stdout += data
        output.chunk_times.append((len(output.stdout), time.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc)

    def _finish(self, exc: Exception | None) -> None:
        if self.finished.done():
            return
        if exc is None:
            self.finished.set_result(None)
        else:
            self.finished.set_exception(exc)
