"""One catalogue of log signatures, shared by the probes (journal sections) and `orch explain`.

``scan(text)`` reads any log text and returns observations keyed ``log.<source>.<fact>``:
``source`` is the service the line came from (``vpn``, ``supervisor``, ``os_config``,
``chrony``, ``dns``, ``curl``, ``openssl`` or ``text`` when unknown), taken from the journal
prefix (``Aug 19 10:12:34 host openvpn[2632]: ...``, ISO timestamps, resin/balena names) or,
for pasted lines without one, from the wording. Each observation's evidence is the matching
lines. Facts are documented in ``FACTS``.

Tolerated: `> ` quoting, journal prefixes, several timestamp formats, JSON-escaped stack
traces (``\\n`` and ``\\"``), ``synchronize``/``synchronise``, OpenVPN 2.4 and 2.6 wordings.
Benign lines (``RTNETLINK answers: File exists``, ``ERROR: Linux route add command failed``)
raise nothing. A health line supersedes earlier problems of its source: only VPN errors after
the last ``Initialization Sequence Completed`` count, supervisor state-report failures before
a later ``Reported current state to the cloud`` are history, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from orchestrator.models import Observation

MAX_EVIDENCE = 6

HEALTH = "health"
PROBLEM = "problem"

_TLS_FACTS = frozenset(
    {"tls_not_yet_valid", "tls_expired", "tls_untrusted", "tls_handshake_failed"}
)
_NET_FACTS = frozenset(
    {"resolve_failure", "connect_timeout", "connect_refused", "middlebox"} | _TLS_FACTS
)

FACTS: dict[str, str] = {
    "tls_not_yet_valid": "a TLS peer certificate was rejected as not yet valid (clock behind)",
    "tls_expired": "a TLS peer certificate was rejected as expired (clock ahead, or stale cert)",
    "tls_untrusted": "a TLS chain was rejected for its issuer (unknown CA: DPI or wrong CA)",
    "tls_handshake_failed": "a TLS handshake failed without a certificate reason",
    "resolve_failure": "a host name did not resolve (EAI_AGAIN, no such host, exit 6...)",
    "connect_timeout": "a TCP connection timed out (a drop, or DNS when it says resolving)",
    "connect_refused": "a TCP connection was refused",
    "middlebox": "OpenVPN framing broken by a TLS-terminating middlebox",
    "auth_failed": "OpenVPN authentication was refused",
    "connected": "OpenVPN finished initialisation (VPN up)",
    "tls_verified": "OpenVPN verified the server certificate",
    "clock_wrong": "chronyd found the clock wrong by N seconds (value)",
    "no_selectable_sources": "chronyd had no usable NTP source",
    "no_online_sources": "the chrony health check found no online NTP source",
    "backward_jump": "chronyd saw the clock jump backwards",
    "lost_sync_restart": "the chrony health check restarted chronyd after losing sync",
    "selected_source": "chronyd selected an NTP source (time syncing)",
    "resolv_missing": "dnsmasq could not read its resolver file (value: path)",
    "nameservers": "upstream servers dnsmasq announced it uses (value: list)",
    "state_report_failure": "the supervisor could not report state (value: the error)",
    "vpn_not_active": "the supervisor saw the VPN down",
    "waiting_for_connectivity": "the supervisor is waiting for network connectivity",
    "healthcheck_failure": "a supervisor health check failed",
    "target_state_failure": "the supervisor could not fetch its target state",
    "reported_state": "the supervisor reported state to the cloud (API reachable)",
    "healthy_ok": "the supervisor answered GET /v1/healthy with 200",
    "healthy_500": "the supervisor answered GET /v1/healthy with 500",
    "fetch_failed": "os-config could not fetch the service configuration (value: the error)",
    "config_retrieved": "os-config fetched the service configuration",
    "verify_error": "openssl verify error number (value: int), e.g. 20 unable to get local issuer",
    "issuer": "issuer names printed by openssl (value: list, leaf first)",
    "curl_error": "curl exit code (value: int) with its message",
}


@dataclass(frozen=True)
class Signature:
    """A log pattern naming one fact; ``source`` fixes where it comes from when not None."""

    fact: str
    pattern: re.Pattern[str]
    kind: str = PROBLEM
    source: str | None = None
    resets: frozenset[str] | None = None
    """For health lines: the problem facts of the same source this supersedes (empty: none)."""


def _sig(fact: str, regex: str, kind: str = PROBLEM, source: str | None = None, resets=None):
    return Signature(fact, re.compile(regex, re.IGNORECASE), kind, source, resets)


_ALL = frozenset(FACTS)

BENIGN: tuple[re.Pattern[str], ...] = (
    re.compile(r"RTNETLINK answers: File exists", re.IGNORECASE),
    re.compile(r"ERROR: Linux route add command failed", re.IGNORECASE),
    re.compile(r"ECONNREFUSED\s+/var/run/balena-engine\.sock", re.IGNORECASE),
)

SIGNATURES: tuple[Signature, ...] = (
    # health lines (supersede earlier problems of their source)
    _sig("connected", r"Initialization Sequence Completed", HEALTH, "vpn", _ALL),
    _sig("tls_verified", r"VERIFY OK: depth=0", HEALTH, "vpn", _TLS_FACTS),
    _sig(
        "reported_state",
        r"Reported current state to the cloud",
        HEALTH,
        "supervisor",
        _NET_FACTS | {"state_report_failure", "target_state_failure", "waiting_for_connectivity"},
    ),
    _sig("healthy_ok", r"GET /v1/healthy 200\b", HEALTH, "supervisor", frozenset({"healthy_500"})),
    _sig("config_retrieved", r"Service configuration retrieved", HEALTH, "os_config", _ALL),
    _sig(
        "selected_source",
        r"Selected source \S+",
        HEALTH,
        "chrony",
        frozenset({"no_selectable_sources", "no_online_sources"}),
    ),
    # TLS (any service; source from the line)
    _sig(
        "tls_not_yet_valid",
        r"certificate is not yet valid|CertNotYetValid|certificate has not yet become valid|x509: certificate has expired or is not yet valid: current time \S+ is before",
    ),
    _sig(
        "tls_expired",
        r"certificate has expired(?! or is not yet valid: current time \S+ is before)|CERT_HAS_EXPIRED|certificate expired",
    ),
    _sig(
        "tls_untrusted",
        r"unable to get local issuer certificate|self[- ]signed certificate in certificate chain|server certificate verification failed|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|x509: certificate signed by unknown authority|unable to verify the first certificate",
    ),
    _sig(
        "tls_handshake_failed",
        r"TLS Error: TLS handshake failed|TLS handshake timeout|wrong version number|tlsv1 alert|handshake failure",
    ),
    # name resolution
    _sig(
        "resolve_failure",
        r"EAI_AGAIN|ENOTFOUND|Could not resolve host|Temporary failure in name resolution|Name or service not known|failed to lookup address information|RESOLVE: Cannot resolve host address|Could not determine IPv4/IPv6 protocol|\bno such host\b|lookup \S+ on \S+:53: .*(?:i/o timeout|server misbehaving)|Resolving timed out|server can't find|no servers could be reached",
    ),
    # TCP
    _sig(
        "connect_timeout",
        r"Connection timed out|ETIMEDOUT|Client\.Timeout exceeded|dial tcp \S+: i/o timeout|Timeout was reached|connect ETIMEDOUT",
    ),
    _sig(
        "connect_refused",
        r"Connection refused|ECONNREFUSED|Couldn't connect to server|connect:errno=111",
    ),
    _sig(
        "connect_refused",
        r"No route to host|EHOSTUNREACH|Network is unreachable|ENETUNREACH|connect:errno=113",
    ),
    # OpenVPN
    _sig("middlebox", r"Bad encapsulated packet length", source="vpn"),
    _sig("auth_failed", r"AUTH_FAILED", source="vpn"),
    # chronyd and its health check
    _sig("clock_wrong", r"System clock wrong by (-?[\d.]+) seconds", source="chrony"),
    _sig(
        "no_selectable_sources",
        r"(?:Cannot|Can't) synchroni[sz]e: no selectable sources",
        source="chrony",
    ),
    _sig("no_online_sources", r"No online NTP sources", source="chrony"),
    _sig("backward_jump", r"Backward time jump detected", source="chrony"),
    _sig(
        "lost_sync_restart",
        r"NTP time lost synchroni[sz]ation - restarting chronyd",
        source="chrony",
    ),
    # dnsmasq
    _sig("resolv_missing", r"failed to access (\S+): No such file or directory", source="dns"),
    _sig("nameservers", r"using nameserver ([0-9a-fA-F.:]+)#\d+", HEALTH, "dns", frozenset()),
    # supervisor
    _sig("state_report_failure", r"Device state report failure\s*(.*)", source="supervisor"),
    _sig("state_report_failure", r"Retrying current state report", source="supervisor"),
    _sig("vpn_not_active", r"VPN connection is not active", source="supervisor"),
    _sig("waiting_for_connectivity", r"Waiting for connectivity", source="supervisor"),
    _sig("healthcheck_failure", r"Healthcheck failure", source="supervisor"),
    _sig("healthy_500", r"GET /v1/healthy 500\b", source="supervisor"),
    _sig("target_state_failure", r"Failed to get target state", source="supervisor"),
    # os-config
    _sig(
        "fetch_failed",
        r"(https?://\S+/os/v1/config): error trying to connect: (.*)",
        source="os_config",
    ),
    # openssl s_client and curl
    _sig("verify_error", r"verify error:num=(\d+):(.*)", source="openssl"),
    _sig("verify_error", r"Verify return code: ([1-9]\d*) \((.*)\)", source="openssl"),
    _sig("curl_error", r"curl: \((\d+)\) (.*)", source="curl"),
)

# ASCII digits: journald and syslog timestamps have no others
_PREFIX_BODY = (
    r"(?:[A-Z][a-z]{2}\s+[0-9]{1,2}\s+[0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:\.[0-9]+)?"
    r"|[0-9]{4}-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:[.,][0-9]+)?"
    r"(?:Z|[+-][0-9][0-9]:?[0-9][0-9])?)"
    r"\s+\S+\s+([A-Za-z][\w.@-]*)(?:\[[0-9]+\])?:\s?"
)
"""A journal prefix (timestamp, host, process[pid]:), capturing the process."""
_PREFIX = re.compile(_PREFIX_BODY)
_DIGITS_AS_ZERO = bytes(48 if 49 <= byte <= 57 else byte for byte in range(256))
"""Maps a UTF-8 prefix to its shape: ASCII digits, which the prefix regex treats alike, as 0
(no other character's UTF-8 contains their bytes)."""
_JSON_ERROR = re.compile(r'"error"\s*:\s*"([^"]*)"')
_QUOTE = re.compile(r"^(?:\s*>)+\s?")
_ISSUER_DEPTH = re.compile(r"^depth=(\d+)\s+(.*)$")
_ISSUER_CHAIN = re.compile(r"^\s*i:(.*)$")

_PROCESS_SOURCES: tuple[tuple[str, str], ...] = (
    ("openvpn", "vpn"),
    ("supervisor", "supervisor"),
    ("os-config", "os_config"),
    ("chrony", "chrony"),
    ("healthdog", "chrony"),
    ("dnsmasq", "dns"),
)
_CONTENT_SOURCES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"^(?:depth=\d|verify (?:error|return)|Verify return code|Verification error|\s*[si]:)"
        ),
        "openssl",
    ),
    (
        re.compile(
            r"VERIFY (?:OK|ERROR|KU|EKU)|TLS Error|TLS_ERROR|SIGUSR1|openvpn|Peer Connection"
        ),
        "vpn",
    ),
    (
        re.compile(r"^\[(?:info|error|event|debug|warn|success|api)\]|supervisor", re.I),
        "supervisor",
    ),
    (re.compile(r"/os/v1/config"), "os_config"),
    (re.compile(r"^curl:"), "curl"),
    (re.compile(r"chrony", re.I), "chrony"),
    (re.compile(r"dnsmasq", re.I), "dns"),
)


