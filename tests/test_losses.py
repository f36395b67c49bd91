"""The built-in losses against hand computation: formulas for both players, penalties in closed form, VAE terms."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lossbench.api import AdversarialLoss, Dataset, DataSpec, Recipe, Samples, VAELoss
from lossbench.builtin import losses as L
from lossbench.builtin.models import DCGAN, MLPGAN
from lossbench.errors import LossbenchError
from lossbench.plugin.loader import PluginConfig, build_catalog, load_plugins

REAL = [0.5, -1.0, 2.0]
FAKE = [-0.3, 1.5, -2.5]
GAN_NAMES = ["minimax", "nonsaturating", "wgan", "wgan-gp", "lsgan", "hinge", "dragan", "r1"]
VAE_NAMES = ["vae", "beta-vae", "vae-perceptual"]


def sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def losses() -> dict:
    """The objects the built-in plugin registers through its ``register_losses`` hook, by name."""
    registered: list = []
    L.register_losses(registered.append)
    return {loss.name: loss for loss in registered}


def scores(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# -- registration and recipes ----------------------------------------------------------------------------------------
def test_all_builtin_losses_are_registered_by_the_builtin_plugin(tmp_path, losses):
    assert sorted(losses) == sorted(GAN_NAMES + VAE_NAMES)
    catalog = build_catalog(load_plugins(PluginConfig(plugins_dir=tmp_path, entry_points=False)))
    for name in GAN_NAMES + VAE_NAMES:
        assert catalog.losses.plugin_of(name) == "lossbench.builtin.losses"
    assert {n for n in GAN_NAMES if catalog.losses.get(n).family == "gan"} == set(GAN_NAMES)
    assert {n for n in VAE_NAMES if catalog.losses.get(n).family == "vae"} == set(VAE_NAMES)


PAPERS = {
    "minimax": "Goodfellow",
    "nonsaturating": "Goodfellow",
    "wgan": "Arjovsky",
    "wgan-gp": "Gulrajani",
    "lsgan": "Mao",
    "hinge": "Lim",
    "dragan": "Kodali",
    "r1": "Mescheder",
    "vae": "Kingma",
    "beta-vae": "Higgins",
    "vae-perceptual": "Hou",
}


@pytest.mark.parametrize("name", GAN_NAMES + VAE_NAMES)
def test_description_names_the_paper(losses, name):
    from lossbench.api import describe

    assert PAPERS[name] in describe(losses[name])


def test_perceptual_description_says_which_network(losses):
    from lossbench.api import describe

    text = describe(losses["vae-perceptual"])
    assert "random conv net used by no evaluation" in text and "VGG" in text


# The published parameters, from each paper and, where it differs, the authors' code (see docs/recipes.md).
RECIPES = {
    "minimax": Recipe(1, "adam", 2e-4, 2e-4, (0.5, 0.999)),  # harmonised: DCGAN (Radford et al. 2016)
    "nonsaturating": Recipe(1, "adam", 2e-4, 2e-4, (0.5, 0.999)),  # harmonised: DCGAN
    # Arjovsky et al. 2017 Algorithm 1 + martinarjovsky/WassersteinGAN: 100 critic steps for 25 G steps, every 500th
    "wgan": Recipe(5, "rmsprop", 5e-5, 5e-5, n_critic_burst=100, burst_steps=25, burst_every=500),
    "wgan-gp": Recipe(5, "adam", 1e-4, 1e-4, (0.0, 0.9)),  # Gulrajani et al. 2017 Algorithm 1
    "lsgan": Recipe(1, "adam", 2e-4, 2e-4, (0.5, 0.999)),  # harmonised: DCGAN
    "hinge": Recipe(1, "adam", 2e-4, 2e-4, (0.5, 0.999)),  # harmonised (no spectral norm here); Miyato setting C
    "dragan": Recipe(1, "adam", 1e-4, 1e-4, (0.5, 0.9)),  # Kodali et al., kodalinaveen3/DRAGAN
    "r1": Recipe(1, "rmsprop", 1e-4, 1e-4, ema_decay=0.999),  # Mescheder et al. 2018, GAN_stability default.yaml
}
PENALTIES = {"wgan": ("clip", 0.01), "wgan-gp": ("weight", 10.0), "dragan": ("weight", 10.0), "r1": ("gamma", 10.0)}


@pytest.mark.parametrize("name", GAN_NAMES)
def test_gan_recipe_follows_the_paper(losses, name):
    assert losses[name].recipe == RECIPES[name]
    if name in PENALTIES:
        attribute, value = PENALTIES[name]
        assert getattr(losses[name], attribute) == value


def test_wgan_critic_schedule_is_the_authors():
    # main.py: Diters = 100 if gen_iterations < 25 or gen_iterations % 500 == 0 else 5 (gen_iterations from 0)
    recipe = RECIPES["wgan"]
    assert [recipe.critic_steps(t) for t in (1, 25, 26, 500, 501, 502, 1001)] == [100, 100, 5, 5, 100, 5, 100]
    assert RECIPES["wgan-gp"].critic_steps(1) == 5 and Recipe().critic_steps(1) == 1


def test_recipe_rejects_bad_extensions():
    with pytest.raises(ValueError, match="ema_decay"):
        Recipe(ema_decay=1.0)
    with pytest.raises(ValueError, match="burst_every"):
        Recipe(burst_every=-1)


def test_ragan_plugin_recipe_and_relativistic_probabilities():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "plugins" / "ragan.py"
    spec = importlib.util.spec_from_file_location("ragan_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loss = module.RelativisticAverageGAN()
    assert loss.recipe == Recipe(1, "adam", 2e-4, 2e-4, (0.5, 0.999))
    real, fake = scores([2.0, 4.0]), scores([1.0, -1.0])  # mean C(real) = 3, mean C(fake) = 0
    p_real, p_fake = loss.discriminator_probabilities(real, fake)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert p_real.tolist() == pytest.approx([sig(2.0), sig(4.0)])  # sigma(C(x_r) - mean C(x_f))
    assert p_fake.tolist() == pytest.approx([sig(-2.0), sig(-4.0)])  # sigma(C(x_f) - mean C(x_r))


def test_dragan_penalises_at_x_plus_alpha_times_perturbation():
    """x_hat = x + alpha (x_p - x), x_p = x + 0.5 std(x) U[0,1), alpha ~ U[0,1] per sample (the authors' code)."""
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x.sum(dim=1)

    real = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(32, 2)
    torch.manual_seed(0)
    value = L.DRAGAN().penalty(critic, real, real)
    torch.manual_seed(0)  # the same draws, in the order the loss makes them
    noise = torch.rand(real.shape, dtype=torch.float64)
    alpha = torch.rand((32, 1), dtype=torch.float64)
    torch.testing.assert_close(seen[0], real + alpha * (0.5 * real.std() * noise))
    # the critic x -> x1 + x2 has gradient norm sqrt(2) everywhere: 10 (sqrt(2) - 1)^2
    assert value.item() == pytest.approx(10 * (math.sqrt(2) - 1) ** 2)


@pytest.mark.parametrize("name", VAE_NAMES)
def test_vae_recipe_is_adam_1e3(losses, name):
    recipe = losses[name].recipe
    assert (recipe.optimizer, recipe.lr_g) == ("adam", 1e-3)


@pytest.mark.parametrize(
    "name,logits",
    [
        ("minimax", True),
        ("nonsaturating", True),
        ("dragan", True),
        ("r1", True),
        ("wgan", False),
        ("wgan-gp", False),
        ("lsgan", False),
        ("hinge", False),
    ],
)
def test_scores_are_logits_flag(losses, name, logits):
    assert losses[name].scores_are_logits is logits


# -- values on hand-made scores, both players ------------------------------------------------------------------------
def goodfellow_d(r, f) -> float:
    return -mean(math.log(sigmoid(s)) for s in r) - mean(math.log(1 - sigmoid(s)) for s in f)


EXPECTED = {
    "minimax": (goodfellow_d, lambda f: mean(math.log(1 - sigmoid(s)) for s in f)),
    "nonsaturating": (goodfellow_d, lambda f: -mean(math.log(sigmoid(s)) for s in f)),
    "dragan": (goodfellow_d, lambda f: -mean(math.log(sigmoid(s)) for s in f)),
    "r1": (goodfellow_d, lambda f: -mean(math.log(sigmoid(s)) for s in f)),
    "wgan": (lambda r, f: mean(f) - mean(r), lambda f: -mean(f)),
    "wgan-gp": (lambda r, f: mean(f) - mean(r), lambda f: -mean(f)),
    "lsgan": (
        lambda r, f: 0.5 * mean((s - 1) ** 2 for s in r) + 0.5 * mean(s**2 for s in f),
        lambda f: 0.5 * mean((s - 1) ** 2 for s in f),
    ),
    "hinge": (
        lambda r, f: mean(max(0.0, 1 - s) for s in r) + mean(max(0.0, 1 + s) for s in f),
        lambda f: -mean(f),
    ),
}


@pytest.mark.parametrize("name", GAN_NAMES)
def test_discriminator_loss_equals_formula(losses, name):
    expected = EXPECTED[name][0](REAL, FAKE)
    value = losses[name].discriminator_loss(scores(REAL), scores(FAKE))
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", GAN_NAMES)
def test_generator_loss_equals_formula(losses, name):
    expected = EXPECTED[name][1](FAKE)
    value = losses[name].generator_loss(scores(FAKE), scores(REAL))
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_minimax_generator_loss_is_negative_and_nonsaturating_is_positive(losses):
    """The sign tells the two 2014 generator losses apart (some tutorials swap the names)."""
    fake = scores(FAKE)
    assert losses["minimax"].generator_loss(fake, scores(REAL)).item() < 0
    assert losses["nonsaturating"].generator_loss(fake, scores(REAL)).item() > 0


def test_minimax_generator_saturates_where_nonsaturating_does_not(losses):
    """When D confidently rejects the fakes (score -10), the minimax gradient vanishes, the non-saturating does not."""
    grads = {}
    for name in ("minimax", "nonsaturating"):
        fake = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
        losses[name].generator_loss(fake, scores([0.0])).backward()
        grads[name] = fake.grad.item()
    assert grads["minimax"] == pytest.approx(-sigmoid(-10.0), rel=1e-9)  # d/df -softplus(f) = -sigmoid(f)
    assert grads["nonsaturating"] == pytest.approx(-(1 - sigmoid(-10.0)), rel=1e-9)
    assert abs(grads["minimax"]) < 1e-4 < abs(grads["nonsaturating"])


@pytest.mark.parametrize("name", GAN_NAMES)
def test_scores_of_1e4_give_finite_losses_and_gradients(losses, name):
    loss = losses[name]
    real = torch.tensor([1e4, -1e4, 0.0], requires_grad=True)
    fake = torch.tensor([-1e4, 1e4, 0.0], requires_grad=True)
    d = loss.discriminator_loss(real, fake)
    g = loss.generator_loss(fake, real.detach())
    (d + g).backward()
    assert torch.isfinite(d) and torch.isfinite(g)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


# -- penalties -------------------------------------------------------------------------------------------------------
def linear_critic(weight: list[float]) -> nn.Linear:
    critic = nn.Linear(len(weight), 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weight], dtype=torch.float64))
        critic.bias.fill_(0.7)
    return critic


