"""The stacked engine: each member trains as its RunSpec trains alone (paired seeds), and its fate is its own."""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_spec

from lossbench import AdversarialLoss
from lossbench.data.root import DATA_ROOT_ENV
from lossbench.errors import LossbenchError
from lossbench.plugin.loader import load_environment
from lossbench.records import HISTORY_COLUMNS
from lossbench.scoring.inception import INCEPTION_WEIGHTS_ENV
from lossbench.training.stacked import GROUP_SIZE_ENV, VECTORISE_ENV, plan_groups, run_groups, train_group
from lossbench.training.train import run_safely

# float tolerance: batched matmuls (vmap) sum in another order than one model's matmuls; after 20 Adam steps the
# weights of these small MLPs differ by ~1e-6 (measured), so 1e-4 relative + 1e-5 absolute leaves headroom while
# any real difference (another batch, another noise draw, a missed clip) moves values by 1e-2 or more
RTOL, ATOL = 1e-4, 1e-5
# whole smoke runs (40 steps, final scoring on 400 samples): metrics are smooth functions of the samples, which
# differ by reassociation only; 1e-3 absolute is well below what one different step of training changes (>1e-2)
METRIC_ATOL = 1e-3
COLUMNS = [c for c in HISTORY_COLUMNS if c != "seconds"]


@pytest.fixture(scope="module")
def catalog():
    return load_environment().catalog


def _by_id(results) -> dict:
    return {r.run_id: r for r in results}


def _weights(result) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(result.checkpoint))


def _assert_same_run(stacked, alone, rtol=RTOL, atol=ATOL) -> None:
    assert stacked.status == alone.status, (stacked.spec.label, stacked.reason, alone.reason)
    assert stacked.failed_step == alone.failed_step
    np.testing.assert_allclose(
        stacked.history[COLUMNS].to_numpy(float),
        alone.history[COLUMNS].to_numpy(float),
        rtol=rtol,
        atol=atol,
        err_msg=stacked.spec.label,
    )
    a, b = _weights(stacked), _weights(alone)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol)


def test_first_20_steps_of_a_group_match_sequential_runs(catalog) -> None:
    # losses with one recipe (one group) and with others (their own groups), penalties (R1: EMA + RMSprop, DRAGAN:
    # random interpolates) and weight clipping (WGAN, an n_critic schedule)
    # WGAN trains 2 generator steps here (200 clipped RMSprop critic steps, its schedule's first burst): RMSprop
    # divides each update by the root of the mean squared gradient, so where a clipped weight's gradient is ~1e-10 a
    # reassociation difference in that gradient becomes a difference of order lr (5e-5) in the update. Measured on
    # ring8 (PacGAN's ring): 3e-8 after 2 steps, then 7e-5 after 3, as between any two float orders of the sum.
    specs = [
        make_spec(loss=loss, seed=seed, steps=2 if loss == "wgan" else 20)
        for loss in ("nonsaturating", "hinge", "lsgan", "r1", "dragan", "wgan")
        for seed in (0, 1)
    ]
    groups = plan_groups(specs, catalog, None)
    assert sorted(len(g) for g in groups) == [2, 2, 8]  # dragan joins the Adam, n_critic 1 group (its own lr, betas)
    big = max(groups, key=len)
    assert {catalog.losses.get(s.loss).recipe.betas for s in big} == {(0.5, 0.999), (0.5, 0.9)}
    stacked = _by_id(run_groups(specs, catalog))
    for spec in specs:
        _assert_same_run(stacked[spec.run_id], run_safely(spec, catalog))
        assert stacked[spec.run_id].environment["engine"] == "stacked"
    assert stacked[specs[0].run_id].environment["group_size"] == 8


def test_dcgan_members_with_batchnorm_under_vmap_match_sequential_runs(catalog) -> None:
    # the generator's BatchNorm running statistics are stacked buffers, updated in place under vmap
    specs = [
        make_spec(loss="hinge", model="dcgan", dataset="digits", seed=seed, steps=10, final_samples=200)
        for seed in (0, 1)
    ]
    stacked = _by_id(train_group(specs, catalog))
    for spec in specs:
        _assert_same_run(stacked[spec.run_id], run_safely(spec, catalog))


