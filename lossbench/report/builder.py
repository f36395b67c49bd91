"""The HTML report: ``reports/index.html`` with its figures beside it in ``reports/figures/``.

The report is what most users read, so it is built only from the store of record (never from a run in memory)
and hides nothing: failed and diverged runs are listed and flagged, every value names the feature space it was
measured in, and the numbers in its tables are the ones in ``summary.csv`` (the same ``tables.summarise`` on the
same store), carried in ``data-*`` attributes at full precision so that tools can read them back.

It is self-contained: one HTML file with inline CSS and no scripts, plus PNG files referenced by relative paths,
so it opens from ``file://`` offline and can be zipped or copied as a folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment as Jinja, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.colors import to_hex

from lossbench import __version__
from lossbench.errors import LossbenchError, StoreError
from lossbench.plugin import provenance
from lossbench.report import figures, runsvg
from lossbench.results import headlines, tables, verdicts
from lossbench.results.files import OwnedFolder, write_text
from lossbench.results.store import Store, history_with_keys

ALPHA_DEFAULT = getattr(tables, "ALPHA", 0.05)
FIGURES_DIR = "figures"
RUNS_DIR = "runs"  # one page per run
INDEX = "index.html"
KEYS = ["run_id", "dataset", "model", "loss", "seed"]
SUMMARY_KEYS = ("dataset", "model", "loss", "metric")


# -- what the report reads ---------------------------------------------------------------------------------------
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
    directions: dict[str, str] = field(default_factory=dict)  # metric key -> "lower" | "higher" | "none"

    @classmethod
    def load(cls, store: Store, metrics: Any = ()) -> ReportData:
        """Read the store; ``metrics`` (registered metric objects) declare directions beside the stored ones."""
        runs = store.runs()
        wide = store.runs_wide()
        keys = runs[KEYS]
        known = tables.directions(wide, metrics)
        return cls(runs=runs, wide=wide, summary=tables.summarise(wide, known), history=history_with_keys(store),
                   curves=keys.merge(store.curves(), on="run_id"), metrics=store.metrics(), store=store,
                   directions=known)

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


# -- formatting --------------------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 4) -> str:
    """A number as a reader sees it: 4 significant digits, '–' for missing, ∞ for infinite."""
    if value is None or isinstance(value, str):
        return value or "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return "–"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    return f"{number:.{digits}g}"


def exact(value: Any) -> str:
    """A number at full precision for a ``data-*`` attribute (``repr`` round-trips a float; NaN is 'nan')."""
    if value is None:
        return "nan"
    return repr(float(value))


def slug(text: str) -> str:
    """A file- and anchor-safe version of a name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def _features_of(wide: pd.DataFrame) -> dict[str, pd.Series]:
    """Text columns that name a feature space (``fid_features``...), by the metric prefix they describe."""
    found = {}
    for column in wide.columns:
        if column.endswith("_features") and not pd.api.types.is_numeric_dtype(wide[column]):
            found[column.removesuffix("_features")] = wide[column]
    return found


def feature_space_for(key: str, prefixes: dict[str, Any]) -> str | None:
    """The ``<prefix>_features`` fact that describes ``key`` (``fid_floor`` -> ``fid``, ``prdc_recall`` -> ``prdc``)."""
    parts = key.split("_")
    for i in range(len(parts), 0, -1):
        prefix = "_".join(parts[:i])
        if prefix in prefixes:
            return prefix
    return None


def summary_numbers(summary: pd.DataFrame) -> list[str]:
    """The numeric columns of summary.csv, in its order (``tables.SUMMARY_COLUMNS`` may gain columns)."""
    return [c for c in summary.columns if c not in SUMMARY_KEYS and pd.api.types.is_numeric_dtype(summary[c])]


def paired_seeds(wide: pd.DataFrame) -> int:
    """Seeds every loss of one dataset x model ran (the pairs a comparison can have)."""
    counts = wide.groupby("loss")["seed"].nunique()
    return int(counts.min()) if len(counts) else 0


def power_line(wide: pd.DataFrame, comparisons: str = "reference", reference: str | None = None) -> str:
    """For one dataset x model: the comparison family in use and whether its tests can reach alpha at all."""
    losses = sorted(wide["loss"].unique())
    ref = tables.reference_of(losses, reference) if comparisons == "reference" else None
    if comparisons == "reference" and ref is None:
        wanted = ", ".join(([reference] if reference else []) + list(tables.DEFAULT_REFERENCES))
        return f"no reference loss here ({wanted} not run): no paired comparisons; use --comparisons all"
    size = tables.family_size(len(losses), comparisons)
    return tables.power_note(paired_seeds(wide), size, comparisons, ref)


