"""Built-in losses: the GAN objectives the field compares and three VAE objectives.

Every GAN loss is written on the discriminator's raw scores and is numerically stable: -log sigmoid(s) is
``softplus(-s)`` and -log(1 - sigmoid(s)) is ``softplus(s)``, so scores of +-1e4 give finite values and
gradients where log(sigmoid(s)) would give -inf. Each class's docstring names its paper (``lossbench list``
shows the first line); each Recipe is that paper's training setup.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.api import AdversarialLoss, DataSpec, Dataset, FeatureNetwork, Recipe, VAELoss, hookimpl
from lossbench.errors import LossbenchError

Critic = Callable[[Tensor], Tensor]

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
    """The 2014 discriminator: minimise -log D(x) - log(1 - D(G(z))) with D = sigmoid(score)."""

    recipe = GOODFELLOW
    scores_are_logits = True

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f)
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        # non-saturating: -log sigmoid(f)
        return F.softplus(-fake_scores).mean()


class Minimax(_GoodfellowDiscriminator):
    """Goodfellow et al. 2014, minimax (saturating): G minimises log(1 - D(G(z))), which saturates early on."""

    name = "minimax"

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

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


class WGAN(WassersteinCritic):
    """Arjovsky et al. 2017, Wasserstein GAN: critic minimises mean D(fake) - mean D(real), weights clipped to 0.01."""

    name = "wgan"
    recipe = Recipe(optimizer="rmsprop", n_critic=5, lr_g=5e-5, lr_d=5e-5)
    clip = 0.01

    @torch.no_grad()
    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        """Clip every critic parameter to [-clip, clip]: the paper's crude way to keep the critic Lipschitz."""
        for parameter in discriminator.parameters():
            parameter.clamp_(-self.clip, self.clip)


class WGANGP(WassersteinCritic):
    """Gulrajani et al. 2017, WGAN-GP: Wasserstein critic + 10 (||grad D(x_hat)|| - 1)^2 on random interpolates."""

    name = "wgan-gp"
    recipe = Recipe(optimizer="adam", n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))
    weight = 10.0

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
        interpolates = alpha * real.detach() + (1 - alpha) * fake.detach()
        return unit_gradient_penalty(critic, interpolates, self.weight)


class LSGAN(AdversarialLoss):
    """Mao et al. 2017, least squares GAN (a=0, b=1, c=1): D 0.5[(D(x)-1)^2 + D(G(z))^2], G 0.5 (D(G(z))-1)^2."""

    name = "lsgan"
    recipe = GOODFELLOW
    scores_are_logits = False  # regression targets on the raw output, not logits

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return 0.5 * ((real_scores - 1) ** 2).mean() + 0.5 * (fake_scores ** 2).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return 0.5 * ((fake_scores - 1) ** 2).mean()


class Hinge(AdversarialLoss):
    """Lim & Ye 2017 / Miyato et al. 2018, hinge loss: D relu(1 - D(x)) + relu(1 + D(G(z))), G -D(G(z))."""

    name = "hinge"
    recipe = Recipe(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9))
    scores_are_logits = False  # margins on the raw output, not logits

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


class DRAGAN(_GoodfellowDiscriminator):
    """Kodali et al. 2017, DRAGAN: non-saturating + 10 (||grad D(x_hat)|| - 1)^2 at x_hat = x + 0.5 std(x) U[0,1)."""

    name = "dragan"
    weight = 10.0
    spread = 0.5

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real = real.detach()
        noise = torch.rand(real.shape, device=real.device, dtype=real.dtype)
        perturbed = real + self.spread * real.std() * noise  # std of the whole batch, as in the authors' code
        return unit_gradient_penalty(critic, perturbed, self.weight)


class R1(_GoodfellowDiscriminator):
    """Mescheder et al. 2018, R1: non-saturating + (10/2) E ||grad D(x)||^2 on real data."""

    name = "r1"
    recipe = Recipe(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.99))
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
    return (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).sum(dim=1).mean()


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


class PerceptualVAE(StandardVAE):
    """Hou et al. 2017, feature-consistent VAE: vae + squared feature distance in the dataset's own classifier.

    The paper uses a pretrained VGG; its weights cannot be downloaded here, so the feature network is the
    dataset's own small classifier (``Dataset.feature_network``), which ``bind`` attaches to a per-run copy.
    Images only.
    """

    name = "vae-perceptual"
    description = (
        "Hou et al. 2017, feature-consistent VAE: vae + squared feature distance in the dataset's own classifier "
        "(not VGG: pretrained weights cannot be downloaded here)"
    )
    weight = 1.0
    network: FeatureNetwork | None = None
    dataset_name: str | None = None

    def supports(self, data: DataSpec) -> bool:
        return data.kind == "image"

    def bind(self, dataset: Dataset, device: torch.device) -> "PerceptualVAE":
        network = dataset.feature_network(device)
        if network is None:
            raise LossbenchError(
                f"loss {self.name!r} needs a feature network, and dataset {dataset.name!r} provides none "
                "(Dataset.feature_network returned None)"
            )
        bound = copy.copy(self)
        bound.network = _frozen(network)
        bound.dataset_name = dataset.name
        return bound

    def loss(self, x: Tensor, reconstruction: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        if self.network is None:
            raise LossbenchError(
                f"loss {self.name!r} is not bound to a dataset: "
                "call bind(dataset, device) to attach its feature network"
            )
        with torch.no_grad():
            target = self.network.features(x)
        features = self.network.features(reconstruction)
        if reconstruction.requires_grad and not features.requires_grad:
            raise LossbenchError(
                f"loss {self.name!r}: feature network {self.network.name!r} of dataset {self.dataset_name!r} "
                "returned features without a gradient; it must be differentiable"
            )
        perceptual = (features - target).pow(2).reshape(x.shape[0], -1).sum(dim=1).mean()
        return super().loss(x, reconstruction, mu, logvar) + self.weight * perceptual


def _frozen(network: FeatureNetwork) -> FeatureNetwork:
    """A private copy of ``network`` whose parameters take no gradient (the VAE trains through it, not it)."""
    network = copy.deepcopy(network)
    modules = [network] if isinstance(network, nn.Module) else [
        value for value in getattr(network, "__dict__", {}).values() if isinstance(value, nn.Module)
    ]
    for module in modules:
        module.requires_grad_(False)
    return network


BUILTIN_LOSSES = (Minimax, NonSaturating, WGAN, WGANGP, LSGAN, Hinge, DRAGAN, R1, StandardVAE, BetaVAE, PerceptualVAE)


@hookimpl
def register_losses(register) -> None:
    for loss_class in BUILTIN_LOSSES:
        register(loss_class())