def _needles(items: Sequence[Any]) -> list[str] | None:
    """Lower-case strings one of which every match of parsed regex ``items`` contains (None: unknown).

    Only plain ASCII literals count, so for ASCII text ``needle in text.lower()`` is implied by a
    case-insensitive match. Alternatives (``a|b``, groups) contribute the union of theirs.
    """
    runs, run = [], ""
    for op, arg in items:
        if op is _LITERAL and arg < 128:
            run += chr(arg).lower()
            continue
        runs.append(run)
        run = ""
    runs.append(run)
    longest = max(runs, key=len)
    if len(longest) >= 4:
        return [longest]
    for op, arg in items:
        if op is _BRANCH:
            branches = [_needles(list(branch)) for branch in arg[1]]
        elif op is _SUBPATTERN:
            branches = [_needles(list(arg[3]))]
        else:
            continue
        if all(branches):
            return [needle for needles in branches for needle in needles or ()]
    return [longest] if longest else None


try:
    import re._constants as _sre_constants
    import re._parser as _sre_parse
except ImportError:  # Python 3.10
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_LITERAL, _BRANCH, _SUBPATTERN = (
    _sre_constants.LITERAL,
    _sre_constants.BRANCH,
    _sre_constants.SUBPATTERN,
)
_SIGNATURE_NEEDLES: tuple[tuple[Signature, tuple[str, ...]], ...] = tuple(
    (sig, tuple(_needles(list(_sre_parse.parse(sig.pattern.pattern, sig.pattern.flags))) or ()))
    for sig in SIGNATURES
)
"""Each signature with strings one of which its matches contain (lower case; empty: unknown)."""


