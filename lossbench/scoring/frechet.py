"""The maths of sample-quality metrics on feature vectors: Fréchet distance, KID and PRDC.

Pure numpy/scipy/scikit-learn on ``(N, d)`` float arrays, so every formula can be checked against closed forms
without a network in the loop. Feature extraction lives in ``lossbench.scoring.evaluate``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import blas

KID_SUBSETS = 10
KID_SUBSET_SIZE = 1000
PRDC_K = 5
PRDC_CHUNK = 1024  # real rows per block of the real x fake distance matrix (bounds memory at large N)


def _check_features(x: np.ndarray, what: str, min_rows: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{what} features must be a 2-d array (samples, features), got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{what} features: need at least {min_rows} samples, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} features contain NaN or infinity (non-finite samples?)")
    return x


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of ``(N, d)`` features, like pytorch-fid's ``np.cov(rowvar=False)``.

    ``xc.T @ xc`` on one buffer lets BLAS use a symmetric rank-k update (half the work of ``np.cov``).
    """
    x = _check_features(features, "Gaussian statistics of")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc
    sigma /= x.shape[0] - 1
    return mu, sigma


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix through its eigendecomposition (negative rounding clipped)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((Σ1 Σ2)^½) without ``scipy.linalg.sqrtm``.

    For PSD Σ1 = L Lᵀ, the eigenvalues of Σ1 Σ2 equal those of the symmetric PSD matrix Lᵀ Σ2 L, so the trace
    is the sum of the square roots of ``eigvalsh(Lᵀ Σ2 L)``: real, stable, and about 5x cheaper than a general
    matrix square root. Cholesky needs Σ1 positive definite; a singular Σ1 (N <= d, constant features) falls
    back to its eigendecomposition square root.
    """
    try:
        factor = np.linalg.cholesky(sigma1)
        # Lᵀ Σ2 L with two triangular multiplies: half the flops of two general ones
        inner = blas.dtrmm(1.0, factor, blas.dtrmm(1.0, factor, sigma2, side=1, lower=1), lower=1, trans_a=1)
    except np.linalg.LinAlgError:
        factor = _psd_sqrt(sigma1)
        inner = factor.T @ sigma2 @ factor
    inner = (inner + inner.T) / 2
    eigenvalues = np.linalg.eigvalsh(inner)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, Σ1) and N(mu2, Σ2):

    ``|mu1 - mu2|² + tr Σ1 + tr Σ2 - 2 tr((Σ1 Σ2)^½)``, the quantity FID reports. Works for d = 1 and on any
    SciPy (pytorch-fid 0.3.0's version calls ``sqrtm(..., disp=False)``, which SciPy 1.18 removed). Rounding can
    push an exact zero a hair below it, so the result is clipped at 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"Fréchet distance: mismatched statistics (means {mu1.shape} and {mu2.shape}, "
            f"covariances {sigma1.shape} and {sigma2.shape})"
        )
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def _frechet_distance_few_samples(x: np.ndarray, y: np.ndarray) -> float:
    """The same distance computed from the samples, for N <= d (small evaluations in 2,048-d Inception space).

    With centred data A (n1 x d) and B (n2 x d), Σ1 Σ2 = AᵀA BᵀB / ((n1-1)(n2-1)), whose non-zero eigenvalues are
    the squared singular values of A Bᵀ (n1 x n2). So tr((Σ1 Σ2)^½) = ‖A Bᵀ‖_* / sqrt((n1-1)(n2-1)): no d x d
    matrix is ever formed, and no square of the data is taken.
    """
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    a, b = x - mu_x, y - mu_y
    scale_x, scale_y = len(x) - 1, len(y) - 1
    diff = mu_x - mu_y
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(scale_x * scale_y)
    value = diff @ diff + (a * a).sum() / scale_x + (b * b).sum() / scale_y - 2 * trace_sqrt
    return max(float(value), 0.0)


def frechet_distance_features(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when they are Inception features).

    Fewer samples than dimensions: computed from the samples (``_frechet_distance_few_samples``); otherwise
    from the means and covariances (``frechet_distance``). Both give the same number.
    """
    x, y = _check_features(x, "first"), _check_features(y, "second")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Fréchet distance: feature widths differ ({x.shape[1]} and {y.shape[1]})")
    if max(len(x), len(y)) <= x.shape[1]:
        return _frechet_distance_few_samples(x, y)
    return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel k(a, b) = (a·b / d + 1)³ (Bińkowski et al. 2018).

    Unbiased: the diagonal k(a, a) terms are left out of the within-set means, so the expectation is exactly 0
    when both sets come from one distribution (values can be slightly negative).
    """
    d = x.shape[1]

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        k = a @ b.T / d + 1
        return k * k * k  # 10x faster than k ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(
    x: np.ndarray, y: np.ndarray, seed: int, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE
) -> tuple[float, float]:
    """KID: mean and std of the unbiased polynomial MMD² over random subsets (seeded), as in the KID paper.

    When both sets fit in one subset the MMD² is computed once on all samples and the std is NaN (there is no
    spread of subsets to report; resampling would only repeat the same value).
    """
    x, y = _check_features(x, "first"), _check_features(y, "second")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"KID: feature widths differ ({x.shape[1]} and {y.shape[1]})")
    size = min(subset_size, len(x), len(y))
    if size == len(x) == len(y):
        return polynomial_mmd2_unbiased(x, y), math.nan
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if subsets > 1 else math.nan


def _kth_neighbour_distance(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the row itself, at distance 0, is not counted)."""
    from sklearn.neighbors import NearestNeighbors  # lazy: scikit-learn costs ~1 s per worker process

    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(x)
    distances, _ = neighbours.kneighbors(x)
    return distances[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) with k neighbours.

    Each sample's neighbourhood is the ball reaching its k-th nearest neighbour in its own set. precision: share
    of fake samples inside some real ball; recall: share of real samples inside some fake ball; density: mean
    number of real balls holding a fake sample, divided by k (about 1 when the sets match, unbounded); coverage:
    share of real balls that hold at least one fake sample. Same strict inequalities as the authors' ``prdc``
    package. The real x fake distances are computed in blocks so memory stays bounded at large N.
    """
    real, fake = _check_features(real, "real", k + 1), _check_features(fake, "fake", k + 1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"PRDC: feature widths differ ({real.shape[1]} and {fake.shape[1]})")
    from sklearn.metrics.pairwise import euclidean_distances  # lazy, as above

    real_radii = _kth_neighbour_distance(real, k)
    fake_radii = _kth_neighbour_distance(fake, k)
    fake_inside_real = np.zeros(len(fake), dtype=bool)
    real_balls_per_fake = np.zeros(len(fake), dtype=np.int64)
    real_inside_fake = np.zeros(len(real), dtype=bool)
    real_ball_hit = np.zeros(len(real), dtype=bool)
    for start in range(0, len(real), PRDC_CHUNK):
        stop = min(start + PRDC_CHUNK, len(real))
        distances = euclidean_distances(real[start:stop], fake)
        inside = distances < real_radii[start:stop, None]
        fake_inside_real |= inside.any(axis=0)
        real_balls_per_fake += inside.sum(axis=0)
        real_inside_fake[start:stop] = (distances < fake_radii[None, :]).any(axis=1)
        real_ball_hit[start:stop] = inside.any(axis=1)
    return {
        "precision": float(fake_inside_real.mean()),
        "recall": float(real_inside_fake.mean()),
        "density": float(real_balls_per_fake.mean() / k),
        "coverage": float(real_ball_hit.mean()),
    }


def expected_modes_covered(n_samples: int, n_modes: int) -> float:
    """Modes a perfect sampler of equally weighted modes is expected to hit with ``n_samples`` draws.

    M (1 - (1 - 1/M)^n): the yardstick for calling a run collapsed, fair to small evaluations of many modes
    (500 perfect samples of 1,000 stacked-digit modes hit about 394, not 1,000).
    """
    if n_modes <= 0 or n_samples <= 0:
        return 0.0
    return n_modes * -math.expm1(n_samples * math.log1p(-1.0 / n_modes)) if n_modes > 1 else 1.0
