"""Across-seed statistics and paired comparisons on hand-made runs tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lossbench.builtin.metrics import (
    FrechetDistance,
    KernelInceptionDistance,
    ModeCoverage,
    PrecisionRecallDensityCoverage,
    Stability,
)
from lossbench.records import facts_texts
from lossbench.results.tables import (
    PAIRWISE_COLUMNS,
    SUMMARY_COLUMNS,
    grad_ratio,
    holm,
    pairwise,
    summarise,
)

# what every stored run of the built-in metrics carries: their declared facts (directions among them)
STORED_FACTS = facts_texts(
    [FrechetDistance(), KernelInceptionDistance(), PrecisionRecallDensityCoverage(), ModeCoverage(), Stability()]
)


def run(loss: str, seed: int, status: str = "ok", dataset: str = "ring8", model: str = "mlp", **metrics) -> dict:
    row = {
        "run_id": f"{dataset}-{model}-{loss}-{seed}",
        "dataset": dataset,
        "model": model,
        "loss": loss,
        "seed": seed,
        "preset": "quick",
        "steps": 1500,
        "device": "cpu",
        "status": status,
        "reason": "" if status == "ok" else status,
        "failed_step": 7 if status == "diverged" else math.nan,
        "fid_features": "coordinates",
        **STORED_FACTS,
    }
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
    # gradient scales differ between losses: the ratio is shown, never ranked
    assert one(summary, "minimax", "stability_g_grad_ratio")["better"] == "none"
    assert math.isnan(one(summary, "minimax", "stability_g_grad_ratio")["rank"])


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
    result = pairwise(clear_winner(8), "fid", comparisons="all")
    assert list(result.columns) == PAIRWISE_COLUMNS and len(result) == 3  # pairs of 3 losses, sorted names
    assert set(result["family"]) == {"all pairs"} and set(result["family_size"]) == {3}
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
    result = pairwise(clear_winner(8), "prdc_recall", comparisons="all")
    assert pair(result, "bad", "good")["better"] == "good"  # higher recall wins: mean_diff < 0 here
    assert pair(result, "bad", "good")["mean_diff"] < 0


def test_three_seeds_cannot_be_significant() -> None:
    result = pairwise(clear_winner(3), "fid", comparisons="all")
    winner = pair(result, "bad", "good")
    assert winner["p_value"] == pytest.approx(0.25) and winner["min_p_value"] == pytest.approx(0.25)
    assert not result["significant"].any()


def test_pairs_keep_failed_seeds_as_worst() -> None:
    rows = [run("a", s, fid=1.0 + s) for s in range(8)] + [run("b", s, fid=2.0 + s) for s in range(6)]
    rows += [run("b", 6, "diverged"), run("b", 7, "failed")]
    result = pairwise(table(rows), "fid", comparisons="all")
    ab = pair(result, "a", "b")
    assert ab["n_pairs"] == 8 and ab["n_finished_pairs"] == 6  # the failed seeds stay in the test ...
    assert ab["mean_diff"] == -1.0  # ... and the effect is over the seeds both finished
    assert ab["p_value"] == pytest.approx(2 / 2**8)  # b is worse on all 8 seeds
    other = table([run("a", 0, fid=1.0, dataset="grid25"), run("b", 0, fid=2.0, dataset="grid25")] + rows)
    assert set(pairwise(other, "fid", comparisons="all")["dataset"]) == {"ring8", "grid25"}  # never across datasets


def test_empty_and_unknown_metric() -> None:
    assert list(pairwise(pd.DataFrame(), "fid").columns) == PAIRWISE_COLUMNS
    assert pairwise(clear_winner(3), "no_such_metric", comparisons="all").empty
    assert summarise(pd.DataFrame()).empty


# -- a family that can answer ---------------------------------------------------------------------------------------
GAN_LOSSES = ["dragan", "hinge", "lsgan", "minimax", "nonsaturating", "r1", "ragan", "wgan", "wgan-gp", "wgan-lp"]


def ten_losses(n_seeds: int) -> pd.DataFrame:
    """10 losses; "r1" beats the reference on every seed by a different margin, the others tie it noisily."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(n_seeds):
        base = 10.0 + seed
        for loss in GAN_LOSSES:
            value = base - 1.0 - 0.1 * seed if loss == "r1" else base + rng.normal(0, 1.0)
            rows.append(run(loss, seed, fid=base if loss == "nonsaturating" else value))
    return table(rows)


def test_min_seeds_from_the_exact_test_and_holm() -> None:
    from lossbench.results.tables import family_size, min_seeds

    # m * 2 / 2^n < 0.05  <=>  2^n > 40 m
    assert min_seeds(1) == 6 and min_seeds(9) == 9 and min_seeds(45) == 11 and min_seeds(0) is None
    assert family_size(10, "reference") == 9 and family_size(10, "all") == 45


def test_ten_seeds_against_the_reference_are_significant_all_pairs_are_not() -> None:
    runs = ten_losses(10)
    versus = pairwise(runs, "fid")  # default: every loss against nonsaturating
    assert (
        len(versus) == 9
        and set(versus["family"]) == {"vs nonsaturating"}
        and set(versus["loss_b"]) == {"nonsaturating"}
    )
    r1 = pair(versus, "r1", "nonsaturating")
    assert r1["p_value"] == pytest.approx(2 / 2**10) and r1["p_holm"] == pytest.approx(9 * 2 / 2**10)
    assert r1["significant"] and r1["better"] == "r1" and r1["min_seeds"] == 9
    everything = pairwise(runs, "fid", comparisons="all")
    assert len(everything) == 45 and everything["min_seeds"].eq(11).all()
    r1_all = pair(everything, "nonsaturating", "r1")
    assert r1_all["p_holm"] >= 45 * 2 / 2**10 > 0.05 and not everything["significant"].any()


