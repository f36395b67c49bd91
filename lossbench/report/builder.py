"""The HTML report: ``reports/index.html`` with its figures beside it in ``reports/figures/``.

The report is what most users read, so it is built only from the store of record (never from a run in memory)
and hides nothing: failed and diverged runs are listed and flagged, every value names the feature space it was
measured in, and the numbers in its tables are the ones in ``summary.csv`` (the same ``tables.summarise`` on the
same store), carried in ``data-*`` attributes at full precision so that tools can read them back.

It is self-contained: one HTML file with inline CSS and no scripts, plus PNG files referenced by relative paths,
so it opens from ``file://`` offline and can be zipped or copied as a folder. The parts: what it reads
(``data``), the leaderboard shared with ``show`` (``lossbench.results.leaderboard``), the sections
(``sections``, ``runs``), their table rows (``rows``), the captions (``captions``), the figures (``figures``)
and the templates (``pages``); this module draws the figures into their folder and writes the pages.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench import __version__
from lossbench.errors import LossbenchError, StoreError
from lossbench.report import figures
from lossbench.report.data import FigureRef, ReportData, configuration, dataset_info, feature_spaces, slug
from lossbench.report.pages import GENERATOR_MARK, render
from lossbench.report.runs import run_sections, write_run_pages
from lossbench.report.sections import heatmap, model_section
from lossbench.results import tables
from lossbench.results.facts import labels as metric_labels
from lossbench.results.files import OwnedFolder, write_text
from lossbench.results.leaderboard import left_out_notes
from lossbench.results.store import Store

FIGURES_DIR = "figures"
RUNS_DIR = "runs"  # one page per run
INDEX = "index.html"


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
        self.folder = OwnedFolder(self.reports, FIGURES_DIR)  # reports/figures, or lossbench's own subfolder
        self.runs_folder = OwnedFolder(self.reports, RUNS_DIR)  # reports/runs, one page per run
        self._pairwise: dict[str, pd.DataFrame] = {}

    def figure(
        self,
        name: str,
        title: str,
        caption: str,
        alt: str,
        draw: Callable[[Path], Any],
        fingerprint: str | None = None,
        suffix: str = ".png",
    ) -> FigureRef:
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

    def pairwise(self, metric: str) -> pd.DataFrame:
        """Paired comparisons between losses on one metric (all datasets and models), computed once."""
        if metric not in self._pairwise:
            self._pairwise[metric] = tables.pairwise(
                self.data.wide,
                metric,
                comparisons=self.comparisons,
                reference=self.reference,
                known=self.data.directions,
            )
        return self._pairwise[metric]

    def samples_of(self, wide: pd.DataFrame, order: list[str]) -> tuple[dict[str, np.ndarray | None], dict[str, str]]:
        """Per loss, the samples of its lowest successful seed (None when no seed succeeded)."""
        samples: dict[str, np.ndarray | None] = {}
        titles: dict[str, str] = {}
        for loss in order:
            group = wide[(wide["loss"] == loss) & (wide["status"] == "ok")].sort_values("seed")
            samples[loss], titles[loss] = None, f"{loss} (no successful seed)"
            for row in group.itertuples():
                array = self.data.store.samples(row.run_id)
                if array is not None:
                    samples[loss], titles[loss] = array, f"{loss}, seed {row.seed}"
                    break
        return samples, titles

    def build(self) -> Path:
        data = self.data
        started = time.perf_counter()
        datasets, infos, labels_by_dataset = [], {}, {}
        for dataset in sorted(data.runs["dataset"].unique()):
            wide = data.wide[data.wide["dataset"] == dataset]
            info = dataset_info(data, self.catalog, dataset, wide)
            labels = metric_labels(data.wide, dataset, data.metric_keys, data.facts)
            infos[dataset], labels_by_dataset[dataset] = info, labels
            models = [model_section(self, dataset, model, info, labels) for model in sorted(wide["model"].unique())]
            datasets.append(
                {
                    "name": dataset,
                    "anchor": slug(dataset),
                    "kind": info.get("kind") or "unknown kind",
                    "n_modes": info.get("n_modes"),
                    "heatmap": heatmap(self, dataset, labels),
                    "models": models,
                }
            )
        runs = run_sections(self, infos, labels_by_dataset)
        page = render(
            "index.html.j2",
            version=__version__,
            generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            config=configuration(data.runs),
            feature_spaces=feature_spaces(data.wide, data.facts),
            datasets=datasets,
            runs=runs,
            flagged=[r for r in runs if r["status"] != "ok"],
            warnings=self.warnings,
            store_path=str(data.store.path),
            left_out=left_out_notes(data.wide),
            build_seconds=f"{time.perf_counter() - started:.1f}",
        )
        index = write_text(self.reports / INDEX, page)
        write_run_pages(self, runs)
        self.prune()
        return index


def build_report(
    results: Path, reports: Path, catalog: Any = None, comparisons: str = "reference", reference: str | None = None
) -> Path:
    """(Re)build ``reports/index.html`` and ``reports/figures/`` from the store in ``results``; return the page.

    ``catalog`` (the loaded plugins' catalog) supplies mode centres for scatter plots and its metrics' facts over
    the stored ones; without it the report still builds, with the centres left out.
    """
    with Store.open(Path(results), create=False) as store:
        metrics = [catalog.metrics.get(name) for name in catalog.metrics.names()] if catalog is not None else ()
        data = ReportData.load(store, metrics)
        if data.runs.empty:
            raise StoreError(f"the store {store.path} holds no runs yet; run `lossbench run --grid` first")
        reports = prepare_reports(reports)
        return ReportBuilder(data, reports, catalog, comparisons, reference).build()


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
            raise LossbenchError(
                f"{index} was not written by lossbench and would be overwritten; "
                "move it away or choose another --reports folder"
            )
    return reports
