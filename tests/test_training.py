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
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import load_environment
from lossbench.records import HISTORY_COLUMNS
from lossbench.training.train import Batches, _Run, run_safely, train_run


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


# -- recipes the engine applies: n_critic schedule and generator average ---------------------------------------------
class CountingLoss(AdversarialLoss):
    """Non-saturating, counting its discriminator steps; its recipe has an n_critic schedule."""

    name = "counting"
    recipe = Recipe(n_critic=1, n_critic_burst=3, burst_steps=2, burst_every=5)
    calls = 0

    def discriminator_loss(self, real_scores, fake_scores):
        type(self).calls += 1
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores).mean()


def test_engine_follows_the_n_critic_schedule(catalog) -> None:
    catalog.losses.add(CountingLoss(), "test-plugin")
    CountingLoss.calls = 0
    assert train_run(spec("counting", steps=6), catalog).status == "ok"
    # steps 1, 2 (burst_steps) and 6 ((6 - 1) % 5 == 0) take 3 critic steps; 3, 4, 5 take 1
    assert CountingLoss.calls == 3 + 3 + 1 + 1 + 1 + 3


class FrozenAverageLoss(CountingLoss):
    """A generator average that (in float32) never moves from the initial generator."""

    name = "frozen-average"
    recipe = Recipe(ema_decay=1 - 1e-12)


def test_engine_evaluates_the_generator_average(catalog) -> None:
    from lossbench.plan import seeding
    from lossbench.training.train import generate, update_average

    catalog.losses.add(FrozenAverageLoss(), "test-plugin")
    run_spec = spec("frozen-average", steps=20)
    result = train_run(run_spec, catalog)
    run = _Run(run_spec, catalog, torch.device("cpu"), None)
    initial = generate(run.build(), len(run.real), seeding.noise_seed(0, "mlp", "ring8", "eval"), torch.device("cpu"))
    assert np.array_equal(result.samples, initial.x[: len(result.samples)].numpy())  # the average was scored
    trained = train_run(spec("counting", steps=20), catalog)  # no average: the trained G differs from the initial
    assert not np.array_equal(trained.samples, initial.x[: len(trained.samples)].numpy())
    # the update itself: avg <- decay avg + (1 - decay) G
    average, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    expected = 0.9 * average.weight.detach().clone() + 0.1 * model.weight.detach()
    update_average(average, model, 0.9)
    torch.testing.assert_close(average.weight.detach(), expected)


def test_runs_store_metric_directions_and_the_loss_feature_space(catalog) -> None:
    import json

    from lossbench.builtin.metrics import FrechetDistance, Stability

    result = train_run(spec(steps=10), catalog)
    from lossbench.records import facts_from_texts

    facts = facts_from_texts(result.texts)
    assert {key: facts[key].better for key in FrechetDistance.better} == FrechetDistance.better
    assert {key: facts[key].better for key in Stability.better} == Stability.better
    assert (facts["fid"].label, facts["fid"].headline) == ("FID", 1)  # labels and headline ranks travel too
    assert (facts["modes_kl"].label, facts["modes_kl"].unit) == ("mode KL", "nats")
    assert json.loads(result.texts["fid_facts"])["fid_floor"]["better"] == "none"
    assert "loss_feature_space" not in result.texts  # the non-saturating loss has no feature network


def test_perceptual_vae_records_its_feature_network_with_the_run(catalog) -> None:
    from lossbench.builtin.losses import PerceptualVAE

    result = train_run(
        spec(
            "vae-perceptual",
            model="conv-vae",
            dataset="digits",
            steps=3,
            eval_every=10,
            eval_samples=50,
            final_samples=100,
        ),
        catalog,
    )
    assert result.status == "ok", result.reason
    seed = PerceptualVAE.feature_seed((1, 8, 8))
    assert result.texts["loss_feature_space"] == f"random-conv-1x8x8-seed{seed}"
    assert result.texts["loss_feature_space"] != result.texts["fid_features"]  # scored in another space
