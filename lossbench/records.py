"""What a run produces, as the store keeps it: the record passed from training to the store, torch-free.

Training (``lossbench.training``) fills a ``RunResult``; executors carry it; the store (``lossbench.results``)
commits it. Defining it here keeps the store, tables and ``show`` free of torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lossbench.plan.grid import RunSpec

HISTORY_COLUMNS = (
    "step",
    "d_loss",
    "g_loss",
    "penalty",
    "d_real",
    "d_fake",
    "d_accuracy",
    "score_real",
    "score_fake",
    "grad_norm_g",
    "grad_norm_d",
    "seconds",
)
"""The columns of a run's training history, one row per logged step."""

SPACE_IN_KEY = re.compile(r"@[a-z0-9][a-z0-9-]*")
"""``@<space>`` in a metric key: a value computed in a feature space chosen with ``--feature-space``."""


def space_key(key: str, metric: str, space: str) -> str:
    """The key of ``key`` (a key of ``metric``) computed in feature space ``space``: ``fid`` -> ``fid@s``,
    ``fid_floor`` -> ``fid@s_floor``. The metric's name carries the space, so ``fid@s_features`` still names the
    space of every ``fid@s...`` key, and the default space's keys never change."""
    return f"{metric}@{space}{key[len(metric) :]}"


def base_key(key: str) -> str:
    """The default-space key of a value computed in another space (``prdc@s_recall`` -> ``prdc_recall``): its
    direction and meaning are the base key's."""
    return SPACE_IN_KEY.sub("", key, count=1)


def space_of(key: str) -> str | None:
    """The feature space a key was computed in (``prdc@s_recall`` -> ``s``); None for a default-space key."""
    found = SPACE_IN_KEY.search(key)
    return found.group()[1:] if found else None


FACTS_SUFFIX = "_facts"
"""Text stored per run and metric: JSON ``{key: KeyFacts}``, so tables and reports need no plugin installed."""


DIRECTIONS_SUFFIX = "_directions"
"""What stores written before metric facts hold instead: JSON ``{key: direction}`` (read, no longer written)."""


@dataclass(frozen=True)
class KeyFacts:
    """What a metric declares about one of its keys (``Metric.better``, ``labels``, ``units``, ``headline``).

    Declared once by the metric, stored with every run, read back by tables, figures, the report and ``show``.
    """

    better: str = "lower"  # "higher", "lower" or "none" (shown, never ranked or tested)
    label: str = ""  # a reader's name, e.g. "FID"; "" means the key with spaces
    unit: str = ""  # e.g. "nats", "%"; "" when the value has none
    headline: int | None = None  # rank among the keys that lead a leaderboard (1 first); None: not a headline

    def name(self, key: str) -> str:
        """The label, or the key with spaces when the metric declares none."""
        return self.label or key.replace("_", " ")


def metric_facts(metric: object) -> dict[str, KeyFacts]:
    """``{key: KeyFacts}`` a metric object declares (read by attribute, so any object with them works)."""
    declared = {name: dict(getattr(metric, name, None) or {}) for name in ("better", "labels", "units", "headline")}
    for key, rank in declared["headline"].items():
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
            raise ValueError(
                f"metric {getattr(metric, 'name', metric)!r}: headline[{key!r}] is {rank!r}; "
                "expected an int rank (1 leads)"
            )
    keys = sorted(set().union(*declared.values()))
    return {
        str(key): KeyFacts(
            str(declared["better"].get(key, "lower")),
            str(declared["labels"].get(key, "")),
            str(declared["units"].get(key, "")),
            declared["headline"].get(key),
        )
        for key in keys
    }


def facts_texts(metrics: Iterable[object]) -> dict[str, str]:
    """The ``<metric>_facts`` texts a run stores for ``metrics`` (those that declare anything)."""
    texts = {}
    for metric in metrics:
        facts = metric_facts(metric)
        if facts:
            texts[f"{metric.name}{FACTS_SUFFIX}"] = json.dumps(  # type: ignore[attr-defined]
                {key: asdict(fact) for key, fact in facts.items()}, sort_keys=True
            )
    return texts


def parse_facts(column: str, text: object) -> dict[str, KeyFacts]:
    """The facts in one stored text (``<metric>_facts``, or an older store's ``<metric>_directions``); {} if
    the text is not one."""
    try:
        declared = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    if not isinstance(declared, dict):
        return {}
    if column.endswith(DIRECTIONS_SUFFIX):
        return {str(key): KeyFacts(better=str(value)) for key, value in declared.items()}
    fields = set(KeyFacts.__dataclass_fields__)
    return {
        str(key): KeyFacts(**{k: v for k, v in value.items() if k in fields})
        for key, value in declared.items()
        if isinstance(value, dict)
    }


def is_facts_column(column: object) -> bool:
    """Whether a stored text is a metric's facts (kept for tables and reports, not a result to show)."""
    return str(column).endswith((FACTS_SUFFIX, DIRECTIONS_SUFFIX))


def facts_from_texts(texts: Mapping[str, object] | Iterable[tuple[str, object]]) -> dict[str, KeyFacts]:
    """Every key's facts in ``{column: text}`` (e.g. a ``RunResult.texts``) or ``(column, text)`` pairs; a later
    declaration of a key wins, and full facts win over an older store's directions."""
    pairs = list(texts.items()) if isinstance(texts, Mapping) else list(texts)
    found: dict[str, KeyFacts] = {}
    for column, text in sorted(pairs, key=lambda pair: not str(pair[0]).endswith(DIRECTIONS_SUFFIX)):
        if is_facts_column(column):
            found.update(parse_facts(str(column), text))
    return found


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