def _by_needle(
    needles_of: Sequence[tuple[str, ...]],
) -> tuple[tuple[tuple[bytes, tuple[int, ...]], ...], tuple[int, ...]]:
    """Each needle, its digits as 0, with the patterns (positions in ``needles_of``) it admits,
    and the patterns that have no needle and are always tried."""
    admitted: dict[bytes, list[int]] = {}
    unscreened: list[int] = []
    for position, needles in enumerate(needles_of):
        if not needles:
            unscreened.append(position)
        for needle in needles:
            admitted.setdefault(_zeroed(needle), []).append(position)
    return tuple((n, tuple(p)) for n, p in sorted(admitted.items())), tuple(unscreened)


def _zeroed(text: str) -> bytes:
    """ASCII ``text`` with its digits as 0: where a needle occurs in a message, its zeroed
    form occurs in the zeroed message, so a screen on zeroed text admits all it should."""
    return text.encode("ascii").translate(_DIGITS_AS_ZERO)


_NEEDLE_INDEX, _UNSCREENED = _by_needle([needles for _sig, needles in _SIGNATURE_NEEDLES])
_BENIGN_INDEX, _BENIGN_UNSCREENED = _by_needle(
    [tuple(_needles(list(_sre_parse.parse(p.pattern, p.flags))) or ()) for p in BENIGN]
)


