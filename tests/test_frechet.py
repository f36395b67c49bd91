"""Fréchet distance, KID and PRDC maths against closed forms, hand-computed cases and pytorch-fid."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from lossbench.scoring.frechet import (
    expected_modes_covered,
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    kernel_inception_distance,
    polynomial_mmd2_unbiased,
    prdc,
)


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's own function; skipped where it no longer runs (SciPy >= 1.18 removed sqrtm's ``disp``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    except TypeError as exc:
        pytest.skip(f"pytorch-fid's calculate_frechet_distance does not run on this SciPy: {exc}")


def test_unit_mean_shift_in_2048_dimensions_gives_2048() -> None:
    d = 2048
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == pytest.approx(2048, rel=1e-9)


def test_one_dimensional_closed_form() -> None:
    # N(0, 1) vs N(1, 4): (0 - 1)^2 + (1 - 2)^2 = 2
    assert frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([1.0]), np.array([[4.0]])) == pytest.approx(2)
    assert frechet_distance(0.0, 1.0, 1.0, 4.0) == pytest.approx(2)  # scalars are 1-d statistics


def test_correlated_covariance_against_identity() -> None:
    sigma = np.array([[2.0, 1.0], [1.0, 2.0]])  # eigenvalues 3 and 1
    expected = 6 - 2 * (1 + math.sqrt(3))
    assert frechet_distance(np.zeros(2), sigma, np.zeros(2), np.eye(2)) == pytest.approx(expected, rel=1e-12)


def test_symmetric_and_zero_for_identical_statistics() -> None:
    rng = np.random.default_rng(0)
    for d in (1, 5, 64):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)
        assert frechet_distance(mu1, s1, mu2, s2) > 0
        assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9 * d)


def test_sampled_gaussians_converge_to_closed_form() -> None:
    # diagonal covariances commute: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 = 1 + 1 + 1 = 3
    mu1, mu2 = np.array([0.0, 0.0]), np.array([1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0]), np.array([4.0, 1.0])
    closed = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum())
    assert closed == 3.0
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(closed)
    errors = []
    for n in (100, 1_000, 10_000, 100_000):
        rng = np.random.default_rng(n)
        x = mu1 + np.sqrt(var1) * rng.standard_normal((n, 2))
        y = mu2 + np.sqrt(var2) * rng.standard_normal((n, 2))
        errors.append(abs(frechet_distance_features(x, y) - closed))
    assert errors[-1] < 0.03
    assert errors[-1] < errors[0] / 5


def test_agrees_with_pytorch_fid_full_rank_and_singular() -> None:
    rng = np.random.default_rng(1)
    for n, d in ((500, 32), (12, 64)):  # the second has rank-deficient covariances (n < d), as at small n
        x = rng.standard_normal((n, d))
        y = 1.3 * rng.standard_normal((n, d)) + 0.2
        stats_x, stats_y = gaussian_stats(x), gaussian_stats(y)
        np.testing.assert_allclose(stats_x[1], np.cov(x, rowvar=False), rtol=1e-12, atol=1e-12)  # pytorch-fid's cov
        ours = frechet_distance(*stats_x, *stats_y)
        assert ours == pytest.approx(pytorch_fid_distance(*stats_x, *stats_y), rel=1e-6)


def test_sample_form_and_statistics_form_agree() -> None:
    rng = np.random.default_rng(7)
    for n1, n2, d in ((5, 9, 40), (40, 30, 40), (300, 200, 10)):
        x, y = rng.standard_normal((n1, d)), 0.7 * rng.standard_normal((n2, d)) + 0.3
        from_stats = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
        # rank-deficient covariances: the statistics form takes square roots of rounding noise (~1e-8)
        assert frechet_distance_features(x, y) == pytest.approx(from_stats, rel=1e-6)


def test_one_dimensional_features_work() -> None:
    # pytorch-fid's function fails for 1-d features; the closed form is (m1 - m2)^2 + (s1 - s2)^2
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 300), rng.normal(2, 3, 400)
    expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert frechet_distance_features(x[:, None], y[:, None]) == pytest.approx(expected, rel=1e-10)


def test_bad_features_are_named() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance_features(np.full((10, 3), np.nan), x)
    with pytest.raises(ValueError, match="widths differ"):
        frechet_distance_features(x, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance_features(x[:1], x)


def test_unbiased_polynomial_mmd_matches_its_definition() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((5, 3)) + 1

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_about_zero_for_one_distribution_and_positive_for_shifted() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((1500, 16)), rng.standard_normal((1500, 16))
    same, _ = kernel_inception_distance(x, y, seed=0)
    shifted, spread = kernel_inception_distance(x, y + 0.5, seed=0)
    assert abs(same) < 0.01
    assert shifted > 0.2 and shifted > 50 * abs(same)
    assert spread > 0  # 1,500 samples: averaged over random subsets of 1,000
    assert kernel_inception_distance(x, y + 0.5, seed=0) == (shifted, spread)  # seeded
    small_same, small_spread = kernel_inception_distance(x[:300], y[:300], seed=0)
    assert abs(small_same) < 0.05 and math.isnan(small_spread)  # one subset: computed once, no spread


def test_prdc_identical_sets() -> None:
    x = np.random.default_rng(5).standard_normal((400, 8))
    result = prdc(x, x.copy())
    assert result["precision"] == 1.0 and result["recall"] == 1.0 and result["coverage"] == 1.0


def test_prdc_hand_computed_case() -> None:
    # k=1. Real 0,1,2,3 (radius 1 each); fake 0.5 and 10 (radius 9.5 each).
    real, fake = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[0.5], [10.0]])
    result = prdc(real, fake, k=1)
    assert result["precision"] == 0.5  # 0.5 lies in real balls, 10 does not
    assert result["recall"] == 1.0  # every real point is within 9.5 of a fake one
    assert result["density"] == 1.0  # 0.5 is in 2 real balls, 10 in none: (2 + 0) / 2 / k
    assert result["coverage"] == 0.5  # the balls of 0 and 1 hold a fake sample, those of 2 and 3 do not


def test_prdc_half_the_support_covered() -> None:
    rng = np.random.default_rng(6)
    centres = np.array([[-10.0, 0.0], [10.0, 0.0]])
    real = centres[rng.integers(0, 2, 2000)] + rng.standard_normal((2000, 2))
    fake = centres[0] + rng.standard_normal((2000, 2))  # only the left blob
    result = prdc(real, fake)
    assert result["coverage"] == pytest.approx(0.5, abs=0.05)
    assert result["recall"] == pytest.approx(0.5, abs=0.05)
    assert result["precision"] > 0.95


def test_expected_modes_covered() -> None:
    assert expected_modes_covered(2500, 8) == pytest.approx(8, abs=1e-6)
    assert expected_modes_covered(1, 1000) == pytest.approx(1)
    assert expected_modes_covered(500, 1000) == pytest.approx(1000 * (1 - 0.999**500))
