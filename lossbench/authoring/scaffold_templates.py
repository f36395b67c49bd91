"""The files ``lossbench new-plugin`` writes, as ``string.Template`` texts (``$name``, ``$package``, ...).

Kept as Python strings rather than data files so that they ship with every install of lossbench without
package-data configuration. Each kind has one or more templates (``--template``): a plugin module with a working
example, named after the plugin, and its tests. The plugin's description is written once, as the class's
``description`` (what ``lossbench list`` shows); the package metadata and README only name the plugin.
"""

from __future__ import annotations

from lossbench.plugin.kinds import KINDS

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A lossbench $kind plugin registering '$name'"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["lossbench"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# This table is what makes lossbench find the plugin: the group is "lossbench", the value the module with the
# @hookimpl functions. `lossbench plugins` lists it under the name on the left.
[project.entry-points.lossbench]
$name = "$package.plugin"

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
"""

INIT = '''\
"""The lossbench $kind plugin '$name'; its hooks and description are in ``$package.plugin``."""
'''

README = """\
# $distribution

A [lossbench](https://pypi.org/project/lossbench/) $kind plugin. It registers the $kind `$name`, whose
description is the `description` line of `src/$package/plugin.py` (shown by `lossbench list $registry`).

## Use

```bash
pip install -e .                 # installs the entry point; now `lossbench list $registry` shows `$name`
lossbench plugins                # ... and this shows the distribution, its version and what it registered
$try_it
```

## Develop

```bash
pytest                           # formula tests, lossbench's conformance checks and a real smoke run
```

`src/$package/plugin.py` holds the $kind and the `@hookimpl` function that registers it. The tests use
`lossbench.testing` (a pytest plugin installed with lossbench): `$check` raises an `AssertionError` naming
any break of the plugin contract, and the `lossbench_smoke` fixture trains the plugin in a tiny real grid.

The name `$name` is how users select it; it must stay a lowercase slug and must not clash with another
plugin's names (lossbench reports a clash with both plugins' names). The hook reference is lossbench's
`docs/hooks.md`.
"""

MODULES = {
    "hinge": '''\
"""The $name loss, started from lossbench's hinge template (Lim & Ye 2017; Miyato et al. 2018).

Replace the formulas with your own and keep the signatures: scores are the discriminator's raw outputs, shape
[batch]; each method returns a scalar to minimise.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench import AdversarialLoss, Recipe, hookimpl


class $class_name(AdversarialLoss):
    """D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z))."""

    name = "$name"
    # the plugin's one description (`lossbench list` shows it): say here what yours does
    description = "$description"
    # The training defaults of the loss's paper; the harness follows them for this loss (DCGAN's Adam here).
    recipe = Recipe(n_critic=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


@hookimpl
def register_losses(register) -> None:
    register($class_name())
''',
    "nonsaturating": '''\
"""The $name loss, started from lossbench's non-saturating template (Goodfellow et al. 2014).

Log-sigmoid terms are written with softplus (log(1 + e^s)), so that a confident discriminator gives finite
losses. Replace the formulas with your own and keep the signatures.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench import AdversarialLoss, Recipe, hookimpl


class $class_name(AdversarialLoss):
    """D: -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))); G: -log sigmoid(D(G(z)))."""

    name = "$name"
    # the plugin's one description (`lossbench list` shows it): say here what yours does
    description = "$description"
    recipe = Recipe(n_critic=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return F.softplus(-fake_scores).mean()


@hookimpl
def register_losses(register) -> None:
    register($class_name())
''',
    "wasserstein": '''\
"""The $name loss, started from lossbench's Wasserstein template: a critic with a gradient penalty
(Gulrajani et al. 2017).

The penalty differentiates the critic with respect to its input (``create_graph=True`` keeps it trainable) and
draws its interpolation weights from torch's global generator, which the harness seeds once per run: the draws
are reproducible for each seed. Replace the formulas with your own and keep the signatures.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench import AdversarialLoss, Recipe, hookimpl


class $class_name(AdversarialLoss):
    """Critic: D(G(z)) - D(x) + weight (||grad D(x_hat)|| - 1)^2; G: -D(G(z))."""

    name = "$name"
    # the plugin's one description (`lossbench list` shows it): say here what yours does
    description = "$description"
    recipe = Recipe(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))  # the paper's
    scores_are_logits = False  # critic values: no sigmoid(D) is reported
    weight = 10.0

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()

    def penalty(self, critic, real: Tensor, fake: Tensor) -> Tensor:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)  # the harness's seeded stream
        x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return self.weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@hookimpl
