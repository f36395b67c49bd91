"""Relativistic average GAN (RaSGAN): a worked example of a loss plugin that needs D's scores of real data
in the generator's loss. Copy this file into ./plugins/ (or point --plugins-dir at its folder) and it is a loss
like the built-ins: ``lossbench run --grid -l ragan``.

Jolicoeur-Martineau, "The relativistic discriminator: a key element missing from standard GAN", ICLR 2019
(arXiv:1807.00734, 2018). The discriminator estimates how much more realistic real data is than fake data *on
average*: with C the raw score (logit),

    D(x_r) = sigmoid(C(x_r) - mean C(x_f))        D(x_f) = sigmoid(C(x_f) - mean C(x_r))

    L_D = -E log D(x_r) - E log(1 - D(x_f))
    L_G = -E log D(x_f) - E log(1 - D(x_r))

so, unlike the standard GAN, the generator also learns from the real scores (it pushes them down relative to
the fakes). ``-log sigmoid(t) = softplus(-t)`` keeps both finite for confident discriminators. D's
probabilities are the relativistic ones above, so the logged sigmoid(D) and D's accuracy use them too
(``discriminator_probabilities``), not sigmoid(C(x)).

Recipe: the paper's CIFAR-10 setting (Section 4; the authors' code, AlexiaJM/RelativisticGAN, uses the same):
Adam, lr 2e-4, betas (0.5, 0.999), one D step per G step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench import AdversarialLoss, Recipe, hookimpl


class RelativisticAverageGAN(AdversarialLoss):
    """Jolicoeur-Martineau 2018, relativistic average GAN (RaSGAN): real vs the average fake, and vice versa."""

    name = "ragan"
    # The paper's CIFAR-10 setting: Adam, lr 2e-4, betas (0.5, 0.999), one D step per G step.
    recipe = Recipe(n_critic=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))
    # generator_loss uses real_scores: ask the harness to recompute them with the just-updated discriminator.
    generator_needs_real = True
    # both losses are pure functions of the scores: the stacked engine (--vectorise) may evaluate them for every
    # member in one vmapped call
    pure = True

    def discriminator_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return (
            F.softplus(-(real_scores - fake_scores.mean())).mean() + F.softplus(fake_scores - real_scores.mean()).mean()
        )

    def discriminator_probabilities(self, real_scores: Tensor, fake_scores: Tensor) -> tuple[Tensor, Tensor]:
        # D(x_r) = sigmoid(C(x_r) - mean C(x_f)), D(x_f) = sigmoid(C(x_f) - mean C(x_r))
        return torch.sigmoid(real_scores - fake_scores.mean()), torch.sigmoid(fake_scores - real_scores.mean())

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor) -> Tensor:
        # real_scores carry no gradient; the generator's gradient flows through fake_scores, in both terms.
        return (
            F.softplus(-(fake_scores - real_scores.mean())).mean() + F.softplus(real_scores - fake_scores.mean()).mean()
        )


@hookimpl
def register_losses(register) -> None:
    register(RelativisticAverageGAN())
