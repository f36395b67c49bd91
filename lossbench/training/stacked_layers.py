"""One network of every member of a stacked group: flat ``[K, P]`` weights, batched forward passes, per-member views.

Each network's weights live in one ``[K, P]`` tensor (row k: member k's parameters, flattened in ``state_dict``
order) with its gradients in another: the parameters the forward pass uses are views of its columns, so backward
accumulates straight into the flat gradient and the optimizer (``stacked_optim``), the gradient norms, the
generator average and dropping a member are each one operation on rows. The forward pass is batched layers
(``batched_layers``: one ``baddbmm`` per linear layer) where the network is made of layers it knows, else
``vmap(functional_call)``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from lossbench.training.stacked_optim import MemberOptimizer


def _quiet_gradient_layout() -> None:
    """Silence torch's gradient-layout warning: the flat gradient's column views have the strides of the parameters
    they belong to, which is all the contract asks for; torch warns because they are not contiguous. Installed
    with each ``Stack``, not once at import, so that it also holds where the filters are reset after the import
    (pytest resets them for every test)."""
    warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")


Forward = Callable[[dict, Tensor], Tensor]
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.ELU, nn.SiLU, nn.GELU, nn.Softplus)


def batched_layers(module: nn.Module, prefix: str = "") -> Forward | None:
    """``module`` as batched layers over stacked parameters ([K, ...]) and inputs ([K, B, features]), or None when
    it holds a layer this does not know (it then runs under ``vmap``). Why: for the small MLPs of a grid, vmap's
    per-call bookkeeping costs as much as the arithmetic; ``baddbmm`` is one kernel per layer. Exact types only,
    so that a subclass with its own ``forward`` is never compiled wrongly."""
    from lossbench.builtin.models import Scores

    kind = type(module)
    if kind is nn.Sequential:
        parts = [batched_layers(child, f"{prefix}{name}.") for name, child in module.named_children()]
        if any(part is None for part in parts):
            return None

        def sequential(params: dict, x: Tensor) -> Tensor:
            for part in parts:
                x = part(params, x)  # type: ignore[misc]
            return x

        return sequential
    if kind is nn.Linear:
        weight, bias = prefix + "weight", prefix + "bias"
        if module.bias is None:
            return lambda params, x: _linear(None, x, params[weight])
        return lambda params, x: _linear(params[bias], x, params[weight])
    if kind in _ELEMENTWISE:
        return lambda params, x: module(x)
    if kind is Scores:
        assert isinstance(module.body, nn.Module)  # Scores wraps a network
        body = batched_layers(module.body, prefix + "body.")
        return None if body is None else (lambda params, x: body(params, x).reshape(x.shape[0], x.shape[1]))
    return None


def runs_as_batched_layers(module: nn.Module) -> bool:
    """Whether ``Stack`` runs this network as batched layers (``batched_layers``; no buffers), not under ``vmap``."""
    return not list(module.buffers()) and batched_layers(module) is not None


def _linear(bias: Tensor | None, x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T + bias`` per member ([K, B, in] -> [K, B, out]). MKL multiplies a batch of one by a single
    column (a critic's score layer) with another kernel than a batch of several, whose last bits differ; a stack of
    one is then padded to two, so that a member's scores do not depend on how many share its group (gradients too:
    the pad's share is exactly zero)."""
    if x.shape[0] == 1 and weight.shape[1] == 1:
        twice = torch.cat([bias, bias]) if bias is not None else None
        return _linear(twice, torch.cat([x, x]), torch.cat([weight, weight]))[:1]
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class Stack:
    """One network of every active member: flat weights and gradients, buffers, optimizer, optional average."""

    def __init__(
        self,
        modules: list[nn.Module],
        kind: str,
        lrs: Sequence[float],
        betas: Sequence[tuple[float, float]],
        average_decays: Sequence[float] | None,
    ) -> None:
        _quiet_gradient_layout()
        params, buffers = stack_module_state(modules)
        self.layout = [(name, p.shape[1:], p[0].numel()) for name, p in params.items()]
        self.weights = torch.cat([p.detach().flatten(1) for p in params.values()], 1)
        self.grads = torch.zeros_like(self.weights)
        self.buffers = buffers
        self.real_base = copy.deepcopy(modules[0])  # a real module, for aliases of one member's slice
        self.base = copy.deepcopy(modules[0]).to("meta")
        self.optimizer = MemberOptimizer(kind, self.weights, self.grads, lrs, betas)
        self.decays = None if average_decays is None else list(average_decays)
        self.average = self.weights.clone() if average_decays is not None else None
        self.average_buffers = {k: v.clone() for k, v in buffers.items()} if average_decays is not None else None
        self.forward: Callable[[dict[str, Tensor], dict[str, Tensor], Tensor], Tensor] = vmap(self._one)
        self.fast = fast = batched_layers(modules[0]) if not buffers else None
        if fast is not None:
            self.forward = lambda params, _buffers, x: fast(params, x)
        self._views()

    def _split(self, flat: Tensor) -> dict[str, Tensor]:
        out, start = {}, 0
        for name, shape, size in self.layout:
            out[name] = flat[:, start : start + size].view(flat.shape[0], *shape)
            start += size
        return out

    def _leaves(self, weights: Tensor, grads: Tensor) -> dict[str, Tensor]:
        """Parameters as leaf views of ``weights`` whose gradients are views of ``grads`` (backward adds into them)."""
        params = self._split(weights)
        for p, g in zip(params.values(), self._split(grads).values()):
            p.requires_grad_(True)
            p.grad = g
        return params

    def _views(self) -> None:
        self.params = self._leaves(self.weights, self.grads)
        self.members: dict[int, dict[str, Tensor]] = {}

    def member_leaves(self, position: int) -> dict[str, Tensor]:
        """Member ``position``'s parameters ([1, ...]) as leaves of their own aliasing its row of the weights and
        gradients: a penalty's backward through one member then adds into its row only, where a slice of the
        stacked leaves would write a zero-filled gradient of every member's size."""
        if position not in self.members:
            row = slice(position, position + 1)
            self.members[position] = self._leaves(self.weights[row], self.grads[row])
        return self.members[position]

    def _one(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(self.params, self.buffers, x)

    def frozen(self, x: Tensor) -> Tensor:
        """The forward pass with detached parameters: gradients reach ``x`` only (the generator step needs no
        discriminator weight gradients, which the sequential engine computes and discards)."""
        return self.forward({k: v.detach() for k, v in self.params.items()}, self.buffers, x)

    def zero_grad(self) -> None:
        self.grads.zero_()

    def grad_norms(self) -> Tensor:
        """Each member's gradient norm over all its parameters (what ``train._grad_norm`` gives one run)."""
        return self.grads.pow(2).sum(1).sqrt()

    @property
    def size(self) -> int:
        return self.weights.shape[0]

    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (weights, gradients, buffers, optimizer state, average)."""
        self.weights, self.grads = self.weights[index].clone(), self.grads[index].clone()
        self.optimizer.keep(index, self.weights, self.grads)
        self.buffers = {k: v[index].clone() for k, v in self.buffers.items()}
        if self.average is not None:
            assert self.decays is not None and self.average_buffers is not None  # kept together, see __init__
            positions = index.tolist()
            self.decays = [self.decays[i] for i in positions]
            self.average = self.average[index].clone()
            self.average_buffers = {k: v[index].clone() for k, v in self.average_buffers.items()}
        self._views()

    @torch.no_grad()
    def update_average(self) -> None:
        """``average <- decay * average + (1 - decay) * weights`` per member (``train.update_average``)."""
        assert self.average is not None and self.decays is not None and self.average_buffers is not None, (
            "update_average on a stack without an average"
        )
        weight = torch.tensor([1.0 - d for d in self.decays], dtype=self.weights.dtype, device=self.weights.device)
        self.average.lerp_(self.weights, weight.unsqueeze(1))
        for name, mean in self.average_buffers.items():
            mean.copy_(self.buffers[name])

    def member_params(self, position: int, average: bool = False) -> dict[str, Tensor]:
        """Member ``position``'s parameters as views of the flat weights (in-place edits land in them)."""
        flat = self.average if average else self.weights
        assert flat is not None, "the average of a stack that keeps none"
        return {k: v[0] for k, v in self._split(flat.detach()[position : position + 1]).items()}

    @torch.no_grad()
    def load_into(self, module: nn.Module, position: int, average: bool = False) -> None:
        """Member ``position``'s slice into a plain module (for evaluation and checkpoints)."""
        buffers = self.average_buffers if average else self.buffers
        assert buffers is not None, "the average of a stack that keeps none"
        module.load_state_dict(
            {**self.member_params(position, average), **{k: v[position].detach() for k, v in buffers.items()}}
        )


def alias_module(stack: Stack, index: int) -> nn.Module:
    """A copy of the network whose parameters alias member ``index``'s weights: in-place edits (clipping) land in
    the stack."""
    module = copy.deepcopy(stack.real_base)
    for name, value in stack.member_params(index).items():
        owner, _, leaf = name.rpartition(".")
        target = module.get_submodule(owner) if owner else module
        target._parameters[leaf] = nn.Parameter(value, requires_grad=False)
    return module


class Critic(nn.Module):
    """Member ``index``'s discriminator as the callable a penalty receives (gradients reach the stacked weights)."""

    def __init__(self, stack: Stack, index: int) -> None:
        super().__init__()
        self._call = (stack, index)

    def forward(self, x: Tensor) -> Tensor:
        stack, i = self._call
        params = stack.member_leaves(i)
        if stack.fast is not None:
            return stack.fast(params, x.unsqueeze(0))[0]
        return functional_call(
            stack.base, ({k: v[0] for k, v in params.items()}, {k: v[i] for k, v in stack.buffers.items()}), (x,)
        )

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """The member's parameter slices (a penalty on the weights, e.g. weight decay, sees its own)."""
        stack, i = self._call
        for name, value in stack.member_leaves(i).items():
            yield prefix + name, value[0]

    def parameters(self, recurse: bool = True):
        for _name, value in self.named_parameters():
            yield value
