"""The paired Wilcoxon signed-rank test of a grid's comparisons, exact by enumeration for the few seeds grids have.

Why not ``scipy.stats.wilcoxon`` every time: importing ``scipy.stats`` costs about 0.6 s, a third of what
``lossbench show`` may take in all, and a grid's comparisons have a handful of seeds. For n <= ``EXACT_LIMIT``
pairs scipy's ``wilcoxon`` (``zero_method="wilcox"``, ``method="auto"``) computes the same test by enumeration:
the exact null distribution without ties or zeros, otherwise an exhaustive sign-flip permutation test (2^n <
its 9,999 resamples); both are the distribution of W+ over the 2^n sign assignments, which this module
enumerates. Larger samples go to scipy itself. ``tests/test_signed_rank.py`` checks every path against scipy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

EXACT_LIMIT = 13  # scipy enumerates up to here too: 2^13 sign assignments < 9,999 permutation resamples
RELATIVE_TIE = 100 * float(np.finfo(float).eps)  # scipy's permutation_test: null values this close count as equal


def signed_ranks(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero differences' signs and the average ranks of their absolute values (Wilcoxon's zero rule)."""
    nonzero = differences[differences != 0]
    return np.sign(nonzero), pd.Series(np.abs(nonzero)).rank(method="average").to_numpy()


def signed_rank_sum(differences: np.ndarray) -> float:
    """W+ - W- of the signed-rank test (zeros dropped): below 0 when the first loss is better (lower)."""
    signs, ranks = signed_ranks(np.asarray(differences, dtype=float))
    return float((signs * ranks).sum())


def paired_test(differences: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (exact for small n); 1.0 when every difference is 0.

    Exact and distribution-free, hence honest with few seeds: with n non-zero pairs the smallest attainable
    p is 2 / 2^n, so fewer than 6 seeds can never reach 0.05 (see ``tables.min_seeds``).
    """
    differences = np.asarray(differences, dtype=float)
    if len(differences) == 0:
        return math.nan
    if not np.any(differences != 0):
        return 1.0
    if len(differences) > EXACT_LIMIT:
        from scipy import stats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)
    signs, ranks = signed_ranks(differences)
    observed = ranks[signs > 0].sum()
    # W+ under every assignment of signs to the ranks (rows: the 2^n assignments, bit j: rank j positive)
    flips = (np.arange(2 ** len(ranks))[:, None] >> np.arange(len(ranks))) & 1
    null = flips @ ranks
    tolerance = RELATIVE_TIE * abs(observed)  # as scipy's permutation_test; below 1, so integer W+ is exact
    below, above = np.mean(null <= observed + tolerance), np.mean(null >= observed - tolerance)
    return float(min(1.0, 2 * min(below, above)))
