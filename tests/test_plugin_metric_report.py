"""A plugin metric's facts reach every reader (issues 13 and 14): declared higher-is-better, it ranks the highest
value first in summary.csv, the report and ``show``; its headline key gets a leaderboard column and a figure; its
curve is plotted over steps; and all of it still holds when the report is rebuilt without the plugin."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import run_cli
from test_report import PNG_SIGNATURE, parse

SPREAD_PLUGIN = '''
from lossbench import Metric, hookimpl


class Spread(Metric):
    """Spread of the generated points (mean per-coordinate std): declared higher-is-better."""

    name = "spread"
    curve = True
    better = {"spread": "higher"}
    labels = {"spread": "sample spread"}
    units = {"spread": "coordinate units"}
    headline = {"spread": 20}  # after the built-ins: not among the four a terminal line shows

    def compute(self, ctx):
        return {"spread": float(ctx.fake.x.std(dim=0).mean())}


@hookimpl
def register_metrics(register):
    register(Spread())
'''
LABEL = "sample spread (coordinate units)"
LOSSES = ("nonsaturating", "wgan-gp", "lsgan")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three losses, one seed each, on ring8 with the plugin; then the report rebuilt without it."""
    root = tmp_path_factory.mktemp("plugin-metric")
    plugins, empty = root / "plugins", root / "no-plugins"
    plugins.mkdir()
    empty.mkdir()
    (plugins / "spread_metric.py").write_text(SPREAD_PLUGIN)
    # the smoke preset's 40 steps: one light evaluation (step 20), so the curve metrics have a curve
    args = ["--preset", "smoke", "-m", "mlp", "-d", "ring8", "--seeds", "0", "--device", "cpu"]
    code, output = run_cli(
        "run",
        "--grid",
        *args,
        *(f"-l{loss}" for loss in LOSSES),
        "--no-report",
        "--results",
        str(root / "results"),
        "--plugins-dir",
        str(plugins),
    )
    assert code == 0, output
    code, output = run_cli(
        "report", "--results", str(root / "results"), "--reports", str(root / "reports"), "--plugins-dir", str(empty)
    )
    assert code == 0, output
    code, shown = run_cli("show", "--results", str(root / "results"), "--metric", "spread", "--plugins-dir", str(empty))
    assert code == 0, shown
    summary = pd.read_csv(root / "results" / "summary.csv")
    return {
        "root": root,
        "reports": root / "reports",
        "show": shown,
        "spread": summary[summary["metric"] == "spread"].set_index("loss"),
    }


def test_a_higher_is_better_plugin_metric_ranks_its_highest_value_first(grid: dict) -> None:
    spread = grid["spread"]
    assert set(spread.index) == set(LOSSES) and (spread["better"] == "higher").all()
    by_value = spread["mean"].sort_values(ascending=False)
    assert by_value.is_unique  # three different values, so the order is a real test of the direction
    assert spread["rank"].to_dict() == {loss: float(i + 1) for i, loss in enumerate(by_value.index)}
    # the report rebuilt without the plugin: its leaderboard column carries the same ranks and the label
    dom = parse(grid["reports"] / "index.html")
    cells = {
        tr.attrs["data-loss"]: td
        for tr in dom.find_all("tr", cls="leaderboard-row")
        for td in tr.find_all("td", cls="metric")
        if td.attrs["data-metric"] == "spread"
    }
    assert {loss: int(td.attrs["data-rank"]) for loss, td in cells.items()} == spread["rank"].astype(int).to_dict()
    assert {loss: float(td.attrs["data-mean"]) for loss, td in cells.items()} == spread["mean"].to_dict()
    headers = [th.text for th in dom.find_all("th") if th.attrs.get("data-metric") == "spread"]
    assert headers and all(LABEL in h for h in headers)
    # and `show` without the plugin ranks the same way
    best = by_value.index[0]
    line = next(row for row in grid["show"].splitlines() if row.split()[:2] == ["1", best])
    assert f"{spread.at[best, 'mean']:.4g}" in line and LABEL in grid["show"]


def test_a_plugin_headline_key_gets_a_figure_and_its_curve_is_plotted(grid: dict) -> None:
    reports = grid["reports"]
    dom = parse(reports / "index.html")
    captions = {
        fig.find_all("img")[0].attrs["src"]: fig.find_all("figcaption")[0].text
        for fig in dom.find_all("figure")
        if fig.find_all("img")
    }
    own = [src for src in captions if "metric-spread" in src]
    assert len(own) == 1 and LABEL in captions[own[0]]  # the headline key's own figure, named by its label
    curves = [src for src in captions if src.endswith("--curves.png")]
    assert len(curves) == 1 and LABEL in captions[curves[0]]  # the curve metric over steps
    for src in own + curves:
        assert (reports / src).read_bytes()[:8] == PNG_SIGNATURE
    assert math.isfinite(grid["spread"]["mean"].max())
