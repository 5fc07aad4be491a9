r"""Small exact statistics for experiment reports: a trend test across a sweep and a vote over
independent tests.

* :func:`jonckheere_test`: the exact one-sided Jonckheere-Terpstra test of a monotone trend of a
  quantity across the ordered levels of a knob (several repetitions per level), with
  :func:`jonckheere_null` its exact null distribution and :func:`trend` the direction it reads;
* :func:`verdict`: the majority rule that judges a claim from the trends of :math:`P`
  independent (benchmark, model) pairs, :func:`votes_needed` its threshold and
  :func:`false_positive_bound` its false-positive rate under no effect;
* :func:`mean_std`: mean and sample standard deviation of a few repetitions.

The harmonic experiment (``manifold-vae reproduce harmonic``) judges each claim of Camuto &
Willetts with them: 6 pairs, level :math:`\alpha = 0.05`, so a claim needs 3 of 6.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "ALPHA",
    "TrendTest",
    "false_positive_bound",
    "jonckheere_null",
    "jonckheere_test",
    "mean_std",
    "trend",
    "verdict",
    "votes_needed",
]

#: Default significance level of each one-sided test.
ALPHA = 0.05


class TrendTest(NamedTuple):
    """Result of :func:`jonckheere_test`: the statistic and both one-sided p-values."""

    #: :math:`J`, the number of increasing pairs across levels (ties count 1/2).
    statistic: float
    #: :math:`P(J' \le J)` under no effect: small for a decreasing trend.
    p_lower: float
    #: :math:`P(J' \ge J)` under no effect: small for an increasing trend.
    p_higher: float


def _check_groups(groups: Sequence[Sequence[float]]) -> None:
    if len(groups) < 2:
        raise ValueError(f"groups: need at least 2 sweep levels, got {len(groups)}")
    for values in groups:
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"groups: values must be finite, got {list(values)}")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")


@functools.cache
def jonckheere_null(sizes: tuple[int, ...]) -> tuple[int, ...]:
    r"""Exact null distribution of the Jonckheere-Terpstra statistic for untied data.

    Under no effect every ordering of the pooled values over the sweep levels is equally
    likely. Placing the values from the smallest up, a value of level :math:`l` adds the
    number of values already placed at lower levels; a recursion over how many values of each
    level have been placed counts the orderings with each statistic.

    Parameters
    ----------
    sizes : tuple of int
        The number of values at each sweep level, in sweep order.

    Returns
    -------
    tuple of int
        ``counts[j]``: the number of distinct orderings with statistic ``j``; they sum to the
        multinomial coefficient :math:`N! / \prod_l n_l!`.

    Examples
    --------
    >>> jonckheere_null((1, 1))  # two values: increasing or not
    (1, 1)
    """
    table: dict[tuple[int, ...], dict[int, int]] = {tuple(0 for _ in sizes): {0: 1}}
    for _ in range(sum(sizes)):
        grown: dict[tuple[int, ...], dict[int, int]] = {}
        for placed, counts in table.items():
            for level, size in enumerate(sizes):
                if placed[level] == size:
                    continue
                gain = sum(placed[:level])
                state = (*placed[:level], placed[level] + 1, *placed[level + 1 :])
                target = grown.setdefault(state, {})
                for j, c in counts.items():
                    target[j + gain] = target.get(j + gain, 0) + c
        table = grown
    (final,) = table.values()
    return tuple(final.get(j, 0) for j in range(max(final) + 1))


def jonckheere_test(groups: Sequence[Sequence[float]]) -> TrendTest:
    r"""Exact one-sided Jonckheere-Terpstra tests of a monotone trend across a sweep.

    .. math::

        J = \sum_{l < l'} \sum_{a \in G_l} \sum_{b \in G_{l'}}
            \bigl(\mathbb 1[b > a] + \tfrac12 \mathbb 1[b = a]\bigr),

    the number of pairs of repetitions at two sweep levels that increase with the knob (Kendall's
    tau between knob and value, ties within a level not counted). Large :math:`J`: the quantity
    rises with the knob. The p-values are exact under no effect for untied values (the
    measurements are continuous; a tie counts 1/2 against the untied null distribution). With
    two levels this is the Mann-Whitney test.

    Parameters
    ----------
    groups : sequence of sequences of float
        The repetitions' values at each sweep level, in increasing knob order (at least two
        levels, finite values); empty levels (every member excluded) are dropped, and with
        fewer than two levels left there is nothing to test: ``(nan, 1, 1)``.

    Returns
    -------
    TrendTest
        ``(J, p_lower, p_higher)``: :math:`P(J' \le J)` and :math:`P(J' \ge J)` under no
        effect.

    Examples
    --------
    >>> jonckheere_test([[0.0, 0.1, 0.2], [1.0, 1.1, 1.2]]).p_higher  # 1 / C(6, 3)
    0.05
    """
    _check_groups(groups)
    kept = [list(g) for g in groups if g]
    if len(kept) < 2:
        return TrendTest(math.nan, 1.0, 1.0)
    j = 0.0
    for low in range(len(kept)):
        for high in range(low + 1, len(kept)):
            for a in kept[low]:
                for b in kept[high]:
                    j += 1.0 if b > a else 0.5 if b == a else 0.0
    counts = jonckheere_null(tuple(len(g) for g in kept))
    total = sum(counts)
    p_lower = sum(c for k, c in enumerate(counts) if k <= j) / total
    p_higher = sum(c for k, c in enumerate(counts) if k >= j) / total
    return TrendTest(j, p_lower, p_higher)


def trend(groups: Sequence[Sequence[float]], alpha: float = ALPHA) -> str:
    r"""``"lower"``/``"higher"`` when the one-sided trend test is significant at ``alpha``.

    Parameters
    ----------
    groups : sequence of sequences of float
        The repetitions' values at each sweep level, in increasing knob order
        (:func:`jonckheere_test`).
    alpha : float
        Significance level of each one-sided test, in :math:`(0, 1/2)`.

    Returns
    -------
    str
        ``"lower"`` when :math:`P(J' \le J) \le \alpha`, else ``"higher"`` when
        :math:`P(J' \ge J) \le \alpha`, else ``"no significant trend"``.
    """
    _check_alpha(alpha)
    _, p_lower, p_higher = jonckheere_test(groups)
    if p_lower <= alpha:
        return "lower"
    if p_higher <= alpha:
        return "higher"
    return "no significant trend"


def votes_needed(pairs: int) -> int:
    r"""Significant pairs a claim needs: at least half of them and at least one,
    :math:`\max(1, \lceil P/2 \rceil)`."""
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 0:
        raise ValueError(f"pairs must be an integer >= 0, got {pairs!r}")
    return max(1, math.ceil(pairs / 2))


def verdict(lower: int, higher: int, pairs: int) -> str:
    """The verdict on a claim that a knob lowers a quantity, from its pairs' significant trends.

    **supported** when at least :func:`votes_needed` of the ``pairs`` show a significant
    decrease and none a significant increase, **contradicted** in the mirror case, else
    **not supported**.

    Parameters
    ----------
    lower, higher : int
        Pairs with a significant decrease / increase along the sweep.
    pairs : int
        All (benchmark, model) pairs of the claim.

    Examples
    --------
    >>> verdict(3, 0, 6), verdict(2, 0, 6), verdict(0, 3, 6)
    ('supported', 'not supported', 'contradicted')
    """
    if min(lower, higher) < 0 or lower + higher > pairs:
        raise ValueError(
            f"lower, higher: need 0 <= lower + higher <= pairs, got {lower}, {higher}, {pairs}"
        )
    if lower >= votes_needed(pairs) and higher == 0:
        return "supported"
    if higher >= votes_needed(pairs) and lower == 0:
        return "contradicted"
    return "not supported"


def false_positive_bound(pairs: int, alpha: float = ALPHA) -> float:
    r"""Upper bound on the chance that :func:`verdict` calls a claim "supported" under no effect.

    .. math::

        P(\text{supported}) \le P\bigl(\mathrm{Bin}(P, \alpha) \ge \lceil P/2 \rceil\bigr)

    for :math:`P` independent pairs whose exact tests have size at most :math:`\alpha` (the
    condition "none significant the other way" only lowers it). The same bounds
    "contradicted".

    Parameters
    ----------
    pairs : int
        :math:`P`.
    alpha : float
        Size of each one-sided test, in :math:`(0, 1/2)`.
    """
    _check_alpha(alpha)
    need = votes_needed(pairs)
    return math.fsum(
        math.comb(pairs, k) * alpha**k * (1.0 - alpha) ** (pairs - k)
        for k in range(need, pairs + 1)
    )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    r"""Mean and sample standard deviation (ddof = 1) of a few repetitions.

    .. math::

        \bar v = \frac1n \sum_i v_i, \qquad
        s = \sqrt{\frac{1}{n-1} \sum_i (v_i - \bar v)^2},

    with :math:`s = 0` for one value, and exactly :math:`(v, 0)` when all values equal
    :math:`v` (the floating-point mean of equal values may differ from them in the last bit).

    Parameters
    ----------
    values : sequence of float
        At least one value.
    """
    n = len(values)
    if n == 0:
        raise ValueError("values must not be empty")
    if all(v == values[0] for v in values):
        return float(values[0]), 0.0
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
