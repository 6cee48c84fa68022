"""Parse one `curl -sS -w WRITE_OUT URL` step (stderr merged) into a classified outcome.

The probes append ``WRITE_OUT`` so every curl step ends with a line
``<http_code> <remote_ip> <time_connect> <time_total>``; curl's own error line
(``curl: (N) message``) tells resolve, refuse, drop and TLS failures apart. Outcomes:

=================  ==========================================================================
``http``           a response arrived (any status: the probe judges the status)
``resolve``        exit 6, the name did not resolve (DNS)
``resolve_timeout`` exit 28 ``Resolving timed out`` (DNS, not the firewall: balena.md 7)
``refused``        exit 7, TCP refused or reset (a firewall *reject*, or nothing listening)
``no_route``       exit 7 ``No route to host`` / ``Network is unreachable``
``connect_timeout`` exit 28 before TCP connected (a firewall *drop*)
``timeout``        exit 28 after TCP connected (slow or silent peer)
``tls_not_yet_valid`` / ``tls_expired``  exit 60 on the certificate dates (the clock)
``tls_untrusted``  exit 60 on the issuer (unknown CA: DPI or a missing CA)
``tls_handshake``  exit 35 (a non-TLS middlebox or a broken handshake)
``reset``          exit 52/56 (connection dropped mid-way)
``missing``        the step did not run
``other``          anything else
=================  ==========================================================================
"""

from __future__ import annotations

import re

from orchestrator.frozen import frozen_record
from orchestrator.models import StepOutput

WRITE_OUT = r"\n%{http_code} %{remote_ip} %{time_connect} %{time_total}\n"
"""The -w format every probe curl uses (curl expands the ``\\n``)."""

_WRITE_OUT_LINE = re.compile(r"^(\d{3}) (\S*) ?(\d+(?:\.\d+)?) (\d+(?:\.\d+)?)\s*$")
_CURL_ERROR = re.compile(r"curl: \((\d+)\) (.*)")

TLS_DATE_OUTCOMES = ("tls_not_yet_valid", "tls_expired")
TLS_OUTCOMES = (*TLS_DATE_OUTCOMES, "tls_untrusted", "tls_handshake")
DNS_OUTCOMES = ("resolve", "resolve_timeout")
BLOCKED_OUTCOMES = ("connect_timeout", "refused", "no_route")


@frozen_record
class CurlResult:
    """What one curl step showed."""

    outcome: str
    exit_code: int | None = None
    http_status: int | None = None
    remote_ip: str | None = None
    time_connect: float | None = None
    body: str = ""
    error: str | None = None
    """curl's own error line, e.g. ``curl: (6) Could not resolve host: api.balena-cloud.com``."""

    @property
    def connected(self) -> bool:
        """TCP reached the peer (a response, a TLS problem, or a silent open port)."""
        if self.outcome == "http" or self.outcome in TLS_OUTCOMES:
            return True
        return bool(self.time_connect and self.time_connect > 0)

    @property
    def evidence(self) -> tuple[str, ...]:
        """The lines worth quoting in a finding."""
        if self.error:
            return (self.error,)
        if self.http_status is not None:
            return (f"HTTP {self.http_status} from {self.remote_ip or '?'}",)
        return ()


def classify_error(code: int, message: str, time_connect: float | None = None) -> str:
    """The outcome for curl exit ``code`` with error ``message``."""
    text = message.lower()
    if code == 6:
        return "resolve"
    if code == 28:
        if "resolving" in text:
            return "resolve_timeout"
        if "connection timed out" in text or "failed to connect" in text:
            return "connect_timeout"
        return "timeout" if time_connect else "connect_timeout"
    if code == 7:
        if "no route" in text or "unreachable" in text:
            return "no_route"
        return "refused"
    if code in (60, 51, 58, 77, 83):
        if "not yet valid" in text:
            return "tls_not_yet_valid"
        if "expired" in text:
            return "tls_expired"
        return "tls_untrusted"
    if code == 35:
        return "tls_handshake"
    if code in (52, 56):
        return "reset"
    return "other"


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_curl(out: StepOutput | None) -> CurlResult:
    """Classify a curl step's output (``missing`` when the step did not run)."""
    if out is None:
        return CurlResult(outcome="missing")
    lines = out.output.splitlines()
    status: int | None = None
    remote_ip: str | None = None
    time_connect: float | None = None
    body_end = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        match = _WRITE_OUT_LINE.match(lines[index])
        if match:
            code = int(match.group(1))
            status = code or None
            remote_ip = match.group(2) or None
            time_connect = _float(match.group(3))
            body_end = index
            break
    error_line: str | None = None
    error_code: int | None = None
    body_lines = lines[:body_end]
    if "curl: (" in out.output:  # most steps carry no curl error: skip the per-line search
        error_line = next((m.group(0) for m in map(_CURL_ERROR.search, lines) if m), None)
        body_lines = [line for line in body_lines if not _CURL_ERROR.search(line)]
    if error_line:
        error_code = int(_CURL_ERROR.search(error_line).group(1))
    exit_code = out.exit_code
    if exit_code is None or (exit_code == 0 and error_code):
        exit_code = error_code
    body = "\n".join(body_lines).strip()
    if out.timed_out and not error_line:
        outcome = "timeout" if time_connect else "connect_timeout"
    elif exit_code == 0 or (exit_code is None and status is not None):
        outcome = "http" if status is not None else "other"
    elif exit_code is not None:
        message = error_line or ""
        outcome = classify_error(exit_code, message, time_connect)
    else:
        outcome = "other"
    return CurlResult(
        outcome=outcome,
        exit_code=exit_code,
        http_status=status,
        remote_ip=remote_ip,
        time_connect=time_connect,
        body=body,
        error=error_line,
    )


def curl_command(
    url: str, *, max_time: int = 10, connect_timeout: int = 7, extra: str = "-o /dev/null"
) -> str:
    """The read-only curl command line the probes run for ``url``."""
    parts = ["curl -sS", f"-m {max_time}", f"--connect-timeout {connect_timeout}"]
    if extra:
        parts.append(extra)
    parts.append(f"-w '{WRITE_OUT}'")
    parts.append(_quote(url))
    return " ".join(parts)


def _quote(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"
