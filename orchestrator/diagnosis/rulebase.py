"""The machinery rules are written with: facts indexed by key, candidate findings with their
explainers, and the step that turns candidates into findings with ``caused_by`` (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from orchestrator.diagnosis.catalog import FACT_OUTCOMES, FINDINGS, OUTCOME_CAUSES
from orchestrator.diagnosis.signatures import hits
from orchestrator.frozen import evolve, frozen_record
from orchestrator.models import Finding, Observation


@frozen_record
class Candidate:
    """A proposed finding and the codes that would explain it, strongest first."""

    finding: Finding
    explainers: tuple[str, ...] = ()


class Facts:
    """Observations indexed by key."""

    def __init__(self, observations: Iterable[Observation]) -> None:
        by_key: dict[str, list[Observation]] = {}
        for obs in observations:
            group = by_key.get(obs.key)
            if group is None:
                by_key[obs.key] = [obs]
            else:
                group.append(obs)
        self.by_key = by_key
        self._logs: dict[str, list[tuple[str, list[Observation]]]] = {}
        """``log.<source>.<fact>`` groups by fact, as (source, observations), in key order."""
        for key, group in by_key.items():
            if key.startswith("log."):
                parts = key.split(".")
                if len(parts) >= 3:
                    self._logs.setdefault(parts[-1], []).append((parts[1], group))

    def value(self, key: str, default: Any = None) -> Any:
        found = self.by_key.get(key)
        return found[0].value if found else default

    def evidence(self, *keys: str) -> tuple[str, ...]:
        lines = [line for key in keys for obs in self.by_key.get(key, ()) for line in obs.evidence]
        return tuple(dict.fromkeys(lines))

    def all(self, key: str) -> list[Observation]:
        return self.by_key.get(key, [])

    def log(self, fact: str, sources: Sequence[str] | None = None) -> list[Observation]:
        return [
            obs
            for source, group in self._logs.get(fact, ())
            if sources is None or source in sources
            for obs in group
        ]

    def log_evidence(self, fact: str, sources: Sequence[str] | None = None) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(line for obs in self.log(fact, sources) for line in obs.evidence)
        )


def make_finding(
    code: str, evidence: Iterable[str], summary: str | None = None, severity: str | None = None
) -> Finding:
    """A finding of catalogue ``code`` with this evidence (summary and severity may be refined)."""
    spec = FINDINGS[code]
    return Finding(
        code=code,
        category=spec.category,
        severity=severity or spec.severity,
        summary=summary or spec.summary,
        evidence=tuple(evidence)[:12],
        remediation=spec.remediation,
    )


def outcome_from_logs(f: Facts, sources: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """The strongest curl-style outcome the logs of ``sources`` show, with its lines."""
    for fact, outcome in FACT_OUTCOMES:
        lines = f.log_evidence(fact, sources)
        if lines:
            return outcome, lines
    return None, ()


def text_causes(text: str) -> tuple[str, ...]:
    """Explainers for an error message (a supervisor or os-config error string)."""
    facts = {hit.fact for hit in hits(text)}
    for fact, outcome in FACT_OUTCOMES:
        if fact in facts:
            return OUTCOME_CAUSES[outcome]
    return ()


def resolve_causes(candidates: list[Candidate]) -> list[Finding]:
    """Set each finding's ``caused_by`` to its first present explainer; root causes first."""
    present = {c.finding.code for c in candidates}
    cause = {
        c.finding.code: next(
            (e for e in c.explainers if e in present and e != c.finding.code), None
        )
        for c in candidates
    }
    for code in list(cause):  # break any cycle by making its first member a root
        seen, current = set(), code
        while current is not None and current not in seen:
            seen.add(current)
            current = cause.get(current)
        if current is not None:
            cause[current] = None
    findings = [_caused_by(c.finding, cause[c.finding.code]) for c in candidates]
    findings.sort(key=lambda x: (x.caused_by is not None, _CATALOGUE_RANK.get(x.code, 99)))
    return findings


_CATALOGUE_RANK = {code: rank for rank, code in enumerate(FINDINGS)}
"""Each finding code's position in the catalogue: the order of findings with equal standing."""


def _caused_by(finding: Finding, cause: str | None) -> Finding:
    """``finding`` with ``caused_by`` set; the same object when it already is."""
    return finding if finding.caused_by == cause else evolve(finding, caused_by=cause)
