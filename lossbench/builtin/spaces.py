"""Built-in feature spaces, registered through ``register_feature_spaces`` as any plugin's are.

"inception" (pytorch-fid's FID Inception, the standard FID), "classifier" (the dataset's own network: the built-in
image datasets' classifiers) and "raw" (coordinates or pixels). The spaces themselves live in
``lossbench.scoring.spaces``, which also falls back on them for a context built without a catalog.
"""

from __future__ import annotations

from collections.abc import Callable

from lossbench.api import FeatureSpace, hookimpl
from lossbench.scoring.spaces import BUILTIN_SPACES


@hookimpl
def register_feature_spaces(register: Callable[[FeatureSpace], None]) -> None:
    for space in BUILTIN_SPACES:
        register(space)
