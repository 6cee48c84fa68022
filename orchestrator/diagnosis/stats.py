"""Exact small-sample statistics for network patterns: the hypergeometric law and Fisher's test.

A 2x2 table compares one group with the rest of the fleet:

              has the problem   does not
    group           a               b
    rest            c               d

Under "the group is no different", the number of problem devices that land in the group follows a
hypergeometric law: population a+b+c+d, a+c devices with the problem, a+b drawn into the group.
Pure functions, computed in log space with `math.lgamma` so fleets of thousands stay cheap.
"""

from __future__ import annotations

import math


def _log_comb(n: int, k: int) -> float:
    """log of the binomial coefficient C(n, k) for 0 <= k <= n."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def hypergeom_pmf(k: int, population: int, successes: int, draws: int) -> float:
    """P(X = k) when drawing `draws` items without replacement from `population` holding `successes`."""
    _check_counts(k=k, population=population, successes=successes, draws=draws)
    if successes > population or draws > population:
        raise ValueError("successes and draws cannot exceed the population")
    if k > successes or k > draws or draws - k > population - successes:
        return 0.0
    log_p = (
        _log_comb(successes, k)
        + _log_comb(population - successes, draws - k)
        - _log_comb(population, draws)
    )
    return math.exp(log_p)


def hypergeom_sf(k: int, population: int, successes: int, draws: int) -> float:
    """P(X >= k) for the same draw: the upper tail, including k itself."""
    _check_counts(k=k, population=population, successes=successes, draws=draws)
    low = max(k, draws - (population - successes), 0)
    high = min(draws, successes)
    tail = math.fsum(hypergeom_pmf(i, population, successes, draws) for i in range(low, high + 1))
    return min(1.0, tail)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p-value that the group's problem rate exceeds the rest's.

    The probability of a group at least as bad as `a` of `a+b` when the rest has `c` of `c+d`,
    if problems fell on devices regardless of group.
    """
    _check_counts(a=a, b=b, c=c, d=d)
    return hypergeom_sf(a, a + b + c + d, a + c, a + b)


def fisher_mid_p_greater(a: int, b: int, c: int, d: int) -> float:
    """Lancaster's mid-p version of `fisher_greater`: P(X > a) + P(X = a) / 2.

    The plain exact test is conservative on small fleets because the statistic is discrete (its
    real false-positive rate sits well below the nominal level); mid-p removes most of that bias.
    """
    _check_counts(a=a, b=b, c=c, d=d)
    population, successes, draws = a + b + c + d, a + c, a + b
    at_least = hypergeom_sf(a, population, successes, draws)
    exactly = hypergeom_pmf(a, population, successes, draws)
    return max(0.0, at_least - exactly / 2)