def as_scores(module: nn.Module):
    return lambda x: module(x.reshape(x.shape[0], -1)).reshape(x.shape[0])


def batch(n: int = 16, d: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, d), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", ["wgan-gp", "dragan"])
def test_unit_norm_penalty_is_zero_for_a_unit_norm_linear_critic(losses, name):
    critic = linear_critic([0.6, 0.0, -0.8])  # norm 1
    value = losses[name].penalty(as_scores(critic), batch(seed=1), batch(seed=2))
    assert value.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["wgan-gp", "dragan"])
@pytest.mark.parametrize("weight", [[3.0, 0.0, 0.0], [0.1, 0.2, -0.2], [1.0, 2.0, 2.0]])
def test_unit_norm_penalty_is_10_times_squared_norm_excess_for_a_linear_critic(losses, name, weight):
    critic = linear_critic(weight)
    norm = math.sqrt(sum(w * w for w in weight))
    value = losses[name].penalty(as_scores(critic), batch(seed=1), batch(seed=2))
    assert value.item() == pytest.approx(10 * (norm - 1) ** 2, rel=1e-9)
    assert value.item() > 0


def test_wgan_gp_penalty_reaches_the_critic_weights(losses):
    critic = linear_critic([3.0, 0.0, 0.0])
    losses["wgan-gp"].penalty(as_scores(critic), batch(seed=1), batch(seed=2)).backward()
    # d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||
    assert critic.weight.grad[0].tolist() == pytest.approx([40.0, 0.0, 0.0], rel=1e-9)


