"""Build the one POSIX sh script a device runs, and split its output back into steps.

Framing is length-prefixed and carries a random per-run nonce::

    @@ORCH:<nonce>:BEGIN:<step>:<exit code>:<byte count>:<flags>:<seconds>
    <exactly byte-count bytes of output>
    @@ORCH:<nonce>:END:<step>

so output that contains marker-like text (or even this run's nonce) cannot break or forge the
framing: the splitter reads the announced number of bytes and then requires the END line.
Flags: ``t`` output truncated at the step's byte cap, ``o`` the step hit its time limit,
``s`` skipped because the device budget was spent.

Every step runs with stdin from /dev/null (the script itself arrives on stdin), under its own
time limit (``timeout`` when the device has one) and byte cap, and the whole script stops
starting steps once the device budget is spent. The only writes are to a private temp dir that
the script removes on exit.
"""

from __future__ import annotations

import re
import secrets
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.models import StepOutput
from orchestrator.probes.base import Step

MARKER = "@@ORCH"
_STEP_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^ORCH_[A-Z0-9_]+$")

_PRELUDE = r"""
umask 077
R="${ORCH_DEVICE_ROOT:-}"; export R
T=$(mktemp -d 2>/dev/null) || { T="${TMPDIR:-/tmp}/orch.$$"; mkdir -m 700 "$T" || exit 90; }
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP
if timeout -k 1 2 true >/dev/null 2>&1; then TMO=k
elif timeout 2 true >/dev/null 2>&1; then TMO=p
elif timeout -t 2 true >/dev/null 2>&1; then TMO=t
else TMO=n; fi
orch_now() { if read -r u _ </proc/uptime 2>/dev/null; then echo "${u%.*}"; else date +%s; fi; }
orch_limited() {
  case $TMO in
    k) timeout -k 2 "$1" sh -c "$2" ;;
    p) timeout "$1" sh -c "$2" ;;
    t) timeout -t "$1" sh -c "$2" ;;
    *) sh -c "$2" ;;
  esac
}
ORCH_START=$(orch_now)
orch_step() {
  name=$1; limit=$2; cap=$3; cmd=$4
  now=$(orch_now); used=$((now - ORCH_START)); left=$((ORCH_BUDGET - used))
  if [ "$left" -le 0 ]; then
    printf '\n%s:%s:BEGIN:%s:-1:0:s:0\n\n%s:%s:END:%s\n' "$M" "$N" "$name" "$M" "$N" "$name"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  { orch_limited "$limit" "$cmd" </dev/null; echo $? >"$T/rc"; } 2>&1 | head -c $((cap + 1)) >"$T/out"
  rc=$(cat "$T/rc" 2>/dev/null); rc=${rc:-255}
  size=$(wc -c <"$T/out"); size=$((size + 0))
  flags=
  if [ "$size" -gt "$cap" ]; then flags=t; size=$cap; fi
  took=$(( $(orch_now) - now ))
  case $rc in 124|137|143) [ "$took" -ge $((limit - 1)) ] && flags="${flags}o" ;; esac
  printf '\n%s:%s:BEGIN:%s:%s:%s:%s:%s\n' "$M" "$N" "$name" "$rc" "$size" "${flags:--}" "$took"
  head -c "$size" "$T/out"
  printf '\n%s:%s:END:%s\n' "$M" "$N" "$name"
}
"""


def new_nonce() -> str:
    """A fresh random nonce for one run (hex, 128 bits)."""
    return secrets.token_hex(16)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def step_exports(steps: Sequence[Step]) -> dict[str, str]:
    """The variables ``steps`` read, merged; one name with two values is an error."""
    exports: dict[str, str] = {}
    for step in steps:
        for name, value in step.env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{step.name}: invalid variable name {name!r}")
            if exports.setdefault(name, value) != value:
                raise ValueError(f"{step.name}: {name} already has another value")
    return exports


