"""The paired signed-rank test: hand-made cases with known p-values, and the same p as ``scipy.stats.wilcoxon``
(``zero_method="wilcox"``, two-sided) on every path, ties and zeros included."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from lossbench.results.signed_rank import EXACT_LIMIT, paired_test, signed_rank_sum


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        ([1.0, 2.0, 3.0], 2 / 8),  # all positive: the most extreme of 2^3 sign assignments, both tails
        ([-1.0, -2.0, -3.0, -4.0, -5.0], 2 / 32),  # the smallest p five pairs can give
        ([0.0, 0.0, 0.0], 1.0),  # no difference at all
        ([], math.nan),
    ],
)
def test_hand_made_cases(differences: list[float], expected: float) -> None:
    p = paired_test(np.array(differences))
    if math.isnan(expected):
        assert math.isnan(p)
    else:
        assert p == pytest.approx(expected, abs=1e-15)


def test_w_plus_of_three_mixed_signs() -> None:
    """[1, -2, 3]: W+ = 1 + 3 = 4; the null W+ over the 8 assignments is 0,1,2,3,3,4,5,6: P(<= 4) = 6/8,
    P(>= 4) = 3/8, so p = 2 * 3/8."""
    assert paired_test(np.array([1.0, -2.0, 3.0])) == pytest.approx(0.75, abs=1e-15)
    assert signed_rank_sum(np.array([1.0, -2.0, 3.0])) == 1 - 2 + 3


def _scipy_p(differences: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


@pytest.mark.parametrize("kind", ["continuous", "small integers (ties and zeros)", "rounded (ties)"])
def test_the_same_p_as_scipy(kind: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(1, EXACT_LIMIT + 4))  # past the limit too, where scipy itself answers
        if kind == "continuous":
            differences = rng.normal(size=n)
        elif kind.startswith("small"):
            differences = rng.integers(-3, 4, size=n).astype(float)
        else:
            differences = np.round(rng.normal(size=n), 1)
        if not np.any(differences != 0):
            continue
        assert paired_test(differences) == pytest.approx(_scipy_p(differences), abs=1e-12), differences


def test_signed_rank_sum_uses_average_ranks_of_the_non_zero_differences() -> None:
    # |d| of the non-zero ones: 1, 1, 2 -> ranks 1.5, 1.5, 3; signs +, -, +
    assert signed_rank_sum(np.array([1.0, 0.0, -1.0, 2.0])) == 1.5 - 1.5 + 3