def half_square(x: torch.Tensor) -> torch.Tensor:
    """Critic 0.5 ||x||^2: its input gradient is x itself."""
    return 0.5 * x.reshape(x.shape[0], -1).pow(2).sum(dim=1)


def test_wgan_gp_penalty_is_taken_between_real_and_fake(losses):
    """With real == fake every interpolate is that point, so the quadratic critic's penalty is known exactly."""
    x = batch(n=5, seed=3)
    value = losses["wgan-gp"].penalty(half_square, x, x.clone())
    expected = 10 * mean((math.sqrt(sum(v * v for v in row)) - 1) ** 2 for row in x.tolist())
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_dragan_penalty_at_a_constant_batch_is_taken_at_the_data(losses):
    """std(x) = 0 makes x_hat = x, so the quadratic critic's penalty is 10 (||x|| - 1)^2 exactly."""
    x = torch.full((4, 2), 0.3, dtype=torch.float64)
    value = losses["dragan"].penalty(half_square, x, batch(n=4, d=2))
    assert value.item() == pytest.approx(10 * (0.3 * math.sqrt(2) - 1) ** 2, rel=1e-9)


def test_dragan_perturbation_is_up_to_half_a_batch_std_upwards(losses):
    """x_hat = x + 0.5 std(x) U[0,1): with a quadratic critic ||x_hat|| lies between ||x|| and ||x + 0.5 std||."""
    x = torch.tensor([[1.0], [3.0], [2.0], [6.0]], dtype=torch.float64)  # positive, std(x) = sqrt(14/3)
    std = math.sqrt(mean((v - 3.0) ** 2 for v in (1.0, 3.0, 2.0, 6.0)) * 4 / 3)
    low = 10 * mean((v - 1) ** 2 for v in (1.0, 3.0, 2.0, 6.0))
    high = 10 * mean((v + 0.5 * std - 1) ** 2 for v in (1.0, 3.0, 2.0, 6.0))
    torch.manual_seed(0)
    values = [losses["dragan"].penalty(half_square, x, x).item() for _ in range(20)]
    assert all(low < v < high for v in values)
    assert len(set(values)) > 1  # the noise is random


