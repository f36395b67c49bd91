"""Across-seed statistics and paired comparisons on hand-made runs tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lossbench.tables import (
    PAIRWISE_COLUMNS, SUMMARY_COLUMNS, grad_ratio, holm, pairwise, summarise,
)


def run(loss: str, seed: int, status: str = "ok", dataset: str = "ring8", model: str = "mlp", **metrics) -> dict:
    row = {"run_id": f"{dataset}-{model}-{loss}-{seed}", "dataset": dataset, "model": model, "loss": loss,
           "seed": seed, "preset": "quick", "steps": 1500, "device": "cpu", "status": status,
           "reason": "" if status == "ok" else status, "failed_step": 7 if status == "diverged" else math.nan,
           "fid_features": "coordinates"}
    row.update(metrics)
    return row


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def one(summary: pd.DataFrame, loss: str, metric: str) -> pd.Series:
    found = summary[(summary["loss"] == loss) & (summary["metric"] == metric)]
    assert len(found) == 1
    return found.iloc[0]


@pytest.fixture
def runs() -> pd.DataFrame:
    rows = [run("a", s, fid=v, modes_collapsed=0.0, stability_diverged=0.0) for s, v in enumerate([1.0, 2, 3, 4])]
    rows += [
        run("b", 0, fid=5.0, modes_collapsed=0.0, stability_diverged=0.0),
        run("b", 1, fid=6.0, modes_collapsed=0.0, stability_diverged=0.0),
        run("b", 2, fid=7.0, modes_collapsed=1.0, stability_diverged=0.0),  # finished but collapsed
        run("b", 3, "diverged", stability_diverged=1.0),  # no samples: no fid
        run("b", 4, "failed"),
    ]
    return table(rows)


def test_summary_statistics(runs) -> None:
    summary = summarise(runs)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert "fid_features" not in set(summary["metric"])  # text facts are not metrics
    a = one(summary, "a", "fid")
    assert a["n_values"] == 4 and a["mean"] == 2.5 and a["median"] == 2.5
    assert a["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert a["cv"] == pytest.approx(a["std"] / 2.5)
    assert 1 <= a["ci_low"] < 2.5 < a["ci_high"] <= 4
    assert a["rank"] == 1 and one(summary, "b", "fid")["rank"] == 2  # lower FID is better
    pd.testing.assert_frame_equal(summary, summarise(runs))  # seeded bootstrap: reproducible


def test_success_share_counts_divergence_failure_and_collapse(runs) -> None:
    summary = summarise(runs)
    b = one(summary, "b", "fid")
    assert (b["n_seeds"], b["n_ok"], b["n_diverged"], b["n_failed"], b["n_collapsed"]) == (5, 3, 1, 1, 1)
    assert b["success_share"] == pytest.approx(2 / 5)  # seeds 0 and 1 only
    assert b["n_values"] == 3 and b["mean"] == 6.0  # finished runs, collapsed ones included
    assert one(summary, "a", "fid")["success_share"] == 1.0
    diverged = one(summary, "b", "stability_diverged")
    assert diverged["n_values"] == 4 and diverged["mean"] == 0.25  # stability counts the diverged run too


def test_gradient_ratio_to_nonsaturating_on_the_same_seed() -> None:
    rows = [run("nonsaturating", s, stability_g_grad_early=v) for s, v in enumerate([2.0, 2.0, 4.0, 4.0])]
    rows += [run("minimax", s, stability_g_grad_early=v) for s, v in enumerate([1.0, 0.5, 1.0, 2.0])]
    rows += [run("minimax", 9, stability_g_grad_early=1.0)]  # no non-saturating seed 9: no ratio
    runs = table(rows)
    ratio = grad_ratio(runs)
    assert ratio[runs["loss"] == "minimax"].tolist()[:4] == [0.5, 0.25, 0.25, 0.5]
    assert math.isnan(ratio.iloc[-1])
    assert (ratio[runs["loss"] == "nonsaturating"] == 1.0).all()
    summary = summarise(runs)
    assert one(summary, "minimax", "stability_g_grad_ratio")["mean"] == pytest.approx(0.375)
    assert one(summary, "minimax", "stability_g_grad_ratio")["rank"] == 2  # a higher ratio is less saturated


def test_gradient_ratio_only_between_losses_on_the_same_score_scale() -> None:
    rows = [run("nonsaturating", s, stability_g_grad_early=2.0, stability_scores="logits") for s in range(2)]
    rows += [run("minimax", s, stability_g_grad_early=1.0, stability_scores="logits") for s in range(2)]
    rows += [run("wgan", s, stability_g_grad_early=0.01, stability_scores="raw") for s in range(2)]
    runs = table(rows)
    ratio = grad_ratio(runs)
    assert ratio[runs["loss"] == "minimax"].tolist() == [0.5, 0.5]
    assert ratio[runs["loss"] == "wgan"].isna().all()  # critic values vs logits: not comparable, not "starved"


def test_holm_against_hand_computation() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # capped at 1


def clear_winner(n_seeds: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(5, 10, n_seeds)
    rows = []
    for seed in range(n_seeds):
        rows.append(run("good", seed, fid=base[seed] - 3 + rng.normal(0, 0.1), prdc_recall=0.9))
        rows.append(run("bad", seed, fid=base[seed], prdc_recall=0.5 + 0.01 * seed))
        rows.append(run("same", seed, fid=base[seed], prdc_recall=0.5 + 0.01 * seed))  # identical to "bad"
    return table(rows)


def pair(frame: pd.DataFrame, a: str, b: str) -> pd.Series:
    found = frame[(frame["loss_a"] == a) & (frame["loss_b"] == b)]
    assert len(found) == 1
    return found.iloc[0]


def test_pairwise_finds_a_clear_winner_after_holm() -> None:
    result = pairwise(clear_winner(8), "fid")
    assert list(result.columns) == PAIRWISE_COLUMNS and len(result) == 3  # pairs of 3 losses, sorted names
    winner = pair(result, "bad", "good")
    assert winner["n_pairs"] == 8 and winner["mean_diff"] > 2.5 and winner["ci_low"] > 0
    assert winner["p_value"] == pytest.approx(2 / 2**8)  # exact: every seed agrees
    assert winner["p_holm"] == pytest.approx(3 * 2 / 2**8)  # the smallest of 3 p-values, times 3
    assert winner["significant"] and winner["better"] == "good"
    assert pair(result, "good", "same")["better"] == "good"
    identical = pair(result, "bad", "same")
    assert identical["mean_diff"] == 0 and identical["p_value"] == 1.0
    assert not identical["significant"] and identical["better"] == ""


def test_pairwise_respects_higher_is_better() -> None:
    result = pairwise(clear_winner(8), "prdc_recall")
    assert pair(result, "bad", "good")["better"] == "good"  # higher recall wins: mean_diff < 0 here
    assert pair(result, "bad", "good")["mean_diff"] < 0


def test_three_seeds_cannot_be_significant() -> None:
    result = pairwise(clear_winner(3), "fid")
    winner = pair(result, "bad", "good")
    assert winner["p_value"] == pytest.approx(0.25) and winner["min_p_value"] == pytest.approx(0.25)
    assert not result["significant"].any()


def test_pairs_only_seeds_both_losses_have() -> None:
    rows = [run("a", s, fid=1.0 + s) for s in range(8)] + [run("b", s, fid=2.0 + s) for s in range(6)]
    rows += [run("b", 6, "diverged"), run("b", 7, "failed")]
    result = pairwise(table(rows), "fid")
    assert pair(result, "a", "b")["n_pairs"] == 6 and pair(result, "a", "b")["mean_diff"] == -1.0
    other = table([run("a", 0, fid=1.0, dataset="grid25"), run("b", 0, fid=2.0, dataset="grid25")] + rows)
    assert set(pairwise(other, "fid")["dataset"]) == {"ring8", "grid25"}  # never across datasets


def test_empty_and_unknown_metric() -> None:
    assert list(pairwise(pd.DataFrame(), "fid").columns) == PAIRWISE_COLUMNS
    assert pairwise(clear_winner(3), "no_such_metric").empty
    assert summarise(pd.DataFrame()).empty
