"""Built-in losses: the GAN objectives the field compares and three VAE objectives.

Every GAN loss is written on the discriminator's raw scores and is numerically stable: -log sigmoid(s) is
``softplus(-s)`` and -log(1 - sigmoid(s)) is ``softplus(s)``, so scores of +-1e4 give finite values and
gradients where log(sigmoid(s)) would give -inf. Each class's docstring names its paper (``lossbench list``
shows the first line). Each class's ``recipe`` is its paper's training setup (or, where the authors' code differs,
the code's), cited in the class docstring; where the grid keeps a harmonised recipe instead (the Goodfellow
losses, LSGAN, hinge) the docstring says so and why. docs/recipes.md tabulates them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.api import AdversarialLoss, Dataset, DataSpec, Recipe, VAELoss, hookimpl
from lossbench.errors import LossbenchError
from lossbench.plan.seeding import derive_seed

Critic = Callable[[Tensor], Tensor]

# Radford et al. 2016 (DCGAN): Adam 2e-4, betas (0.5, 0.999), one D step per G step. The harmonised recipe of the
# losses whose papers fix none for these models (Goodfellow et al. 2014 trained MLPs with SGD + momentum).
GOODFELLOW = Recipe(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))


# -- gradients of the critic with respect to its input (for the penalties) ---------------------------------------
def input_gradients(critic: Critic, x: Tensor) -> Tensor:
    """d critic(x).sum() / dx per sample, flattened to ``(B, -1)`` and kept in the graph (the penalty is minimised).

    A critic whose scores do not depend on its input (e.g. a constant) has zero input gradients.
    """
    x = x.detach().requires_grad_(True)
    scores = critic(x)
    if not scores.requires_grad:
        return torch.zeros_like(x).reshape(x.shape[0], -1)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return grad.reshape(x.shape[0], -1)


def gradient_norms(critic: Critic, x: Tensor) -> Tensor:
    """Per-sample norm of d critic(x) / dx, kept in the graph so that a penalty on it can be minimised."""
    return input_gradients(critic, x).norm(dim=1)


def unit_gradient_penalty(critic: Critic, x: Tensor, weight: float) -> Tensor:
    """``weight * mean (||grad critic(x)|| - 1)^2``: the two-sided penalty of WGAN-GP and DRAGAN."""
    return weight * ((gradient_norms(critic, x) - 1) ** 2).mean()


# -- GAN losses ----------------------------------------------------------------------------------------------------
class _GoodfellowDiscriminator(AdversarialLoss):
    """The 2014 discriminator: minimise -log D(x) - log(1 - D(G(z))) with D = sigmoid(score).

    Recipe: harmonised (DCGAN's Adam 2e-4, betas (0.5, 0.999), 1 D step; Radford et al. 2016); the 2014 paper's
    SGD with momentum was tuned per dataset for MLPs and is not a recipe for these models.
    """

    recipe = GOODFELLOW
    scores_are_logits = True
    pure = True

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f)
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        # non-saturating: -log sigmoid(f)
        return F.softplus(-fake_scores).mean()


class Minimax(_GoodfellowDiscriminator):
    """Goodfellow et al. 2014, minimax (saturating): G minimises log(1 - D(G(z))), which saturates early on."""

    name = "minimax"
    pure = True  # declared again: it writes its own generator loss

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        # log(1 - sigmoid(f)) = -softplus(f): always <= 0, and flat in f when D rejects the fakes
        return -F.softplus(fake_scores).mean()


class NonSaturating(_GoodfellowDiscriminator):
    """Goodfellow et al. 2014, non-saturating: D as minimax, G minimises -log D(G(z))."""

    name = "nonsaturating"


class WassersteinCritic(AdversarialLoss):
    """The Wasserstein objective shared by WGAN and WGAN-GP: the critic minimises mean D(fake) - mean D(real),
    the generator -mean D(fake). Not registered itself: the two differ in how they keep the critic Lipschitz."""

    scores_are_logits = False
    pure = True

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


class WGAN(WassersteinCritic):
    """Arjovsky et al. 2017, Wasserstein GAN: critic minimises mean D(fake) - mean D(real), weights clipped to 0.01.

    Recipe as published (Algorithm 1: RMSProp 5e-5, n_critic 5, clip 0.01) with the authors' code's critic
    schedule (martinarjovsky/WassersteinGAN main.py): 100 critic steps for the first 25 generator steps and
    every 500th, else 5.
    """

    name = "wgan"
    recipe = Recipe(
        optimizer="rmsprop", n_critic=5, lr_g=5e-5, lr_d=5e-5, n_critic_burst=100, burst_steps=25, burst_every=500
    )
    clip = 0.01

    @torch.no_grad()
    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        """Clip every critic parameter to [-clip, clip]: the paper's crude way to keep the critic Lipschitz."""
        for parameter in discriminator.parameters():
            parameter.clamp_(-self.clip, self.clip)


class WGANGP(WassersteinCritic):
    """Gulrajani et al. 2017, WGAN-GP: Wasserstein critic + 10 (||grad D(x_hat)|| - 1)^2 on random interpolates.

    Recipe as published (Algorithm 1): Adam 1e-4, betas (0, 0.9), n_critic 5, lambda 10.
    """

    name = "wgan-gp"
    recipe = Recipe(optimizer="adam", n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))
    weight = 10.0

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
        interpolates = alpha * real.detach() + (1 - alpha) * fake.detach()
        return unit_gradient_penalty(critic, interpolates, self.weight)


