"""WGAN-LP: a worked example of a loss plugin with a penalty on the critic's input gradient.

Petzka, Fischer & Lukovnikov, "On the regularization of Wasserstein GANs", ICLR 2018 (arXiv:1709.08894). The
Wasserstein critic of WGAN, made Lipschitz by a *one-sided* penalty: only gradient norms above 1 are penalised,

    L_D = E C(x_f) - E C(x_r) + lambda E[ max(0, ||grad C(x_hat)|| - 1)^2 ]
    L_G = -E C(x_f)

whereas WGAN-GP's two-sided (||grad|| - 1)^2 also pushes norms below 1 up, which a 1-Lipschitz critic does not
need. Here x_hat are random interpolates of real and fake samples and lambda = 10, with WGAN-GP's recipe, so
that the two losses differ only in the side of the penalty.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench import AdversarialLoss, Recipe, hookimpl


def input_gradient_norms(critic, x: Tensor) -> Tensor:
    """Per-sample ||d critic(x) / dx||, kept in the graph (create_graph) so that a penalty on it trains the critic."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.reshape(grad.shape[0], -1).norm(dim=1)


class WGANLP(AdversarialLoss):
    """Petzka et al. 2018, WGAN-LP: Wasserstein critic + 10 max(0, ||grad D(x_hat)|| - 1)^2 (one-sided penalty)."""

    name = "wgan-lp"
    recipe = Recipe(n_critic=5, optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9))
    scores_are_logits = False  # critic values, not logits: the harness reports no sigmoid(D) for them
    pure = True  # its losses keep no state and draw nothing (the penalty's draws are per member anyway)
    weight = 10.0

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        return -fake_scores.mean()

    def penalty(self, critic, real: Tensor, fake: Tensor) -> Tensor:
        # torch.rand draws from the stream the harness seeds per (seed, loss): paired and reproducible.
        alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
        excess = (input_gradient_norms(critic, x_hat) - 1).clamp(min=0)
        return self.weight * (excess**2).mean()


@hookimpl
def register_losses(register) -> None:
    register(WGANLP())