def test_r1_penalty_is_zero_for_a_constant_critic(losses):
    bias = nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
    value = losses["r1"].penalty(lambda x: bias.expand(x.shape[0]), batch(), batch(seed=5))
    assert value.item() == 0.0


def test_r1_penalty_is_5_times_squared_weight_norm_for_a_linear_critic(losses):
    weight = [1.0, -2.0, 0.5]
    value = losses["r1"].penalty(as_scores(linear_critic(weight)), batch(), batch(seed=5))
    assert value.item() == pytest.approx(5.0 * sum(w * w for w in weight), rel=1e-12)


def test_r1_penalty_is_taken_on_real_data_only(losses):
    real, fake = batch(n=6, seed=7), batch(n=6, seed=8)
    value = losses["r1"].penalty(half_square, real, fake)
    expected = 5.0 * mean(sum(v * v for v in row) for row in real.tolist())
    assert value.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["wgan", "minimax", "nonsaturating", "lsgan", "hinge"])
def test_losses_without_regulariser_have_no_penalty(losses, name):
    assert losses[name].penalty(half_square, batch(), batch(seed=1)) is None


def test_penalties_on_a_real_image_discriminator_are_finite_and_differentiable(losses):
    spec = DataSpec((1, 8, 8), "image", 10)
    torch.manual_seed(0)
    gan = DCGAN().build(spec)
    real, fake = torch.rand(8, 1, 8, 8) * 2 - 1, gan.generator(torch.randn(8, gan.latent_dim)).detach()
    for name in ("wgan-gp", "dragan", "r1"):
        gan.discriminator.zero_grad()
        value = losses[name].penalty(gan.discriminator, real, fake)
        value.backward()
        # every weight shapes the input gradient (biases only through the piecewise-constant LeakyReLU slopes)
        weights = [p for n, p in gan.discriminator.named_parameters() if n.endswith("weight")]
        assert torch.isfinite(value) and value.item() > 0
        assert all(w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0 for w in weights)


