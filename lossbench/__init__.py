"""lossbench: train every loss x model x dataset with paired seeds and tell which loss to use, and how sure.

The public plugin API (``lossbench.api``, see docs/architecture.md) is re-exported here; plugins import from
``lossbench``. The re-exports load on first use (PEP 562), so that ``import lossbench.cli`` (``lossbench --help``,
``lossbench show``) does not pay for what it does not use; ``from lossbench import AdversarialLoss`` works as ever.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time ``__getattr__`` below loads each name
    from lossbench.api import (
        GAN,
        VAE,
        AdversarialLoss,
        Dataset,
        DataSpec,
        FeatureNetwork,
        FeatureSpace,
        Metric,
        MetricContext,
        ModeAssignment,
        ModelFactory,
        Recipe,
        Samples,
        Threshold,
        TrainingTarget,
        VAELoss,
        hookimpl,
    )
    from lossbench.plan.grid import RunSpec
    from lossbench.scoring.evaluate import EvaluationContext

__version__ = "0.1.0"

_API_NAMES = (
    "GAN",
    "VAE",
    "AdversarialLoss",
    "DataSpec",
    "Dataset",
    "FeatureNetwork",
    "FeatureSpace",
    "Metric",
    "MetricContext",
    "ModeAssignment",
    "ModelFactory",
    "Recipe",
    "Samples",
    "Threshold",
    "TrainingTarget",
    "VAELoss",
    "hookimpl",
)
_HOME = {
    **dict.fromkeys(_API_NAMES, "lossbench.api"),
    "EvaluationContext": "lossbench.scoring.evaluate",  # imports the scoring engine (torch, pytorch-fid)
    "RunSpec": "lossbench.plan.grid",
}
"""Where each re-exported name is defined."""


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name (a typo) as Any

    def __getattr__(name: str) -> Any:
        """Load a re-exported name from its module on first use, and keep it here for the next."""
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module 'lossbench' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "GAN",
    "VAE",
    "AdversarialLoss",
    "DataSpec",
    "Dataset",
    "EvaluationContext",
    "FeatureNetwork",
    "FeatureSpace",
    "Metric",
    "MetricContext",
    "ModeAssignment",
    "ModelFactory",
    "Recipe",
    "RunSpec",
    "Samples",
    "Threshold",
    "TrainingTarget",
    "VAELoss",
    "hookimpl",
    "__version__",
]
