"""The cheap line screen in `signatures.hits` never hides a line a signature would match."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from orchestrator.diagnosis import signatures

ROOT = Path(__file__).resolve().parents[2]
SEED = Path("/work/shared/seed/network-debugging.md")


def _corpus_texts() -> list[str]:
    texts = [
        path.read_text(errors="replace")
        for path in (ROOT / "tests/fixtures").rglob("*")
        if path.is_file() and path.stat().st_size < 2_000_000
    ]
    if SEED.exists():
        texts.append(SEED.read_text())
    return texts


def _normalised_lines(text: str) -> list[str]:
    """Non-blank lines, JSON-escaped traces unescaped and `> ` quoting stripped, one at a time."""
    text = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace('\\"', '"')
    quoted = ">" in text
    lines = []
    for raw in text.splitlines():
        line = (signatures._QUOTE.sub("", raw) if quoted else raw).rstrip()
        if line.strip():
            lines.append(line)
    return lines


def _corpus_lines() -> list[str]:
    return [line for text in _corpus_texts() for line in _normalised_lines(text)]


def _matches_any(line: str) -> bool:
    patterns = [*signatures.BENIGN, *(sig.pattern for sig in signatures.SIGNATURES)]
    return any(pattern.search(line) for pattern in patterns)


def _may_match(line: str) -> bool:
    """What the screen says of a whole line: some signature or benign pattern may match it."""
    screen = signatures._screened(line.lower() if line.isascii() else None)
    return bool(screen.signatures or screen.benign)


def test_every_signature_is_screenable() -> None:
    assert signatures._UNSCREENED == () and signatures._BENIGN_UNSCREENED == ()


def test_screened_out_lines_match_nothing() -> None:
    lines = _corpus_lines()
    assert len(lines) > 200
    kept = [line for line in lines if _may_match(line)]
    assert kept and len(kept) < len(lines)
    for line in lines:
        if not _may_match(line):
            assert not _matches_any(line), line


def test_screen_ignores_case_and_passes_non_ascii() -> None:
    assert _may_match("Aug 19 10:12:34 dev openvpn[1]: CONNECTION REFUSED (errno=111)")
    assert _may_match("ssl: x509: Certificate Signed By Unknown Authority")
    assert not _may_match("Aug 19 10:12:34 dev kernel: eth0: link up")
    assert _may_match("Connection refuſed by peer")


def test_hits_unchanged_for_mixed_text() -> None:
    text = (
        "Aug 19 10:12:34 dev openvpn[2632]: TCP: connect to [AF_INET]1.2.3.4:443 failed: "
        "Connection refused\n"
        "plain line with nothing\n"
        "depth=1 C = US, O = Corp DPI, CN = Corp DPI CA\n"
        " i:C = US, O = Corp DPI, CN = Corp DPI CA\n"
        "RTNETLINK answers: File exists\n"
        "chronyd[1]: System clock wrong by -3600.5 seconds\n"
    )
    found = [(h.source, h.fact, h.value) for h in signatures.hits(text)]
    assert found == [
        ("vpn", "connect_refused", True),
        ("openssl", "issuer", "C = US, O = Corp DPI, CN = Corp DPI CA"),
        ("openssl", "issuer", "C = US, O = Corp DPI, CN = Corp DPI CA"),
        ("chrony", "clock_wrong", -3600.5),
    ]


def test_each_signature_match_contains_one_of_its_needles() -> None:
    checked = 0
    for line in _corpus_lines():
        if not line.isascii():
            continue
        for sig, needles in signatures._SIGNATURE_NEEDLES:
            if needles and sig.pattern.search(line):
                assert any(needle in line.lower() for needle in needles), (sig.fact, line)
                checked += 1
    assert checked > 20


def test_needle_index_tries_the_same_signatures_that_can_match() -> None:
    """`_screened` looks each needle up once; it must admit every signature that matches a
    line, in catalogue order, for every corpus line and its upper-case and non-ASCII variants."""
    matched = set()
    for line in _corpus_lines():
        for variant in (line, line.upper(), line + " \u00e9"):
            lowered = variant.lower() if variant.isascii() else None
            screened = [
                sig.fact for sig in signatures._screened(lowered)[0] if sig.pattern.search(variant)
            ]
            every = [sig.fact for sig in signatures.SIGNATURES if sig.pattern.search(variant)]
            assert screened == every, variant
            matched.update(every)
    assert len(matched) >= 0.7 * len({sig.fact for sig in signatures.SIGNATURES})


_PREFIX = re.compile(f"^{signatures._PREFIX_BODY}(.*)$")


def _line_by_line(text: str) -> list[tuple[str, str | None, str]]:
    """The definition `split_lines` must keep: each kept line stripped, then its prefix."""
    split = []
    for line in _normalised_lines(text):
        stripped = line.strip()
        prefix = _PREFIX.match(stripped)
        split.append((stripped, *(prefix.groups() if prefix else (None, stripped))))
    return split


AWKWARD = (
    "Aug 19 10:12:34 dev openvpn[2632]: TLS Error: TLS handshake failed",
    "  Aug  9 10:12:34.5 dev openvpn:   padded message\t \x1f",
    "2026-11-25T16:50:40+0000 host-2 chronyd[894]:",
    "2026-11-25 16:50:40,123Z host chronyd[x]: not a pid",
    "Aug 19 10:12:34 host : no process",
    "> > Aug 19 10:12:34 dev openvpn[1]: quoted twice",
    ">",
    "\u00a0Aug 19 10:12:34 dev os-config[7]: no-break space\u2003",
    "line\rwith\x0bodd\x0cbreaks\x1cand\x85more\u2028end",
    'resin-supervisor[1]: {\\"error\\": \\"x\\"}\\nsecond\\r\\nthird',
    "",
    "   ",
    # a prefix the next character decides (no space after the colon), then the same shape
    "Aug 19 10:12:34 dev openvpn[1]:x",
    "Aug 19 10:12:35 dev openvpn[1]: y",
    "Aug 19 10:12:35 dev openvpn[1]:\tz",
)

_PREFIX_PIECES = {
    "stamp": (
        "2026-11-25T16:50:40+0000",
        "2026-11-25T16:5\u0663:40+0000",  # an Arabic-Indic digit: no timestamp
        "2026-11-25 16:50:40.123456Z",
        "2026-11-25T16:50:40,5+01:00",
        "Nov 25 16:50:40",
        "Nov  5 16:50:40.250",
        "nov 25 16:50:40",
        "2026-11-25X16:50:40",
    ),
    "gap": (" ", "  ", "\t", "\u2003"),
    "host": ("host-2", "host-3", "dev", "h\u00f6st9", ":"),
    "process": ("chronyd", "balena-supervisor", "openvpn", "p9", "9p", "a.b@c-d", "x\u00e9"),
    "pid": ("[894]", "[12]", "", "[x]", "[]"),
    "colon": (":", ": ", ":  ", ":\t", ";", ":\u00a0"),
    "message": ("Selected source 1.2.3.4", "", " spaced", "x", "Initialization Sequence Completed"),
}


_SWAPS = "0123456789:- T.,+Z[]\t\u0663\u00e9a"


def _random_journal(rng: random.Random) -> list[str]:
    """Runs of lines with one prefix (its digits, colon and message varying, now and then a
    character swapped), as a journal has them."""
    lines = []
    for _ in range(rng.randrange(1, 4)):
        base = {name: rng.choice(options) for name, options in _PREFIX_PIECES.items()}
        gap = rng.choice(_PREFIX_PIECES["gap"])
        for _ in range(rng.randrange(1, 6)):
            colon = rng.choice(_PREFIX_PIECES["colon"])
            message = rng.choice(_PREFIX_PIECES["message"])
            line = (
                f"{base['stamp']}{base['gap']}{base['host']}{gap}"
                f"{base['process']}{base['pid']}{colon}{message}"
            )
            line = re.sub(r"[0-9]", lambda _: str(rng.randrange(10)), line)
            if rng.random() < 0.3:
                at = rng.randrange(len(line))
                line = line[:at] + rng.choice(_SWAPS) + line[at + 1 :]
            lines.append(line)
    return lines


def test_split_lines_matches_the_line_by_line_definition() -> None:
    texts = _corpus_texts()
    texts += ["\n".join(AWKWARD), "\r\n".join(AWKWARD), *AWKWARD]
    compared = 0
    for text in texts:
        expected = _line_by_line(text)
        assert list(signatures.split_lines(text)) == expected
        compared += len(expected)
    assert compared > 1000


def test_split_lines_matches_the_definition_on_random_journals() -> None:
    """Runs of lines with one prefix shape (read without the regex) amid lines that differ."""
    rng = random.Random(11)
    for _ in range(1500):
        text = "\n".join(_random_journal(rng))
        assert signatures.split_lines(text) == _line_by_line(text)


def test_hits_follow_the_line_split() -> None:
    """`hits` reads lines as the line-by-line definition splits them."""
    for text in [*_corpus_texts(), "\n".join(AWKWARD)]:
        expected = [
            (line, raw)
            for line, process, message in _line_by_line(text)
            for raw in signatures._message_hits(message, process, "dns")
        ]
        found = [
            (hit.line, (hit.source, hit.fact, hit.kind, hit.value, hit.resets))
            for hit in signatures.hits(text, "dns")
        ]
        assert found == expected


def test_screen_admits_what_matches_when_only_the_digits_differ() -> None:
    """The screen is remembered per message shape (digits as 0): every corpus line with its
    digits changed must still get every signature that matches it."""
    rng = random.Random(5)
    checked = 0
    for line in _corpus_lines():
        if not any(c.isdigit() for c in line):
            continue
        for _ in range(3):
            variant = re.sub(r"[0-9]", lambda _: str(rng.randrange(10)), line)
            lowered = variant.lower() if variant.isascii() else None
            screened = [
                sig.fact for sig in signatures._screened(lowered)[0] if sig.pattern.search(variant)
            ]
            every = [sig.fact for sig in signatures.SIGNATURES if sig.pattern.search(variant)]
            assert screened == every, variant
            checked += bool(every)
    assert checked > 20


def test_messages_of_one_shape_keep_their_own_hits() -> None:
    """Messages that differ only in their digits share a screen, not a result."""
    signatures.forget_messages()
    texts = [
        "balena-supervisor[1]: GET /v1/healthy 200 - 3.1 ms",
        "balena-supervisor[1]: GET /v1/healthy 500 - 3.1 ms",
        "curl: (6) Could not resolve host: api.balena-cloud.com",
        "curl: (7) Failed to connect to api.balena-cloud.com port 443",
        "chronyd[1]: System clock wrong by -3600.5 seconds",
        "chronyd[1]: System clock wrong by 12.25 seconds",
    ]
    found = [[(hit.fact, hit.value) for hit in signatures.hits(text)] for text in texts]
    assert found == [
        [("healthy_ok", True)],
        [("healthy_500", True)],
        [("resolve_failure", True), ("curl_error", 6)],
        [("curl_error", 7)],
        [("clock_wrong", -3600.5)],
        [("clock_wrong", 12.25)],
    ]


def test_benign_patterns_silence_lines_a_signature_would_match() -> None:
    """A benign pattern wins over a signature on its line, in any case and with non-ASCII text
    around it (which the needle screen passes through unscreened)."""
    engine = "dockerd[1]: Error: connect ECONNREFUSED /var/run/balena-engine.sock"
    assert [hit.fact for hit in signatures.hits("dockerd[1]: Error: connect ECONNREFUSED")] == [
        "connect_refused"
    ]
    for line in (engine, engine.upper(), engine + " \u00e9", "x" + engine.lower()):
        assert signatures.hits(line) == [], line


def test_lines_of_one_shape_share_scan_hits_only_where_digits_cannot_matter() -> None:
    """`scan` reuses a digit-blind line's hits for every line of its shape: each corpus line and
    its digit variants, read one after another (the first fills the memory the others use),
    must get what matching that very line gives."""
    rng = random.Random(9)
    signatures.forget_messages()
    # pasted lines with no process: their wording names the source, and some of it has digits
    pasted = (
        "SIGUSR1 received after Connection timed out\nSIGUSR2 received after Connection timed out"
    )
    for text in [pasted, *_corpus_texts()]:
        for _line, process, message in signatures.split_lines(text):
            variants = [message] + [
                re.sub(r"[0-9]", lambda _: str(rng.randrange(10)), message) for _ in range(2)
            ]
            for variant in variants:
                for default in (None, "dns"):
                    expected = signatures._scan_hits(variant, process, default)
                    assert signatures._message_scan_hits(variant, process, default) == expected
    shared = signatures._shape_scan_hits.cache_info().hits
    assert shared > 50  # the shape memory was used, not only the per-message one


@pytest.mark.parametrize(
    ("pattern", "blind"),
    [
        (r"Selected source \S+", True),
        (r"wrong by (-?[\d.]+) seconds", True),  # blind, but captures: `_blind` says no
        (r"a[0-9a-f]b", True),
        (r"\w+\b\s", True),
        (r"a++", True),
        (r"GET /v1/healthy 200", False),
        (r"errno=11[13]", False),
        (r"a[5-9]", False),
        (r"(?>a1)", False),
        (r"(a)\1", False),
        (r"x(?=1)", False),
        (r"x(?!\D1)", False),
    ],
)
def test_digit_blindness_of_patterns(pattern: str, blind: bool) -> None:
    compiled = re.compile(pattern, re.IGNORECASE)
    parsed = signatures._sre_parse.parse(compiled.pattern, compiled.flags)
    assert signatures._digit_blind(parsed) is blind
    assert signatures._blind(compiled) is (blind and compiled.groups == 0)