# -- weight clipping -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "factory,spec",
    [
        (MLPGAN(), DataSpec((2,), "points", 8)),
        (DCGAN(), DataSpec((3, 8, 8), "image", 1000)),
    ],
)
def test_wgan_clips_every_critic_weight_after_each_step(losses, factory, spec):
    loss = losses["wgan"]
    torch.manual_seed(0)
    gan = factory.build(spec)
    D = gan.discriminator
    optimizer = torch.optim.RMSprop(D.parameters(), lr=0.1)  # first steps move every weight by about 1
    for _ in range(3):
        real = torch.randn(16, *spec.shape)
        with torch.no_grad():
            fake = gan.generator(torch.randn(16, gan.latent_dim))
        optimizer.zero_grad()
        loss.discriminator_loss(D(real), D(fake)).backward()
        optimizer.step()
        assert max(p.abs().max().item() for p in D.parameters()) > 0.01  # the step did push weights out
        loss.after_discriminator_step(D)
        for p in D.parameters():
            assert p.min().item() >= -0.01 and p.max().item() <= 0.01
    # clipping is a projection: weights at the bound stay there, inner weights are untouched
    assert any((p.abs() == 0.01).any() for p in D.parameters())


def test_wgan_clipping_leaves_the_generator_alone(losses):
    torch.manual_seed(0)
    gan = MLPGAN().build(DataSpec((2,), "points", 8))
    before = [p.clone() for p in gan.generator.parameters()]
    losses["wgan"].after_discriminator_step(gan.discriminator)
    assert all(torch.equal(a, b) for a, b in zip(before, gan.generator.parameters()))


# -- VAE losses ------------------------------------------------------------------------------------------------------
def kl_by_hand(mu, logvar) -> float:
    return mean(
        sum(-0.5 * (1 + lv - m * m - math.exp(lv)) for m, lv in zip(mu_row, lv_row))
        for mu_row, lv_row in zip(mu, logvar)
    )


MU = [[0.5, -1.0], [0.0, 2.0]]
LOGVAR = [[0.1, -0.3], [0.0, 1.2]]
IMAGE_X = [[[[1.0, -1.0], [0.0, 0.5]]], [[[-0.5, 1.0], [-1.0, 0.2]]]]  # (2, 1, 2, 2)
IMAGE_R = [[[[0.8, -0.6], [0.1, 0.4]]], [[[-0.2, 0.9], [-0.7, 0.0]]]]


