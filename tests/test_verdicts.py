"""Trained enough, or it says so: the undertrained notice on a real 40-step grid, and its absence (or a finding)
on hand-made stores whose runs reached the target."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import run_cli

from lossbench.plan.grid import PRESETS
from lossbench.results.leaderboard import leaderboard_text
from lossbench.results.tables import summarise
from lossbench.results.verdicts import verdicts

RULE = "modes_high_quality >= 0.8; modes_covered >= 6"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke preset's 40 steps on ring8: no model gets near PacGAN's 80 % high-quality share."""
    root = tmp_path_factory.mktemp("undertrained")
    assert PRESETS["smoke"].steps_points == 40
    code, output = run_cli(
        "run",
        "--preset",
        "smoke",
        "-l",
        "nonsaturating",
        "-l",
        "hinge",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0,1",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--results",
        str(root / "results"),
        "--reports",
        str(root / "reports"),
    )
    assert code == 0, output
    return {"results": root / "results", "reports": root / "reports"}


def test_show_opens_a_40_step_grid_with_the_undertrained_notice(smoke: dict) -> None:
    code, output = run_cli("show", "--results", str(smoke["results"]))
    assert code == 0, output
    first = output.splitlines()[0]
    assert first.startswith("!! Undertrained: no loss reached the training target (" + RULE + ")")
    assert "budget problem" in first and "--preset standard" in first
    best = re.search(r"The best high-quality share is ([0-9.]+) % \((nonsaturating|hinge); target >= 80 %\)", first)
    assert best and float(best.group(1)) < 80
    table = output.splitlines()[1:]
    assert any(line.split()[1:2] in (["nonsaturating"], ["hinge"]) and " 0/2 " in f" {line} " for line in table)


def test_the_report_opens_the_section_with_the_notice(smoke: dict) -> None:
    page = (smoke["reports"] / "index.html").read_text(encoding="utf-8")
    assert 'data-verdict="budget"' in page and "Undertrained: no loss reached the training target" in page
    assert 'class="num target" data-target-share="0.0"' in page


def wide(reached: dict[str, list[float]]) -> pd.DataFrame:
    """A hand-made store: per loss, one run per seed with its target_reached value."""
    rows = []
    for loss, values in reached.items():
        for seed, value in enumerate(values):
            rows.append(
                {
                    "run_id": f"{loss}{seed}",
                    "dataset": "ring8",
                    "model": "mlp",
                    "loss": loss,
                    "seed": seed,
                    "preset": "quick",
                    "steps": 10_000,
                    "device": "cpu",
                    "status": "ok",
                    "modes_covered": 8.0 if value else 3.0,
                    "modes_high_quality": 0.9 if value else 0.2,
                    "target_reached": value,
                    "target_rule": RULE,
                    "fid_features": "coordinates",
                }
            )
    return pd.DataFrame(rows)


def test_a_trained_grid_has_no_notice() -> None:
    runs = wide({"nonsaturating": [1, 1, 1], "hinge": [1, 1, 0], "lsgan": [1, 1, 1]})
    verdict = verdicts(runs)[("ring8", "mlp")]
    assert verdict.kind == "trained" and not verdict.notice
    assert verdict.seeds_reached == {"hinge": (2, 3), "lsgan": (3, 3), "nonsaturating": (3, 3)}
    text = leaderboard_text(runs, summarise(runs))
    assert "Undertrained" not in text and "!!" not in text
    assert " 2/3 " in text and " 3/3 " in text  # the target column: seeds that reached it


def test_one_loss_failing_where_others_succeed_is_a_finding() -> None:
    runs = wide({"nonsaturating": [1, 1, 1], "hinge": [1, 1, 1], "minimax": [0, 0, 1]})
    verdict = verdicts(runs)[("ring8", "mlp")]
    assert verdict.kind == "finding" and not verdict.notice and verdict.losses_missed == ["minimax"]
    text = leaderboard_text(runs, summarise(runs))
    assert "minimax missed it where the others succeed: a finding about that loss, not the budget" in text
    assert "Undertrained" not in text


def test_most_losses_missing_it_is_undertrained_and_names_who_reached_it() -> None:
    runs = wide({"nonsaturating": [1, 1, 0], "hinge": [0, 0, 0], "minimax": [0, 0, 0]})
    verdict = verdicts(runs)[("ring8", "mlp")]
    assert verdict.kind == "undertrained" and verdict.notice and verdict.losses_reached == ["nonsaturating"]
    assert verdict.message().startswith("Undertrained: only 1 of 3 losses reached the training target")


def test_the_advice_names_the_next_preset() -> None:
    runs = wide({"nonsaturating": [0, 0], "hinge": [0, 0]})
    assert "`--preset standard`" in verdicts(runs)[("ring8", "mlp")].message()  # quick -> standard
    standard = verdicts(runs.assign(preset="standard"))[("ring8", "mlp")]
    assert "`--preset paper`" in standard.message()
    paper = verdicts(runs.assign(preset="paper"))[("ring8", "mlp")]
    assert "--preset" not in paper.message() and "more `--steps`" in paper.message()


def test_no_target_no_verdict() -> None:
    runs = wide({"nonsaturating": [1]}).drop(columns=["target_reached", "target_rule"])
    assert verdicts(runs) == {}
    assert "target" not in leaderboard_text(runs, summarise(runs)).splitlines()[1]


def test_the_default_grid_says_what_the_standard_preset_adds() -> None:
    text = PRESETS["quick"].left_out_text()
    assert "stacked-digits" in text and "mlp-vae" in text and "--preset standard" in text
    assert PRESETS["standard"].left_out_text() == ""