def register_losses(register) -> None:
    register($class_name())
''',
    "mlp": '''\
"""The $name model, started from lossbench's MLP template.

A model plugin builds fresh networks for a dataset it supports. The harness seeds torch before calling
``build``, so every loss starts from the same weights for a given seed: draw only from torch's generator.
"""

from __future__ import annotations

from torch import nn

from lossbench import GAN, DataSpec, ModelFactory, hookimpl


class $class_name(ModelFactory):
    """MLP GAN for points with SiLU activations (width 64, latent 4)."""

    name = "$name"
    # the plugin's one description (`lossbench list` shows it): say here what yours does
    description = "$description"
    family = "gan"
    width = 64
    latent_dim = 4

    def supports(self, data: DataSpec) -> bool:
        return data.kind == "points" and len(data.shape) == 1

    def build(self, data: DataSpec) -> GAN:
        (dim,) = data.shape
        w = self.width
        generator = nn.Sequential(
            nn.Linear(self.latent_dim, w), nn.SiLU(), nn.Linear(w, w), nn.SiLU(), nn.Linear(w, dim)
        )
        discriminator = nn.Sequential(  # scores of shape [B]: flatten the final [B, 1]
            nn.Linear(dim, w), nn.SiLU(), nn.Linear(w, w), nn.SiLU(), nn.Linear(w, 1), nn.Flatten(0)
        )
        return GAN(generator, discriminator, self.latent_dim)


@hookimpl
def register_models(register) -> None:
    register($class_name())
''',
    "rings": '''\
"""The $name dataset, started from lossbench's two-rings template.

A dataset plugin loads its samples deterministically and never downloads; ``mode_of`` tells the harness which
mode each generated sample belongs to, so that mode coverage can be scored.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from lossbench import DataSpec, Dataset, ModeAssignment, Samples, hookimpl


class $class_name(Dataset):
    """Two rings of Gaussians: 4 at radius 1 and 8 at radius 3, std 0.05 (12 modes)."""

    name = "$name"
    # the plugin's one description (`lossbench list` shows it): say here what yours does
    description = "$description"
    spec = DataSpec(shape=(2,), kind="points", n_modes=12)
    std = 0.05
    n_samples = 10_000
    seed = 0

    def __init__(self) -> None:
        # read by the report (generated points are drawn over the centres) and by mode_of
        inner = torch.arange(4, dtype=torch.float64) * (2 * math.pi / 4)
        outer = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8) + math.pi / 8
        self.centres = torch.cat([
            1.0 * torch.stack([inner.cos(), inner.sin()], dim=1),
            3.0 * torch.stack([outer.cos(), outer.sin()], dim=1),
        ]).float()

    def load(self, root: Path | None = None) -> Samples:
        generator = torch.Generator().manual_seed(self.seed)
        y = torch.randint(len(self.centres), (self.n_samples,), generator=generator)
        x = self.centres[y] + self.std * torch.randn((self.n_samples, 2), generator=generator)
        return Samples(x, y)

    def mode_of(self, x: Tensor) -> ModeAssignment:
        distance, mode = torch.cdist(x.float().cpu(), self.centres).min(dim=1)
        return ModeAssignment(mode=mode, high_quality=distance <= 3 * self.std)


@hookimpl
def register_datasets(register) -> None:
    register($class_name())
''',
    "energy": '''\
"""The $name metric, started from lossbench's energy-distance template.

A metric plugin computes values from one evaluation of a run. Keys are ``<name>`` or ``<name>_<part>``; values
are plain floats. ``ctx.features()`` returns (real, fake) features in the dataset's default space (coordinates
for points, the dataset's classifier for images), shared with the other metrics.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from lossbench import Metric, hookimpl


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """2 E|A - B| - E|A - A'| - E|B - B'| over all pairs (V-statistic): 0 exactly when the samples coincide."""
    return float(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())


class $class_name(Metric):
    """Energy distance between real and generated samples (Szekely & Rizzo 2013), in the default features."""

    name = "$name"
    # the plugin's one description (`lossbench list` shows it): say here what yours does
    description = "$description"
    curve = True  # also computed during training, giving a curve
    better = {"$name": "lower"}  # per key: "higher", "lower" or "none" (not ranked)

    def compute(self, ctx) -> dict[str, float]:
        real, fake = ctx.features()
        return {self.name: energy_distance(real, fake)}


@hookimpl
def register_metrics(register) -> None:
    register($class_name())