def bce_by_hand(x, r) -> float:
    def flat(t):
        return [v for channel in t for row in channel for v in row]

    per_sample = []
    for xs, rs in zip(x, r):
        total = 0.0
        for xv, rv in zip(flat(xs), flat(rs)):
            t, p = (xv + 1) / 2, (rv + 1) / 2
            total -= t * math.log(p) + (1 - t) * math.log(1 - p)
        per_sample.append(total)
    return mean(per_sample)


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("name,beta", [("vae", 1.0), ("beta-vae", 4.0)])
def test_vae_loss_on_images_is_bernoulli_ce_plus_weighted_kl(losses, name, beta):
    value = losses[name].loss(t64(IMAGE_X), t64(IMAGE_R), t64(MU), t64(LOGVAR))
    expected = bce_by_hand(IMAGE_X, IMAGE_R) + beta * kl_by_hand(MU, LOGVAR)
    assert value.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name,beta", [("vae", 1.0), ("beta-vae", 4.0)])
def test_vae_loss_on_points_is_squared_error_plus_weighted_kl(losses, name, beta):
    x = [[1.0, 2.0], [-0.5, 0.0]]
    r = [[0.5, 2.5], [0.0, -1.0]]
    squared = mean(sum((a - b) ** 2 for a, b in zip(xr, rr)) for xr, rr in zip(x, r))  # (0.5) and (1.25)
    value = losses[name].loss(t64(x), t64(r), t64(MU), t64(LOGVAR))
    assert value.item() == pytest.approx(squared + beta * kl_by_hand(MU, LOGVAR), rel=1e-12)


def test_kl_is_zero_at_the_prior_and_matches_closed_form():
    zeros = torch.zeros(3, 4, dtype=torch.float64)
    assert L.gaussian_kl(zeros, zeros).item() == 0.0
    assert L.gaussian_kl(t64(MU), t64(LOGVAR)).item() == pytest.approx(kl_by_hand(MU, LOGVAR), rel=1e-12)


def test_beta_vae_differs_from_vae_by_three_kl(losses):
    args = (t64(IMAGE_X), t64(IMAGE_R), t64(MU), t64(LOGVAR))
    difference = losses["beta-vae"].loss(*args) - losses["vae"].loss(*args)
    assert difference.item() == pytest.approx(3 * kl_by_hand(MU, LOGVAR), rel=1e-9)


def test_saturated_image_reconstruction_gives_a_finite_loss_and_gradient(losses):
    """tanh outputs of exactly -1 where the pixel is +1: the probabilities are clamped, so no log(0)."""
    x = torch.ones(2, 1, 2, 2)
    recon = torch.full((2, 1, 2, 2), -1.0, requires_grad=True)
    mu = torch.zeros(2, 3, requires_grad=True)
    value = losses["vae"].loss(x, recon, mu, torch.zeros(2, 3))
    value.backward()
    assert torch.isfinite(value) and value.item() == pytest.approx(-4 * math.log(1e-6), rel=1e-3)
    assert torch.isfinite(recon.grad).all()


def test_vae_loss_rejects_mismatched_reconstruction(losses):
    with pytest.raises(LossbenchError, match="shape"):
        losses["vae"].loss(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 4, 4), torch.zeros(2, 2), torch.zeros(2, 2))


# -- perceptual VAE: a fixed random feature network that no evaluation uses -------------------------------------------
class TinyImages(Dataset):
    name = "tiny-images"
    spec = DataSpec((1, 4, 4), "image", None)

    def load(self, root=None) -> Samples:
        return Samples(torch.zeros(4, 1, 4, 4))


def stage_outputs(network, x: torch.Tensor) -> list[torch.Tensor]:
    """The three ReLU stages by hand with F.conv2d: stride 1, 2, 2, padding 1."""
    outputs = []
    for i, conv in enumerate(network.stages):
        x = torch.relu(torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=1 if i == 0 else 2, padding=1))
        outputs.append(x)
    return outputs


