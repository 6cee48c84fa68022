"""tls (DPI): the API certificate chain as the device sees it, and balenaRootCA presence.

Observations (``probe="tls"``):

- ``tls.api_issuers`` (tuple of issuer names from ``openssl s_client -showcerts``, leaf first)
- ``tls.api_verify_code`` (int, openssl's ``Verify return code``; 0 = trusted)
- ``tls.api_connect_error`` (str) when openssl could not connect
- ``tls.api_chain_foreign`` (bool): the chain's issuers match neither the configured
  ``Endpoints.expected_issuers`` nor the chain seen from the orchestrator
  (``ProbeContext.reference_chain``); with neither known, an untrusted chain (verify code
  2, 19, 20 or 21) counts as foreign.
- ``tls.balena_root_ca`` (bool): config.json has a ``balenaRootCA`` key (its value is never read)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.endpoints import target_of

NAME = "tls"
UNTRUSTED_CODES = frozenset({2, 19, 20, 21})
"""openssl verify errors about the issuer (not about dates): unknown or self-signed CA."""
DATE_CODES = frozenset({9, 10})
_SUBJECT_LINE = re.compile(r"\s*\d+\s+s:")
_VERIFY = re.compile(r"Verify return code: (\d+) \(([^)]*)\)")
_VERIFY_DEPTH = re.compile(r"verify error:num=(\d+):(.*)")
_CONNECT_ERRORS = (
    re.compile(r"connect:errno=\d+"),
    re.compile(r"BIO_lookup\S*:[^:\n]+|gethostbyname failure|Name or service not known"),
    re.compile(r"BIO_connect:[^:\n]+"),
)


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """The API chain, and whether balenaRootCA is configured."""
    target = target_of(endpoints.api)
    host = target.rsplit(":", 1)[0]
    return (
        Step(
            "tls.api_chain",
            f"openssl s_client -connect {target} -servername {host} -showcerts </dev/null",
            timeout_s=15,
        ),
        Step("tls.root_ca", 'grep -c \'"balenaRootCA"\' "$R/mnt/boot/config.json"', timeout_s=5),
    )


def chain_issuers(text: str) -> tuple[str, ...]:
    """The issuers in an ``openssl s_client`` chain (a `` N s:subject`` line, then an indented
    ``i:issuer`` line), each once, in order. Read line by line, testing the subject pattern only
    on lines with ``s:`` (certificate bodies have no colon): one multi-line search over the
    text tried the pattern at every position, ~30 us for a two-certificate chain."""
    lines = text.split("\n")
    issuers: dict[str, None] = {}
    for subject, issuer in zip(lines, lines[1:], strict=False):
        if "s:" in subject and issuer[:1].isspace() and _SUBJECT_LINE.match(subject):
            rest = issuer.lstrip()
            if rest.startswith("i:"):
                issuers[rest[2:].strip()] = None
    return tuple(issuers)


def _normal(name: str) -> str:
    return re.sub(r"\s*([=,])\s*", r"\1", name.strip().lower())


def chain_is_foreign(
    issuers: Sequence[str],
    verify_code: int | None,
    expected: Sequence[str],
    reference: Sequence[str] | None,
) -> bool | None:
    """Whether the issuers look like someone else's CA (None when nothing to decide on)."""
    if not issuers:
        return None
    if expected:
        wanted = [e.lower() for e in expected]
        return not any(w in issuer.lower() for issuer in issuers for w in wanted)
    if reference:
        return not ({_normal(i) for i in issuers} & {_normal(r) for r in reference})
    if verify_code is None:
        return None
    return verify_code in UNTRUSTED_CODES


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Chain, verification and balenaRootCA presence (see the module docstring)."""
    found: list[Observation] = []
    chain = step_output(steps, "tls.api_chain")
    if chain is not None:
        issuers = chain_issuers(chain.output)
        verify = _VERIFY.search(chain.output)
        code = int(verify.group(1)) if verify else None
        first_error = _VERIFY_DEPTH.search(chain.output)
        evidence = tuple(f"issuer: {i}" for i in issuers) + tuple(
            m.group(0) for m in (first_error, verify) if m
        )
        if issuers:
            found.append(Observation("tls.api_issuers", issuers, evidence, NAME))
        if code is not None:
            found.append(Observation("tls.api_verify_code", code, evidence, NAME))
        connect = None
        if not issuers:  # no chain arrived: say why the connection failed
            connect = next(filter(None, (p.search(chain.output) for p in _CONNECT_ERRORS)), None)
        if connect:
            found.append(
                Observation("tls.api_connect_error", connect.group(0), (connect.group(0),), NAME)
            )
        foreign = chain_is_foreign(
            issuers, code, ctx.endpoints.expected_issuers, ctx.reference_chain
        )
        if foreign is not None:
            basis = _basis(ctx)
            found.append(Observation("tls.api_chain_foreign", foreign, (*evidence, basis), NAME))
    root_ca = step_output(steps, "tls.root_ca")
    if root_ca is not None and root_ca.output.strip().isdigit():
        present = int(root_ca.output.strip()) > 0
        line = f"balenaRootCA {'present' if present else 'absent'} in config.json"
        found.append(Observation("tls.balena_root_ca", present, (line,), NAME))
    return found


def _basis(ctx: ProbeContext) -> str:
    if ctx.endpoints.expected_issuers:
        return "expected issuers: " + "; ".join(ctx.endpoints.expected_issuers)
    if ctx.reference_chain:
        return "issuers seen from the orchestrator: " + "; ".join(ctx.reference_chain)
    return "judged by the device's own verification (no expected issuers configured)"


PROBE = make_probe(
    NAME,
    "API certificate chain seen by the device (DPI), balenaRootCA presence",
    build_steps,
    parse,
)