class LSGAN(AdversarialLoss):
    """Mao et al. 2017, least squares GAN (a=0, b=1, c=1): D 0.5[(D(x)-1)^2 + D(G(z))^2], G 0.5 (D(G(z))-1)^2.

    Recipe: harmonised (DCGAN's Adam 2e-4, betas (0.5, 0.999)); the paper's Adam settings are per dataset.
    """

    name = "lsgan"
    recipe = GOODFELLOW
    pure = True
    scores_are_logits = False  # regression targets on the raw output, not logits

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return 0.5 * ((real_scores - 1) ** 2).mean() + 0.5 * (fake_scores**2).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return 0.5 * ((fake_scores - 1) ** 2).mean()


class Hinge(AdversarialLoss):
    """Lim & Ye 2017 / Miyato et al. 2018, hinge loss: D relu(1 - D(x)) + relu(1 + D(G(z))), G -D(G(z)).

    Recipe: harmonised (DCGAN's Adam 2e-4, betas (0.5, 0.999), 1 D step, which is also Miyato et al.'s setting C).
    The betas (0, 0.9) often quoted with the hinge loss come with spectral normalisation and several critic steps
    (SN-GAN, SAGAN); the grid's discriminators have no spectral normalisation, so that setup is not adopted.
    """

    name = "hinge"
    recipe = GOODFELLOW
    pure = True
    scores_are_logits = False  # margins on the raw output, not logits

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


class DRAGAN(_GoodfellowDiscriminator):
    """Kodali et al. 2017, DRAGAN: non-saturating + 10 (||grad D(x_hat)|| - 1)^2 at x_hat = x + alpha (x_p - x).

    As in the authors' code (kodalinaveen3/DRAGAN): x_p = x + 0.5 std(x) U[0,1) with the std of the whole batch,
    alpha ~ U[0, 1] per sample; Adam 1e-4, betas (0.5, 0.9), lambda 10, one D step per G step.
    """

    name = "dragan"
    recipe = Recipe(optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9))
    weight = 10.0
    spread = 0.5

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real = real.detach()
        noise = torch.rand(real.shape, device=real.device, dtype=real.dtype)
        perturbed = real + self.spread * real.std() * noise  # std of the whole batch, as in the authors' code
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
        return unit_gradient_penalty(critic, real + alpha * (perturbed - real), self.weight)