class _Screen(NamedTuple):
    """What may match a message: signatures and benign patterns, in catalogue order."""

    signatures: tuple[Signature, ...]
    benign: tuple[re.Pattern[str], ...]
    digit_blind: bool
    """None of them tells one digit from another or reads a value out of the message, so
    every message of one shape (digits as 0) gets the same hits."""


@lru_cache(maxsize=4096)
def _screen_zeroed(zeroed: bytes) -> _Screen:
    """The screen of an ASCII message, from the message in lower case with its digits as 0.

    Journal messages of one kind differ mostly in their numbers (offsets, counters,
    addresses), so one look for each needle serves them all.
    """
    signatures = set(_UNSCREENED)
    for needle, admitted in _NEEDLE_INDEX:
        if needle in zeroed:
            signatures.update(admitted)
    benign = set(_BENIGN_UNSCREENED)
    for needle, admitted in _BENIGN_INDEX:
        if needle in zeroed:
            benign.update(admitted)
    return _Screen(
        tuple(SIGNATURES[position] for position in sorted(signatures)),
        tuple(BENIGN[position] for position in sorted(benign)),
        signatures <= _BLIND_SIGNATURES and benign <= _BLIND_BENIGN,
    )


def _screened(lowered: str | None) -> _Screen:
    """The screen of a message (``lowered``: it in lower case when ASCII, else None: every
    signature and benign pattern)."""
    if lowered is None:
        return _Screen(SIGNATURES, BENIGN, False)
    return _screen_zeroed(_zeroed(lowered))


def _digit_blind(items: Iterable[tuple[Any, Any]]) -> bool:
    """Whether parsed regex ``items`` match the same wherever digits are swapped for others:
    no digit literal, no class that holds some digits but not all; anything this does not know
    (backreferences, atomic groups) counts as telling digits apart."""
    c = _sre_constants
    for op, arg in items:
        if op in (c.LITERAL, c.NOT_LITERAL):
            blind = arg not in _DIGIT_CODES
        elif op is c.RANGE:
            blind = len(_DIGIT_CODES.intersection(range(arg[0], arg[1] + 1))) in (0, 10)
        elif op in (c.ANY, c.AT, c.CATEGORY, c.NEGATE):
            blind = True
        elif op is c.IN:
            blind = _digit_blind(arg)
        elif op is _BRANCH:
            blind = all(_digit_blind(branch) for branch in arg[1])
        elif op is _SUBPATTERN:
            blind = _digit_blind(arg[3])
        elif op in _REPEATS:
            blind = _digit_blind(arg[2])
        elif op in (c.ASSERT, c.ASSERT_NOT):
            blind = _digit_blind(arg[1])
        else:
            blind = False
        if not blind:
            return False
    return True


