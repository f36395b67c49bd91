"""What a run produces, as the store keeps it: the record passed from training to the store, torch-free.

Training (``lossbench.training``) fills a ``RunResult``; executors carry it; the store (``lossbench.results``)
commits it. Defining it here keeps the store, tables and ``show`` free of torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lossbench.plan.grid import RunSpec

HISTORY_COLUMNS = (
    "step", "d_loss", "g_loss", "penalty", "d_real", "d_fake", "d_accuracy",
    "score_real", "score_fake", "grad_norm_g", "grad_norm_d", "seconds",
)
"""The columns of a run's training history, one row per logged step."""

SPACE_IN_KEY = re.compile(r"@[a-z0-9][a-z0-9-]*")
"""``@<space>`` in a metric key: a value computed in a feature space chosen with ``--feature-space``."""


def space_key(key: str, metric: str, space: str) -> str:
    """The key of ``key`` (a key of ``metric``) computed in feature space ``space``: ``fid`` -> ``fid@s``,
    ``fid_floor`` -> ``fid@s_floor``. The metric's name carries the space, so ``fid@s_features`` still names the
    space of every ``fid@s...`` key, and the default space's keys never change."""
    return f"{metric}@{space}{key[len(metric):]}"


def base_key(key: str) -> str:
    """The default-space key of a value computed in another space (``prdc@s_recall`` -> ``prdc_recall``): its
    direction and meaning are the base key's."""
    return SPACE_IN_KEY.sub("", key, count=1)


def space_of(key: str) -> str | None:
    """The feature space a key was computed in (``prdc@s_recall`` -> ``s``); None for a default-space key."""
    found = SPACE_IN_KEY.search(key)
    return found.group()[1:] if found else None


DIRECTIONS_SUFFIX = "_directions"
"""Text fact stored per run and metric: JSON ``{key: direction}``, so tables rank without the plugin installed."""


@dataclass
class RunResult:
    """What one run produced; the driver commits it to the store in one transaction."""

    spec: RunSpec
    status: str  # "ok" | "diverged" | "failed"
    reason: str = ""
    failed_step: int | None = None
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(HISTORY_COLUMNS)))
    curves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["step", "key", "value"]))
    metrics: dict[str, float] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    samples: np.ndarray | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    checkpoint: bytes | None = None  # the final generator's (GAN) or decoder's (VAE) state_dict, torch.save'd
    checkpoint_role: str = ""  # "generator" | "decoder"

    @property
    def run_id(self) -> str:
        return self.spec.run_id
