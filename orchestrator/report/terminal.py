"""Text bound for a terminal, made inert.

Device output, device names and messages from SSH peers reach orch's tables, CSV and error lines;
any of them can carry control characters that a terminal acts on (an escape sequence that sets
the window title or moves the cursor, a carriage return that hides the start of a line). JSON
output needs nothing: the encoder escapes every control character and non-ASCII character.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x80-\x9f]")
"""C0 controls but tab and newline, and C1 controls (DEL does nothing on a terminal)."""


def inert(text: str) -> str:
    """``text`` with each control character a terminal would act on shown as ``?``."""
    return _UNSAFE.sub("?", text)