_DIGIT_CODES = frozenset(range(ord("0"), ord("9") + 1))
_REPEATS = tuple(
    getattr(_sre_constants, name)
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(_sre_constants, name)
)


def _blind(pattern: re.Pattern[str]) -> bool:
    """A pattern whose hits every message of one shape shares: digit-blind, no captured value."""
    return pattern.groups == 0 and _digit_blind(_sre_parse.parse(pattern.pattern, pattern.flags))


_BLIND_SIGNATURES = frozenset(
    position for position, sig in enumerate(SIGNATURES) if _blind(sig.pattern)
)
_BLIND_BENIGN = frozenset(position for position, pattern in enumerate(BENIGN) if _blind(pattern))


class Hit(NamedTuple):
    """One signature matched on one line (a tuple: many are made per journal)."""

    source: str
    fact: str
    kind: str
    line: str
    value: Any
    resets: frozenset[str] | None


def _unescape(text: str) -> str:
    if "\\" not in text:  # most journals: one scan instead of three
        return text
    return text.replace("\\r\\n", "\n").replace("\\n", "\n").replace('\\"', '"')


def split_lines(text: str) -> list[tuple[str, str | None, str]]:
    """(stripped line, process, message) for each non-blank line of ``text``, JSON-escaped
    traces unescaped and `> ` quoting stripped; a line without a journal prefix is its own
    message.

    Journals are the bulk of what devices send, and their lines share one prefix shape
    (``2026-11-25T16:50:40+0000 host-2 chronyd[894]: ``): a line whose start has the shape of
    the last prefix read, ASCII digits aside, is split where that one was, without the regex.
    The regex cannot tell such starts apart: it treats every ASCII digit alike, and a prefix
    ending in the whitespace after its colon was decided before the next character.
    """
    rows: list[tuple[str, str | None, str]] = []
    shape = b""  # the last prefix ending in whitespace, UTF-8 with digits as 0 (none yet)
    size = start = end = 0  # its length and the span of its process name
    for raw in _lines(text):
        line = raw.strip()
        if not line:
            continue
        if shape and _shape(line[:size]) == shape:
            rows.append((line, line[start:end], line[size:]))
            continue
        prefix = _PREFIX.match(line)
        if prefix is None:
            rows.append((line, None, line))
            continue
        stop = prefix.end()
        rows.append((line, prefix.group(1), line[stop:]))
        if line[stop - 1].isspace():
            size, shape = stop, _shape(line[:stop])
            start, end = prefix.span(1)
    return rows


def _shape(prefix: str) -> bytes:
    """``prefix`` as UTF-8 with its ASCII digits as 0 (see ``_DIGITS_AS_ZERO``)."""
    return prefix.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_ZERO)


_ASCII_BREAKS_BUT_NEWLINE = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
"""The ASCII characters other than ``\\n`` that ``str.splitlines`` breaks lines at."""


def _lines(text: str) -> list[str]:
    """The lines of ``text`` (as ``str.splitlines``), unescaped and unquoted."""
    text = _unescape(text)
    if ">" in text:
        return [_QUOTE.sub("", raw) for raw in text.splitlines()]
    if text.isascii() and not any(brk in text for brk in _ASCII_BREAKS_BUT_NEWLINE):
        return text.split("\n")  # the same lines (and maybe a blank last one), found faster
    return text.splitlines()


def _source_of(process: str | None, message: str) -> str:
    source = _process_source(process) if process else None
    if source is not None:
        return source
    for pattern, source in _CONTENT_SOURCES:
        if pattern.search(message):
            return source
    return "text"


@lru_cache(maxsize=256)
def _process_source(process: str) -> str | None:
    """The source a journal process name says (None: the name does not tell)."""
    name = process.lower()
    for needle, source in _PROCESS_SOURCES:
        if needle in name:
            return source
    return None


