"""Leaderboards as a paper needs them (``lossbench show --format markdown|latex|csv|json``).

One grid per dataset x model: a row per loss, a column per metric whose header names the feature space the values
were measured in and which way is better. A cell is either ``mean ± h`` (h: half the width of the seeded
bootstrap 95% CI of the mean over finished seeds) or ``median [q25, q75]`` over the same seeds. Bold marks the
loss ranked first on that metric (``tables.summarise``'s rank: every seed counts, failed and diverged ones at the
worst value, so a loss that finished one seed of three cannot be bold on it). A dagger marks a loss whose paired
difference from the reference loss is significant after Holm's correction (``tables.pairwise``); the CSV and JSON
say which way (``vs_reference``). Only formatting lives here: every number comes from ``lossbench.results.tables``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lossbench.results import headlines, tables
from lossbench.results.facts import Facts, stored_facts
from lossbench.results.leaderboard import loss_order, metric_labels

STATISTICS = ("mean-ci", "median-iqr")
FORMATS = ("table", "markdown", "latex", "csv", "json")
DIGITS = 4
MARK = "†"
ARROWS = {"lower": "↓", "higher": "↑", "none": ""}
CSV_COLUMNS = [
    "dataset",
    "model",
    "loss",
    "metric",
    "label",
    "better",
    "statistic",
    "center",
    "low",
    "high",
    "n_values",
    "n_seeds",
    "rank",
    "best",
    "reference",
    "vs_reference",
    "p_holm",
    "text",
]


@dataclass
class Cell:
    """One loss on one metric: the statistic and its spread, whether it ranks first, and how it compares."""

    loss: str
    metric: str
    center: float
    low: float
    high: float
    n_values: int
    n_seeds: int
    rank: float
    best: bool
    vs_reference: str  # "better" / "worse" when significantly different from the reference loss, else ""
    p_holm: float


@dataclass
class Grid:
    """The leaderboard of one dataset x model in one statistic."""

    dataset: str
    model: str
    statistic: str
    reference: str | None
    metrics: list[str]
    labels: dict[str, str]
    better: dict[str, str]
    losses: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def header(self, metric: str) -> str:
        """A column header: the metric's label with its feature space, and the arrow of its direction."""
        arrow = ARROWS.get(self.better.get(metric, "lower"), "")
        return f"{self.labels[metric]} {arrow}".strip()


def number(value: float, digits: int = DIGITS) -> str:
    """A value to ``digits`` significant digits; '–' when missing, ∞ when infinite."""
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def cell_text(cell: Cell | None, statistic: str) -> str:
    """The plain text of a cell, without emphasis or marks."""
    if cell is None or math.isnan(cell.center):
        return "–"
    if statistic == "median-iqr":
        return f"{number(cell.center)} [{number(cell.low)}, {number(cell.high)}]"
    if math.isnan(cell.low):
        return number(cell.center)
    return f"{number(cell.center)} ± {number((cell.high - cell.low) / 2)}"


def quartiles(runs: pd.DataFrame, key: str) -> tuple[float, float]:
    """25th and 75th percentiles over the seeds whose value counts for ``key`` (as ``tables.summarise``)."""
    values = pd.to_numeric(runs.loc[tables.counts_for(key, runs["status"]), key], errors="coerce").dropna()
    if values.empty:
        return math.nan, math.nan
    low, high = np.percentile(values.to_numpy(dtype=float), [25, 75])
    return float(low), float(high)


