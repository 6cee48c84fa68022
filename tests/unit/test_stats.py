"""Exact statistics behind network patterns, checked against independent integer arithmetic."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest

from orchestrator.diagnosis.stats import (
    fisher_greater,
    fisher_mid_p_greater,
    hypergeom_pmf,
    hypergeom_sf,
)


def exact_pmf(k: int, population: int, successes: int, draws: int) -> Fraction:
    """The textbook formula C(K,k) C(N-K,n-k) / C(N,n), in exact rationals."""
    if k < 0 or k > successes or draws - k < 0 or draws - k > population - successes:
        return Fraction(0)
    return Fraction(
        math.comb(successes, k) * math.comb(population - successes, draws - k),
        math.comb(population, draws),
    )


def exact_tail(a: int, b: int, c: int, d: int) -> Fraction:
    """P(X >= a) for the 2x2 table [[a, b], [c, d]] with fixed margins."""
    population, successes, draws = a + b + c + d, a + c, a + b
    return sum(
        (exact_pmf(k, population, successes, draws) for k in range(a, draws + 1)), Fraction(0)
    )


def test_tea_tasting_table_matches_the_textbook_value() -> None:
    # Fisher's lady tasting tea: 3 of 4 cups right; one-sided p = 17/70.
    assert fisher_greater(3, 1, 1, 3) == pytest.approx(0.2429, abs=5e-5)
    assert fisher_greater(3, 1, 1, 3) == pytest.approx(17 / 70, rel=1e-12)
    assert fisher_greater(4, 0, 0, 4) == pytest.approx(1 / 70, rel=1e-12)


@pytest.mark.parametrize(
    ("k", "population", "successes", "draws"),
    [
        (0, 10, 3, 4),
        (2, 10, 3, 4),
        (3, 10, 3, 4),
        (4, 10, 3, 4),  # more successes drawn than exist: impossible
        (4, 11, 5, 4),
        (12, 32, 12, 12),
        (0, 5, 0, 3),
        (3, 5, 5, 3),
        (1, 6, 5, 3),  # at least two successes are forced into a draw of 3
    ],
)
def test_hypergeometric_pmf_matches_binomial_formula(
    k: int, population: int, successes: int, draws: int
) -> None:
    expected = float(exact_pmf(k, population, successes, draws))
    assert hypergeom_pmf(k, population, successes, draws) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    ("a", "b", "c", "d"),
    [
        (4, 0, 0, 7),  # the demo site: 4 of 4 failing, rest healthy -> 1/330
        (4, 0, 1, 6),  # ... and one other device failing the same way -> 5/330
        (12, 0, 0, 20),
        (4, 1, 0, 10),
        (3, 0, 9, 0),  # everything fails: p = 1
        (1, 9, 5, 5),
        (0, 5, 3, 2),  # nobody in the group: P(X >= 0) = 1
        (2, 3, 40, 55),
    ],
)
def test_fisher_one_sided_matches_exact_rational_tail(a: int, b: int, c: int, d: int) -> None:
    assert fisher_greater(a, b, c, d) == pytest.approx(float(exact_tail(a, b, c, d)), rel=1e-10)


def test_demo_sized_tables_have_the_values_computed_by_hand() -> None:
    assert fisher_greater(4, 0, 0, 7) == pytest.approx(1 / 330, rel=1e-12)
    assert fisher_greater(4, 0, 1, 6) == pytest.approx(5 / 330, rel=1e-12)
    assert fisher_greater(3, 0, 9, 0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "c", "d"), [(3, 1, 1, 3), (4, 0, 1, 6), (3, 0, 9, 0), (1, 9, 5, 5)]
)
def test_mid_p_is_upper_tail_minus_half_the_observed_table(a: int, b: int, c: int, d: int) -> None:
    observed = exact_pmf(a, a + b + c + d, a + c, a + b)
    expected = exact_tail(a, b, c, d) - observed / 2
    assert fisher_mid_p_greater(a, b, c, d) == pytest.approx(float(expected), rel=1e-10)
    assert fisher_mid_p_greater(a, b, c, d) < fisher_greater(a, b, c, d)


def test_upper_tail_is_a_probability_at_the_edges() -> None:
    assert hypergeom_sf(0, 10, 3, 4) == pytest.approx(1.0)
    assert hypergeom_sf(4, 10, 3, 4) == 0.0
    assert hypergeom_sf(0, 0, 0, 0) == pytest.approx(1.0)


def test_large_fleets_stay_accurate_and_fast() -> None:
    started = time.perf_counter()
    p = fisher_greater(40, 10, 60, 1890)
    elapsed = time.perf_counter() - started
    assert p == pytest.approx(float(exact_tail(40, 10, 60, 1890)), rel=1e-8)
    assert 0.0 < p < 1e-30
    assert elapsed < 0.1


@pytest.mark.parametrize(("a", "b", "c", "d"), [(-1, 0, 0, 0), (0, 0, -2, 1)])
def test_negative_counts_are_rejected(a: int, b: int, c: int, d: int) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        fisher_greater(a, b, c, d)
