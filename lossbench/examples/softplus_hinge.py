import torch.nn.functional as F

from lossbench import AdversarialLoss, Recipe, hookimpl


class SoftplusHinge(AdversarialLoss):
    """Hinge loss with softplus in place of relu (a smooth hinge)."""  # shown by `lossbench list`

    name = "softplus-hinge"  # lowercase slug: how users select it (-l softplus-hinge)
    recipe = Recipe(n_critic=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))

    def discriminator_loss(self, real_scores, fake_scores):  # scores: D's raw outputs, shape [batch]
        return F.softplus(1 - real_scores).mean() + F.softplus(1 + fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        return -fake_scores.mean()


@hookimpl
def register_losses(register):
    register(SoftplusHinge())
