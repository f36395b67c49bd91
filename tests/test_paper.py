"""Paper tables (``lossbench.results.paper``, ``lossbench show --format``): parsed back, and the LaTeX compiled
where a TeX is installed. A hand-made store of 7 paired seeds gives known answers: hinge beats the reference by
5 FID on every seed (exact two-sided Wilcoxon p = 2/2^7, Holm x2 = 0.03125 < 0.05), lsgan differs by alternating
signs (no test can call it)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossbench.builtin.metrics import FrechetDistance, ModeCoverage
from lossbench.records import facts_texts
from lossbench.results import paper, tables

STORED_FACTS = facts_texts([FrechetDistance(), ModeCoverage()])  # what each stored run of these metrics carries

SEEDS = range(7)
WIGGLE = [0.01, -0.02, 0.03, -0.04, 0.05, -0.06, 0.07]


def hand_made() -> pd.DataFrame:
    rows = []
    for seed in SEEDS:
        for loss, fid, modes in (
            ("nonsaturating", 10 + 0.1 * seed, 7.0),
            ("hinge", 5 + 0.1 * seed, 8.0),
            ("lsgan", 10 + 0.1 * seed + WIGGLE[seed], 6.0),
        ):
            rows.append(
                {
                    "run_id": f"{loss}{seed}",
                    "dataset": "ring8",
                    "model": "mlp",
                    "loss": loss,
                    "seed": seed,
                    "preset": "smoke",
                    "steps": 10,
                    "device": "cpu",
                    "status": "ok",
                    "reason": None,
                    "failed_step": None,
                    "fid": fid,
                    "modes_covered": modes,
                    "fid_features": "coordinates",
                    **STORED_FACTS,
                }
            )
    return pd.DataFrame(rows)


def grids(statistic: str = "mean-ci") -> list[paper.Grid]:
    wide = hand_made()
    return paper.build_grids(wide, tables.summarise(wide), ["fid", "modes_covered"], statistic)


def markdown_rows(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and {row name: cells} of the first Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    assert set("".join(split[1])) <= set("-: ")
    return header, {row[0]: row[1:] for row in body}


def test_markdown_parses_back_with_bold_best_and_the_mark_on_the_significant_loss() -> None:
    header, rows = markdown_rows(paper.render(grids(), "markdown"))
    assert header == ["loss", "FID [coordinates] ↓", "modes covered ↑"]
    assert list(rows) == ["hinge", "nonsaturating (reference)", "lsgan"]  # best first on FID
    fid, modes = rows["hinge"]
    assert fid.startswith("**5.3 ± ") and fid.endswith("**†")  # mean of 5.0..5.6; bold; significant
    assert modes == "**8 ± 0**†"
    assert rows["lsgan"][0].startswith("10.3") and "**" not in rows["lsgan"][0] and "†" not in rows["lsgan"][0]
    assert rows["lsgan"][1] == "6 ± 0†"  # worse than the reference on every seed: significant, not bold
    assert "†" not in "".join(rows["nonsaturating (reference)"])


def test_mean_plus_minus_is_half_the_bootstrap_interval() -> None:
    wide = hand_made()
    summary = tables.summarise(wide).set_index(["loss", "metric"])
    entry = summary.loc[("hinge", "fid")]
    _, rows = markdown_rows(paper.render(grids(), "markdown"))
    half = float(re.search(r"± ([0-9.e-]+)", rows["hinge"][0]).group(1))
    assert half == pytest.approx((entry["ci_high"] - entry["ci_low"]) / 2, rel=1e-3)


def test_median_iqr_cells_are_the_quartiles() -> None:
    _, rows = markdown_rows(paper.render(grids("median-iqr"), "markdown"))
    values = 5 + 0.1 * np.arange(7)  # hinge's FIDs: median 5.3, quartiles 5.15 and 5.45
    assert (
        rows["hinge"][0] == f"**{np.median(values):.4g} [{np.percentile(values, 25):.4g}, "
        f"{np.percentile(values, 75):.4g}]**†"
    )
    assert rows["hinge"][0] == "**5.3 [5.15, 5.45]**†"


def test_csv_parses_back_to_the_summary_and_pairwise_numbers() -> None:
    wide = hand_made()
    summary = tables.summarise(wide).set_index(["loss", "metric"])
    frame = pd.read_csv(io.StringIO(paper.render(grids(), "csv")))
    assert list(frame.columns) == paper.CSV_COLUMNS and len(frame) == 6
    fid = frame[frame["metric"] == "fid"].set_index("loss")
    for loss in ("hinge", "nonsaturating", "lsgan"):
        assert fid.at[loss, "center"] == pytest.approx(summary.loc[(loss, "fid"), "mean"])
        assert fid.at[loss, "low"] == pytest.approx(summary.loc[(loss, "fid"), "ci_low"])
    assert list(fid["best"]) == [True, False, False]
    assert fid.at["hinge", "vs_reference"] == "better" and fid.at["hinge", "p_holm"] == pytest.approx(2 * 2 / 2**7)
    assert pd.isna(fid.at["lsgan", "vs_reference"]) and pd.isna(fid.at["nonsaturating", "p_holm"])
    assert set(frame["reference"]) == {"nonsaturating"} and set(frame["label"]) == {
        "FID [coordinates] ↓",
        "modes covered ↑",
    }
    as_json = json.loads(paper.render(grids(), "json"))
    assert [r["center"] for r in as_json] == pytest.approx(list(frame["center"]))


def test_latex_uses_booktabs_and_escapes_names() -> None:
    text = paper.render(grids(), "latex")
    assert r"\toprule" in text and r"\midrule" in text and r"\bottomrule" in text
    assert r"\textbf{5.3 $\pm$ " in text and r"\textsuperscript{\dag}" in text
    assert paper.latex_escape("wgan_gp 100% & #1") == r"wgan\_gp 100\% \& \#1"
    assert not re.search(r"[^\x00-\x7f]", text)  # every symbol spelled in LaTeX


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex installed: the LaTeX is not compiled")
def test_latex_compiles_with_booktabs(tmp_path: Path) -> None:
    body = paper.render(grids(), "latex") + paper.render(grids("median-iqr"), "latex")
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0