def metric_labels(wide: pd.DataFrame, dataset: str, keys: list[str]) -> dict[str, str]:
    """Labels of metric keys on one dataset, naming the feature space(s) each value was measured in."""
    columns = _features_of(wide)
    rows = wide["dataset"] == dataset
    labels = {}
    for key in keys:
        prefix = feature_space_for(key, columns)
        spaces = sorted(columns[prefix][rows].dropna().unique()) if prefix else []
        labels[key] = figures.metric_label(key, " / ".join(spaces) if spaces else None)
    return labels


def loss_order(wide: pd.DataFrame, summary: pd.DataFrame, primary: str | None) -> list[str]:
    """Losses best first on the primary metric; losses without a value (all seeds failed) last, by name."""
    losses = sorted(wide["loss"].unique())
    if not primary:
        return losses
    ranks = summary[summary["metric"] == primary].set_index("loss")["rank"].to_dict()

    def key(loss: str) -> tuple:
        rank = ranks.get(loss)
        missing = rank is None or pd.isna(rank)
        return (missing, 0.0 if missing else float(rank), loss)

    return sorted(losses, key=key)


def leading_metrics(wide: pd.DataFrame, present: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(primary, headline, compact) metrics of one dataset x model (see ``headlines.leading_metrics``)."""
    spaces = wide["fid_features"].dropna() if "fid_features" in wide.columns else ()
    return headlines.leading_metrics(present, spaces)


def left_out_notes(wide: pd.DataFrame) -> list[str]:
    """What the default grid of each preset in the store leaves out (``Preset.leaves_out``)."""
    from lossbench.plan.grid import PRESETS

    names = sorted(set(wide["preset"].dropna())) if "preset" in wide.columns else []
    return [PRESETS[name].left_out_text() for name in names if name in PRESETS and PRESETS[name].leaves_out]


def leaderboard_text(wide: pd.DataFrame, summary: pd.DataFrame, metrics: list[str] | None = None,
                     comparisons: str = "reference", reference: str | None = None) -> str:
    """The leaderboard for a terminal (``lossbench show``): per dataset x model, one line per loss, best first.

    Ranks keep every seed (failed and diverged ones at the worst value); the means beside them are over finished
    seeds only, and say so. Each block ends with the comparison family and the seeds it needs to reach alpha.
    Each block opens with the training verdict (``lossbench.results.verdicts``) when most losses missed the dataset's
    target, and the ``target`` column gives the seeds of each loss that reached it.
    """
    blocks = []
    found = verdicts.verdicts(wide)
    for (dataset, model), group in wide.groupby(["dataset", "model"], sort=True):
        part = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        present = sorted(part.loc[part["n_values"] > 0, "metric"].unique()) if len(part) else []
        lead, _headline, compact = leading_metrics(group, present)
        shown = [m for m in metrics if m in set(part["metric"])] if metrics else compact
        primary = shown[0] if metrics and shown else lead
        labels = metric_labels(wide, dataset, shown)
        entries = part.set_index(["loss", "metric"]) if len(part) else None
        verdict = found.get((dataset, model))
        rows = []
        for loss in loss_order(group, part, primary):
            status = group.loc[group["loss"] == loss, "status"].value_counts()
            rank = entries.loc[(loss, primary), "rank"] if primary and entries is not None and (
                loss, primary) in entries.index else math.nan
            mean_rank = entries.loc[(loss, primary), "mean_rank"] if primary and entries is not None and (
                loss, primary) in entries.index else math.nan
            row = {"rank": fmt(rank), "loss": loss, "mean rank (all seeds)": fmt(mean_rank, 3),
                   "ok/seeds": f"{status.get('ok', 0)}/{int(status.sum())}",
                   "diverged": int(status.get("diverged", 0)), "failed": int(status.get("failed", 0))}
            if verdict is not None:
                row["target"] = verdicts.seeds_text(verdict, loss)
            for metric in shown:
                entry = entries.loc[(loss, metric)] if entries is not None and (loss, metric) in entries.index else None
                unranked = " (unranked)" if entry is not None and entry.get("better") == "none" else ""
                if entry is None or not math.isfinite(entry["mean"]):
                    row[labels[metric] + unranked] = "–"
                else:
                    ci = f" [{fmt(entry['ci_low'])}, {fmt(entry['ci_high'])}]" if math.isfinite(entry["ci_low"]) else ""
                    row[labels[metric] + unranked] = fmt(entry["mean"]) + ci
            rows.append(row)
        ranked = (f"ranked by {labels.get(primary, primary)} over all seeds, failed and diverged seeds worst"
                  if primary else "no metric values")
        effects = paired_effects_text(group, part, primary, labels.get(primary, primary), comparisons, reference)
        head = f"{dataset} · {model} ({ranked}; values: mean [95% CI] over finished seeds only"
        head += "; target: seeds that reached the training target)" if verdict is not None else ")"
        if verdict is not None and verdict.kind != "trained":
            head = f"{'!! ' if verdict.notice else ''}{verdict.message()}\n{head}"
        blocks.append(head + "\n" + pd.DataFrame(rows).to_string(index=False)
                      + f"\npaired tests: {power_line(group, comparisons, reference)}" + effects)
    notes = left_out_notes(wide)
    return "\n\n".join(blocks + [f"Note: {note}." for note in notes])


def paired_effects_text(wide: pd.DataFrame, summary: pd.DataFrame, metric: str | None, label: str,
                        comparisons: str = "reference", reference: str | None = None) -> str:
    """One line per comparison on ``metric``: the paired effect with its CI, then the test (for ``show``)."""
    if not metric or summary.empty:
        return ""
    known = dict(zip(summary["metric"], summary["better"])) if "better" in summary.columns else None
    frame = tables.pairwise(wide, metric, comparisons=comparisons, reference=reference, known=known)
    lines = []
    for record in frame.to_dict("records"):
        ci = f" [{fmt(record['ci_low'])}, {fmt(record['ci_high'])}]" if math.isfinite(record["ci_low"]) else ""
        verdict = f"; {record['better']} is better" if record["significant"] else ""
        lines.append(f"  {record['loss_a']} − {record['loss_b']}: {fmt(record['mean_diff'])}{ci} over "
                     f"{record['n_finished_pairs']} finished pairs; p = {fmt(record['p_value'], 3)}, Holm p = "
                     f"{fmt(record['p_holm'], 3)} over {record['n_pairs']} pairs{verdict}")
    return f"\npaired effects on {label} (mean paired difference [bootstrap 95% CI]):\n" + "\n".join(lines) if lines else ""


# -- the report --------------------------------------------------------------------------------------------------
@dataclass
class ReportBuilder:
    """Builds the figures and the page for one store into one report folder."""

    data: ReportData
    reports: Path
    catalog: Any = None  # lossbench.plugin.registry.Catalog, for mode centres and dataset kinds; optional
    comparisons: str = "reference"  # the paired-comparison family: "reference" or "all" (tables.COMPARISONS)
    reference: str | None = None  # the reference loss (default: tables.DEFAULT_REFERENCES)
    figure_refs: list[FigureRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.palette = figures.loss_palette(self.data.runs["loss"])
        self.folder: OwnedFolder | None = None  # set by build(): reports/figures, or lossbench's own subfolder
        self.runs_folder: OwnedFolder | None = None  # set by build(): reports/runs, one page per run
        self.feature_columns = _features_of(self.data.wide)
        self._pairwise: dict[str, pd.DataFrame] = {}

    # -- figures ----------------------------------------------------------------------------------------------
    def figure(self, name: str, title: str, caption: str, alt: str, draw: Callable[[Path], Any],
               fingerprint: str | None = None, suffix: str = ".png") -> FigureRef:
        """Draw one figure into ``figures/<name>.png``; a drawing error is shown in the report, not raised.

        With a ``fingerprint`` (everything the figure depends on) the file is named after it and an existing file
        is reused: a stored run never changes, so rebuilding a report redraws only the figures of new runs.
        """
        if fingerprint is not None:
            name = f"{name}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:10]}"
        path = self.folder.file(f"{slug(name)}{suffix}")  # names carry run ids from the store: never outside the folder
        ref = FigureRef(f"{self.folder.relative}/{path.name}", title, caption, alt)
        self.figure_refs.append(ref)
        if fingerprint is not None and path.is_file():
            return ref
        try:
            result = draw(path)
            if not isinstance(result, Path):  # a Figure; image grids are written straight to ``path``
                figures.save_figure(result, path)
        except Exception as exc:  # noqa: BLE001 - one figure must not sink the whole report
            ref.error = f"{type(exc).__name__}: {exc}"
            self.warnings.append(f"figure {name}: {ref.error}")
        return ref

    def prune(self) -> None:
        """Remove the figure files lossbench wrote earlier that this build no longer references (runs no longer
        stored, older fingerprints); files that lossbench did not write are never touched."""
        kept = {Path(ref.src).name for ref in self.figure_refs}
        self.folder.record(kept)
        self.folder.prune(kept)

    def labels_for(self, dataset: str) -> dict[str, str]:
        return metric_labels(self.data.wide, dataset, self.data.metric_keys)

    def dataset_info(self, name: str, wide: pd.DataFrame) -> dict[str, Any]:
        """Kind, number of modes and mode centres from the catalog when it has the dataset, else from samples."""
        info: dict[str, Any] = {"kind": None, "n_modes": None, "centres": None}
        catalog = self.catalog
        if catalog is not None and name in catalog.datasets:
            dataset = catalog.datasets.get(name)
            info["kind"] = dataset.spec.kind
            info["n_modes"] = dataset.spec.n_modes
            centres = getattr(dataset, "centres", None)
            if centres is not None:
                info["centres"] = np.asarray(centres.cpu() if hasattr(centres, "cpu") else centres, dtype=float)
        if info["kind"] is None:
            for run_id in wide["run_id"]:
                samples = self.data.store.samples(run_id)
                if samples is not None:
                    info["kind"] = "image" if samples.ndim == 4 else "points"
                    break
        return info

    # -- pieces of the page -----------------------------------------------------------------------------------
    def configuration(self) -> dict[str, Any]:
        runs = self.data.runs
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
            "presets": values("preset"), "seeds": values("seed"), "steps": "; ".join(steps) or "–",
            "batch_size": values("batch_size"), "eval_every": values("eval_every"),
            "final_samples": values("final_samples"),
            "datasets": values("dataset"), "models": values("model"), "losses": values("loss"),
            "devices": ", ".join(devices) or "–", "gpus": ", ".join(gpus), "software": "; ".join(software),
            "hosts": ", ".join(hosts),
        }

    def feature_spaces(self) -> list[dict[str, Any]]:
        """One row per dataset x metric family with the feature space(s) its values were measured in."""
        rows = []
        wide = self.data.wide
        for prefix, column in sorted(self.feature_columns.items()):
            for dataset in sorted(wide["dataset"].unique()):
                spaces = sorted(column[wide["dataset"] == dataset].dropna().unique())
                if spaces:
                    rows.append({
                        "dataset": dataset, "metric": prefix.upper() if prefix in ("fid", "kid") else prefix,
                        "spaces": spaces, "meaning": "; ".join(figures.feature_space_name(s) for s in spaces),
                        "mixed": len(spaces) > 1,
                        "inception": any(s == "inception-v3-pool3" for s in spaces),
                    })
        return rows

    def leaderboard(self, dataset: str, model: str, order: list[str], metrics: list[str],
                    summary: pd.DataFrame, wide: pd.DataFrame, primary: str | None,
                    verdict: verdicts.Verdict | None = None) -> list[dict[str, Any]]:
        """One row per loss (every loss with a stored run, failed ones included), best first on the primary."""
        rows = []
        by_loss = summary.set_index(["loss", "metric"]) if len(summary) else None
        for loss in order:
            group = wide[wide["loss"] == loss]
            status = group["status"].value_counts()
            n_seeds = len(group)
            cells = []
            for metric in metrics:
                entry = by_loss.loc[(loss, metric)] if by_loss is not None and (loss, metric) in by_loss.index else None
                mean = entry["mean"] if entry is not None else math.nan
                low = entry["ci_low"] if entry is not None else math.nan
                high = entry["ci_high"] if entry is not None else math.nan
                cells.append({
                    "metric": metric, "mean": exact(mean), "ci_low": exact(low), "ci_high": exact(high),
                    "n_values": int(entry["n_values"]) if entry is not None else 0,
                    "text": fmt(mean), "ci": f"[{fmt(low)}, {fmt(high)}]" if math.isfinite(low) else "",
                    "rank": fmt(entry["rank"]) if entry is not None else "–",
                })
            own = summary[summary["loss"] == loss]
            # seeds that neither diverged nor collapsed, as tables.summarise counts them
            success = float(own["success_share"].iloc[0]) if len(own) else (
                status.get("ok", 0) / n_seeds if n_seeds else math.nan)
            collapsed = float(own["n_collapsed"].iloc[0]) if len(own) and "n_collapsed" in own else math.nan
            rank = (by_loss.loc[(loss, primary), "rank"]
                    if by_loss is not None and primary and (loss, primary) in by_loss.index else math.nan)
            rows.append({
                "dataset": dataset, "model": model, "loss": loss, "colour": to_hex(self.palette[loss]),
                "rank": fmt(rank), "n_seeds": n_seeds, "n_ok": int(status.get("ok", 0)),
                "n_diverged": int(status.get("diverged", 0)), "n_failed": int(status.get("failed", 0)),
                "success_share": exact(success), "success_text": fmt(success, 3),
                "n_collapsed": int(collapsed) if collapsed == collapsed else None,
                "target_text": verdicts.seeds_text(verdict, loss), "target_share": exact(verdicts.share(verdict, loss)),
                "cells": cells,
            })
        return rows

    def summary_rows(self, summary: pd.DataFrame, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every summary.csv row of one dataset x model, every number at full precision."""
        rows = []
        numbers = summary_numbers(summary)
        for record in summary.to_dict("records"):
            rows.append({
                "dataset": record["dataset"], "model": record["model"], "loss": record["loss"],
                "metric": record["metric"], "label": labels.get(record["metric"], record["metric"]),
                "better": record.get("better", ""),
                "colour": to_hex(self.palette[record["loss"]]),
                "cells": [{"column": c, "value": exact(record[c]), "text": fmt(record[c])} for c in numbers],
            })
        return rows

    def pairwise(self, metric: str) -> pd.DataFrame:
        """Paired comparisons between losses on one metric (all datasets and models), computed once."""
        if metric not in self._pairwise:
            self._pairwise[metric] = tables.pairwise(self.data.wide, metric, comparisons=self.comparisons,
                                                     reference=self.reference, known=self.data.directions)
        return self._pairwise[metric]

    def pairwise_rows(self, frames: dict[str, pd.DataFrame], dataset: str, model: str,
                      labels: dict[str, str]) -> tuple[list[dict], list[dict]]:
        """(significant, all) paired comparisons between losses for one dataset x model."""
        rows = []
        for metric, frame in frames.items():
            part = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
            for record in part.to_dict("records"):
                rows.append({
                    "metric": metric, "label": labels.get(metric, metric),
                    "loss_a": record["loss_a"], "loss_b": record["loss_b"], "n_pairs": fmt(record["n_pairs"]),
                    "mean_diff": fmt(record["mean_diff"]), "ci": f"[{fmt(record['ci_low'])}, {fmt(record['ci_high'])}]",
                    "p_value": fmt(record["p_value"], 3), "p_holm": fmt(record["p_holm"], 3),
                    "significant": bool(record["significant"]) if pd.notna(record["significant"]) else False,
                    "better": "" if pd.isna(record["better"]) else str(record["better"]),
                    "too_few": bool(record.get("min_p_holm", record.get("min_p_value", 0.0)) >= ALPHA_DEFAULT),
                    "family": record.get("family", ""), "n_finished_pairs": fmt(record.get("n_finished_pairs")),
                    "raw": {k: exact(record[k]) for k in ("mean_diff", "ci_low", "ci_high", "p_value", "p_holm")},
                })
        return [r for r in rows if r["significant"]], rows

    def samples_of(self, wide: pd.DataFrame, order: list[str]) -> tuple[dict[str, np.ndarray | None], dict[str, str]]:
        """Per loss, the samples of its lowest successful seed (None when no seed succeeded)."""
        samples, titles = {}, {}
        for loss in order:
            group = wide[(wide["loss"] == loss) & (wide["status"] == "ok")].sort_values("seed")
            samples[loss], titles[loss] = None, f"{loss} (no successful seed)"
            for row in group.itertuples():
                array = self.data.store.samples(row.run_id)
                if array is not None:
                    samples[loss], titles[loss] = array, f"{loss}, seed {row.seed}"
                    break
        return samples, titles

    def model_section(self, dataset: str, model: str, info: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
        data = self.data
        wide = data.wide[(data.wide["dataset"] == dataset) & (data.wide["model"] == model)]
        summary = data.summary[(data.summary["dataset"] == dataset) & (data.summary["model"] == model)]
        present = sorted(summary.loc[summary["n_values"] > 0, "metric"].unique()) if len(summary) else []
        primary, metrics, plot_metrics = leading_metrics(wide, present)
        order = loss_order(wide, summary, primary)
        verdict = verdicts.verdicts(wide).get((dataset, model))
        base = f"{slug(dataset)}--{slug(model)}"
        tag = f"{dataset} · {model}"
        label = labels.get(primary, primary) if primary else "no metric"
        refs = []
        if metrics:
            refs.append(self.figure(
                f"{base}--leaderboard", f"Leaderboard, {tag}",
                f"Mean over successful seeds with its bootstrap 95% confidence interval (bars), and each seed "
                f"(dots), per loss, for {', '.join(labels.get(m, m) for m in plot_metrics)}. Losses are ordered by "
                f"{label} over every seed (failed and diverged seeds at the worst value). Dashed lines: the "
                f"real-vs-real floor where stored.",
                f"Point plot of {', '.join(plot_metrics)} per loss on {tag}, with 95% confidence intervals.",
                lambda _path: figures.leaderboard_figure(summary, wide, plot_metrics, order, self.palette, labels)))
            refs.append(self.figure(
                f"{base}--seeds", f"Spread across seeds, {tag}",
                f"Box plot of {label} over the successful seeds of each loss; every dot is one seed. A loss whose "
                f"seeds failed or diverged has fewer dots (see the leaderboard's seed counts).",
                f"Box and strip plot of {primary} across seeds per loss on {tag}.",
                lambda _path: figures.seeds_figure(wide, [primary], order, self.palette, labels,
                                                   directions_from=summary)))
        mode_keys = [k for k in headlines.MODE_KEYS if k in present]
        if mode_keys:
            references = {"modes_covered": float(info["n_modes"])} if info.get("n_modes") else {}
            refs.append(self.figure(
                f"{base}--modes", f"Mode coverage, {tag}",
                "Modes covered (dashed: all modes), share of high-quality samples and KL divergence between the "
                "generated and the true mode histograms, per loss; every dot is one seed.",
                f"Mode coverage per loss on {tag}: {', '.join(mode_keys)}.",
                lambda _path: figures.seeds_figure(wide, mode_keys, order, self.palette, labels, references,
                                                   directions_from=summary)))
        history = data.history[(data.history["dataset"] == dataset) & (data.history["model"] == model)]
        curves = data.curves[(data.curves["dataset"] == dataset) & (data.curves["model"] == model)]
        curve_keys = self.curve_keys(curves, primary)
        refs.append(self.figure(
            f"{base}--curves", f"Training curves, {tag}",
            "Discriminator and generator losses (linear axes: losses may be negative), mean sigmoid(D) on real "
            "(solid) and fake (dashed) samples where scores are logits, and "
            + (", ".join(labels.get(k, k) for k in curve_keys) + " from the evaluations during training"
               if curve_keys else "no evaluation during training")
            + ", over steps. Lines: mean over seeds; bands: from the lowest to the highest seed.",
            f"Training curves per loss on {tag}.",
            lambda _path: figures.curves_figure(history, curves, order, self.palette, curve_keys, labels)))
        refs.append(self.figure(
            f"{base}--stability", f"Stability flags, {tag}",
            "Share of seeds (annotated as flagged/seeds) that failed, diverged, or raised each stored stability "
            "flag, per loss. Darker is worse.",
            f"Heatmap of failed, diverged and stability flags per loss on {tag}.",
            lambda _path: figures.stability_figure(wide, order)))
        samples, titles = self.samples_of(wide, order)
        if info.get("kind") == "points":
            centres = info.get("centres")
            refs.append(self.figure(
                f"{base}--samples", f"Generated samples, {tag}",
                "Generated points of one seed per loss (the lowest successful seed) in the loss's colour; black "
                "crosses: the true mode centres." if centres is not None else
                "Generated points of one seed per loss (the lowest successful seed); the dataset's mode "
                "centres are unknown here (its plugin is not loaded).",
                f"Scatter plots of generated 2-d points per loss on {tag}.",
                lambda _path: figures.points_figure(samples, centres, self.palette, titles)))
        elif info.get("kind") == "image":
            refs.append(self.figure(
                f"{base}--samples", f"Generated samples, {tag}",
                "Generated images of one seed per loss (the lowest successful seed).",
                f"Grids of generated images per loss on {tag}.",
                lambda _path: figures.images_figure(samples, titles)))
        pairwise_frames = {metric: self.pairwise(metric) for metric in metrics}
        significant, all_pairs = self.pairwise_rows(pairwise_frames, dataset, model, labels)
        return {
            "name": model, "anchor": f"{slug(dataset)}--{slug(model)}", "primary": primary,
            "primary_label": label,
            "metrics": [{"key": m, "label": labels.get(m, m),
                         "direction": figures.direction_text(figures.direction_of(m, summary))} for m in metrics],
            "power": power_line(wide, self.comparisons, self.reference),
            "summary_columns": summary_numbers(summary),
            "rows": self.leaderboard(dataset, model, order, metrics, summary, wide, primary, verdict),
            "verdict": None if verdict is None else {
                "kind": verdict.kind, "notice": verdict.notice, "message": verdict.message(), "rule": verdict.rule},
            "summary_rows": self.summary_rows(summary, labels),
            "significant": significant, "pairs": all_pairs,
            "too_few": bool(all_pairs) and all(p["too_few"] for p in all_pairs),
            "has_collapsed": "n_collapsed" in summary.columns,
            "pairwise_metrics": [labels.get(m, m) for m in pairwise_frames],
            "figures": refs,
            "stability": figures.stability_table(wide, order).to_dict("records") if len(wide) else [],
        }

    @staticmethod
    def curve_keys(curves: pd.DataFrame, primary: str | None) -> list[str]:
        """The evaluation-during-training keys to plot: the primary metric's curve first, at most two."""
        keys = [k for k in curves["key"].unique() if curves.loc[curves["key"] == k, "value"].notna().any()]
        preferred = [k for k in (primary, *headlines.PRIMARY_ORDER) if k in keys]
        ordered = list(dict.fromkeys(preferred + sorted(keys)))
        return ordered[:2]

    def heatmap(self, dataset: str, labels: dict[str, str]) -> FigureRef | None:
        summary = self.data.summary[self.data.summary["dataset"] == dataset]
        present = sorted(summary.loc[summary["n_values"] > 0, "metric"].unique()) if len(summary) else []
        primary = headlines.primary_metric(present)
        if not primary:
            return None
        label = labels.get(primary, primary)
        return self.figure(
            f"{slug(dataset)}--heatmap", f"{label} by loss and model, {dataset}",
            f"Median over successful seeds of {label} for every loss (rows) and model (columns) on {dataset}; "
            f"{figures.direction_text(figures.direction_of(primary, summary))}. Empty cells: no "
            "successful run.",
            f"Heatmap of the median {primary} per loss and model on {dataset}.",
            lambda _path: figures.heatmap_figure(summary, primary, label))

    def run_sections(self, infos: dict[str, dict], labels_by_dataset: dict[str, dict]) -> list[dict[str, Any]]:
        data = self.data
        metrics = data.metrics.groupby("run_id")
        history = data.history.groupby("run_id")
        curves = data.curves.groupby("run_id")
        empty_history = data.history.iloc[0:0]
        empty_curves = data.curves.iloc[0:0]
        flags = figures.stability_flags(data.wide)
        wide = data.wide.set_index("run_id")
        recorded = data.store.provenances()
        summary = data.summary
        primaries = {dataset: headlines.primary_metric(part.loc[part["n_values"] > 0, "metric"].unique())
                     for dataset, part in summary.groupby("dataset")} if len(summary) else {}
        sections = []
        for run in data.runs.to_dict("records"):
            run_id = run["run_id"]
            labels = labels_by_dataset.get(run["dataset"], {})
            info = infos.get(run["dataset"], {})
            colour = self.palette[run["loss"]]
            run_metrics = metrics.get_group(run_id) if run_id in metrics.groups else data.metrics.iloc[0:0]
            values = [{"key": r["key"], "label": labels.get(r["key"], r["key"]),
                       "text": r["text"] if isinstance(r["text"], str) else fmt(r["value"]),
                       "value": exact(r["value"]) if not isinstance(r["text"], str) else "",
                       "is_text": isinstance(r["text"], str)}
                      for r in run_metrics.to_dict("records")
                      if not str(r["key"]).endswith(tables.DIRECTIONS_SUFFIX)]  # stored for the tables, not a result
            raised = [f.removeprefix("stability_").replace("_", " ") for f in flags
                      if f in wide.columns and wide.at[run_id, f] == 1.0]
            run_history = history.get_group(run_id) if run_id in history.groups else empty_history
            run_curves = curves.get_group(run_id) if run_id in curves.groups else empty_curves
            curve_key = (self.curve_keys(run_curves, headlines.primary_metric(run_curves["key"].unique()))[:1]
                         or [None])[0]
            failed_step = run["failed_step"] if pd.notna(run["failed_step"]) else None
            # what a run's own figures depend on: the stored run, its colour, and how figures are drawn
            hue = to_hex(colour)
            fingerprint = f"{run_id}|{run.get('finished_at')}|{hue}|{__version__}|{figures.REVISION}"
            refs = []
            if len(run_history) or len(run_curves):
                refs.append(self.figure(
                    f"run-{run_id}-curves", f"Training curves of {run_id}",
                    "D loss (solid) and G loss (dashed), mean sigmoid(D) on real (solid) and fake (dashed), and "
                    f"{labels.get(curve_key, curve_key) if curve_key else 'no curve metric'} over steps"
                    + (f"; the dash-dotted line marks step {int(failed_step)} where the run stopped."
                       if failed_step is not None else "."),
                    f"Training curves of run {run_id} ({run['loss']} on {run['dataset']}, seed {run['seed']}).",
                    lambda path, h=run_history, c=run_curves, k=curve_key, s=failed_step, hue=hue, names=labels: (
                        runsvg.write(runsvg.curves_svg(h, c, hue, k, s, names.get(k) if k else None), path)),
                    fingerprint=f"{fingerprint}|{curve_key}|{labels.get(curve_key) if curve_key else ''}",
                    suffix=".svg"))
            samples = data.store.samples(run_id)
            if samples is not None:
                if samples.ndim == 4:
                    refs.append(self.figure(
                        f"run-{run_id}-samples", f"Samples of {run_id}",
                        f"{min(len(samples), 64)} generated images (seed {run['seed']}).",
                        f"Grid of generated images of run {run_id}.",
                        lambda path, a=samples: figures.save_image_grid(a[:64], path), fingerprint=fingerprint))
                else:
                    centres = info.get("centres")
                    refs.append(self.figure(
                        f"run-{run_id}-samples", f"Samples of {run_id}",
                        f"{min(len(samples), runsvg.MAX_POINTS)} generated points"
                        + (" over the true mode centres (black crosses)." if centres is not None else "."),
                        f"Scatter plot of the generated points of run {run_id}.",
                        lambda path, a=samples, c=centres, hue=hue: runsvg.write(runsvg.points_svg(a, c, hue), path),
                        fingerprint=f"{fingerprint}|centres={centres is not None}", suffix=".svg"))
            status = run["status"]
            badge = {"ok": "ok", "failed": "FAILED", "diverged": "DIVERGED"}[status]
            if status != "ok" and failed_step is not None:
                badge += f" at step {int(failed_step)}"
            headline = primaries.get(run["dataset"])
            headline_value = wide.at[run_id, headline] if headline and headline in wide.columns else math.nan
            sections.append({
                "page": f"{self.runs_folder.relative}/{slug(run_id)}.html",
                "headline": labels.get(headline, headline) if headline else "",
                "headline_value": exact(headline_value), "headline_text": fmt(headline_value),
                "run_id": run_id, "dataset": run["dataset"], "model": run["model"], "loss": run["loss"],
                "seed": int(run["seed"]), "steps": run["steps"], "preset": run["preset"], "device": run["device"],
                "status": status, "badge": badge, "reason": run["reason"] or "", "colour": to_hex(colour),
                "failed_step": int(failed_step) if failed_step is not None else None,
                "train_seconds": fmt(run.get("train_seconds"), 3), "eval_seconds": fmt(run.get("eval_seconds"), 3),
                "finished_at": run.get("finished_at", ""), "metrics": values, "flags": raised, "figures": refs,
                "no_samples": samples is None, "code": provenance.describe(recorded.get(run_id)).split(" | "),
            })
        return sections

    # -- everything -------------------------------------------------------------------------------------------
    def build(self) -> Path:
        data = self.data
        started = time.perf_counter()
        self.folder = OwnedFolder(self.reports, FIGURES_DIR)
        self.runs_folder = OwnedFolder(self.reports, RUNS_DIR)
        datasets, infos, labels_by_dataset = [], {}, {}
        for dataset in sorted(data.runs["dataset"].unique()):
            wide = data.wide[data.wide["dataset"] == dataset]
            info = self.dataset_info(dataset, wide)
            labels = self.labels_for(dataset)
            infos[dataset], labels_by_dataset[dataset] = info, labels
            models = [self.model_section(dataset, model, info, labels)
                      for model in sorted(wide["model"].unique())]
            datasets.append({
                "name": dataset, "anchor": slug(dataset), "kind": info.get("kind") or "unknown kind",
                "n_modes": info.get("n_modes"), "heatmap": self.heatmap(dataset, labels), "models": models,
            })
        runs = self.run_sections(infos, labels_by_dataset)
        flagged = [r for r in runs if r["status"] != "ok"]
        page = render(
            "index.html.j2",
            version=__version__, generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            config=self.configuration(), feature_spaces=self.feature_spaces(), datasets=datasets, runs=runs,
            flagged=flagged, warnings=self.warnings, store_path=str(data.store.path),
            left_out=left_out_notes(data.wide),
            build_seconds=f"{time.perf_counter() - started:.1f}",
        )
        index = write_text(self.reports / INDEX, page)
        self.write_run_pages(runs)
        self.prune()
        return index

    def write_run_pages(self, runs: list[dict[str, Any]]) -> None:
        """Each run's section as its own page ``runs/<run_id>.html`` (the index links them); pages of runs no
        longer stored are removed."""
        folder = self.runs_folder
        base = "../" * (folder.relative.count("/") + 1)  # from a run page back to the report folder
        template = _environment().get_template("run.html.j2")
        kept = []
        for run in runs:
            name = Path(run["page"]).name
            write_text(folder.file(name), template.render(run=run, version=__version__, base=base))
            kept.append(name)
        folder.record(kept)
        folder.prune(kept)


@functools.lru_cache(maxsize=1)
def _environment() -> Jinja:
    return Jinja(loader=PackageLoader("lossbench.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                 undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context: Any) -> str:
    """Render one of the package's jinja2 templates (autoescaped: run reasons are arbitrary text)."""
    return _environment().get_template(template).render(**context)


def build_report(results: Path, reports: Path, catalog: Any = None, comparisons: str = "reference",
                 reference: str | None = None) -> Path:
    """(Re)build ``reports/index.html`` and ``reports/figures/`` from the store in ``results``; return the page.

    ``catalog`` (the loaded plugins' catalog) supplies mode centres for scatter plots; without it the report
    still builds, with the centres left out.
    """
    with Store.open(Path(results), create=False) as store:
        metrics = [catalog.metrics.get(name) for name in catalog.metrics.names()] if catalog is not None else ()
        data = ReportData.load(store, metrics)
        if data.runs.empty:
            raise StoreError(f"the store {store.path} holds no runs yet; run `lossbench run --grid` first")
        reports = prepare_reports(reports)
        return ReportBuilder(data, reports, catalog, comparisons, reference).build()


GENERATOR_MARK = 'name="generator" content="lossbench'  # in every page lossbench writes (the template's <meta>)


def prepare_reports(reports: Path) -> Path:
    """Create the reports folder and check, before anything is drawn (and before a grid trains), that lossbench
    may write there: the folder is writable and an ``index.html`` already in it is one lossbench wrote."""
    reports = Path(reports)
    try:
        reports.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=reports):
            pass
    except OSError as exc:
        raise LossbenchError(f"--reports {reports}: cannot write there ({exc.strerror or exc})") from None
    index = reports / INDEX
    if index.exists():
        try:
            with open(index, encoding="utf-8", errors="replace") as handle:
                head = handle.read(4096)
        except OSError as exc:
            raise LossbenchError(f"--reports {reports}: cannot read {index} ({exc.strerror or exc})") from None
        if GENERATOR_MARK not in head:
            raise LossbenchError(f"{index} was not written by lossbench and would be overwritten; "
                                 "move it away or choose another --reports folder")
    return reports
