"""Built-in metrics: sample quality (FID, KID, PRDC), mode collapse and training stability (defined in the README).

Every metric reads one ``EvaluationContext``: features are extracted once per space and shared, so FID, KID and
PRDC of one evaluation cost one pass of the feature network. Each metric declares the facts of its keys
(``better``, ``labels``, ``units``, ``headline``: stored with every run and read by the tables and the report) and
names the feature space of its values in a ``<metric>_features`` text. The headline ranks order the leaderboards:
FID first, then modes covered, precision and recall (the four a terminal line shows), then the rest.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from lossbench.api import Metric, hookimpl
from lossbench.plan.seeding import derive_seed
from lossbench.scoring.frechet import (
    expected_modes_covered,
    frechet_distance_features,
    kernel_inception_distance,
    prdc,
)

LAST_WINDOW = 0.2  # "last window": the last 20% of logged history rows ...
LAST_WINDOW_MIN_ROWS = 2  # ... but at least two, so that a short run still has a spread
EARLY_WINDOW = 0.1  # "early": logged steps within the first 10% of the run's steps
OVERPOWERING_ACCURACY = 0.99
STARVED_GRADIENT = 0.01  # a critic overpowers when G's late gradient is below 1% of its early one
COLLAPSE_SHARE = 0.5  # collapsed: fewer modes than half of what a perfect sampler would cover


def _floor_pair(ctx, which: str = "default") -> tuple[np.ndarray, np.ndarray] | None:
    """Real and reference features of equal size for a real-vs-real floor, or None without a reference set.

    Only at the final evaluation: the floor depends on the sample size alone, and light evaluations stay cheap.
    """
    if not ctx.final or ctx.reference is None or len(ctx.reference) < 2:
        return None
    real, _fake = ctx.features(which)
    reference = ctx.reference_features(which)
    n = min(len(real), len(reference))
    return real[:n], reference[:n]


class FrechetDistance(Metric):
    """Fréchet distance between Gaussians fitted to real and generated features (FID in Inception space).

    ``fid``: generated vs real. ``fid_floor``: the same distance between the real set and a disjoint real set
    of the same size, the value a perfect generator would get at this sample size (FID is biased upwards at
    small n). ``fid_features``: the space, e.g. "inception-v3-pool3", "digits-classifier", "coordinates"; only
    the first is an Inception FID.
    """

    name = "fid"
    per_feature_space = True  # also computed in each space chosen with --feature-space
    curve = True
    better = {"fid": "lower", "fid_floor": "none"}  # the floor is the real data's, the same for every loss
    labels = {"fid": "FID", "fid_floor": "FID floor"}
    headline = {"fid": 1}

    def compute(self, ctx) -> dict[str, float | str]:
        real, fake = ctx.features("default")
        values: dict[str, float | str] = {
            "fid": frechet_distance_features(real, fake),
            "fid_features": ctx.feature_space("default").name,
        }
        pair = _floor_pair(ctx)
        if pair is not None:
            values["fid_floor"] = frechet_distance_features(*pair)
        return values


class KernelInceptionDistance(Metric):
    """KID: unbiased MMD² with the cubic polynomial kernel (Bińkowski et al. 2018), in FID's feature space.

    Unbiased, so about 0 for a perfect generator at any sample size. Averaged over seeded random subsets of at
    most 1,000 samples (``kid_std`` is their spread, given only when subsets were drawn); ``kid_floor`` is real vs
    a disjoint real set.
    """

    name = "kid"
    per_feature_space = True  # also computed in each space chosen with --feature-space
    better = {"kid": "lower", "kid_std": "none", "kid_floor": "none"}  # a spread and a floor: facts, not scores
    labels = {"kid": "KID", "kid_std": "KID std", "kid_floor": "KID floor"}
    headline = {"kid": 5}

    def compute(self, ctx) -> dict[str, float | str]:
        real, fake = ctx.features("default")
        seed = derive_seed("kid", ctx.spec.run_id)
        mean, std = kernel_inception_distance(real, fake, seed)
        values: dict[str, float | str] = {"kid": mean, "kid_features": ctx.feature_space("default").name}
        if not math.isnan(std):
            values["kid_std"] = std
        pair = _floor_pair(ctx)
        if pair is not None:
            values["kid_floor"] = kernel_inception_distance(*pair, seed)[0]
        return values


class PrecisionRecallDensityCoverage(Metric):
    """Precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020), k = 5.

    Precision/density: are generated samples realistic; recall/coverage: is the real data's variety reproduced.
    """

    name = "prdc"
    per_feature_space = True  # also computed in each space chosen with --feature-space
    better = {f"prdc_{part}": "higher" for part in ("precision", "recall", "density", "coverage")}
    labels = {f"prdc_{part}": part for part in ("precision", "recall", "density", "coverage")}
    headline = {"prdc_precision": 3, "prdc_recall": 4, "prdc_density": 7, "prdc_coverage": 8}

    def compute(self, ctx) -> dict[str, float | str]:
        real, fake = ctx.features("default")
        values: dict[str, float | str] = {f"prdc_{key}": value for key, value in prdc(real, fake).items()}
        values["prdc_features"] = ctx.feature_space("default").name
        return values


def mode_statistics(
    mode: torch.Tensor,
    high_quality: torch.Tensor,
    n_modes: int,
    true_weights: object | None = None,
    min_covering: int = 1,
    strict_share: float | None = None,
) -> dict[str, float]:
    """Mode-collapse numbers from per-sample mode assignments (VEEGAN's measures, as PacGAN computes them).

    - ``modes_covered``: modes with at least ``min_covering`` (1) high-quality samples assigned to them.
    - ``modes_covered_strict`` (with ``strict_share``): modes holding at least that share of the high-quality
      samples, so that 1 stray sample of 2,500 does not cover a mode.
    - ``modes_high_quality``: share of all samples that are high quality (mixtures: within 3 std of the nearest
      centre; images: what the dataset's classifier calls confident).
    - ``modes_kl``: KL(p_gen || p_true) where p_gen is the histogram of the high-quality samples over modes and
      p_true the true mode weights: ``true_weights`` (normalised) when given, else uniform, which is exact for
      the equal-weight mixtures and the protocol for digits and stacked digits (KL to uniform). When no sample is
      high quality it is the worst value, ``log(1 / min p_true)`` (``log n_modes`` for a uniform target: all
      mass on the least likely mode), so a sampler of nothing scorable counts as the worst, not as missing.
    - ``modes_covered_share``: ``modes_covered / n_modes``.
    - ``modes_collapsed``: 1 when fewer modes are covered than half of what a perfect sampler of the same
      number of samples would cover (``expected_modes_covered``), else 0.
    - ``modes_samples``: how many samples were scored.
    """
    mode, high_quality = mode.cpu().long(), high_quality.cpu().bool()
    counts = torch.bincount(mode[high_quality], minlength=n_modes)[:n_modes].double()
    covered = int((counts >= min_covering).sum())
    true = torch.ones(n_modes, dtype=torch.float64)
    if true_weights is not None:
        true = torch.as_tensor(true_weights, dtype=torch.float64).flatten()
        if true.shape != (n_modes,) or not bool((true > 0).all()):
            raise ValueError(f"mode_weights must be {n_modes} positive numbers, got {true.tolist()}")
    true = true / true.sum()
    if counts.sum() > 0:
        p = counts / counts.sum()
        mask = p > 0
        kl = float((p[mask] * (p[mask] / true[mask]).log()).sum())
    else:
        kl = worst_mode_kl(true)
    expected = expected_modes_covered(len(mode), n_modes)
    values = {
        "modes_covered": float(covered),
        "modes_covered_share": covered / n_modes,
        "modes_high_quality": float(high_quality.double().mean()) if len(mode) else math.nan,
        "modes_kl": kl,
        "modes_collapsed": float(covered < COLLAPSE_SHARE * expected),
        "modes_samples": float(len(mode)),
    }
    if strict_share is not None:
        total = float(counts.sum())
        strict = (counts >= strict_share * total) & (counts > 0)
        values["modes_covered_strict"] = float(strict.sum()) if total else 0.0
    return values


def worst_mode_kl(true: torch.Tensor) -> float:
    """The largest KL(p || true) over histograms p: all mass on the least likely mode, ``-log min true``."""
    return float(-torch.log(true.min()))


class ModeCoverage(Metric):
    """Modes covered, high-quality share and KL(generated || true) mode histogram (VEEGAN's measures).

    Mixtures follow their dataset's published protocol (``protocol``: PacGAN's for the built-ins): its sample
    count (2,500, the first of the final evaluation's samples, whatever the preset), exact nearest centre, high
    quality within 3 std, a mode covered by 1 such sample; plus ``modes_covered_strict``. Digits (10 modes) and
    stacked digits (1,000): through the dataset's classifier. Only for datasets that know their modes
    (``spec.n_modes`` and ``mode_of``); see ``mode_statistics``. A dataset whose modes are not equally likely
    may say so with a ``mode_weights`` attribute (n_modes positive numbers); the default is uniform.
    """

    name = "modes"
    curve = True
    better = {
        "modes_covered": "higher",
        "modes_covered_share": "higher",
        "modes_high_quality": "higher",
        "modes_kl": "lower",
        "modes_collapsed": "lower",
        "modes_covered_strict": "higher",
        "modes_samples": "none",
    }
    labels = {"modes_high_quality": "high-quality share", "modes_kl": "mode KL"}
    units = {"modes_kl": "nats"}
    headline = {"modes_covered": 2, "modes_high_quality": 6, "modes_kl": 9}

    def compute(self, ctx) -> dict[str, float]:
        n_modes = ctx.dataset.spec.n_modes
        if not n_modes:
            return {}
        protocol = getattr(ctx.dataset, "protocol", None)
        x = ctx.fake.x
        if protocol is not None and protocol.n_samples:
            x = x[: protocol.n_samples]
        assignment = ctx.dataset.mode_of(x)
        if assignment is None:
            return {}
        return mode_statistics(
            assignment.mode,
            assignment.high_quality,
            n_modes,
            getattr(ctx.dataset, "mode_weights", None),
            min_covering=getattr(protocol, "min_covering", 1),
            strict_share=getattr(protocol, "strict_share", None),
        )


class TargetReached(Metric):
    """Whether the run reached its dataset's training target (``Dataset.target``): 1, 0, or NaN when a value the
    target needs is missing; nothing when the dataset declares none or the target is not a bar for the run's
    model family (the built-in ones are GAN results). ``target_rule`` records the rule as text.

    Read by the report and ``lossbench show`` to tell an undertrained grid from a loss that fails where others
    succeed. Runs after the other metrics (``reads_values``) and reads their values.
    """

    name = "target"
    reads_values = True
    better = {"target_reached": "higher"}

    def compute(self, ctx) -> dict[str, float | str]:
        target = getattr(ctx.dataset, "target", None)
        if target is None or not ctx.final or (ctx.family is not None and ctx.family not in target.families):
            return {}
        return {"target_reached": target.reached(ctx.values), "target_rule": target.describe()}


def _last_window(frame: pd.DataFrame) -> pd.DataFrame:
    rows = max(LAST_WINDOW_MIN_ROWS, math.ceil(LAST_WINDOW * len(frame)))
    return frame.iloc[len(frame) - rows :]


def _finite(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def _scores_are_logits(history: pd.DataFrame) -> bool:
    """Whether the run logged probabilities: ``d_fake`` is logged only for losses whose scores are logits."""
    return len(_finite(history["d_fake"])) > 0


def stability_statistics(
    history: pd.DataFrame, total_steps: int, diverged_at: int | None, curves: pd.DataFrame | None
) -> dict[str, float | str]:
    """Per-run stability numbers from the training history (columns of ``train.HISTORY_COLUMNS``).

    "Last window" = the last 20% of logged history rows (at least two); "early" = logged steps within the first
    10% of the run's steps. Values that are not finite (the row logged at divergence) are left out. The
    definitions are in docs/stability.md; in short:

    - ``stability_diverged``: 1 if a loss became non-finite, else 0; ``stability_diverged_step``: that step,
      or ``total_steps`` when the run did not diverge (it lasted to the end), so later is better throughout.
    - ``stability_scores``: "logits" (D's scores are logits: sigmoid is a probability) or "raw" (critics,
      least squares, hinge). Which of the flags below apply depends on it.
    - ``stability_equilibrium_gap``: logits only: |mean sigmoid(D(fake)) - 0.5| over the last window (0 at the
      Goodfellow equilibrium). NaN, "not applicable", for raw scores (a critic has no 0.5) and for VAEs.
    - ``stability_d_overpowering``: 1 when D separates real from fake perfectly over the last window AND the
      generator's signal is gone. Logits: mean accuracy at score 0 >= 0.99 (D is sure every fake is fake, the
      generator's gradient through sigmoid is saturated). Raw scores: accuracy against the midpoint of the
      two mean scores >= 0.99 (separated means) and the median ‖∇G‖ over the last window < 1% of its early
      median, since a critic with separated means and a healthy generator is just a critic. NaN when a number
      it needs was not logged.
    - ``stability_g_grad_early``: median ‖∇G‖ over the early steps: a saturating loss (minimax) starves G.
      ``lossbench.results.tables.grad_ratio`` divides it by the non-saturating loss's on the same seed, only where the
      two are on the same scale (``stability_scores`` "logits" for both). Both are shown unranked: gradient
      scales differ between losses, so a larger gradient is not better as such.
    - ``stability_loss_oscillation``: std of the generator loss over the last window (NaN with < 2 values).
    - ``stability_fid_variability``: sample std of the FID curve (light evaluations during training) over its
      last half, at least its last 2 evaluations (NaN with fewer than 2).
    """
    values: dict[str, float | str] = {
        "stability_diverged": float(diverged_at is not None),
        "stability_diverged_step": float(diverged_at) if diverged_at is not None else float(total_steps),
    }
    if history is None or history.empty:
        values.update(
            {
                key: math.nan
                for key in (
                    "stability_equilibrium_gap",
                    "stability_d_overpowering",
                    "stability_g_grad_early",
                    "stability_loss_oscillation",
                )
            }
        )
    else:
        history = history.sort_values("step")
        logits = _scores_are_logits(history)
        values["stability_scores"] = "logits" if logits else "raw"
        last = _last_window(history)
        d_fake = _finite(last["d_fake"])
        values["stability_equilibrium_gap"] = abs(float(d_fake.mean()) - 0.5) if len(d_fake) else math.nan
        early_limit = max(1.0, EARLY_WINDOW * total_steps)
        early = _finite(history.loc[history["step"] <= early_limit, "grad_norm_g"])
        accuracy = _finite(last["d_accuracy"])
        separated = float(accuracy.mean() >= OVERPOWERING_ACCURACY) if len(accuracy) else math.nan
        if logits or math.isnan(separated) or separated == 0.0:
            values["stability_d_overpowering"] = separated
        else:
            late = _finite(last["grad_norm_g"])
            values["stability_d_overpowering"] = (
                float(np.median(late) < STARVED_GRADIENT * np.median(early)) if len(late) and len(early) else math.nan
            )
        values["stability_g_grad_early"] = float(np.median(early)) if len(early) else math.nan
        values["stability_loss_oscillation"] = _std(_finite(last["g_loss"]))
    fid_curve = np.array([])
    if curves is not None and not curves.empty:
        fid_curve = _finite(curves[curves["key"] == "fid"].sort_values("step")["value"])
    tail = fid_curve[-max(2, math.ceil(len(fid_curve) / 2)) :]
    values["stability_fid_variability"] = _std(tail)
    return values


class Stability(Metric):
    """Training stability from the run's history: divergence, equilibrium gap, D overpowering, oscillation.

    Also the early generator gradient (saturation) and FID-curve variability; definitions in
    ``stability_statistics``. Computed for diverged runs too (it needs no samples).
    """

    name = "stability"
    needs_samples = False
    better = {
        "stability_diverged": "lower",
        "stability_diverged_step": "higher",
        "stability_equilibrium_gap": "lower",
        "stability_d_overpowering": "lower",
        "stability_g_grad_early": "none",
        "stability_g_grad_ratio": "none",
        "stability_loss_oscillation": "lower",
        "stability_fid_variability": "lower",
    }

    def compute(self, ctx) -> dict[str, float | str]:
        return stability_statistics(ctx.history, int(ctx.spec.steps), ctx.diverged_at, ctx.curves)


@hookimpl
def register_metrics(register) -> None:
    for metric in (
        FrechetDistance(),
        KernelInceptionDistance(),
        PrecisionRecallDensityCoverage(),
        ModeCoverage(),
        Stability(),
        TargetReached(),
    ):
        register(metric)
