"""The training engine: bitwise determinism on the CPU, paired seeds, history, divergence, loss contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import make_spec
from lossbench import AdversarialLoss, Recipe
from lossbench.grid import RunSpec
from lossbench.plugins import load_environment
from lossbench.train import HISTORY_COLUMNS, Batches, _Run, run_safely, train_run


def spec(loss: str = "nonsaturating", seed: int = 0, steps: int = 30, **overrides) -> RunSpec:
    return make_spec(loss=loss, seed=seed, steps=steps, **overrides)


@pytest.fixture(scope="module")
def catalog():
    return load_environment().catalog


def test_same_runspec_twice_is_bitwise_identical(catalog) -> None:
    first, second = train_run(spec(), catalog), train_run(spec(), catalog)
    assert first.status == second.status == "ok"
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(first.history[columns], second.history[columns], check_exact=True)
    pd.testing.assert_frame_equal(first.curves, second.curves, check_exact=True)
    assert first.metrics == second.metrics and first.metrics
    assert np.array_equal(first.samples, second.samples)


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_two_losses_start_from_identical_weights_data_and_noise(catalog) -> None:
    runs = [_Run(spec(loss), catalog, torch.device("cpu"), None) for loss in ("nonsaturating", "wgan-gp")]
    models = [run.build() for run in runs]
    for part in ("generator", "discriminator"):
        a, b = (_weights(getattr(model, part)) for model in models)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)
    batches = [Batches(run.train_x, 64, 123) for run in runs]
    assert torch.equal(batches[0].next(), batches[1].next())
    noises = [run.noise("generator") for run in runs]
    assert torch.equal(torch.randn(4, 8, generator=noises[0]), torch.randn(4, 8, generator=noises[1]))
    other_seed = _Run(spec("nonsaturating", seed=1), catalog, torch.device("cpu"), None).build()
    assert not torch.equal(next(other_seed.generator.parameters()), next(models[0].generator.parameters()))


def test_history_columns_and_schedule(catalog) -> None:
    result = train_run(spec(steps=20), catalog)
    assert list(result.history.columns) == list(HISTORY_COLUMNS)
    assert list(result.history["step"]) == [1, 5, 10, 15, 20]
    row = result.history.iloc[-1]
    assert 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1  # sigmoid of logits
    assert 0 <= row["d_accuracy"] <= 1 and row["grad_norm_g"] > 0 and row["grad_norm_d"] > 0
    assert sorted(result.curves["step"].unique()) == [10]  # light evaluations at eval_every, not at the end
    critic = train_run(spec("wgan-gp", steps=10), catalog)
    assert critic.history["d_real"].isna().all()  # critic values are not probabilities
    assert critic.history["penalty"].notna().all()


class NaNAfterSteps(AdversarialLoss):
    """Returns NaN from the 4th discriminator call on: the run must end as diverged at step 4."""

    name = "nan-later"
    recipe = Recipe()

    def __init__(self) -> None:
        self.calls = 0

    def discriminator_loss(self, real_scores, fake_scores):
        self.calls += 1
        value = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        return value * math.nan if self.calls >= 4 else value

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores).mean()


class VectorLoss(NaNAfterSteps):
    """Returns a vector instead of a scalar."""

    name = "vector-loss"

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores)


def test_non_finite_loss_ends_run_as_diverged_at_that_step(catalog) -> None:
    catalog.losses.add(NaNAfterSteps(), "test-plugin")
    result = train_run(spec("nan-later", steps=20), catalog)
    assert result.status == "diverged" and result.failed_step == 4
    assert "discriminator loss" in result.reason
    assert list(result.history["step"])[:1] == [1] and result.history["step"].iloc[-1] == 4
    assert result.samples is None


def test_non_scalar_loss_fails_run_naming_loss_and_plugin(catalog) -> None:
    catalog.losses.add(VectorLoss(), "my-plugin")
    result = run_safely(spec("vector-loss"), catalog)
    assert result.status == "failed" and result.failed_step == 1
    assert "'vector-loss'" in result.reason and "'my-plugin'" in result.reason and "scalar" in result.reason


def test_run_id_is_stable_and_distinguishes_specs() -> None:
    assert spec().run_id == spec().run_id
    assert len({spec().run_id, spec(seed=1).run_id, spec("wgan-gp").run_id, spec(steps=31).run_id}) == 4
    assert RunSpec.from_dict(spec().to_dict()) == spec()