def test_whole_smoke_runs_give_the_same_metrics(catalog) -> None:
    specs = [make_spec(loss=loss, seed=seed) for loss in ("nonsaturating", "wgan-gp") for seed in (0, 1)]
    stacked = _by_id(run_groups(specs, catalog))
    for spec in specs:
        alone = run_safely(spec, catalog)
        result = stacked[spec.run_id]
        assert result.status == alone.status == "ok" and result.metrics.keys() == alone.metrics.keys()
        for key, value in alone.metrics.items():
            assert (
                math.isnan(value)
                and math.isnan(result.metrics[key])  # undefined for critics: NaN on both sides
                or math.isclose(result.metrics[key], value, abs_tol=METRIC_ATOL)
            ), (spec.label, key)


class NaNFromCall(AdversarialLoss):
    """Non-saturating, with the discriminator loss NaN from its ``n``-th call on (one call per step)."""

    def __init__(self, name: str, n: int, recipe) -> None:
        self.name, self.n, self.recipe, self.calls = name, n, recipe, 0

    def discriminator_loss(self, real_scores, fake_scores):
        self.calls += 1
        value = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        return value * math.nan if self.calls >= self.n else value

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores).mean()


class RaisesFromCall(NaNFromCall):
    """Raises from the generator loss's ``n``-th call on."""

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError("boom in the generator loss")
        return F.softplus(-fake_scores).mean()


def test_one_members_divergence_and_failure_leave_the_others_alone(catalog) -> None:
    recipe = catalog.losses.get("nonsaturating").recipe
    catalog.losses.add(NaNFromCall("nan-at-4", 4, recipe), "test-plugin")
    catalog.losses.add(RaisesFromCall("raise-at-6", 6, recipe), "test-plugin")
    specs = [
        make_spec(loss="nonsaturating", seed=0, steps=12),
        make_spec(loss="nan-at-4", seed=0, steps=12),
        make_spec(loss="raise-at-6", seed=1, steps=12),
        make_spec(loss="nonsaturating", seed=1, steps=12),
    ]
    assert len(plan_groups(specs, catalog, None)) == 1
    stacked = _by_id(train_group(specs, catalog))
    diverged, failed = stacked[specs[1].run_id], stacked[specs[2].run_id]
    assert diverged.status == "diverged" and diverged.failed_step == 4 and "discriminator loss" in diverged.reason
    assert (
        failed.status == "failed"
        and failed.failed_step == 6
        and "RuntimeError: boom in the generator loss" in failed.reason
    )
    for spec in (specs[0], specs[3]):  # the others trained as if alone
        _assert_same_run(stacked[spec.run_id], run_safely(spec, catalog))
    # the diverged member was frozen at its step: the weights it had when it diverged alone
    catalog.losses.get("nan-at-4").calls = catalog.losses.get("raise-at-6").calls = 0  # fresh call counts
    _assert_same_run(diverged, run_safely(specs[1], catalog))
    alone = run_safely(specs[2], catalog)  # the same reason, naming the plugin, as the sequential engine stores
    assert (failed.status, failed.failed_step, failed.reason) == (alone.status, alone.failed_step, alone.reason)


class WeightPenalty(AdversarialLoss):
    """Non-saturating plus an L2 penalty on the critic's weights: reads ``critic.parameters()``."""

    name = "weight-penalty"

    def __init__(self, recipe) -> None:
        self.recipe = recipe

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores).mean() + 0 * real_scores.mean().item()  # .item() inside a loss is fine

    def penalty(self, critic, real, fake):
        return 1e-2 * sum(p.pow(2).sum() for p in critic.parameters())


def test_third_party_loss_reading_weights_and_calling_item_trains_stacked_unchanged(catalog) -> None:
    catalog.losses.add(WeightPenalty(catalog.losses.get("nonsaturating").recipe), "test-plugin")
    specs = [make_spec(loss="weight-penalty", seed=seed, steps=10) for seed in (0, 1)]
    stacked = _by_id(train_group(specs, catalog))
    for spec in specs:
        alone = run_safely(spec, catalog)
        _assert_same_run(stacked[spec.run_id], alone)
        assert stacked[spec.run_id].history["penalty"].iloc[0] > 0.01


