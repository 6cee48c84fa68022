"""Terminal-bound text is made inert: no control character a terminal would act on survives."""

from __future__ import annotations

from orchestrator.report.terminal import inert


def test_escape_sequences_bells_and_carriage_returns_become_visible() -> None:
    # set the window title, colour, 8-bit CSI, a CR that would hide the line's start, NUL
    hostile = "gate\x1b]0;pwned\x07 \x1b[2J\x9b31m ok\rfake\x00"
    assert inert(hostile) == "gate?]0;pwned? ?[2J?31m ok?fake?"


def test_layout_and_printable_text_pass_unchanged() -> None:
    text = "device\tdépôt-3 ✓ 東京\nnext line \x7f"
    assert inert(text) == text
