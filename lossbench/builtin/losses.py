"""Built-in losses, written in terms of the discriminator's raw scores and numerically stable (softplus)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.api import AdversarialLoss, Recipe, hookimpl


def gradient_norms(critic, x: Tensor) -> Tensor:
    """Per-sample norm of d critic(x) / dx, kept in the graph so that a penalty on it can be minimised."""
    x = x.detach().requires_grad_(True)
    scores = critic(x)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.reshape(grad.shape[0], -1).norm(dim=1)


class NonSaturating(AdversarialLoss):
    """Goodfellow et al. 2014, non-saturating generator: D as minimax, G minimises -log D(G(z))."""

    name = "nonsaturating"
    recipe = Recipe(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f)
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return F.softplus(-fake_scores).mean()


class WGANGP(AdversarialLoss):
    """Gulrajani et al. 2017: Wasserstein critic with a gradient penalty 10 (||grad D(x_hat)|| - 1)^2."""

    name = "wgan-gp"
    recipe = Recipe(optimizer="adam", n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))
    scores_are_logits = False
    weight = 10.0

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()

    def penalty(self, critic, real: Tensor, fake: Tensor) -> Tensor:
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
        interpolates = alpha * real.detach() + (1 - alpha) * fake.detach()
        return self.weight * ((gradient_norms(critic, interpolates) - 1) ** 2).mean()


@hookimpl
def register_losses(register) -> None:
    for loss in (NonSaturating(), WGANGP()):
        register(loss)