def build_script(steps: Sequence[Step], nonce: str, budget_s: float) -> bytes:
    """The complete script for one device; ``budget_s`` bounds when steps may still start."""
    seen: set[str] = set()
    lines = [
        "# orch probe script: read-only checks, each framed with this run's nonce",
        f"M={MARKER}",
        f"N={nonce}",
        f"ORCH_BUDGET={max(1, int(budget_s))}",
        _PRELUDE.strip(),
    ]
    for name, value in step_exports(steps).items():
        lines.append(f"{name}={_sh_quote(value)}; export {name}")
    lines.append('printf \'%s:%s:HELLO\\n\' "$M" "$N"')
    for step in steps:
        if not _STEP_NAME.match(step.name):
            raise ValueError(f"invalid step name {step.name!r}")
        if step.name in seen:
            raise ValueError(f"duplicate step name {step.name!r}")
        seen.add(step.name)
        limit = max(1, int(round(step.timeout_s)))
        lines.append(
            f"orch_step {step.name} {limit} {int(step.max_bytes)} {_sh_quote(step.command)}"
        )
    lines.append('printf \'%s:%s:DONE\\n\' "$M" "$N"')
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class SplitResult:
    """Step outputs recovered from a device's stdout."""

    steps: dict[str, StepOutput]
    hello: bool
    """The script started (its HELLO line arrived)."""
    done: bool
    """The script ran to its end (its DONE line arrived)."""
    corrupt: tuple[str, ...] = ()
    """Names of steps whose frame was malformed (a broken or forged frame)."""


@lru_cache(maxsize=16)
def _framing(nonce: str) -> tuple[Callable[..., re.Match[bytes] | None], bytes, bytes, bytes]:
    """For ``nonce``: the search for a BEGIN line, the END line's start, the HELLO and DONE
    lines (a sweep splits every device's output with one nonce)."""
    prefix = f"{MARKER}:{nonce}:".encode()
    header = re.compile(
        re.escape(prefix) + rb"BEGIN:([a-z][a-z0-9_.-]*):(-?\d+):(\d+):([a-z-]+):(-?\d+)\n"
    )
    return header.search, b"\n" + prefix + b"END:", prefix + b"HELLO\n", prefix + b"DONE\n"


def split_output(
    stdout: bytes,
    nonce: str,
    steps: Sequence[Step],
    chunk_times: Sequence[tuple[int, float]] = (),
) -> SplitResult:
    """Recover every step's output; steps with no intact frame come back ``missing``.

    ``chunk_times`` are (end offset, arrival time) pairs of the chunks received, in order: a
    step's ``received_at`` is when its last byte arrived.
    """
    search, end_prefix, hello_line, done_line = _framing(nonce)
    wanted = {step.name for step in steps}
    found: dict[str, StepOutput] = {}
    corrupt: list[str] = []
    ends = [end for end, _ in chunk_times]
    pos = 0
    while (match := search(stdout, pos)) is not None:
        raw_name, exit_code, size, flags_raw, took = match.groups()
        body_start = match.end()
        body_end = body_start + int(size)
        # one slice compared with the whole END line: cheaper than three checks in place
        end_line = end_prefix + raw_name + b"\n"
        next_pos = body_end + len(end_line)
        if stdout[body_end:next_pos] != end_line:
            if next_pos <= len(stdout) and (name := raw_name.decode()) not in found:
                corrupt.append(name)
            pos = match.start() + 1
            continue
        name = raw_name.decode()
        if name in wanted and name not in found:
            if flags_raw == b"-":  # most steps: no flag to look for
                truncated = timed_out = skipped = False
            else:
                flags = flags_raw.decode()  # str membership: a third of bytes membership's cost
                truncated, timed_out, skipped = "t" in flags, "o" in flags, "s" in flags
            if ends:  # when the step's last byte arrived
                at = bisect_left(ends, body_end + 1)
                arrived: float | None = chunk_times[at if at < len(ends) else -1][1]
            else:
                arrived = None
            # positional: ~40 records per device, and keywords cost over a third of building one
            found[name] = StepOutput(
                name,
                stdout[body_start:body_end].decode("utf-8", "replace"),
                None if skipped else int(exit_code),
                truncated,
                timed_out,
                skipped,
                False,
                float(took),
                arrived,
            )
        pos = next_pos
    if len(found) < len(wanted):
        for step in steps:
            if step.name not in found:
                found[step.name] = StepOutput(name=step.name, output="", missing=True)
    return SplitResult(
        steps=found, hello=hello_line in stdout, done=done_line in stdout, corrupt=tuple(corrupt)
    )
