"""lossbench.testing: the conformance checks catch broken plugins by name, pass good ones, and smoke_run trains a
plugin that implements every hook through the real harness."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossbench import GAN, AdversarialLoss, Dataset, DataSpec, Metric, ModelFactory, Samples, VAELoss
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.testing import (
    ConformanceError,
    check_dataset,
    check_loss,
    check_metric,
    check_model,
    make_context,
    smoke_run,
)

REPO = Path(__file__).resolve().parents[1]


# -- losses: the three must-show failures, and more -----------------------------------------------------------------


class GoodLoss(AdversarialLoss):
    """Non-saturating GAN written with softplus."""

    name = "good"

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores).mean()


class VectorLoss(GoodLoss):
    """Forgets to reduce over the batch."""

    name = "vector"

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores) + F.softplus(fake_scores)


class NaNLoss(GoodLoss):
    """log of raw scores: NaN for every negative score."""

    name = "nan-loss"

    def generator_loss(self, fake_scores, real_scores):
        return -torch.log(fake_scores).mean()


class DetachedGeneratorLoss(GoodLoss):
    """The generator's loss is cut from the graph: the generator would never learn."""

    name = "detached"

    def generator_loss(self, fake_scores, real_scores):
        return F.softplus(-fake_scores.detach()).mean()


class ItemGeneratorLoss(GoodLoss):
    """Rebuilt from a Python float: a scalar tensor, but no graph behind it."""

    name = "item"

    def generator_loss(self, fake_scores, real_scores):
        return torch.tensor(F.softplus(-fake_scores).mean().item())


class FakeOnlyDiscriminatorLoss(GoodLoss):
    """Ignores the real scores, so D never learns what real data looks like."""

    name = "fake-only"

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(fake_scores).mean() + 0 * real_scores.detach().mean()


class NaiveLogSigmoidLoss(GoodLoss):
    """Correct maths, but log(sigmoid(s)) underflows to log(0) = -inf for a confident discriminator."""

    name = "naive"

    def discriminator_loss(self, real_scores, fake_scores):
        return -torch.log(torch.sigmoid(real_scores)).mean() - torch.log(1 - torch.sigmoid(fake_scores)).mean()


class FirstOrderPenaltyLoss(GoodLoss):
    """R1 written without create_graph=True: the penalty's value is right but it cannot train the critic."""

    name = "flat-penalty"

    def penalty(self, critic, real, fake):
        x = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        return 5.0 * grad.pow(2).sum(dim=1).mean()


class R1Loss(GoodLoss):
    """R1 done right (create_graph=True): passes."""

    name = "r1-ok"

    def penalty(self, critic, real, fake):
        x = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return 5.0 * grad.pow(2).sum(dim=1).mean()


