"""The transport under a tunnelled connection: one channel write per loop turn, order kept."""

from __future__ import annotations

import asyncio

from orchestrator.transport.tunnel import _GatheringTransport


class RecordingChannel:
    """Stands in for the gateway's asyncssh channel: records what reaches it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.events.append(("write", data))

    def abort(self) -> None:
        self.events.append(("abort", b""))

    def close(self) -> None:
        self.events.append(("close", b""))


def test_writes_of_one_turn_reach_the_channel_as_one_write_in_order():
    async def scenario():
        channel = RecordingChannel()
        transport = _GatheringTransport(channel)  # type: ignore[arg-type]
        transport.write(b"ignore")
        transport.write(b"packet")
        before_turn = list(channel.events)
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return before_turn, channel.events

    before_turn, events = asyncio.run(scenario())
    assert before_turn == []
    assert events == [("write", b"ignorepacket"), ("write", b"next")]


def test_abort_and_close_send_what_is_pending_first():
    async def scenario():
        channel = RecordingChannel()
        transport = _GatheringTransport(channel)  # type: ignore[arg-type]
        transport.write(b"disconnect")
        transport.abort()
        other = RecordingChannel()
        closing = _GatheringTransport(other)  # type: ignore[arg-type]
        closing.write(b"bye")
        closing.close()
        await asyncio.sleep(0)
        return channel.events, other.events

    aborted, closed = asyncio.run(scenario())
    assert aborted == [("write", b"disconnect"), ("abort", b"")]
    assert closed == [("write", b"bye"), ("close", b"")]


class ClosedChannel(RecordingChannel):
    def write(self, data: bytes) -> None:
        raise BrokenPipeError("channel closed")


def test_a_write_after_the_gateway_channel_closed_is_dropped_quietly():
    async def scenario():
        errors: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        transport = _GatheringTransport(ClosedChannel())  # type: ignore[arg-type]
        transport.write(b"late")
        await asyncio.sleep(0)
        return errors

    assert asyncio.run(scenario()) == []
