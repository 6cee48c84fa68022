"""Keepalives that cost nothing per read.

asyncssh restarts a connection's keepalive timer on every read from its socket: it cancels one
``TimerHandle`` and schedules another. A connection to the balenaCloud proxy carries ten
devices at a time and is read from several times per device, so that is ~2 % of a proxy sweep's
CPU spent moving one timer.

``lazy_keepalive(conn)`` makes a read only note that something arrived. When the timer fires
it starts over if anything arrived since it was set; otherwise it runs asyncssh's own check
(send a keepalive request, count the unanswered ones, drop the connection after
``keepalive_count_max`` of them). A silent connection is probed after one to two intervals
instead of exactly one. The timer is still armed where asyncssh arms it (once logged in), so
orch must not turn keepalives on later with ``set_keepalive``; it never does. With an asyncssh
that lacks these hooks the connection keeps asyncssh's own behaviour.
"""

from __future__ import annotations

from typing import Any

_HOOKS = ("_reset_keepalive_timer", "_set_keepalive_timer", "_keepalive_timer_callback")


class _Reads:
    """Whether the connection read anything since its keepalive timer was last set."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False

    def note(self) -> None:
        self.seen = True


def lazy_keepalive(conn: Any) -> bool:
    """Make ``conn``'s reads only flag activity for its keepalive timer (see the module);
    False when this asyncssh has no such timer to change."""
    if not all(callable(getattr(conn, hook, None)) for hook in _HOOKS):
        return False
    reads = _Reads()
    arm = conn._set_keepalive_timer
    check = conn._keepalive_timer_callback

    def on_timer() -> None:
        if reads.seen:
            reads.seen = False
            arm()
        else:
            check()

    conn._reset_keepalive_timer = reads.note
    conn._keepalive_timer_callback = on_timer
    return True