def build_grids(
    wide: pd.DataFrame,
    summary: pd.DataFrame,
    metrics: Iterable[str] | None = None,
    statistic: str = "mean-ci",
    reference: str | None = None,
    facts: Facts | None = None,
) -> list[Grid]:
    """One ``Grid`` per dataset x model of ``wide`` (a ``Store.runs_wide`` table) with its ``summary``.

    ``metrics``: the columns (default: the headline metrics present, as in the terminal leaderboard); ``facts``:
    the metric facts that label and order them (default: those stored with the runs).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, not {statistic!r}")
    facts = stored_facts(wide) if facts is None else facts
    wide = tables.with_derived(wide)
    metrics = list(metrics or [])
    known = dict(zip(summary["metric"], summary["better"])) if len(summary) else {}
    grids = []
    for (dataset, model), runs in wide.groupby(["dataset", "model"], sort=True):
        part = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        present = sorted(part.loc[part["n_values"] > 0, "metric"].unique()) if len(part) else []
        shown = (
            [m for m in metrics if m in set(part["metric"])] if metrics else headlines.headline_metrics(present, facts)
        )
        primary = shown[0] if shown else None
        losses = loss_order(runs, part, primary)
        ref = tables.reference_of(losses, reference)
        grid = Grid(
            dataset,
            model,
            statistic,
            ref,
            shown,
            metric_labels(wide, dataset, shown, facts),
            {m: known.get(m, "lower") for m in shown},
            losses,
        )
        entries = part.set_index(["loss", "metric"])
        for metric in shown:
            compared = _against_reference(runs, metric, ref, known)
            for loss in losses:
                if (loss, metric) not in entries.index:
                    continue
                entry = entries.loc[(loss, metric)]
                if statistic == "median-iqr":
                    center = float(entry["median"])
                    low, high = quartiles(runs[runs["loss"] == loss], metric)
                else:
                    center, low, high = float(entry["mean"]), float(entry["ci_low"]), float(entry["ci_high"])
                verdict, p_holm = compared.get(loss, ("", math.nan))
                grid.cells[(loss, metric)] = Cell(
                    loss,
                    metric,
                    center,
                    low,
                    high,
                    int(entry["n_values"]),
                    int(entry["n_seeds"]),
                    float(entry["rank"]),
                    bool(entry["rank"] == 1 and not math.isnan(center)),
                    verdict,
                    p_holm,
                )
        grids.append(grid)
    return grids


def _against_reference(
    runs: pd.DataFrame, metric: str, reference: str | None, known: Mapping[str, str]
) -> dict[str, tuple[str, float]]:
    """Per loss: ('better'|'worse'|'', Holm p) of its paired test against the reference loss."""
    if reference is None:
        return {}
    frame = tables.pairwise(runs, metric, comparisons="reference", reference=reference, known=dict(known))
    found = {}
    for row in frame.to_dict("records"):
        verdict = ("better" if row["better"] == row["loss_a"] else "worse") if row["significant"] else ""
        found[row["loss_a"]] = (verdict, float(row["p_holm"]))
    return found


def records(grids: list[Grid]) -> list[dict]:
    """One flat record per cell (the CSV's rows and the JSON's items)."""
    rows = []
    for grid in grids:
        for loss in grid.losses:
            for metric in grid.metrics:
                cell = grid.cells.get((loss, metric))
                if cell is None:
                    continue
                rows.append(
                    {
                        "dataset": grid.dataset,
                        "model": grid.model,
                        "loss": loss,
                        "metric": metric,
                        "label": grid.header(metric),
                        "better": grid.better[metric],
                        "statistic": grid.statistic,
                        "center": cell.center,
                        "low": cell.low,
                        "high": cell.high,
                        "n_values": cell.n_values,
                        "n_seeds": cell.n_seeds,
                        "rank": cell.rank,
                        "best": cell.best,
                        "reference": grid.reference or "",
                        "vs_reference": cell.vs_reference,
                        "p_holm": cell.p_holm,
                        "text": cell_text(cell, grid.statistic),
                    }
                )
    return rows


def legend(grid: Grid) -> str:
    """The sentence under a grid saying what its cells, bold and marks mean."""
    what = (
        "median [25th, 75th percentile]"
        if grid.statistic == "median-iqr"
        else "mean ± half the width of the bootstrap 95% CI"
    )
    marks = (
        f"{MARK}: paired difference from {grid.reference} significant (Wilcoxon signed-rank, Holm, "
        f"alpha = {tables.ALPHA})"
        if grid.reference
        else "no reference loss here: no paired tests"
    )
    return f"{what} over finished seeds; bold: ranked first over all seeds (failed and diverged seeds worst); {marks}"


def _row_name(grid: Grid, loss: str) -> str:
    return f"{loss} (reference)" if loss == grid.reference else loss


def to_markdown(grids: list[Grid]) -> str:
    """GitHub-flavoured Markdown: a heading, a table and its legend per dataset x model."""
    parts = []
    for grid in grids:
        lines = [
            f"### {grid.dataset} · {grid.model}",
            "",
            "| loss | " + " | ".join(grid.header(m).replace("|", "\\|") for m in grid.metrics) + " |",
            "|---|" + "---:|" * len(grid.metrics),
        ]
        for loss in grid.losses:
            cells = []
            for metric in grid.metrics:
                cell = grid.cells.get((loss, metric))
                text = cell_text(cell, grid.statistic)
                if cell is not None and cell.best:
                    text = f"**{text}**"
                if cell is not None and cell.vs_reference:
                    text += MARK
                cells.append(text)
            lines.append(f"| {_row_name(grid, loss)} | " + " | ".join(cells) + " |")
        lines += ["", legend(grid)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "·": "/",
    "±": r"$\pm$",
    "∞": r"$\infty$",
    "−": "$-$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    MARK: r"\textsuperscript{\dag}",
}


def latex_escape(text: str) -> str:
    """Text safe in a LaTeX document with the default (UTF-8) input encoding and no extra package."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in str(text))


