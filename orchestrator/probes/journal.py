"""Journal steps that send back only the lines the signature catalogue can use.

A unit's newest ``JOURNAL_WINDOW`` lines are filtered on the device with ``grep -i -F`` against
the catalogue's key strings (``signatures.log_keys``: every line a signature matches contains
one of them), and the newest ``JOURNAL_KEEP`` matching lines are returned. A healthy device's
journals then cost a few hundred bytes instead of tens of kilobytes, over the proxy and in orch,
and the diagnosis is the same as on the full text. The full journal stays on the device
(``journalctl -u UNIT``). Errors of ``journalctl`` itself (stderr) are not filtered.
"""

from __future__ import annotations

from orchestrator.diagnosis.signatures import log_keys
from orchestrator.probes.base import Step

JOURNAL_WINDOW = 1000
"""Newest journal lines of a unit looked at on the device."""
JOURNAL_KEEP = 50
"""Newest matching lines sent back (no rule counts log lines; evidence shows at most six)."""
KEYS_VARIABLE = "ORCH_LOG_KEYS"
"""The exported variable holding the key strings, one per line (grep's pattern list)."""
UNFILTERED_LINES = 200
"""Lines sent back when the catalogue has no key strings (cannot filter soundly)."""


def journal_command(unit: str) -> str:
    """The read-only command for ``unit``'s journal (classic short format)."""
    if log_keys() is None:
        return f"journalctl --no-pager -n {UNFILTERED_LINES} -u {unit}"
    return (
        f"journalctl --no-pager -n {JOURNAL_WINDOW} -u {unit}"
        f' | grep -i -F -e "${KEYS_VARIABLE}" | tail -n {JOURNAL_KEEP}'
    )


def journal_step(name: str, unit: str, timeout_s: float = 10) -> Step:
    """The step reading ``unit``'s journal, filtered on the device when the catalogue allows."""
    keys = log_keys()
    env = ((KEYS_VARIABLE, "\n".join(keys)),) if keys else ()
    return Step(name, journal_command(unit), timeout_s=timeout_s, env=env)
