"""Per-member optimizers over a stacked group's flat weights: K runs' Adam, RMSprop or SGD in a few kernels.

The stacked engine keeps each network's weights as one ``[K, P]`` tensor (member k's P weights in row k) and its
gradients likewise. Adam, RMSprop and SGD are elementwise, so K optimizers are the same arithmetic on the rows,
with each member's learning rate and betas as a ``[K, 1]`` column: one call per update term for the whole group
instead of one per parameter tensor and member. The operations and their order are those of torch's own
single-tensor implementations (``torch.optim.adam._single_tensor_adam`` and the RMSprop and SGD ones with the
defaults ``train.make_optimizer`` uses), with each Python-float coefficient computed per member in double and
rounded to float32 as torch rounds it, so member k's weights follow its sequential run to float tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

ADAM_EPS = 1e-8  # torch.optim.Adam's default
RMSPROP_EPS, RMSPROP_ALPHA = 1e-8, 0.99  # torch.optim.RMSprop's defaults


class MemberOptimizer:
    """``kind`` ("adam", "rmsprop", "sgd") stepping ``weights`` ([K, P]) from ``grads`` ([K, P]), member k with
    learning rate ``lrs[k]`` and Adam betas ``betas[k]``."""

    def __init__(
        self, kind: str, weights: Tensor, grads: Tensor, lrs: Sequence[float], betas: Sequence[tuple[float, float]]
    ) -> None:
        self.kind, self.weights, self.grads = kind, weights, grads
        self.lrs, self.betas = list(lrs), [tuple(b) for b in betas]
        self.steps = 0
        self.state = [torch.zeros_like(weights) for _ in range({"adam": 2, "rmsprop": 1}.get(kind, 0))]
        self._constants()

    def _column(self, values: Sequence[float]) -> Tensor:
        return torch.tensor(list(values), dtype=self.weights.dtype, device=self.weights.device).unsqueeze(1)

    def _constants(self) -> None:
        self.neg_lr = self._column([-lr for lr in self.lrs])
        self.one_minus_beta1 = self._column([1 - b1 for b1, _ in self.betas])
        self.beta2 = self._column([b2 for _, b2 in self.betas])
        self.one_minus_beta2 = self._column([1 - b2 for _, b2 in self.betas])

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member (all members of a group step together)."""
        self.steps += 1
        w, g = self.weights, self.grads
        if self.kind == "adam":
            exp_avg, exp_avg_sq = self.state
            exp_avg.lerp_(g, self.one_minus_beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(g * self.one_minus_beta2, g)
            step_size = self._column([-(lr / (1 - b1**self.steps)) for lr, (b1, _) in zip(self.lrs, self.betas)])
            correction = self._column([(1 - b2**self.steps) ** 0.5 for _, b2 in self.betas])
            denom = (exp_avg_sq.sqrt() / correction).add_(ADAM_EPS)
            w.addcdiv_(step_size * exp_avg, denom)
        elif self.kind == "rmsprop":
            (square_avg,) = self.state
            square_avg.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
            w.addcdiv_(self.neg_lr * g, square_avg.sqrt().add_(RMSPROP_EPS))
        else:
            w.add_(self.neg_lr * g)

    def keep(self, index: Tensor, weights: Tensor, grads: Tensor) -> None:
        """Only the members at ``index`` from now on, stepping the new ``weights`` and ``grads`` tensors."""
        positions = index.tolist()
        self.weights, self.grads = weights, grads
        self.state = [s[index].clone() for s in self.state]
        self.lrs = [self.lrs[i] for i in positions]
        self.betas = [self.betas[i] for i in positions]
        self._constants()
