"""Stability flags on synthetic histories with known answers, and on a real run that diverges."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch.nn.functional as F

from lossbench import AdversarialLoss, Recipe
from lossbench.builtin.metrics import Stability, stability_statistics
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import load_environment
from lossbench.records import HISTORY_COLUMNS
from lossbench.scoring.evaluate import EvaluationContext
from lossbench.training.train import run_safely

STEPS = 100


def history(**columns) -> pd.DataFrame:
    """Logged every 5 steps (and at step 1), like the engine; unspecified columns are a flat, healthy GAN."""
    steps = [1] + list(range(5, STEPS + 1, 5))
    n = len(steps)
    flat = {
        "d_loss": 1.386,
        "g_loss": 0.693,
        "penalty": math.nan,
        "d_real": 0.5,
        "d_fake": 0.5,
        "d_accuracy": 0.5,
        "score_real": 0.0,
        "score_fake": 0.0,
        "grad_norm_g": 1.0,
        "grad_norm_d": 1.0,
        "seconds": 0.0,
    }
    data = {"step": steps}
    for column in HISTORY_COLUMNS[1:]:
        value = columns.get(column, flat[column])
        data[column] = value(np.arange(n), steps) if callable(value) else np.full(n, value, dtype=float)
    return pd.DataFrame(data, columns=list(HISTORY_COLUMNS))


def last_window(values_if_last, values_else):
    """A column whose last 20% of rows (5 of 21 here) take one value and the others another."""
    return lambda index, steps: np.where(index >= len(index) - 5, values_if_last, values_else).astype(float)


def stats(frame: pd.DataFrame, diverged_at: int | None = None, curves: pd.DataFrame | None = None) -> dict:
    return stability_statistics(frame, STEPS, diverged_at, curves)


def test_flat_history_raises_no_flag() -> None:
    values = stats(history())
    # a run that never diverged lasted to the end: its diverged step is the number of steps
    assert values["stability_diverged"] == 0 and values["stability_diverged_step"] == STEPS
    assert values["stability_d_overpowering"] == 0
    assert values["stability_equilibrium_gap"] == 0
    assert values["stability_loss_oscillation"] == 0
    assert values["stability_g_grad_early"] == 1.0
    assert math.isnan(values["stability_fid_variability"])  # no FID curve


def test_divergence_at_step_k_is_reported_at_k() -> None:
    frame = history()
    frame = pd.concat([frame[frame["step"] <= 35], pd.DataFrame([{"step": 37, "d_loss": math.inf}])], ignore_index=True)
    values = stats(frame, diverged_at=37)
    assert values["stability_diverged"] == 1 and values["stability_diverged_step"] == 37
    assert values["stability_equilibrium_gap"] == 0  # the non-finite row is left out, not propagated


def test_perfect_discriminator_is_overpowering_only_at_the_end() -> None:
    assert stats(history(d_accuracy=1.0))["stability_d_overpowering"] == 1
    assert stats(history(d_accuracy=last_window(0.995, 0.6)))["stability_d_overpowering"] == 1
    assert stats(history(d_accuracy=last_window(0.6, 1.0)))["stability_d_overpowering"] == 0  # recovered


def test_equilibrium_gap_and_critics() -> None:
    assert stats(history(d_fake=last_window(0.1, 0.5)))["stability_equilibrium_gap"] == pytest.approx(0.4)
    critic = stats(history(d_fake=math.nan, d_real=math.nan))  # Wasserstein critic: no probabilities
    assert math.isnan(critic["stability_equilibrium_gap"])  # not applicable, never a number
    assert critic["stability_scores"] == "raw"
    assert stats(history())["stability_scores"] == "logits"


def critic_history(**columns) -> pd.DataFrame:
    """A critic (raw scores, no probabilities) whose mean scores are far apart: midpoint accuracy 1."""
    return history(
        **{"d_real": math.nan, "d_fake": math.nan, "d_accuracy": 1.0, "score_real": 5.0, "score_fake": -5.0, **columns}
    )


def test_a_critic_with_separated_means_and_a_healthy_generator_is_not_overpowering() -> None:
    assert stats(critic_history())["stability_d_overpowering"] == 0  # G's gradient is what it was early on


def test_a_critic_that_starves_the_generator_is_overpowering() -> None:
    starved = last_window(1e-4, 1.0)  # late ||grad G|| 1e-4 of its early 1.0: below 1%
    assert stats(critic_history(grad_norm_g=starved))["stability_d_overpowering"] == 1
    weaker = last_window(0.05, 1.0)  # 5% of early: weaker, not starved
    assert stats(critic_history(grad_norm_g=weaker))["stability_d_overpowering"] == 0
    # a starved generator without a separating critic is not D's doing
    mixed = critic_history(grad_norm_g=starved, d_accuracy=0.7)
    assert stats(mixed)["stability_d_overpowering"] == 0


def test_a_discriminator_on_logits_overpowers_by_accuracy_alone() -> None:
    # a logit D that is always right: sigmoid saturates, whatever G's gradient norm reads
    assert stats(history(d_accuracy=1.0, d_fake=0.001, d_real=0.999))["stability_d_overpowering"] == 1
    assert stats(history(d_accuracy=0.9, d_fake=0.3, d_real=0.7))["stability_d_overpowering"] == 0


def test_early_generator_gradient_and_oscillation() -> None:
    # steps 1 and 5 and 10 are within the first 10% of 100 steps: median of 0.1, 0.2, 0.9 is 0.2
    def grads(index, steps):
        return np.array([{1: 0.1, 5: 0.2, 10: 0.9}.get(s, 50.0) for s in steps])

    assert stats(history(grad_norm_g=grads))["stability_g_grad_early"] == pytest.approx(0.2)

    # last 5 g_loss values alternate 0, 2, 0, 2, 0: sample std sqrt(1.2)
    def wobble(index, steps):
        return np.where(index >= len(index) - 5, 2.0 * (index % 2 == 1), 0.7)

    assert stats(history(g_loss=wobble))["stability_loss_oscillation"] == pytest.approx(math.sqrt(1.2))


def test_fid_curve_variability_over_the_last_half() -> None:
    curves = pd.DataFrame({"step": [10, 20, 30, 40, 50, 60], "key": "fid", "value": [10, 8, 6, 6.5, 5.5, 6.0]})
    curves = pd.concat([curves, pd.DataFrame({"step": [10], "key": ["modes_covered"], "value": [99.0]})])
    values = stats(history(), curves=curves)
    assert values["stability_fid_variability"] == pytest.approx(0.5)  # std of 6.5, 5.5, 6.0


class NaNFromStep(AdversarialLoss):
    """Non-saturating GAN whose generator loss turns NaN at generator step 13: a real divergence."""

    name = "nan-from-13"
    recipe = Recipe()

    def __init__(self) -> None:
        self.calls = 0

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        self.calls += 1
        value = F.softplus(-fake_scores).mean()
        return value * math.nan if self.calls >= 13 else value


def test_a_real_diverged_run_is_scored_from_its_history() -> None:
    catalog = load_environment().catalog
    catalog.losses.add(NaNFromStep(), "test-plugin")
    spec = RunSpec(
        loss="nan-from-13",
        model="mlp",
        dataset="ring8",
        seed=0,
        steps=30,
        batch_size=32,
        log_every=2,
        eval_every=5,
        eval_samples=100,
        final_samples=200,
        device="cpu",
        preset="test",
    )
    result = run_safely(spec, catalog)
    assert result.status == "diverged" and result.failed_step == 13
    assert result.metrics["stability_diverged"] == 1 and result.metrics["stability_diverged_step"] == 13
    assert "fid" not in result.metrics  # samples of a diverged generator are not scored
    assert np.isfinite(result.metrics["stability_fid_variability"])  # curve at steps 5 and 10


def test_metric_reads_the_context() -> None:
    spec = RunSpec(
        loss="x",
        model="mlp",
        dataset="ring8",
        seed=0,
        steps=STEPS,
        batch_size=8,
        log_every=5,
        eval_every=10,
        eval_samples=10,
        final_samples=10,
    )
    ctx = EvaluationContext(
        real=None, fake=None, dataset=None, spec=spec, history=history(d_accuracy=1.0), diverged_at=None
    )
    assert Stability().compute(ctx)["stability_d_overpowering"] == 1
    assert Stability.needs_samples is False