def test_perceptual_vae_replaces_the_pixel_term_by_the_feature_term(losses):
    bound = losses["vae-perceptual"].bind(TinyImages(), torch.device("cpu"))
    torch.manual_seed(0)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 2 - 1
    r = (torch.rand(3, 1, 4, 4, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    mu, logvar = t64([[0.5, -1.0], [0.0, 0.2], [1.0, 1.0]]), t64([[0.1, -0.3], [0.0, 0.4], [-1.0, 0.5]])
    # identical reconstruction: no pixel term (Hou et al. replace it), so exactly the KL is left
    assert bound.loss(x, x.clone(), mu, logvar).item() == pytest.approx(
        kl_by_hand(mu.tolist(), logvar.tolist()), rel=1e-12
    )
    network = bound.network.double()
    feature = sum(
        0.5 * (a - b).pow(2).reshape(3, -1).sum(dim=1).mean()
        for a, b in zip(stage_outputs(network, x), stage_outputs(network, r.detach()))
    )
    expected = kl_by_hand(mu.tolist(), logvar.tolist()) + 0.5 * feature.item()  # alpha = 1, beta = 0.5
    value = bound.loss(x, r, mu, logvar)
    assert value.item() == pytest.approx(expected, rel=1e-9)
    value.backward()
    assert r.grad is not None and torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in bound.network.parameters())  # the network is fixed


def test_perceptual_network_is_seeded_on_its_own_and_named(losses):
    first = losses["vae-perceptual"].bind(TinyImages(), torch.device("cpu"))
    torch.manual_seed(123)  # the global RNG (the run's seeds) plays no part
    second = losses["vae-perceptual"].bind(TinyImages(), torch.device("cpu"))
    for a, b in zip(first.network.parameters(), second.network.parameters()):
        assert torch.equal(a, b)
    seed = L.PerceptualVAE.feature_seed((1, 4, 4))
    assert first.feature_space == f"random-conv-1x4x4-seed{seed}" and first.network.name == first.feature_space


def test_perceptual_feature_network_differs_from_every_evaluation_feature_space(losses):
    from lossbench.builtin.datasets import Digits
    from lossbench.scoring.evaluate import resolve_feature_space

    digits = Digits()
    bound = losses["vae-perceptual"].bind(digits, torch.device("cpu"))
    spaces = [resolve_feature_space(which, digits, torch.device("cpu")) for which in ("default", "classifier", "raw")]
    assert bound.feature_space not in {space.name for space in spaces}
    x = digits.load(None).x[:16]
    ours = bound.network.features(x)
    for space in spaces:
        theirs = torch.as_tensor(space(x))
        assert ours.shape != theirs.shape or not torch.allclose(ours.double(), theirs.double())
    classifier_parameters = [
        p.detach().flatten() for p in digits.classifier().copy_on(torch.device("cpu")).parameters()
    ]
    for parameter in bound.network.parameters():  # no weight of the classifier is reused
        flat = parameter.detach().flatten()
        assert not any(p.shape == flat.shape and torch.equal(p, flat) for p in classifier_parameters)


def test_perceptual_unbound_says_to_bind(losses):
    with pytest.raises(LossbenchError, match="bind"):
        losses["vae-perceptual"].loss(t64(IMAGE_X), t64(IMAGE_R), t64(MU), t64(LOGVAR))


def test_perceptual_supports_images_only(losses):
    loss = losses["vae-perceptual"]
    assert loss.supports(DataSpec((1, 8, 8), "image", 10))
    assert loss.supports(DataSpec((3, 32, 32), "image", 10))
    assert not loss.supports(DataSpec((2,), "points", 8))
    assert losses["vae"].supports(DataSpec((2,), "points", 8))


def test_loss_objects_are_the_api_types(losses):
    for name in GAN_NAMES:
        assert isinstance(losses[name], AdversarialLoss)
    for name in VAE_NAMES:
        assert isinstance(losses[name], VAELoss)
