"""search_from_line_of: the same match as a plain search, on real outputs and random text."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from orchestrator.probes.dns import _ANSWER
from orchestrator.probes.link import _TRANSMITTED
from orchestrator.probes.textscan import search_from_line_of

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
LITERAL = " packets transmitted, "


def _same(pattern: re.Pattern[str], literal: str, text: str) -> None:
    fast, plain = search_from_line_of(pattern, literal, text), pattern.search(text)
    assert (fast and (fast.span(), fast.groups())) == (plain and (plain.span(), plain.groups()))


@pytest.mark.parametrize("fixture", sorted(p.name for p in REAL.glob("ping_*.txt")))
def test_real_ping_outputs(fixture):
    text = (REAL / fixture).read_text()
    _same(_TRANSMITTED, LITERAL, text)


def test_counts_of_a_real_output():
    text = (REAL / "ping_iputils_loss_40.txt").read_text()
    assert search_from_line_of(_TRANSMITTED, LITERAL, text).group(1, 2) == ("5", "3")


def test_literal_without_a_match_then_a_later_match_on_another_line():
    text = "x packets transmitted, none\n3 packets transmitted, 2 received, 33% packet loss\n"
    assert search_from_line_of(_TRANSMITTED, LITERAL, text).group(1, 2) == ("3", "2")
    _same(_TRANSMITTED, LITERAL, text)
    assert search_from_line_of(_TRANSMITTED, LITERAL, "no statistics\n") is None


def test_random_text_built_from_pieces_of_ping_output():
    pieces = ["3", "10", " packets transmitted, ", "2", " received", " packets", "\n", " ", "x"]
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        _same(_TRANSMITTED, LITERAL, text)


@pytest.mark.parametrize("fixture", sorted(p.name for p in REAL.glob("nslookup_*.txt")))
def test_real_nslookup_answers(fixture):
    text = (REAL / fixture).read_text()
    _same(_ANSWER, "Name:", text)
    _same(_ANSWER, "Name:", text.replace("Name:", "xName:", 1))
    _same(_ANSWER, "Name:", text.replace("Name:", "Name:\n", 1))
