"""`orch explain`: run the log signatures and the device rules on any pasted text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.diagnosis.rules import diagnose
from orchestrator.diagnosis.signatures import HEALTH, hits, scan
from orchestrator.models import Finding

VERDICTS = ("healthy", "problems", "inconclusive")
_HEALTH_FACTS = frozenset(
    {
        "connected",
        "tls_verified",
        "reported_state",
        "healthy_ok",
        "config_retrieved",
        "selected_source",
    }
)


@dataclass(frozen=True)
class ExplainResult:
    """What the text shows: a verdict, the findings, and the codes of their root causes."""

    verdict: str
    findings: list[Finding] = field(default_factory=list)
    root_causes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of `orch explain --format json`."""
        return {
            "verdict": self.verdict,
            "root_causes": list(self.root_causes),
            "findings": [finding.to_dict() for finding in self.findings],
        }


def explain_text(text: str) -> ExplainResult:
    """Diagnose ``text``: ``problems`` if any finding is above info, ``healthy`` only with
    positive signs of health (VPN initialised, state reported, a source selected...),
    otherwise ``inconclusive``."""
    findings = diagnose(scan(text, probe="explain"))
    problems = [f for f in findings if f.severity != "info"]
    if problems:
        roots = [f.code for f in findings if f.caused_by is None and f.severity != "info"]
        return ExplainResult("problems", findings, roots)
    healthy = any(h.kind == HEALTH and h.fact in _HEALTH_FACTS for h in hits(text))
    return ExplainResult("healthy" if healthy else "inconclusive", findings, [])