@pytest.mark.parametrize(
    "loss, message",
    [
        (VectorLoss(), r"loss 'vector': discriminator_loss returned a tensor of shape \[16\]; expected a scalar"),
        (NaNLoss(), r"loss 'nan-loss': generator_loss returned nan \(not finite\) on random scores"),
        (DetachedGeneratorLoss(), r"loss 'detached': generator_loss has no gradient with respect to fake_scores"),
        (ItemGeneratorLoss(), r"loss 'item': generator_loss has no gradient with respect to fake_scores"),
        (
            FakeOnlyDiscriminatorLoss(),
            r"loss 'fake-only': discriminator_loss has no gradient with respect to real_scores",
        ),
        (
            NaiveLogSigmoidLoss(),
            r"loss 'naive': discriminator_loss returned inf \(not finite\) on scores of magnitude 30",
        ),
        (
            FirstOrderPenaltyLoss(),
            r"loss 'flat-penalty': penalty has no gradient with respect to the critic's parameters",
        ),
    ],
)
def test_check_loss_names_the_problem(loss: AdversarialLoss, message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        check_loss(loss)


def test_conformance_error_is_an_assertion_error_so_pytest_reports_a_failure() -> None:
    assert issubclass(ConformanceError, AssertionError)


def test_check_loss_rejects_what_registration_would() -> None:
    class Unnamed(GoodLoss):
        name = "Not A Slug"

    class Half(AdversarialLoss):
        name = "half"

        def discriminator_loss(self, real_scores, fake_scores):
            return fake_scores.mean() - real_scores.mean()

    with pytest.raises(ConformanceError, match="a name must be a lowercase slug"):
        check_loss(Unnamed())
    with pytest.raises(ConformanceError, match="loss 'half' does not implement generator_loss"):
        check_loss(Half())


def test_check_loss_passes_good_losses_including_a_real_penalty() -> None:
    check_loss(GoodLoss())
    check_loss(R1Loss())


class GoodVAELoss(VAELoss):
    """Squared error + KL."""

    name = "good-vae"

    def loss(self, x, reconstruction, mu, logvar):
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(dim=1).mean()
        return (x - reconstruction).pow(2).sum(dim=1).mean() + kl


class NoKLVAELoss(GoodVAELoss):
    """An autoencoder in disguise: nothing shapes the posterior."""

    name = "no-kl"

    def loss(self, x, reconstruction, mu, logvar):
        return (x - reconstruction).pow(2).sum(dim=1).mean()


def test_check_loss_on_vae_losses() -> None:
    check_loss(GoodVAELoss())
    with pytest.raises(ConformanceError, match="loss 'no-kl': loss has no gradient with respect to mu"):
        check_loss(NoKLVAELoss())


def _catalog():
    """Built-ins and the repository's example plugins (no installed entry points)."""
    return load_environment(PluginConfig(plugins_dir=REPO / "plugins", entry_points=False)).catalog


def test_every_loss_that_needs_no_dataset_passes_including_the_examples() -> None:
    catalog = _catalog()
    checked = []
    for name, entry in catalog.losses.entries.items():
        loss = entry.obj
        base = AdversarialLoss if isinstance(loss, AdversarialLoss) else VAELoss
        if type(loss).bind is not base.bind:  # needs a dataset's feature network: checked with its dataset elsewhere
            continue
        check_loss(loss)
        checked.append(name)
    assert {"nonsaturating", "wgan-gp", "ragan", "wgan-lp"} <= set(checked)


# -- models --------------------------------------------------------------------------------------------------------


class MLPFactory(ModelFactory):
    """A small GAN for points or (flattened) images."""

    name = "small"
    family = "gan"
    latent = 3

    def supports(self, data):
        return True

    def generator(self, data):
        size = math.prod(data.shape)
        layers = [nn.Linear(self.latent, 16), nn.ReLU(), nn.Linear(16, size)]
        if data.kind == "image":
            layers.append(nn.Tanh())
        return nn.Sequential(*layers, nn.Unflatten(1, data.shape))

    def discriminator(self, data):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(data.shape), 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0)
        )

    def build(self, data):
        return GAN(self.generator(data), self.discriminator(data), self.latent)


class WrongShape(MLPFactory):
    name = "wrong-shape"

    def generator(self, data):
        return nn.Linear(self.latent, 5)


class ScoresNotFlat(MLPFactory):
    name = "scores-2d"

    def discriminator(self, data):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.shape), 1))


class NoTanh(MLPFactory):
    name = "no-tanh"

    def generator(self, data):
        return nn.Sequential(nn.Linear(self.latent, math.prod(data.shape)), nn.Unflatten(1, data.shape), _Scale(10.0))


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


class OwnRandomness(MLPFactory):
    """Initialises from its own unseeded generator: paired seeds would not start losses alike."""

    name = "own-rng"
    calls = 0

    def build(self, data):
        model = super().build(data)
        OwnRandomness.calls += 1
        generator = torch.Generator().manual_seed(1000 + OwnRandomness.calls)
        with torch.no_grad():
            for p in model.generator.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
        return model


class Cached(MLPFactory):
    """Returns the same modules every time: runs would share (and keep training) one network."""

    name = "cached"
    model = None

    def build(self, data):
        if Cached.model is None:
            Cached.model = super().build(data)
        return Cached.model


IMAGES = DataSpec((1, 8, 8), "image", 10)
POINTS = DataSpec((2,), "points", None)


def test_check_model_passes_a_good_model_and_the_builtins() -> None:
    model = check_model(MLPFactory(), IMAGES)
    assert model.generator(torch.zeros(2, 3)).shape == (2, 1, 8, 8)
    catalog = _catalog()
    for factory in catalog.models:
        check_model(factory)


