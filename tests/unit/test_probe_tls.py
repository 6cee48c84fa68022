"""tls probe parser on real `openssl s_client -showcerts` output: a trusted chain, a chain
re-signed by a foreign CA (DPI-like), one seen with the clock in 2017, and a refused port."""

import random
import re
from pathlib import Path

import pytest

from orchestrator.models import StepOutput
from orchestrator.probes import tls
from orchestrator.probes.base import Endpoints, ProbeContext

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def parse(fixture: str, ctx: ProbeContext | None = None, root_ca: str | None = None) -> dict:
    steps = {
        "tls.api_chain": StepOutput(
            "tls.api_chain", (REAL / f"{fixture}.txt").read_text(), exit_code=0
        )
    }
    if root_ca is not None:
        steps["tls.root_ca"] = StepOutput(
            "tls.root_ca", root_ca, exit_code=0 if root_ca.strip() != "0" else 1
        )
    return {o.key: o.value for o in tls.PROBE.parse(steps, ctx or ProbeContext())}


def test_good_chain_is_trusted_and_not_foreign():
    got = parse("openssl_showcerts_good")
    assert got["tls.api_verify_code"] == 0
    assert got["tls.api_chain_foreign"] is False
    assert any("Orch Test Public TLS CA" in issuer for issuer in got["tls.api_issuers"])


def test_foreign_chain_is_untrusted_and_foreign():
    got = parse("openssl_showcerts_dpi")
    assert got["tls.api_verify_code"] == 20
    assert got["tls.api_chain_foreign"] is True
    assert "EXAMPLE-TLS-PROTECT" in got["tls.api_issuers"][0]


def test_not_yet_valid_chain_is_a_date_problem_not_foreign():
    got = parse("openssl_showcerts_not_yet_valid")
    assert got["tls.api_verify_code"] == 9
    assert got["tls.api_chain_foreign"] is False


@pytest.mark.parametrize(
    ("fixture", "ctx", "foreign"),
    [
        (
            "openssl_showcerts_good",
            ProbeContext(endpoints=Endpoints(expected_issuers=("Orch Test",))),
            False,
        ),
        (
            "openssl_showcerts_dpi",
            ProbeContext(endpoints=Endpoints(expected_issuers=("Orch Test",))),
            True,
        ),
        (
            "openssl_showcerts_good",
            ProbeContext(reference_chain=("C=US, O=Orch Test Trust, CN=Orch Test Public TLS CA",)),
            False,
        ),
        (
            "openssl_showcerts_dpi",
            ProbeContext(
                reference_chain=("C = US, O = Orch Test Trust, CN = Orch Test Public TLS CA",)
            ),
            True,
        ),
    ],
)
def test_expected_issuers_and_reference_chain_decide(fixture, ctx, foreign):
    assert parse(fixture, ctx)["tls.api_chain_foreign"] is foreign


def test_refused_connection_and_root_ca_presence():
    got = parse("openssl_refused", root_ca="1\n")
    assert got["tls.api_connect_error"] == "connect:errno=111"
    assert "tls.api_chain_foreign" not in got
    assert got["tls.balena_root_ca"] is True
    assert parse("openssl_showcerts_good", root_ca="0\n")["tls.balena_root_ca"] is False


def test_root_ca_step_only_counts_the_key():
    step = next(s for s in tls.PROBE.steps if s.name == "tls.root_ca")
    assert step.command.startswith("grep -c ")


_MULTILINE_ISSUER = re.compile(r"^\s*\d+\s+s:.*\n\s+i:(.*)$", re.MULTILINE)
"""The pattern chain_issuers replaced, as the reference for its results on openssl's output."""


def _reference_issuers(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.strip() for m in _MULTILINE_ISSUER.findall(text)))


@pytest.mark.parametrize("fixture", sorted(p.name for p in REAL.glob("openssl_*.txt")))
def test_chain_issuers_of_real_openssl_output(fixture):
    text = (REAL / fixture).read_text()
    issuers = tls.chain_issuers(text)
    assert issuers == _reference_issuers(text)
    assert bool(issuers) == ("showcerts" in fixture)
    assert tls.chain_issuers(text.replace("\n", "\r\n")) == issuers


def test_chain_issuers_lines_shuffled_and_cut():
    lines = (REAL / "openssl_showcerts_dpi.txt").read_text().split("\n")
    lines += [" 7 s:CN = x", "i:no indent", "   i:", "12 s:", "\ti:CN = tab", "0 s:a", "  i: b "]
    rng = random.Random(3)
    for _ in range(400):
        sample = rng.sample(lines, rng.randint(0, min(len(lines), 30)))
        text = "\n".join(line for line in sample if line.strip())
        assert tls.chain_issuers(text) == _reference_issuers(text)