def test_reference_can_be_chosen_and_falls_back_to_the_defaults() -> None:
    runs = ten_losses(6)
    hinge = pairwise(runs, "fid", reference="hinge")
    assert set(hinge["loss_b"]) == {"hinge"} and set(hinge["family"]) == {"vs hinge"}
    vae = table(
        [run("vae", s, fid=1.0, model="mlp-vae") for s in range(3)]
        + [run("beta-vae", s, fid=2.0, model="mlp-vae") for s in range(3)]
    )
    assert set(pairwise(vae, "fid", reference="hinge")["loss_b"]) == {"vae"}  # no hinge there: vae
    with pytest.raises(ValueError, match="comparisons"):
        pairwise(runs, "fid", comparisons="some")


def test_power_note_says_plainly_when_no_test_has_power() -> None:
    from lossbench.results.tables import power_note

    assert "NO difference can reach" in power_note(3, 9, "reference", "nonsaturating")
    assert "needs at least 9" in power_note(3, 9, "reference", "nonsaturating")
    assert "can reach alpha" in power_note(10, 9, "reference", "nonsaturating")


# -- failures count ---------------------------------------------------------------------------------------------------
def test_two_of_three_diverged_ranks_below_three_finished() -> None:
    rows = [run("steady", s, fid=v) for s, v in enumerate([2.0, 3.0, 4.0])]
    rows += [run("fragile", 0, fid=1.0), run("fragile", 1, "diverged"), run("fragile", 2, "diverged")]
    summary = summarise(table(rows))
    steady, fragile = one(summary, "steady", "fid"), one(summary, "fragile", "fid")
    assert fragile["mean"] == 1.0 and fragile["n_values"] == 1  # the mean over finished seeds, shown as such
    # pooled ranks of 1, 2, 3, 4, worst, worst: steady 2, 3, 4 -> 3; fragile 1, 5.5, 5.5 -> 4
    assert steady["mean_rank"] == pytest.approx(3.0) and fragile["mean_rank"] == pytest.approx(4.0)
    assert steady["rank"] == 1 and fragile["rank"] == 2 and fragile["n_ranked"] == 3


def test_a_loss_whose_every_seed_failed_ranks_last() -> None:
    rows = [run("a", s, fid=9.0) for s in range(2)] + [run("b", s, "failed") for s in range(2)]
    summary = summarise(table(rows))
    assert one(summary, "a", "fid")["rank"] == 1 and one(summary, "b", "fid")["rank"] == 2
    assert math.isnan(one(summary, "b", "fid")["mean"])


def test_a_ranked_key_that_no_run_could_score_has_no_rank() -> None:
    """A metric undefined for every run of a dataset x model (NaN everywhere, e.g. a flag that does not apply to its
    losses) is summarised with no values and no rank, beside a key that does rank (the default grid met this)."""
    rows = [run("a", s, fid=1.0 + s, kid=math.nan) for s in range(3)] + [
        run("b", s, fid=5.0 + s, kid=math.nan) for s in range(3)
    ]
    summary = summarise(table(rows))
    for loss in ("a", "b"):
        kid = one(summary, loss, "kid")
        assert kid["n_values"] == 0 and kid["n_ranked"] == 0 and math.isnan(kid["rank"])
    assert one(summary, "a", "fid")["rank"] == 1 and one(summary, "b", "fid")["n_ranked"] == 3


# -- directions -------------------------------------------------------------------------------------------------------
def test_unranked_keys_have_no_rank_and_no_test() -> None:
    rows = [
        run(loss, s, fid=1.0 + s + i, fid_floor=0.5 + i, kid_std=0.1 * i)
        for i, loss in enumerate(["nonsaturating", "b"])
        for s in range(3)
    ]
    summary = summarise(table(rows))
    for key in ("fid_floor", "kid_std"):
        assert one(summary, "b", key)["better"] == "none" and math.isnan(one(summary, "b", key)["rank"])
    assert one(summary, "b", "fid")["rank"] == 2
    assert pairwise(table(rows), "fid_floor").empty


def test_stored_directions_rank_a_plugin_metric_without_its_plugin() -> None:
    import json

    stored = json.dumps({"mine_score": "higher"})
    rows = [
        run(loss, s, mine_score=v, mine_directions=stored) for loss, v in (("a", 1.0), ("b", 5.0)) for s in range(3)
    ]
    summary = summarise(table(rows))
    assert one(summary, "b", "mine_score")["rank"] == 1 and one(summary, "b", "mine_score")["better"] == "higher"
    without = summarise(table([{k: v for k, v in r.items() if k != "mine_directions"} for r in rows]))
    assert one(without, "a", "mine_score")["rank"] == 1  # undeclared: lower is better, the documented default


def test_a_finished_seed_whose_metric_could_not_score_counts_as_worst() -> None:
    rows = [run("steady", s, fid=v) for s, v in enumerate([2.0, 3.0, 4.0])]
    rows += [run("unscorable", 0, fid=1.0)]
    rows += [run("unscorable", s, fid_error="ValueError: non-finite samples") for s in (1, 2)]
    rows += [run("undefined", s) for s in range(3)]  # no fid and no error: undefined here, not ranked
    summary = summarise(table(rows))
    assert one(summary, "steady", "fid")["rank"] == 1 and one(summary, "unscorable", "fid")["rank"] == 2
    assert math.isnan(one(summary, "undefined", "fid")["rank"])