class R1(_GoodfellowDiscriminator):
    """Mescheder et al. 2018, R1: non-saturating + (gamma/2) E ||grad D(x)||^2 on real data, gamma = 10.

    Recipe as published (paper and LMescheder/GAN_stability configs/default.yaml): RMSProp 1e-4 for both nets
    (alpha 0.99, eps 1e-8: torch's defaults), one D step per G step, and the generator that is evaluated is an
    exponential moving average of G with decay 0.999 (``model_average_beta``). Note: the code's ``reg_param``
    10 multiplies E ||grad D||^2 without the 1/2 (gamma = 20 in the paper's notation); the paper's gamma = 10 is
    used here.
    """

    name = "r1"
    recipe = Recipe(optimizer="rmsprop", lr_g=1e-4, lr_d=1e-4, ema_decay=0.999)
    gamma = 10.0

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        # the squared norm directly: no square root, so no kink where the gradient vanishes
        return 0.5 * self.gamma * input_gradients(critic, real).pow(2).sum(dim=1).mean()


# -- VAE losses ----------------------------------------------------------------------------------------------------
VAE_RECIPE = Recipe(optimizer="adam", lr_g=1e-3, lr_d=1e-3, betas=(0.9, 0.999))
PROBABILITY_EPS = 1e-6


def reconstruction_error(x: Tensor, reconstruction: Tensor) -> Tensor:
    """-log p(x | z), summed over a sample's values and averaged over the batch.

    Images (4-d: B, C, H, W; values in [-1, 1]) use the Bernoulli cross-entropy between (x+1)/2 and the
    clamped (reconstruction+1)/2; points use the squared error (a Gaussian likelihood, constants dropped).
    """
    if x.shape != reconstruction.shape:
        raise LossbenchError(
            f"VAE reconstruction has shape {list(reconstruction.shape)} but the data has shape {list(x.shape)}"
        )
    if x.dim() == 4:
        target = ((x + 1) / 2).clamp(0, 1)
        probability = ((reconstruction + 1) / 2).clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        per_value = F.binary_cross_entropy(probability, target, reduction="none")
    else:
        per_value = (x - reconstruction) ** 2
    return per_value.reshape(x.shape[0], -1).sum(dim=1).mean()


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, summed over latent dimensions, mean over the batch."""
    return (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(dim=1).mean()


class StandardVAE(VAELoss):
    """Kingma & Welling 2014, VAE: reconstruction (Bernoulli CE for images, squared error for points) + KL."""

    name = "vae"
    recipe = VAE_RECIPE
    beta = 1.0

    def loss(self, x: Tensor, reconstruction: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        return reconstruction_error(x, reconstruction) + self.beta * gaussian_kl(mu, logvar)


class BetaVAE(StandardVAE):
    """Higgins et al. 2017, beta-VAE: as vae with the KL term weighted by beta = 4."""

    name = "beta-vae"
    beta = 4.0


PERCEPTUAL_CHANNELS = (16, 32, 64)  # three ReLU stages, as relu1_1, relu2_1, relu3_1 of Hou et al.'s VGG-19


class RandomConvFeatures(nn.Module):
    """A fixed, randomly initialised conv net for one image shape: the perceptual loss's feature network.

    Three 3x3 conv + ReLU stages (stride 1, 2, 2) with He-normal weights drawn from their own seed, never trained
    and never used by any evaluation: the VAE cannot fit the test's feature space through it. ``layers``
    returns each stage's activations (the paper's relu1_1, relu2_1, relu3_1 in a VGG-19).
    """

    def __init__(self, shape: tuple[int, ...], seed: int) -> None:
        super().__init__()
        channels = (shape[0], *PERCEPTUAL_CHANNELS)
        convs = [
            nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1)
            for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))
        ]
        self.stages = nn.ModuleList(convs)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in convs:
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if conv.bias is not None:  # always, with Conv2d's default bias=True
                    conv.bias.zero_()
        self.requires_grad_(False)
        self.name = f"random-conv-{'x'.join(map(str, shape))}-seed{seed}"

    def layers(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for conv in self.stages:
            x = F.relu(conv(x))
            outputs.append(x)
        return outputs

    def features(self, x: Tensor) -> Tensor:
        """All stages' activations, flattened: ``(N, d)`` (the FeatureNetwork protocol)."""
        return torch.cat([layer.reshape(x.shape[0], -1) for layer in self.layers(x)], dim=1)