@pytest.mark.parametrize(
    "factory, spec, message",
    [
        (WrongShape(), POINTS, r"model 'wrong-shape': generator\(z\) returned shape \[8, 5\]; expected \[8, 2\]"),
        (ScoresNotFlat(), POINTS, r"model 'scores-2d': discriminator\(x\) returned shape \[8, 1\]; expected \[8\]"),
        (NoTanh(), IMAGES, r"model 'no-tanh': generator\(z\) returned values in .*; images must be in \[-1, 1\]"),
        (OwnRandomness(), IMAGES, r"model 'own-rng': build\(\) is not reproducible"),
        (Cached(), IMAGES, r"model 'cached': build\(\) returned modules that share parameters"),
    ],
)
def test_check_model_names_the_problem(factory: ModelFactory, spec: DataSpec, message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        check_model(factory, spec)


def test_check_model_refuses_a_spec_the_model_does_not_support() -> None:
    points_only = _catalog().models.get("mlp")
    with pytest.raises(ConformanceError, match=r"model 'mlp': supports\(.*\) is False"):
        check_model(points_only, IMAGES)


# -- datasets ------------------------------------------------------------------------------------------------------


class TinyImages(Dataset):
    """16 deterministic 1x4x4 images in [-1, 1], two modes."""

    name = "tiny-images"
    spec = DataSpec((1, 4, 4), "image", 2)
    scale = 1.0
    shape = (1, 4, 4)
    seed: int | None = 0
    loads = 0

    def load(self, root=None):
        TinyImages.loads += 1
        generator = torch.Generator().manual_seed(self.seed if self.seed is not None else TinyImages.loads)
        x = self.scale * torch.rand((16, *self.shape), generator=generator) * 2 - self.scale
        return Samples(x, torch.arange(16) % 2)


class UnscaledImages(TinyImages):
    name = "unscaled"
    scale = 255.0


class WrongDeclaredShape(TinyImages):
    name = "wrong-declared"
    shape = (1, 8, 8)


class RandomEachLoad(TinyImages):
    name = "random-each-load"
    seed = None


class LabelsOutOfRange(TinyImages):
    name = "bad-labels"

    def load(self, root=None):
        samples = super().load(root)
        return Samples(samples.x, samples.y + 5)


def test_check_dataset_passes_good_datasets_and_returns_the_samples() -> None:
    samples = check_dataset(TinyImages())
    assert samples.x.shape == (16, 1, 4, 4)
    ring = _catalog().datasets.get("ring8")
    loaded = check_dataset(ring)
    assert loaded.y is not None and sorted(loaded.y.unique().tolist()) == list(range(8))


@pytest.mark.parametrize(
    "dataset, message",
    [
        (UnscaledImages(), r"dataset 'unscaled': image samples are in \[.*\]; images must be scaled to \[-1, 1\]"),
        (
            WrongDeclaredShape(),
            r"dataset 'wrong-declared': samples.x has shape \[16, 1, 8, 8\]; expected \(N, 1, 4, 4\)",
        ),
        (RandomEachLoad(), r"dataset 'random-each-load': load\(\) is not deterministic"),
        (LabelsOutOfRange(), r"dataset 'bad-labels': samples.y has labels in \[5, 6\]; expected \[0, 2\)"),
    ],
)
def test_check_dataset_names_the_problem(dataset: Dataset, message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        check_dataset(dataset)


# -- metrics -------------------------------------------------------------------------------------------------------


class SampleCounts(Metric):
    """How many real and fake samples the evaluation saw."""

    name = "counts"

    def compute(self, ctx):
        return {"counts_real": len(ctx.real), "counts_fake": len(ctx.fake), "counts_space": "none"}


class Unprefixed(SampleCounts):
    name = "unprefixed"

    def compute(self, ctx):
        return {"real": 1.0}


class TensorValued(SampleCounts):
    name = "tensor-valued"

    def compute(self, ctx):
        return {"tensor-valued": torch.tensor(1.0)}


class ListReturning(SampleCounts):
    name = "listy"

    def compute(self, ctx):
        return [1.0]


def test_check_metric_passes_and_returns_values_from_a_harness_like_context() -> None:
    assert check_metric(SampleCounts(), n=100) == {"counts_real": 100, "counts_fake": 100, "counts_space": "none"}
    modes = check_metric(_catalog().metrics.get("modes"))
    assert modes["modes_covered"] == 8  # fake = other ring8 samples + noise 0.05: every mode is hit


@pytest.mark.parametrize(
    "metric, message",
    [
        (
            Unprefixed(),
            r"metric 'unprefixed': returned key 'real'; keys must be 'unprefixed' or start with 'unprefixed_'",
        ),
        (TensorValued(), r"metric 'tensor-valued': value of 'tensor-valued' is Tensor; expected a float"),
        (ListReturning(), r"metric 'listy': compute\(\) returned list on dataset 'ring8'; expected a dict"),
    ],
)
def test_check_metric_names_the_problem(metric: Metric, message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        check_metric(metric)


def test_make_context_has_disjoint_real_and_reference_sets() -> None:
    ctx = make_context(n=50)
    assert len(ctx.real) == len(ctx.reference) == len(ctx.fake) == 50
    real = {tuple(row) for row in ctx.real.x.tolist()}
    reference = {tuple(row) for row in ctx.reference.x.tolist()}
    assert not real & reference
    assert ctx.features()[0].shape == (50, 2)


# -- smoke_run: a plugin implementing every hook, trained by the real harness ---------------------------------------

EVERY_HOOK_PLUGIN = textwrap.dedent('''
    """A plugin implementing all five hooks, for the smoke-run test."""
    import json, os
    import torch
    import torch.nn.functional as F
    from torch import nn
    from lossbench import (GAN, AdversarialLoss, DataSpec, Dataset, Metric, ModeAssignment, ModelFactory, Samples,
                           hookimpl)

    class KitLoss(AdversarialLoss):
        """Non-saturating loss under another name."""
        name = "kit-loss"
        def discriminator_loss(self, real_scores, fake_scores):
            return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        def generator_loss(self, fake_scores, real_scores):
            return F.softplus(-fake_scores).mean()

    class KitModel(ModelFactory):
        """Two-layer MLP GAN for points."""
        name = "kit-mlp"
        family = "gan"
        def supports(self, data):
            return data.kind == "points"
        def build(self, data):
            g = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, data.shape[0]))
            d = nn.Sequential(nn.Linear(data.shape[0], 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0))
            return GAN(g, d, 2)

    class KitLine(Dataset):
        """1,000 points on two spots of a line."""
        name = "kit-line"
        spec = DataSpec((2,), "points", 2)
        def load(self, root=None):
            g = torch.Generator().manual_seed(0)
            y = torch.arange(1000) % 2
            x = torch.stack([y.float() * 2 - 1, torch.zeros(1000)], dim=1) + 0.05 * torch.randn(1000, 2, generator=g)
            return Samples(x, y)
        def mode_of(self, x):
            mode = (x[:, 0] > 0).long()
            centre = torch.stack([mode.float() * 2 - 1, torch.zeros(len(x))], 1)
            return ModeAssignment(mode, (x - centre).norm(dim=1) < 0.15)

    class KitCount(Metric):
        """How many real and fake samples the final evaluation scored."""
        name = "kit-count"
        def compute(self, ctx):
            return {"kit-count_real": len(ctx.real), "kit-count_fake": len(ctx.fake)}

    @hookimpl
    def register_losses(register):
        register(KitLoss())

    @hookimpl
    def register_models(register):
        register(KitModel())

    @hookimpl
    def register_datasets(register):
        register(KitLine())

    @hookimpl
    def register_metrics(register):
        register(KitCount())

    @hookimpl
    def run_finished(record):
        with open(os.environ["KIT_RECORDS"], "a") as log:
            log.write(json.dumps({k: record[k] for k in ("run_id", "loss", "model", "dataset", "status")}) + "\\n")
''')


def test_smoke_run_trains_a_plugin_implementing_every_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    folder = tmp_path / "kit-plugins"
    folder.mkdir()
    (folder / "kit.py").write_text(EVERY_HOOK_PLUGIN)
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv("KIT_RECORDS", str(records))

    result = smoke_run(
        losses=["kit-loss"],
        models=["kit-mlp"],
        datasets=["kit-line"],
        plugins_dir=folder,
        results_dir=tmp_path / "results",
    )
    assert result.ok and result.statuses == {"ok": 1}
    run = result.runs[0]
    assert (run.spec.loss, run.spec.model, run.spec.dataset, run.spec.preset) == (
        "kit-loss",
        "kit-mlp",
        "kit-line",
        "smoke",
    )
    assert run.history["step"].iloc[-1] == run.spec.steps == 40  # the smoke preset's points steps
    # final evaluation: min(final_samples = 500, half of the 1,000 samples) real and as many fake samples
    assert run.metrics["kit-count_real"] == run.metrics["kit-count_fake"] == 500
    assert "modes_covered" in run.metrics  # the built-in mode metric used the plugin's mode_of
    logged = [json.loads(line) for line in records.read_text().splitlines()]
    assert logged == [
        {"run_id": run.run_id, "loss": "kit-loss", "model": "kit-mlp", "dataset": "kit-line", "status": "ok"}
    ]
    assert (tmp_path / "results" / "lossbench.db").is_file()
    assert result.frame().loc[0, "kit-count_fake"] == 500

    listed = cli("plugins", "--json", "--plugins-dir", str(folder))
    assert listed.exit_code == 0, listed.output
    info = {p["name"]: p for p in json.loads(listed.output)["plugins"]}["kit"]
    assert info["source"] == "plugins folder" and info["distribution"] is None
    assert info["hooks"] == sorted(
        ["register_datasets", "register_losses", "register_metrics", "register_models", "run_finished"]
    )
    assert info["registered"] == {
        "losses": ["kit-loss"],
        "models": ["kit-mlp"],
        "datasets": ["kit-line"],
        "metrics": ["kit-count"],
    }
    text = cli("plugins", "--plugins-dir", str(folder))
    assert "kit  [plugins folder: no distribution]" in text.output
    assert "  metrics: kit-count" in text.output
    builtin = [line for line in text.output.splitlines() if line.startswith("lossbench.builtin.losses")]
    assert builtin and "builtin: lossbench 0." in builtin[0]


def test_smoke_run_raises_with_the_reason_when_a_run_fails(tmp_path: Path) -> None:
    module = _module_with(VectorLoss(), "vector_plugin")
    with pytest.raises(
        ConformanceError,
        match=r"smoke run did not finish ok: ring8/mlp/vector/seed0: failed "
        r"\(.*discriminator_loss returned a tensor of shape \[64\]",
    ):
        smoke_run(
            losses=["vector"],
            models=["mlp"],
            datasets=["ring8"],
            modules=[module],
            plugins_dir=tmp_path,
            results_dir=tmp_path / "results",
        )


def test_smoke_run_reports_plugin_problems(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(
        ConformanceError, match=r"plugin problems: plugin 'broken': failed to import .*RuntimeError: boom"
    ):
        smoke_run(losses=["nonsaturating"], datasets=["ring8"], plugins_dir=tmp_path, results_dir=tmp_path / "r")


def _module_with(loss: AdversarialLoss, name: str):
    """A plugin module object registering ``loss``, as an author's module would."""
    import types

    from lossbench import hookimpl

    module = types.ModuleType(name)

    @hookimpl
    def register_losses(register):
        register(loss)

    module.register_losses = register_losses
    return module


def test_the_pytest_plugin_provides_its_fixtures(request: pytest.FixtureRequest, lossbench_environment) -> None:
    """lossbench.testing is loaded through its pytest11 entry point (reinstall lossbench if this fails)."""
    assert request.config.pluginmanager.hasplugin("lossbench")
    assert {"nonsaturating", "wgan-gp"} <= set(lossbench_environment.catalog.losses.names())
    assert callable(request.getfixturevalue("lossbench_smoke"))


class DeclaresBetter(SampleCounts):
    name = "counts"


@pytest.mark.parametrize(
    "better, message",
    [
        (["counts_real"], r"metric 'counts': better is list; expected a dict"),
        (
            {"real": "higher"},
            r"metric 'counts': better names key 'real'; keys must be 'counts' or start with 'counts_'",
        ),
        (
            {"counts_real": "up"},
            r"metric 'counts': better\['counts_real'\] is 'up'; expected one of 'higher', 'lower', 'none'",
        ),
        ({"counts_space": "lower"}, r"metric 'counts': better names key 'counts_space', whose value is a str fact"),
    ],
)
def test_check_metric_validates_better(better, message: str) -> None:
    metric = DeclaresBetter()
    metric.better = better
    with pytest.raises(ConformanceError, match=message):
        check_metric(metric, n=100)


def test_check_metric_accepts_every_known_direction_and_the_builtins() -> None:
    metric = DeclaresBetter()
    metric.better = {
        "counts_real": "higher",
        "counts_fake": "none",
        "counts_other": "lower",
    }  # _other: not returned here
    assert check_metric(metric, n=100)["counts_real"] == 100
    for builtin in _catalog().metrics:
        check_metric(builtin, allow_empty=True)
