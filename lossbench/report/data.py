"""What the report reads: everything from the store of record, once, plus the few facts only the catalog knows.

The numbers in the report's tables are the ones in ``summary.csv`` (the same ``tables.summarise`` on the same
store); labels, units, directions and headline ranks are the metric facts stored with the runs (registered
metrics, when given, over them), so a report rebuilt without a plugin installed still labels and ranks right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lossbench.records import KeyFacts
from lossbench.report import figures
from lossbench.results import tables
from lossbench.results.facts import Facts, facts_of, feature_columns, known_facts
from lossbench.results.files import OwnedFolder
from lossbench.results.store import Store, history_with_keys

KEYS = ["run_id", "dataset", "model", "loss", "seed"]
SUMMARY_KEYS = ("dataset", "model", "loss", "metric")


@dataclass
class ReportData:
    """Everything the report shows, read once from the store."""

    runs: pd.DataFrame  # Store.runs(): one row per run, with spec and environment JSON
    wide: pd.DataFrame  # Store.runs_wide(): one row per run, metric values as columns
    summary: pd.DataFrame  # tables.summarise(wide): the numbers of summary.csv
    history: pd.DataFrame  # history with run keys
    curves: pd.DataFrame  # light-evaluation curves with run keys
    metrics: pd.DataFrame  # long table run_id, key, value, text
    store: Store
    facts: dict[str, KeyFacts] = field(default_factory=dict)  # metric key -> its stored (or registered) facts

    @classmethod
    def load(cls, store: Store, metrics: Any = ()) -> ReportData:
        """Read the store; ``metrics`` (registered metric objects) declare facts over the stored ones."""
        runs = store.runs()
        wide = store.runs_wide()
        facts = known_facts(wide, metrics)
        known = {key: fact.better for key, fact in facts.items()}
        return cls(
            runs=runs,
            wide=wide,
            summary=tables.summarise(wide, known),
            history=history_with_keys(store),
            curves=runs[KEYS].merge(store.curves(), on="run_id"),
            metrics=store.metrics(),
            store=store,
            facts=facts,
        )

    @property
    def directions(self) -> dict[str, str]:
        """Metric key -> "lower" | "higher" | "none", as the tables rank."""
        return {key: fact.better for key, fact in self.facts.items()}

    @property
    def metric_keys(self) -> list[str]:
        return sorted(self.summary["metric"].unique()) if len(self.summary) else []


@dataclass
class FigureRef:
    """A figure file beside the report, with what the reader needs to understand it."""

    src: str  # path relative to the report folder
    title: str
    caption: str
    alt: str
    error: str = ""  # set when the figure could not be drawn: shown in the report, never hidden


def exact(value: Any) -> str:
    """A number at full precision for a ``data-*`` attribute (``repr`` round-trips a float; NaN is 'nan')."""
    if value is None:
        return "nan"
    return repr(float(value))


def slug(text: str) -> str:
    """A file- and anchor-safe version of a name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def summary_numbers(summary: pd.DataFrame) -> list[str]:
    """The numeric columns of summary.csv, in its order (``tables.SUMMARY_COLUMNS`` may gain columns)."""
    return [c for c in summary.columns if c not in SUMMARY_KEYS and pd.api.types.is_numeric_dtype(summary[c])]


def dataset_info(data: ReportData, catalog: Any, name: str, wide: pd.DataFrame) -> dict[str, Any]:
    """Kind, number of modes and mode centres from the catalog when it has the dataset, else from samples."""
    info: dict[str, Any] = {"kind": None, "n_modes": None, "centres": None}
    if catalog is not None and name in catalog.datasets:
        dataset = catalog.datasets.get(name)
        info["kind"] = dataset.spec.kind
        info["n_modes"] = dataset.spec.n_modes
        centres = getattr(dataset, "centres", None)
        if centres is not None:
            info["centres"] = np.asarray(centres.cpu() if hasattr(centres, "cpu") else centres, dtype=float)
    if info["kind"] is None:
        for run_id in wide["run_id"]:
            samples = data.store.samples(run_id)
            if samples is not None:
                info["kind"] = "image" if samples.ndim == 4 else "points"
                break
    return info


def configuration(runs: pd.DataFrame) -> dict[str, Any]:
    """The grid as run: presets, seeds, steps, sizes, names, devices and software, from the stored specs."""
    specs = pd.DataFrame([json.loads(s) for s in runs["spec_json"]]) if len(runs) else pd.DataFrame()
    environments = [json.loads(e) if e else {} for e in runs.get("environment_json", pd.Series(dtype=str))]
    counts = runs["status"].value_counts()

    def values(column: str) -> str:
        return ", ".join(str(v) for v in sorted(specs[column].dropna().unique())) if column in specs else "–"

    steps = []
    if len(specs):
        for dataset, group in specs.groupby("dataset", sort=True):
            steps.append(f"{dataset}: {', '.join(str(s) for s in sorted(group['steps'].unique()))}")
    devices = sorted(set(runs["device"].dropna()))
    gpus = sorted({e["gpu"] for e in environments if e.get("gpu")})
    software = sorted({f"torch {e.get('torch')}, Python {e.get('python')}" for e in environments if e.get("torch")})
    hosts = sorted({e["host"] for e in environments if e.get("host")})
    return {
        "n_runs": len(runs),
        "counts": {status: int(counts.get(status, 0)) for status in ("ok", "diverged", "failed")},
        "presets": values("preset"),
        "seeds": values("seed"),
        "steps": "; ".join(steps) or "–",
        "batch_size": values("batch_size"),
        "eval_every": values("eval_every"),
        "final_samples": values("final_samples"),
        "datasets": values("dataset"),
        "models": values("model"),
        "losses": values("loss"),
        "devices": ", ".join(devices) or "–",
        "gpus": ", ".join(gpus),
        "software": "; ".join(software),
        "hosts": ", ".join(hosts),
    }


def feature_spaces(wide: pd.DataFrame, facts: Facts) -> list[dict[str, Any]]:
    """One row per dataset x metric family with the feature space(s) its values were measured in (the family
    named by the label of its key, e.g. FID)."""
    rows = []
    for prefix, column in sorted(feature_columns(wide).items()):
        for dataset in sorted(wide["dataset"].unique()):
            spaces = sorted(column[wide["dataset"] == dataset].dropna().unique())
            if spaces:
                rows.append(
                    {
                        "dataset": dataset,
                        "metric": facts_of(prefix, facts).label or prefix,
                        "spaces": spaces,
                        "meaning": "; ".join(figures.feature_space_name(s) for s in spaces),
                        "mixed": len(spaces) > 1,
                        "inception": any(s == "inception-v3-pool3" for s in spaces),
                    }
                )
    return rows


class Builder(Protocol):
    """What the section and run-page modules use of the ``ReportBuilder`` that draws them."""

    data: ReportData
    palette: Any
    comparisons: str
    reference: str | None
    runs_folder: OwnedFolder

    def figure(
        self,
        name: str,
        title: str,
        caption: str,
        alt: str,
        draw: Callable[[Path], Any],
        fingerprint: str | None = None,
        suffix: str = ".png",
    ) -> FigureRef: ...

    def pairwise(self, metric: str) -> pd.DataFrame: ...

    def samples_of(self, wide: pd.DataFrame, order: list[str]) -> tuple[dict[str, Any], dict[str, str]]: ...
