"""`receive_in_slices`: what a connection's parser gets when the socket hands over big reads.

The connection here is a stand-in recording what its own ``data_received`` was given; the
integration test in ``tests/integration/test_proxy_pool.py`` runs the real thing over asyncssh.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.transport.reads import receive_in_slices


class RecordingConnection:
    """Records each call of its ``data_received``; closes itself after ``close_after`` calls."""

    def __init__(self, close_after: int | None = None) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self.close_after = close_after

    def data_received(self, data: bytes, datatype: Any = None) -> None:
        self.received.append((data, datatype))

    def is_closed(self) -> bool:
        return self.close_after is not None and len(self.received) >= self.close_after


def test_a_big_read_arrives_in_order_in_bounded_slices():
    conn = RecordingConnection()
    receive_in_slices(conn, slice_bytes=1000)  # type: ignore[arg-type]
    data = bytes(range(256)) * 20  # 5,120 bytes

    conn.data_received(data)

    sizes = [len(piece) for piece, _ in conn.received]
    assert sizes == [1000, 1000, 1000, 1000, 1000, 120]
    assert b"".join(piece for piece, _ in conn.received) == data


def test_a_small_read_is_passed_on_as_it_is():
    conn = RecordingConnection()
    receive_in_slices(conn, slice_bytes=1000)  # type: ignore[arg-type]
    data = b"x" * 1000

    conn.data_received(data, 1)

    assert conn.received == [(data, 1)]
    assert conn.received[0][0] is data


def test_slices_stop_once_the_connection_has_closed():
    conn = RecordingConnection(close_after=2)
    receive_in_slices(conn, slice_bytes=10)  # type: ignore[arg-type]

    conn.data_received(b"a" * 10 + b"b" * 10 + b"c" * 10 + b"d" * 5)

    assert [piece for piece, _ in conn.received] == [b"a" * 10, b"b" * 10]


def test_a_slice_size_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        receive_in_slices(RecordingConnection(), slice_bytes=0)  # type: ignore[arg-type]