class PerceptualVAE(StandardVAE):
    """Hou et al. 2017 (DFC-VAE), feature perceptual loss: KL + beta sum_l 1/2 ||phi_l(x) - phi_l(x_hat)||^2.

    As in the paper the feature term REPLACES the pixel reconstruction term (alpha = 1 on the KL, beta = 0.5 on
    the features, three layers at increasing depth). The paper's phi is a pretrained VGG-19, whose weights cannot
    be downloaded here; phi is instead a fixed random conv net of the image's size (``RandomConvFeatures``),
    seeded on its own and used by no evaluation, so the loss never sees the feature space the samples are
    scored in (the datasets' classifiers, Inception). Its name is stored with each run (``loss_feature_space``).
    One deviation, forced by that choice: each layer's squared distance is summed over its values (as the pixel
    term it replaces is), where the paper averages it over VGG's calibrated activations (1 / (2 C H W)).
    Images only.
    """

    name = "vae-perceptual"
    description = (
        "Hou et al. 2017, feature perceptual VAE: KL + feature distance replacing the pixel term, in a fixed "
        "random conv net used by no evaluation (not VGG: pretrained weights cannot be downloaded here)"
    )
    alpha = 1.0  # KL weight
    beta = 0.5  # feature weight
    network: RandomConvFeatures | None = None

    def supports(self, data: DataSpec) -> bool:
        return data.kind == "image"

    @staticmethod
    def feature_seed(shape: tuple[int, ...]) -> int:
        """The feature network's seed: fixed per image shape, so every run of the grid uses the same loss."""
        return derive_seed("vae-perceptual-features", *shape) % 2**31

    def bind(self, dataset: Dataset, device: torch.device) -> PerceptualVAE:
        shape = tuple(dataset.spec.shape)
        if dataset.spec.kind != "image" or len(shape) != 3:
            raise LossbenchError(
                f"loss {self.name!r} needs images (C, H, W); dataset {dataset.name!r} has "
                f"{dataset.spec.kind} of shape {list(shape)}"
            )
        bound = copy.copy(self)
        bound.network = RandomConvFeatures(shape, self.feature_seed(shape)).to(device)
        return bound

    @property
    def feature_space(self) -> str | None:
        """The name of the bound feature network, stored with the run."""
        return None if self.network is None else self.network.name

    def loss(self, x: Tensor, reconstruction: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        if self.network is None:
            raise LossbenchError(
                f"loss {self.name!r} is not bound to a dataset: call bind(dataset, device) to build its feature network"
            )
        network = self.network.to(dtype=x.dtype)
        with torch.no_grad():
            targets = network.layers(x)
        feature_term = x.new_zeros(())
        for target, layer in zip(targets, network.layers(reconstruction)):
            feature_term = feature_term + 0.5 * (layer - target).pow(2).reshape(x.shape[0], -1).sum(dim=1).mean()
        return self.alpha * gaussian_kl(mu, logvar) + self.beta * feature_term


BUILTIN_LOSSES = (Minimax, NonSaturating, WGAN, WGANGP, LSGAN, Hinge, DRAGAN, R1, StandardVAE, BetaVAE, PerceptualVAE)


@hookimpl
def register_losses(register) -> None:
    for loss_class in BUILTIN_LOSSES:
        register(loss_class())