''',
    "projection": '''\
"""The $name feature space, started from lossbench's random-projection template.

A feature-space plugin gives image metrics (FID, KID, PRDC) another space to be computed in:
``lossbench run --feature-space $name`` stores ``fid@$name`` beside the default ``fid``. Nothing is built until a
metric needs the space; a network with trained weights would read them from a file named in ``weights``.
"""

from __future__ import annotations

import torch

from lossbench import FeatureSpace, hookimpl

WIDTH = 64


class Projection:
    """The network: flattened samples times a fixed Gaussian matrix (seeded, so every process agrees)."""

    def __init__(self, name: str, inputs: int) -> None:
        self.name = f"{name}-projection-{WIDTH}"  # stored beside every value computed in the space
        self.matrix = torch.randn(inputs, WIDTH, generator=torch.Generator().manual_seed(0)) / inputs ** 0.5

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float() @ self.matrix


class $class_name(FeatureSpace):
    """A fixed random projection of the samples to 64 features (Johnson-Lindenstrauss: distances kept roughly)."""

    name = "$name"
    # the plugin's one description (`lossbench list feature_spaces` shows it): say here what yours does
    description = "$description"
    inputs = "vector"  # any samples, flattened; "image" with channels/sizes for an image network
    width = WIDTH

    def build(self, dataset, device):
        inputs = 1
        for side in dataset.spec.shape:
            inputs *= side
        return Projection(self.name, inputs)


@hookimpl
def register_feature_spaces(register) -> None:
    register($class_name())
''',
}

TESTS = {
    "hinge": '''\
"""Tests of the $name loss: its formula on known scores, lossbench's contract, and a real smoke run."""

import pytest
import torch

from lossbench.testing import check_loss
from $package import plugin
from $package.plugin import $class_name


def test_formula_on_known_scores():
    loss = $class_name()
    zeros = torch.zeros(4)
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(2.0)  # relu(1) + relu(1)
    assert loss.discriminator_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0  # beyond the margin
    assert loss.generator_loss(torch.full((4,), 2.0), zeros).item() == pytest.approx(-2.0)


def test_keeps_the_loss_contract():
    check_loss($class_name())


def test_trains_in_a_smoke_grid(lossbench_smoke):
    result = lossbench_smoke(losses=["$name"], models=["mlp"], datasets=["ring8"], modules=[plugin])
    assert result.statuses == {"ok": 1}
    run = result.runs[0]
    assert run.history["step"].iloc[-1] == run.spec.steps
''',
    "nonsaturating": '''\
"""Tests of the $name loss: its formula on known scores, lossbench's contract, and a real smoke run."""

import math

import pytest
import torch

from lossbench.testing import check_loss
from $package import plugin
from $package.plugin import $class_name


def test_formula_on_known_scores():
    loss = $class_name()
    zeros = torch.zeros(4)
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))  # D(x) = 1/2 everywhere
    assert loss.generator_loss(zeros, zeros).item() == pytest.approx(math.log(2))
    assert loss.generator_loss(torch.full((4,), -100.0), zeros).item() == pytest.approx(100.0)  # finite, not inf


def test_keeps_the_loss_contract():
    check_loss($class_name())


def test_trains_in_a_smoke_grid(lossbench_smoke):
    result = lossbench_smoke(losses=["$name"], models=["mlp"], datasets=["ring8"], modules=[plugin])
    assert result.statuses == {"ok": 1}
''',
    "wasserstein": '''\
"""Tests of the $name loss: its formula and penalty on known critics, lossbench's contract, and a smoke run."""

import pytest
import torch

from lossbench.testing import check_loss
from $package import plugin
from $package.plugin import $class_name


def test_formula_on_known_scores():
    loss = $class_name()
    assert loss.discriminator_loss(torch.ones(4), torch.zeros(4)).item() == -1.0
    assert loss.generator_loss(torch.full((4,), 3.0), torch.zeros(4)).item() == -3.0


def test_penalty_of_a_linear_critic_is_known_whatever_the_interpolation():
    loss = $class_name()
    critic = lambda x: x @ torch.tensor([2.0, 0.0])  # gradient (2, 0) everywhere: norm 2
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert loss.penalty(critic, real, fake).item() == pytest.approx(loss.weight * (2 - 1) ** 2)


def test_keeps_the_loss_contract():
    check_loss($class_name())


