"""lossbench: train every loss x model x dataset with paired seeds and tell which loss to use, and how sure.

The public plugin API (``lossbench.api``, see docs/architecture.md) is re-exported here; plugins import from ``lossbench``.
"""

from lossbench.api import (
    GAN,
    VAE,
    AdversarialLoss,
    DataSpec,
    Dataset,
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

__version__ = "0.1.0"


def __getattr__(name: str):
    # EvaluationContext and RunSpec live in modules that import torch-heavy code; load them on first use.
    if name == "EvaluationContext":
        from lossbench.scoring.evaluate import EvaluationContext

        return EvaluationContext
    if name == "RunSpec":
        from lossbench.plan.grid import RunSpec

        return RunSpec
    raise AttributeError(f"module 'lossbench' has no attribute {name!r}")


__all__ = [
    "GAN", "VAE", "AdversarialLoss", "DataSpec", "Dataset", "EvaluationContext", "FeatureNetwork", "FeatureSpace",
    "Metric", "MetricContext", "ModeAssignment", "ModelFactory", "Recipe", "RunSpec", "Samples", "Threshold",
    "TrainingTarget", "VAELoss",
    "hookimpl", "__version__",
]