def _value(sig: Signature, match: re.Match[str]) -> Any:
    if sig.fact == "clock_wrong":
        return float(match.group(1))
    if sig.fact in ("verify_error", "curl_error"):
        return int(match.group(1))
    if sig.fact == "resolv_missing":
        return match.group(1)
    if sig.fact == "nameservers":
        return match.group(1)
    if sig.fact == "state_report_failure" and match.groups():
        error = _JSON_ERROR.search(match.group(1))
        return error.group(1) if error else (match.group(1).strip() or True)
    if sig.fact == "fetch_failed":
        return match.group(2).strip()
    return True


def hits(text: str, default_source: str | None = None) -> list[Hit]:
    """Every signature hit in ``text``, in order, benign lines skipped."""
    return [
        Hit(source, fact, kind, line, value, resets)
        for line, process, message in split_lines(text)
        for source, fact, kind, value, resets in _message_hits(message, process, default_source)
    ]


_RawHit = tuple[str, str, str, Any, "frozenset[str] | None"]


def _match_message(
    message: str, process: str | None, default_source: str | None
) -> tuple[_RawHit, ...]:
    """What the catalogue says about one journal message (the line without its prefix).

    The screen is sound on the message alone: every signature's match, and so its needles,
    lies inside the message.
    """
    screen = _screened(message.lower() if message.isascii() else None)
    signatures, benign = screen.signatures, screen.benign
    if not signatures and not benign and "i:" not in message and "depth=" not in message:
        return ()  # no signature, benign pattern or issuer line can match
    if benign and any(p.search(message) for p in benign):
        return ()
    found: list[_RawHit] = []
    if signatures:
        found.extend(_signature_hits(process, message, default_source, signatures))
    if "i:" in message or "depth=" in message:  # what both issuer patterns need
        issuer = _ISSUER_CHAIN.match(message) or _ISSUER_DEPTH.match(message)
        if issuer and not (issuer.re is _ISSUER_DEPTH and issuer.group(1) == "0"):
            found.append(("openssl", "issuer", HEALTH, issuer.groups()[-1].strip(), None))
    return tuple(found)


_message_hits = lru_cache(maxsize=8192)(_match_message)
"""`_match_message`, remembered: a pure function of its arguments, and identical messages
(timestamps live in the prefix) are common in journals."""


def forget_messages() -> None:
    """Drop what is remembered per journal message and per message shape (digits as 0), so
    the next scan matches every message afresh (a benchmark's view of a fleet whose journal
    lines all differ); the needle screens of shapes stay."""
    _message_hits.cache_clear()
    _message_scan_hits.cache_clear()
    _shape_scan_hits.cache_clear()


def _signature_hits(
    process: str | None,
    message: str,
    default_source: str | None,
    signatures: Iterable[Signature],
) -> list[_RawHit]:
    """Matches in one message of ``signatures`` (the ones the screen left)."""
    found: list[_RawHit] = []
    line_source: str | None = None
    sourced = False
    for sig in signatures:
        match = sig.pattern.search(message)
        if match is None:
            continue
        if not sourced:
            line_source = _source_of(process, message) if (process or not default_source) else None
            line_source = line_source if line_source and line_source != "text" else default_source
            sourced = True
        source = sig.source or line_source or "text"
        if sig.source == "curl" or sig.source == "openssl":
            source = sig.source
        found.append((source, sig.fact, sig.kind, _value(sig, match), sig.resets))
    return found


_REACHED_TLS = frozenset({"resolve_failure", "connect_timeout", "connect_refused"})
_PROBLEM_FACTS = frozenset(sig.fact for sig in SIGNATURES if sig.kind == PROBLEM)
"""Facts whose hits are problems: each fact has one kind (``test_each_fact_has_one_kind``)."""

_Group = tuple[str, str]
_ScanHit = tuple[_Group, "frozenset[_Group]", bool, Any]
_GROUPS: dict[_Group, _Group] = {}
"""One tuple per (source, fact), so `scan` can tell a run of one group by identity."""


@lru_cache(maxsize=8192)
def _message_scan_hits(
    message: str, process: str | None, default_source: str | None
) -> tuple[_ScanHit, ...]:
    """``_scan_hits`` remembered per message and, where the screen is digit-blind, no issuer
    line (whose depth counts) can match and the process or the default names the source (the
    wording that names it otherwise tells some digits apart), per message shape: the lines of
    one kind that differ only in their numbers are matched once."""
    sourced = _process_source(process) is not None if process else default_source is not None
    if sourced and message.isascii() and "i:" not in message and "depth=" not in message:
        zeroed = _zeroed(message)
        if _screen_zeroed(zeroed.lower()).digit_blind:
            return _shape_scan_hits(zeroed.decode("ascii"), process, default_source)
    return _scan_hits(message, process, default_source)