def test_trains_in_a_smoke_grid(lossbench_smoke):
    result = lossbench_smoke(losses=["$name"], models=["mlp"], datasets=["ring8"], modules=[plugin])
    assert result.statuses == {"ok": 1}
    assert result.runs[0].history["penalty"].notna().all()
''',
    "mlp": '''\
"""Tests of the $name model: shapes, lossbench's contract, and a real smoke run."""

import torch

from lossbench import DataSpec
from lossbench.testing import check_model
from $package import plugin
from $package.plugin import $class_name


def test_keeps_the_model_contract():
    model = check_model($class_name(), DataSpec((2,), "points", 8))
    assert model.generator(torch.zeros(3, model.latent_dim)).shape == (3, 2)
    assert model.discriminator(torch.zeros(3, 2)).shape == (3,)


def test_supports_points_only():
    assert $class_name().supports(DataSpec((3,), "points", None))
    assert not $class_name().supports(DataSpec((1, 8, 8), "image", 10))


def test_trains_in_a_smoke_grid(lossbench_smoke):
    result = lossbench_smoke(losses=["nonsaturating"], models=["$name"], datasets=["ring8"], modules=[plugin])
    assert result.statuses == {"ok": 1}
''',
    "rings": '''\
"""Tests of the $name dataset: its modes, lossbench's contract, and a real smoke run."""

import torch

from lossbench.testing import check_dataset
from $package import plugin
from $package.plugin import $class_name


def test_keeps_the_dataset_contract():
    samples = check_dataset($class_name())
    assert samples.x.shape == (10_000, 2)
    assert sorted(samples.y.unique().tolist()) == list(range(12))


def test_centres_are_their_own_modes_and_far_points_are_not_high_quality():
    dataset = $class_name()
    assignment = dataset.mode_of(dataset.centres)
    assert assignment.mode.tolist() == list(range(12))
    assert bool(assignment.high_quality.all())
    assert not bool(dataset.mode_of(torch.tensor([[10.0, 10.0]])).high_quality.any())


def test_trains_in_a_smoke_grid(lossbench_smoke):
    result = lossbench_smoke(losses=["nonsaturating"], models=["mlp"], datasets=["$name"], modules=[plugin])
    assert result.statuses == {"ok": 1}
''',
    "energy": '''\
"""Tests of the $name metric: known values, lossbench's contract, and a real smoke run."""

import numpy as np
import pytest

from lossbench.testing import check_metric, make_context
from $package import plugin
from $package.plugin import $class_name, energy_distance


def test_known_values():
    a, b = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    assert energy_distance(a, b) == pytest.approx(10.0)  # 2 * |(3, 4)| - 0 - 0
    assert energy_distance(a, a) == 0.0


def test_keeps_the_metric_contract_and_orders_generators():
    close = check_metric($class_name())  # generated samples = other real samples + a little noise
    far = check_metric($class_name(), fake=make_context().real.x + 3.0)
    assert 0 <= close["$name"] < far["$name"]


def test_is_computed_in_a_smoke_grid(lossbench_smoke):
    result = lossbench_smoke(losses=["nonsaturating"], models=["mlp"], datasets=["ring8"], modules=[plugin])
    assert result.statuses == {"ok": 1}
    assert result.runs[0].metrics["$name"] >= 0
''',
    "projection": '''\
"""Tests of the $name feature space: known features, and lossbench's contract."""

import torch

from lossbench.testing import check_feature_space
from $package.plugin import WIDTH, Projection, $class_name


def test_known_features():
    network = Projection("$name", inputs=2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(network.features(x), network.matrix)  # the unit vectors pick the matrix's rows


def test_keeps_the_feature_space_contract():
    features = check_feature_space($class_name())  # built for a built-in dataset, 64 samples
    assert features.shape == (64, WIDTH)
''',
}

TEMPLATES = {kind.singular: kind.templates for kind in KINDS if kind.templates}  # the default first
"""Each scaffoldable kind's templates, as the kinds table (``plugin.kinds``) declares them."""

DESCRIPTIONS = {  # each template's starting description, written once into the plugin class
    "hinge": "Hinge GAN loss (from the hinge template)",
    "nonsaturating": "Non-saturating GAN loss (from the non-saturating template)",
    "wasserstein": "Wasserstein critic with a gradient penalty (from the Wasserstein template)",
    "mlp": "MLP GAN for points (from the MLP template)",
    "rings": "Two rings of Gaussians, 12 modes (from the two-rings template)",
    "energy": "Energy distance between real and generated samples (from the energy-distance template)",
    "projection": "A fixed random projection to 64 features (from the random-projection template)",
}