def to_latex(grids: list[Grid]) -> str:
    """One ``table`` float per dataset x model, typeset with booktabs (``\\usepackage{booktabs}``)."""
    parts = []
    for grid in grids:
        lines = [
            r"\begin{table}[ht]",
            r"\centering",
            r"\begin{tabular}{l" + "r" * len(grid.metrics) + "}",
            r"\toprule",
            "Loss & " + " & ".join(latex_escape(grid.header(m)) for m in grid.metrics) + r" \\",
            r"\midrule",
        ]
        for loss in grid.losses:
            cells = []
            for metric in grid.metrics:
                cell = grid.cells.get((loss, metric))
                text = latex_escape(cell_text(cell, grid.statistic))
                if cell is not None and cell.best:
                    text = rf"\textbf{{{text}}}"
                if cell is not None and cell.vs_reference:
                    text += LATEX_SPECIALS[MARK]
                cells.append(text)
            lines.append(latex_escape(_row_name(grid, loss)) + " & " + " & ".join(cells) + r" \\")
        lines += [
            r"\bottomrule",
            r"\end{tabular}",
            rf"\caption{{{latex_escape(grid.dataset)} / {latex_escape(grid.model)}: "
            rf"{latex_escape(legend(grid))}.}}",
            r"\end{table}",
        ]
        parts.append("\n".join(lines))
    return "% requires \\usepackage{booktabs}\n" + "\n\n".join(parts) + "\n"


def to_csv(grids: list[Grid]) -> str:
    """One row per dataset x model x loss x metric (``CSV_COLUMNS``), numbers at full precision."""
    buffer = io.StringIO()
    pd.DataFrame(records(grids), columns=CSV_COLUMNS).to_csv(buffer, index=False)
    return buffer.getvalue()


def to_json(grids: list[Grid]) -> str:
    """The CSV's records as a JSON list (NaN as null)."""
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in records(grids)
    ]
    return json.dumps(rows, indent=2, allow_nan=False, default=str)


def to_text(grids: list[Grid]) -> str:
    """A plain terminal grid (best marked with '*' since a pipe may not keep bold)."""
    blocks = []
    for grid in grids:
        rows = []
        for loss in grid.losses:
            row = {"loss": _row_name(grid, loss)}
            for metric in grid.metrics:
                cell = grid.cells.get((loss, metric))
                text = cell_text(cell, grid.statistic)
                row[grid.header(metric)] = (f"*{text}" if cell is not None and cell.best else text) + (
                    MARK if cell is not None and cell.vs_reference else ""
                )
            rows.append(row)
        blocks.append(
            f"{grid.dataset} · {grid.model}\n"
            + pd.DataFrame(rows).to_string(index=False)
            + f"\n{legend(grid).replace('bold', '*')}"
        )
    return "\n\n".join(blocks)


RENDERERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json, "table": to_text}


def render(grids: list[Grid], fmt: str) -> str:
    """The grids in one of ``FORMATS``."""
    return RENDERERS[fmt](grids)


__all__ = ["Cell", "Grid", "build_grids", "render", "records", "STATISTICS", "FORMATS"]