@lru_cache(maxsize=4096)
def _shape_scan_hits(
    zeroed: str, process: str | None, default_source: str | None
) -> tuple[_ScanHit, ...]:
    """``_scan_hits`` of a message with its digits as 0, which stands for its whole shape."""
    return _scan_hits(zeroed, process, default_source)


def _scan_hits(
    message: str, process: str | None, default_source: str | None
) -> tuple[_ScanHit, ...]:
    """``_match_message`` as `scan` uses it: per hit its (source, fact) group, the groups of
    problems it supersedes in its source (a health line resets them; a later TLS error shows
    the name resolved and TCP connected, so earlier such errors are history), whether it is a
    problem, and its value."""
    found = []
    for source, fact, kind, value, resets in _match_message(message, process, default_source):
        group, drops, problem = _scan_role(source, fact, kind, resets)
        found.append((group, drops, problem, value))
    return tuple(found)


@lru_cache(maxsize=1024)
def _scan_role(
    source: str, fact: str, kind: str, resets: frozenset[str] | None
) -> tuple[_Group, frozenset[_Group], bool]:
    """A hit's group, the groups it supersedes and whether it is a problem (see above): the
    same for every hit of one signature from one source."""
    if not resets and fact in _TLS_FACTS:
        resets = _REACHED_TLS
    drops = frozenset(
        _GROUPS.setdefault((source, gone), (source, gone))
        for gone in resets or ()
        if gone in _PROBLEM_FACTS
    )
    return _GROUPS.setdefault((source, fact), (source, fact)), drops, kind == PROBLEM


def scan(text: str, probe: str = "", default_source: str | None = None) -> list[Observation]:
    """Observations ``log.<source>.<fact>`` found in ``text`` (see the module docstring).

    One pass over the lines: a hit that supersedes problems of its source drops their groups
    whole (a group holds one fact, and so one kind), and a group made again after that is
    ordered by its new first line, where the surviving hits start.
    """
    grouped: dict[_Group, tuple[list[Any], list[str]]] = {}
    problems: set[_Group] = set()  # the groups holding problems now
    key: _Group | None = None  # the group last added to (a journal repeats one line)
    values: list[Any] = []
    lines: list[str] = []
    for line, process, message in split_lines(text):
        for group_key, drops, problem, value in _message_scan_hits(
            message, process, default_source
        ):
            if drops and problems and not problems.isdisjoint(drops):
                for gone in problems & drops:
                    del grouped[gone]
                problems -= drops
                key = None
            if group_key is not key:
                key = group_key
                group = grouped.get(key)
                if group is None:
                    group = grouped[key] = ([], [])
                    if problem:
                        problems.add(key)
                values, lines = group
            values.append(value)
            lines.append(line)
    return [
        Observation(
            key=f"log.{source}.{fact}",
            value=_combine(fact, values),
            evidence=_evidence(lines),
            probe=probe,
        )
        for (source, fact), (values, lines) in grouped.items()
    ]


def _combine(fact: str, values: list[Any]) -> Any:
    if fact in ("nameservers", "issuer"):
        return tuple(dict.fromkeys(values))
    if fact == "clock_wrong":
        return max(values, key=abs)
    if fact in (
        "verify_error",
        "curl_error",
        "state_report_failure",
        "fetch_failed",
        "resolv_missing",
    ):
        specific = [value for value in values if value is not True]
        return specific[-1] if specific else values[-1]
    return len(values)


def _evidence(lines: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(lines))
    if len(unique) > MAX_EVIDENCE:
        unique = unique[:2] + unique[-(MAX_EVIDENCE - 2) :]
    return tuple(unique)


@lru_cache(maxsize=1)
def log_keys() -> tuple[str, ...] | None:
    """Lower-case strings one of which every line the catalogue reads something from contains.

    A device can keep only the journal lines holding one of them (``grep -i -F``) and lose
    nothing the catalogue would find. None when some signature has no such string.
    """
    needles: set[str] = {"depth=", "i:"}  # certificate chain lines (the issuer fact)
    for _sig, found in _SIGNATURE_NEEDLES:
        if not found:
            return None
        needles.update(found)
    # a needle that contains a shorter one adds nothing to the filter
    return tuple(sorted(n for n in needles if not any(o != n and o in n for o in needles)))
