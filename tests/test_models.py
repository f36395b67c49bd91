"""The built-in model factories: what they support, the shapes they build, and a few real training steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossbench.api import GAN, VAE, Dataset, DataSpec, Samples
from lossbench.builtin import losses as builtin_losses, models as M
from lossbench.plan.grid import RunSpec
from lossbench.plugin.registry import Catalog
from lossbench.training.train import train_run

POINTS = [DataSpec((2,), "points", 8), DataSpec((5,), "points", None)]
IMAGES = [DataSpec((c, s, s), "image", 10) for c in (1, 3) for s in (8, 16, 28, 32)]
UNSUPPORTED_IMAGES = [
    DataSpec((1, 12, 12), "image", 10),  # size not in 8/16/28/32
    DataSpec((2, 8, 8), "image", 10),  # 2 channels
    DataSpec((1, 8, 16), "image", 10),  # not square
    DataSpec((8, 8), "image", 10),  # no channel axis
    DataSpec((1, 8, 8), "points", 10),  # image-shaped but not images
]
UNSUPPORTED_POINTS = [DataSpec((2, 2), "points", 4), DataSpec((2,), "image", 8)]


@pytest.fixture(scope="module")
def factories() -> dict:
    """The factories the built-in plugin registers through its ``register_models`` hook, by name."""
    registered: list = []
    M.register_models(registered.append)
    return {factory.name: factory for factory in registered}


def test_builtin_models_and_families(factories):
    assert {name: f.family for name, f in factories.items()} == {
        "mlp": "gan",
        "dcgan": "gan",
        "mlp-vae": "vae",
        "conv-vae": "vae",
    }


@pytest.mark.parametrize(
    "name,supported,rejected",
    [
        ("mlp", POINTS, IMAGES + UNSUPPORTED_POINTS),
        ("mlp-vae", POINTS, IMAGES + UNSUPPORTED_POINTS),
        ("dcgan", IMAGES, POINTS + UNSUPPORTED_IMAGES),
        ("conv-vae", IMAGES, POINTS + UNSUPPORTED_IMAGES),
    ],
)
def test_supports_is_exact(factories, name, supported, rejected):
    factory = factories[name]
    assert all(factory.supports(spec) for spec in supported)
    assert not any(factory.supports(spec) for spec in rejected), [s for s in rejected if factory.supports(s)]


def gan_cases():
    return [("mlp", spec) for spec in POINTS] + [("dcgan", spec) for spec in IMAGES]


def vae_cases():
    return [("mlp-vae", spec) for spec in POINTS] + [("conv-vae", spec) for spec in IMAGES]


@pytest.mark.parametrize("name,spec", gan_cases(), ids=lambda v: getattr(v, "shape", v))
def test_gan_shapes(factories, name, spec):
    torch.manual_seed(0)
    gan = factories[name].build(spec)
    assert isinstance(gan, GAN)
    z = torch.randn(5, gan.latent_dim)
    x = gan.generator(z)
    assert x.shape == (5, *spec.shape)
    assert gan.discriminator(x).shape == (5,)
    assert gan.discriminator(torch.randn(1, *spec.shape)).shape == (1,)
    if spec.kind == "image":  # tanh: images live in [-1, 1]
        assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("name,spec", vae_cases(), ids=lambda v: getattr(v, "shape", v))
def test_vae_shapes(factories, name, spec):
    torch.manual_seed(0)
    vae = factories[name].build(spec)
    assert isinstance(vae, VAE)
    x = torch.rand(4, *spec.shape) * 2 - 1
    mu, logvar = vae.encoder(x)
    assert mu.shape == logvar.shape == (4, vae.latent_dim)
    assert not torch.equal(mu, logvar)  # two heads, not one output twice
    out = vae.decoder(mu)
    assert out.shape == x.shape
    if spec.kind == "image":
        assert out.min() >= -1 and out.max() <= 1


def test_latent_sizes(factories):
    assert 2 <= factories["mlp"].latent_dim <= 8
    assert 2 <= factories["mlp-vae"].latent_dim <= 8


@pytest.mark.parametrize("spec", IMAGES, ids=lambda s: "x".join(map(str, s.shape)))
def test_dcgan_discriminator_has_no_batchnorm_and_generator_has(factories, spec):
    gan = factories["dcgan"].build(spec)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for m in gan.discriminator.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in gan.generator.modules())
    assert any(isinstance(m, nn.ConvTranspose2d) for m in gan.generator.modules())
    assert isinstance(list(gan.generator.modules())[-1], nn.Tanh)


def test_dcgan_scores_are_per_sample(factories):
    """Without BatchNorm in D, a sample's score does not depend on the rest of its batch (penalties need this)."""
    spec = DataSpec((3, 8, 8), "image", 1000)
    torch.manual_seed(0)
    D = factories["dcgan"].build(spec).discriminator
    x = torch.rand(6, *spec.shape) * 2 - 1
    together = D(x)
    alone = torch.cat([D(x[i : i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_builds_are_seeded(factories):
    spec = DataSpec((1, 8, 8), "image", 10)
    weights = []
    for _ in range(2):
        torch.manual_seed(3)
        weights.append([p.clone() for p in factories["dcgan"].build(spec).generator.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_dcgan_stays_small_for_8px(factories):
    """The default grid trains it dozens of times on a CPU."""
    gan = factories["dcgan"].build(DataSpec((3, 8, 8), "image", 1000))
    n = sum(p.numel() for p in gan.generator.parameters()) + sum(p.numel() for p in gan.discriminator.parameters())
    assert n < 200_000


# -- a few real training steps through the engine ---------------------------------------------------------------------
class RandomImages(Dataset):
    """Random images in [-1, 1] of a given spec, with a real (tiny, untrained) classifier as feature network."""

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec
        self.name = "random-" + "x".join(map(str, spec.shape))

    def load(self, root=None) -> Samples:
        g = torch.Generator().manual_seed(0)
        return Samples(torch.rand((256, *self.spec.shape), generator=g) * 2 - 1)

    def feature_network(self, device):
        return TinyClassifier(self.spec).to(device)


class TinyClassifier(nn.Module):
    name = "tiny-classifier"

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Conv2d(spec.channels, 4, 3, 2, 1), nn.ReLU(), nn.Flatten())

    def features(self, x):
        return self.body(x)


class RandomPoints(RandomImages):
    def load(self, root=None) -> Samples:
        g = torch.Generator().manual_seed(0)
        return Samples(torch.randn((256, *self.spec.shape), generator=g))


TRAIN_CASES = [
    ("dcgan", "wgan-gp", DataSpec((1, 8, 8), "image", 10)),
    ("dcgan", "r1", DataSpec((3, 16, 16), "image", 10)),
    ("dcgan", "hinge", DataSpec((3, 8, 8), "image", 10)),
    ("conv-vae", "vae-perceptual", DataSpec((3, 8, 8), "image", 10)),
    ("mlp", "dragan", DataSpec((2,), "points", 8)),
    ("mlp-vae", "beta-vae", DataSpec((2,), "points", 8)),
]


@pytest.fixture
def one_thread():
    """Tiny models run best on one thread; a busy machine makes two threads much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("model,loss,spec", TRAIN_CASES, ids=lambda v: getattr(v, "shape", v))
def test_models_train_a_few_steps_through_the_engine(factories, one_thread, model, loss, spec):
    catalog = Catalog()
    dataset = RandomPoints(spec) if spec.kind == "points" else RandomImages(spec)
    catalog.datasets.add(dataset, "test")
    catalog.models.add(factories[model], "lossbench.builtin.models")
    registered: list = []
    builtin_losses.register_losses(registered.append)
    catalog.losses.add(next(made for made in registered if made.name == loss), "lossbench.builtin.losses")
    run = RunSpec(
        loss=loss,
        model=model,
        dataset=dataset.name,
        seed=0,
        steps=3,
        batch_size=8,
        log_every=1,
        eval_every=100,
        eval_samples=16,
        final_samples=32,
    )
    result = train_run(run, catalog)
    assert result.status == "ok", result.reason
    assert list(result.history["step"]) == [1, 2, 3]
    assert result.history["g_loss"].notna().all()
    if model in ("dcgan", "mlp"):
        assert result.history["d_loss"].notna().all()
    if loss in ("wgan-gp", "r1", "dragan"):  # the penalty reached the engine's history
        assert (result.history["penalty"] > 0).all()