class Unstackable(torch.nn.Module):
    """A generator with data-dependent control flow, which vmap rejects."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, z):
        out = self.body(z)
        return out if float(out.detach().sum()) > -1e30 else -out


def test_a_model_vmap_rejects_falls_back_to_the_sequential_engine_with_one_line(catalog) -> None:
    from lossbench.api import GAN, ModelFactory

    mlp = catalog.models.get("mlp")

    class Factory(ModelFactory):
        name, family = "unstackable-mlp", "gan"

        def supports(self, data):
            return mlp.supports(data)

        def build(self, data):
            model = mlp.build(data)
            return GAN(Unstackable(model.generator), model.discriminator, model.latent_dim)

    catalog.models.add(Factory(), "test-plugin")
    specs = [make_spec(model="unstackable-mlp", seed=seed, steps=5) for seed in (0, 1)]
    lines: list[str] = []
    results = train_group(specs, catalog, notice=lines.append)
    assert len(lines) == 1 and "cannot train stacked" in lines[0] and "one at a time" in lines[0]
    assert [r.status for r in results] == ["ok", "ok"]
    assert all(r.environment["engine"] == "sequential" and "vmap" in r.environment["stacked_fallback"] for r in results)


def test_vae_runs_and_singletons_form_groups_of_one(catalog) -> None:
    specs = [
        make_spec(loss="vae", model="mlp-vae", seed=0),
        make_spec(seed=0),
        make_spec(seed=1),
        make_spec(loss="wgan-gp", seed=0),
    ]
    assert [len(g) for g in plan_groups(specs, catalog, None)] == [1, 2, 1]
    assert [len(g) for g in plan_groups(specs[1:3] * 3, catalog, 4)] == [4, 2]
    notices: list[str] = []
    (vae,) = train_group(specs[:1], catalog, notice=notices.append)  # never a candidate: no fallback, no notice
    assert vae.status == "ok" and vae.environment["engine"] == "sequential" and notices == []
    assert "stacked_fallback" not in vae.environment


def test_by_default_the_engine_stacks_only_where_it_pays(catalog, monkeypatch) -> None:
    # the CPU: MLPs run as batched layers (faster stacked), convolutions under vmap (no faster: one at a time)
    from lossbench.training.stacked_plan import mode, pays

    mlp = [make_spec(seed=seed) for seed in (0, 1)]
    conv = [make_spec(model="dcgan", dataset="digits", seed=seed) for seed in (0, 1)]
    assert pays(mlp[0], catalog) and not pays(conv[0], catalog)
    assert [len(g) for g in plan_groups([*mlp, *conv], catalog, None, where_it_pays=True)] == [2, 1, 1]
    assert [len(g) for g in plan_groups([*mlp, *conv], catalog, None)] == [2, 2]  # --vectorise: every group
    monkeypatch.delenv(VECTORISE_ENV, raising=False)
    assert mode() == "auto"
    for value, expected in (("1", "on"), ("0", "off"), ("yes", "on"), ("false", "off")):
        monkeypatch.setenv(VECTORISE_ENV, value)
        assert mode() == expected
    monkeypatch.setenv(VECTORISE_ENV, "sometimes")
    with pytest.raises(LossbenchError, match="LOSSBENCH_VECTORISE='sometimes': expected 1 or 0"):
        mode()


def test_run_by_default_stacks_the_mlp_runs_and_trains_the_convolutional_ones_alone(cli, workdir) -> None:
    args = ["run", "-l", "hinge", "--seeds", "0,1", "--preset", "smoke", "--steps", "4", "--device", "cpu"]
    for pair in (["-m", "mlp", "-d", "ring8"], ["-m", "dcgan", "-d", "digits"]):
        result = cli(*args, *pair, "--no-report")
        assert result.exit_code == 0, result.output
        assert "cannot train stacked" not in result.output  # the engine's choice is not a fallback
    with sqlite3.connect(workdir / "results" / "lossbench.db") as db:
        rows = db.execute("SELECT model, environment_json FROM runs ORDER BY model").fetchall()
    engines = [(model, json.loads(env)["engine"], json.loads(env).get("group_size")) for model, env in rows]
    assert engines == [("dcgan", "sequential", None)] * 2 + [("mlp", "stacked", 2)] * 2
    assert not any("stacked_fallback" in json.loads(env) for _model, env in rows)


def test_run_vectorise_records_the_engine_and_resumes_by_run(cli, workdir, monkeypatch) -> None:
    monkeypatch.setenv("LOSSBENCH_VECTORISE", "0")  # the CLI sets both for its executors; restored afterwards
    monkeypatch.setenv("LOSSBENCH_GROUP_SIZE", "32")
    args = [
        "run",
        "-l",
        "nonsaturating",
        "-l",
        "hinge",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0,1",
        "--preset",
        "smoke",
        "--steps",
        "10",
        "--device",
        "cpu",
        "--no-report",
    ]
    weights = workdir / "weights.pth"  # any file: points are not scored with Inception
    weights.write_bytes(b"")
    chosen = ["--data-root", str(workdir), "--inception-weights", str(weights)]
    before = {
        name: os.environ.get(name) for name in (VECTORISE_ENV, GROUP_SIZE_ENV, DATA_ROOT_ENV, INCEPTION_WEIGHTS_ENV)
    }
    first = cli(*args, "--vectorise", "--group-size", "3", *chosen)
    assert first.exit_code == 0, first.output
    assert {name: os.environ.get(name) for name in before} == before  # the choices end with the command
    with sqlite3.connect(workdir / "results" / "lossbench.db") as db:
        rows = db.execute("SELECT loss, seed, environment_json FROM runs").fetchall()
    environments = [json.loads(row[2]) for row in rows]
    assert len(rows) == 4  # one recipe: a group of 3 and a stack of one (the same bits as in a group)
    assert [e["engine"] for e in environments] == ["stacked"] * 4
    assert sorted(e["group_size"] for e in environments) == [1, 3, 3, 3]
    assert not any("stacked_fallback" in e for e in environments)
    again = cli(*args, "--vectorise")
    assert again.exit_code == 0 and "0 to train" in again.output, again.output


def test_check_stacked_passes_a_plugin_loss_and_catches_one_whose_members_share_state(catalog) -> None:
    from lossbench.authoring.conformance import ConformanceError
    from lossbench.examples.softplus_hinge import SoftplusHinge
    from lossbench.testing import check_stacked

    check_stacked(SoftplusHinge(), steps=5)
    shared_count = NaNFromCall("shared-count", 4, catalog.losses.get("nonsaturating").recipe)
    with pytest.raises(ConformanceError, match="'shared-count', seed 0: stacked diverged at step 3"):
        check_stacked(shared_count, steps=5)


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
def test_member_optimizer_steps_each_row_as_torchs_optimizer_steps_one_run(kind) -> None:
    from lossbench.training.stacked_optim import MemberOptimizer

    torch.manual_seed(0)
    lrs, betas = [2e-4, 1e-4, 5e-5], [(0.5, 0.999), (0.5, 0.9), (0.0, 0.9)]
    weights, grads = torch.randn(3, 50), torch.zeros(3, 50)
    alone = [torch.nn.Parameter(weights[k].clone()) for k in range(3)]
    make = {
        "adam": lambda p, k: torch.optim.Adam([p], lr=lrs[k], betas=betas[k]),
        "rmsprop": lambda p, k: torch.optim.RMSprop([p], lr=lrs[k]),
        "sgd": lambda p, k: torch.optim.SGD([p], lr=lrs[k]),
    }[kind]
    optimizers = [make(p, k) for k, p in enumerate(alone)]
    stacked = MemberOptimizer(kind, weights, grads, lrs, betas)
    for _ in range(20):
        grads.copy_(torch.randn(3, 50))
        for k, p in enumerate(alone):
            p.grad = grads[k].clone()
            optimizers[k].step()
        stacked.step()
    for k, p in enumerate(alone):  # Adam and RMSprop: the same float operations in the same order (bitwise);
        # SGD's ``add_(g, alpha=-lr)`` may fuse the multiply-add, ours multiplies first: one rounding apart
        torch.testing.assert_close(weights[k], p.detach(), rtol=0, atol=0 if kind != "sgd" else 1e-7)
    stacked.keep(torch.tensor([2, 0]), weights[[2, 0]].clone(), grads[[2, 0]].clone())
    assert stacked.lrs == [5e-5, 2e-4] and stacked.betas == [(0.0, 0.9), (0.5, 0.999)]


def test_a_members_result_does_not_depend_on_its_group(catalog) -> None:
    # what resuming a killed group relies on: its unfinished members, trained again in a smaller group, get bitwise
    # what they would have got in the first one (every operation is per member: batched matmuls, row reductions)
    a, b = make_spec(loss="nonsaturating", seed=0, steps=15), make_spec(loss="hinge", seed=1, steps=15)
    others = [make_spec(loss="dragan", seed=2, steps=15), make_spec(loss="lsgan", seed=0, steps=15)]
    small, large = _by_id(train_group([a, b], catalog)), _by_id(train_group([others[0], a, others[1], b], catalog))
    alone = _by_id(train_group([a], catalog))  # a stack of one: the score layer's batch of one is padded to two
    assert alone[a.run_id].environment["group_size"] == 1
    for spec, smaller in ((a, small), (b, small), (a, alone)):
        assert smaller[spec.run_id].checkpoint == large[spec.run_id].checkpoint
        assert smaller[spec.run_id].metrics == large[spec.run_id].metrics
        assert smaller[spec.run_id].history[COLUMNS].equals(large[spec.run_id].history[COLUMNS])


class CountedPure(AdversarialLoss):
    """Non-saturating, declared ``pure``, counting its calls (state a pure loss should not keep: here it only shows
    how often the engine calls it)."""

    pure = True

    def __init__(self, name: str, recipe, draws: bool = False) -> None:
        self.name, self.recipe, self.draws, self.calls = name, recipe, draws, 0

    def discriminator_loss(self, real_scores, fake_scores):
        self.calls += 1
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        # with ``draws``, a random term: vmap refuses it, so the loss goes member by member, each member drawing
        # from its own stream (one draw for the group, or the group's stream, would change the logged g_loss)
        extra = 1e-2 * torch.rand(()) if self.draws else 0
        return F.softplus(-fake_scores).mean() + extra


def test_a_pure_loss_is_evaluated_once_per_step_for_all_its_members(catalog) -> None:
    # 3 seeds x 6 steps: step 1 member by member (3 calls, each checked), then one vmapped call per step (5)
    loss = CountedPure("counted-pure", catalog.losses.get("nonsaturating").recipe)
    catalog.losses.add(loss, "test-plugin")
    specs = [make_spec(loss="counted-pure", seed=seed, steps=6) for seed in (0, 1, 2)]
    stacked = _by_id(train_group(specs, catalog))
    assert loss.calls == 3 + 5
    for spec in specs:
        _assert_same_run(stacked[spec.run_id], run_safely(spec, catalog))


def test_a_pure_loss_that_draws_goes_member_by_member_and_keeps_each_members_stream(catalog) -> None:
    # the draw comes from each member's own global-RNG stream, as alone: same histories and weights
    catalog.losses.add(
        CountedPure("drawing-pure", catalog.losses.get("nonsaturating").recipe, draws=True), "test-plugin"
    )
    specs = [make_spec(loss="drawing-pure", seed=seed, steps=6) for seed in (0, 1)]
    stacked = _by_id(train_group(specs, catalog))
    for spec in specs:
        assert stacked[spec.run_id].environment["engine"] == "stacked"
        _assert_same_run(stacked[spec.run_id], run_safely(spec, catalog))


def test_every_shipped_gan_loss_is_pure_and_a_subclass_that_rewrites_a_loss_is_not() -> None:
    from lossbench.builtin.losses import NonSaturating
    from lossbench.training.stacked_group import is_pure

    fresh = load_environment().catalog  # the built-ins and the checkout's plugins/, not the test plugins above
    shipped = {n: fresh.losses.get(n) for n in fresh.losses.names()}
    gan = {n for n, loss in shipped.items() if isinstance(loss, AdversarialLoss)}
    assert {"nonsaturating", "minimax", "wgan-gp", "hinge", "lsgan"} <= gan
    assert {n for n in gan if is_pure(shipped[n])} == gan

    class Counting(NonSaturating):  # keeps state: the parent's claim must not carry over
        calls = 0

        def discriminator_loss(self, real_scores, fake_scores):
            self.calls += 1
            return super().discriminator_loss(real_scores, fake_scores)

    class Declared(Counting):
        pure = True  # its author's claim, made again (wrongly here, which the engine cannot see)

    assert Counting.pure and not is_pure(Counting())
    assert is_pure(Declared())
