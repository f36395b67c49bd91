"""Built-in metrics through a real EvaluationContext: modes on hand-made samples, FID/KID/PRDC keys and feature
spaces, and a real training run that carries every metric and its curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_spec

from lossbench.api import Dataset, DataSpec, Samples
from lossbench.builtin.metrics import (
    FrechetDistance,
    KernelInceptionDistance,
    ModeCoverage,
    PrecisionRecallDensityCoverage,
    Stability,
    TargetReached,
    mode_statistics,
)
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import load_environment
from lossbench.records import facts_texts
from lossbench.results.tables import better_direction
from lossbench.scoring.evaluate import EvaluationContext, run_metrics
from lossbench.scoring.frechet import frechet_distance_features, prdc
from lossbench.training.train import run_safely

BUILTIN = [
    FrechetDistance(),
    KernelInceptionDistance(),
    PrecisionRecallDensityCoverage(),
    ModeCoverage(),
    Stability(),
    TargetReached(),
]  # the built-in metrics, whose declared directions the ranks follow

RING_STD = 0.01  # PacGAN's 2D-ring


def spec(**overrides) -> RunSpec:
    return make_spec(**overrides)


@pytest.fixture(scope="module")
def catalog():
    return load_environment().catalog


@pytest.fixture(scope="module")
def ring8(catalog) -> Dataset:
    return catalog.datasets.get("ring8")


def ring_centres() -> torch.Tensor:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1).float()


def balanced_real() -> Samples:
    """100 samples at each of the 8 centres, labelled: the true mode histogram is exactly uniform."""
    y = torch.arange(8).repeat(100)
    return Samples(ring_centres()[y], y)


def context(
    dataset: Dataset, real: Samples, fake: Samples, reference: Samples | None = None, final: bool = True
) -> EvaluationContext:
    return EvaluationContext(
        real=real, fake=fake, dataset=dataset, spec=spec(), history=pd.DataFrame(), reference=reference, final=final
    )


def test_three_of_eight_modes(ring8) -> None:
    centres = ring_centres()
    offset = torch.tensor([0.025, 0.0])  # 2.5 std from the centre: high quality (within 3 std)
    fake = torch.cat(
        [
            centres[0].repeat(1000, 1),
            (centres[1] + offset).repeat(500, 1),
            centres[2].repeat(500, 1),
            torch.zeros(500, 2),  # the ring's middle: 1 away from every centre, not high quality
        ]
    )
    values = ModeCoverage().compute(context(ring8, balanced_real(), Samples(fake)))
    assert values["modes_covered"] == 3
    assert values["modes_covered_share"] == 3 / 8
    assert values["modes_high_quality"] == pytest.approx(2000 / 2500)
    # high-quality histogram (1/2, 1/4, 1/4) against uniform 1/8: 1/2 ln 4 + 2 * 1/4 ln 2 = 1.5 ln 2
    assert values["modes_kl"] == pytest.approx(1.5 * math.log(2), rel=1e-12)
    assert values["modes_collapsed"] == 1.0  # 3 < half of the 8 a perfect sampler covers with 2,500 samples


def test_samples_far_from_every_centre(ring8) -> None:
    fake = torch.full((2500, 2), 10.0)
    values = ModeCoverage().compute(context(ring8, balanced_real(), Samples(fake)))
    assert values["modes_high_quality"] == 0.0 and values["modes_covered"] == 0
    # no high-quality sample: the worst value, log(8) for ring8's uniform target, not NaN
    assert values["modes_kl"] == pytest.approx(math.log(8), rel=1e-12)


def test_all_modes_evenly_is_not_collapsed(ring8) -> None:
    y = torch.arange(8).repeat(300)
    fake = ring_centres()[y] + RING_STD * torch.randn((len(y), 2), generator=torch.Generator().manual_seed(0))
    values = ModeCoverage().compute(context(ring8, balanced_real(), Samples(fake)))
    assert values["modes_covered"] == 8 and values["modes_collapsed"] == 0.0
    assert 0 < 1 - values["modes_high_quality"] < 0.03  # 3 std holds 98.9% of a 2-d Gaussian's mass
    assert values["modes_kl"] < 1e-3  # near-balanced high-quality histogram


def test_true_histogram_is_uniform_unless_the_dataset_gives_weights(ring8) -> None:
    mode = torch.tensor([0, 0, 1, 1])
    hq = torch.ones(4, dtype=torch.bool)
    # p_gen (1/2, 1/2, 0) against uniform thirds: ln(3/2)
    assert mode_statistics(mode, hq, 3)["modes_kl"] == pytest.approx(math.log(3 / 2))
    # declared weights 3:1 -> p_true (3/4, 1/4)
    skewed = mode_statistics(mode, hq, 2, [3, 1])
    assert skewed["modes_kl"] == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    with pytest.raises(ValueError, match="mode_weights"):
        mode_statistics(mode, hq, 2, [1, 0])
    # real labels do not define the truth: a skewed real set still scores against uniform
    skewed_real = Samples(ring_centres()[[0, 0, 0, 1]], torch.tensor([0, 0, 0, 1]))
    fake = Samples(ring_centres()[torch.arange(8).repeat(10)])
    assert ModeCoverage().compute(context(ring8, skewed_real, fake))["modes_kl"] == pytest.approx(0, abs=1e-12)


def test_fid_kid_prdc_in_coordinates_with_floor(ring8) -> None:
    data = ring8.load(None)
    real, reference, fake = (
        data.subset(torch.arange(500)),
        data.subset(torch.arange(500, 1000)),
        Samples(data.x[1000:1500] * 1.1),
    )
    ctx = context(ring8, real, fake, reference)
    evaluation = run_metrics([FrechetDistance(), KernelInceptionDistance(), PrecisionRecallDensityCoverage()], ctx)
    assert not evaluation.errors
    values, texts = evaluation.values, evaluation.texts
    assert texts == {"fid_features": "coordinates", "kid_features": "coordinates", "prdc_features": "coordinates"}
    x_real, x_fake, x_ref = (s.x.double().numpy() for s in (real, fake, reference))
    assert values["fid"] == pytest.approx(frechet_distance_features(x_real, x_fake), rel=1e-12)
    assert values["fid_floor"] == pytest.approx(frechet_distance_features(x_real, x_ref), rel=1e-12)
    assert values["fid_floor"] < values["fid"]
    assert values["kid"] > values["kid_floor"]
    assert values["prdc_coverage"] == pytest.approx(prdc(x_real, x_fake)["coverage"])
    light = run_metrics([FrechetDistance()], context(ring8, real, fake, reference, final=False)).values
    assert "fid_floor" not in light and light["fid"] == values["fid"]  # floors only at the final evaluation


class GreyImages(Dataset):
    """8x8 grey images with a small feature network: the 8x8 built-ins score in such a classifier space."""

    name = "grey-images"
    spec = DataSpec(shape=(1, 8, 8), kind="image", n_modes=None)

    class Network:
        name = "grey-images-classifier"

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], dim=1)

    def load(self, root=None) -> Samples:
        return Samples(torch.rand((64, 1, 8, 8), generator=torch.Generator().manual_seed(0)) * 2 - 1)

    def feature_network(self, device):
        return self.Network()


def test_image_metrics_use_the_dataset_feature_network(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no Inception weights here
    monkeypatch.delenv("LOSSBENCH_INCEPTION_WEIGHTS", raising=False)
    dataset = GreyImages()
    data = dataset.load()
    real, fake = data.subset(torch.arange(32)), Samples(data.x[32:] * 0.5)
    values = FrechetDistance().compute(context(dataset, real, fake))
    assert values["fid_features"] == "grey-images-classifier"
    network = GreyImages.Network()
    expected = frechet_distance_features(
        network.features(real.x).double().numpy(), network.features(fake.x).double().numpy()
    )
    assert values["fid"] == pytest.approx(expected, rel=1e-9)


def test_non_finite_samples_are_an_error_not_a_value(ring8) -> None:
    fake = Samples(torch.full((100, 2), float("nan")))
    evaluation = run_metrics([FrechetDistance()], context(ring8, balanced_real(), fake))
    assert "fid" not in evaluation.values and "non-finite" in evaluation.errors["fid"]


def test_worst_mode_kl_is_the_largest_kl_over_histograms() -> None:
    from lossbench.builtin.metrics import worst_mode_kl

    skewed = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    assert worst_mode_kl(skewed) == pytest.approx(math.log(4))  # all mass on a 1/4 mode
    none_hq = torch.zeros(10, dtype=torch.bool)
    assert mode_statistics(torch.zeros(10, dtype=torch.long), none_hq, 3, [2, 1, 1])["modes_kl"] == pytest.approx(
        math.log(4)
    )


def test_unranked_keys_are_declared_by_their_metric() -> None:
    for key in ("fid_floor", "kid_std", "kid_floor", "stability_g_grad_early", "stability_g_grad_ratio"):
        assert better_direction(key, BUILTIN) == "none", key
    assert (
        better_direction("stability_diverged_step", BUILTIN) == "higher"
    )  # later is better; never-diverged = all steps


def test_directions() -> None:
    assert better_direction("fid", BUILTIN) == "lower" and better_direction("kid", BUILTIN) == "lower"
    assert better_direction("modes_kl", BUILTIN) == "lower" and better_direction("modes_collapsed", BUILTIN) == "lower"
    for key in (
        "prdc_precision",
        "prdc_recall",
        "prdc_density",
        "prdc_coverage",
        "modes_covered",
        "modes_high_quality",
    ):
        assert better_direction(key, BUILTIN) == "higher", key

    class Plugin:
        better = {"mine_score": "higher"}

    assert better_direction("mine_score") == "lower" and better_direction("mine_score", [Plugin()]) == "higher"


def test_registered_and_computed_in_a_real_run(catalog) -> None:
    assert {"fid", "kid", "prdc", "modes", "stability"} <= set(catalog.metrics.names())
    result = run_safely(spec(), catalog)
    assert result.status == "ok", result.reason
    assert not any(key.endswith("_error") for key in result.texts), result.texts
    for key in (
        "fid",
        "fid_floor",
        "kid",
        "kid_floor",
        "prdc_precision",
        "prdc_recall",
        "prdc_density",
        "prdc_coverage",
        "modes_covered",
        "modes_high_quality",
        "stability_diverged",
        "stability_equilibrium_gap",
        "stability_d_overpowering",
        "stability_g_grad_early",
        "stability_loss_oscillation",
        "stability_fid_variability",
    ):
        assert key in result.metrics and np.isfinite(result.metrics[key]), key
    assert result.texts["fid_features"] == "coordinates"
    assert set(result.curves["key"]) >= {"fid", "modes_covered", "modes_high_quality"}
    assert sorted(result.curves["step"].unique()) == [10, 20, 30]
    assert not set(result.curves["key"]) & {"fid_floor", "kid", "prdc_recall"}  # light evaluations stay light


# -- the mixtures' published protocol (PacGAN, Lin et al. 2018, Table 1) -----------------------------------------
def test_the_mixtures_keep_pacgans_protocol(catalog) -> None:
    """The parameters of PacGAN's MetricLogger and configs: 2,500 samples, < 3 std, 1 sample covers a mode."""
    for name, modes, std in (("ring8", 8, 0.01), ("grid25", 25, 0.05)):
        dataset = catalog.datasets.get(name)
        protocol = dataset.protocol
        assert protocol.paper.startswith("PacGAN (Lin et al. 2018)") and "PacGAN" in dataset.description
        assert (protocol.n_samples, protocol.high_quality_stds, protocol.min_covering) == (2500, 3.0, 1)
        assert dataset.std == std and dataset.spec.n_modes == modes


def test_only_the_protocols_2500_samples_are_scored(ring8) -> None:
    centres = ring_centres()
    fake = torch.cat([centres[0].repeat(2500, 1), centres[1:].repeat(400, 1)])  # 5,300 samples
    values = ModeCoverage().compute(context(ring8, balanced_real(), Samples(fake)))
    assert values["modes_samples"] == 2500 and values["modes_covered"] == 1  # the others come after 2,500


def sampler(centres: torch.Tensor, std: float, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(len(centres), (n,), generator=generator)
    return centres[y] + std * torch.randn((n, 2), generator=generator)


def test_a_collapsed_sampler_covers_one_mode(ring8) -> None:
    fake = sampler(ring_centres()[3:4], RING_STD, 2500, 0)  # every sample from mode 3
    values = ModeCoverage().compute(context(ring8, balanced_real(), Samples(fake)))
    assert values["modes_covered"] == 1 and values["modes_covered_strict"] == 1
    assert values["modes_kl"] == pytest.approx(math.log(8))  # all mass on 1 of 8 equally likely modes
    assert values["modes_collapsed"] == 1


def test_the_strict_variant_needs_one_percent_of_the_high_quality_samples(ring8) -> None:
    centres = ring_centres()
    fake = torch.cat([centres[0].repeat(2499, 1), centres[1:2]])  # one stray sample on mode 1
    values = ModeCoverage().compute(context(ring8, balanced_real(), Samples(fake)))
    assert values["modes_covered"] == 2  # the protocol: 1 high-quality sample covers a mode
    assert values["modes_covered_strict"] == 1  # 1 of 2,500 is below 1 %


def test_a_gaussian_blob_ranks_below_a_sampler_on_the_8_centres(ring8) -> None:
    """N(0, 2I) matches the ring's mean and nearly its covariance: the coordinate FID cannot tell; the protocol can."""
    from lossbench.results.leaderboard import leading_metrics
    from lossbench.results.tables import summarise

    rows = []
    for seed in range(3):
        real = Samples(sampler(ring_centres(), RING_STD, 2500, 100 + seed))
        reference = Samples(sampler(ring_centres(), RING_STD, 2500, 200 + seed))
        blob = math.sqrt(2.0) * torch.randn((2500, 2), generator=torch.Generator().manual_seed(seed))
        for loss, fake in (("blob", blob), ("sampler", sampler(ring_centres(), RING_STD, 2500, seed))):
            ctx = context(ring8, real, Samples(fake), reference)
            values = run_metrics([FrechetDistance(), ModeCoverage()], ctx)
            rows.append(
                {
                    "run_id": f"{loss}{seed}",
                    "dataset": "ring8",
                    "model": "mlp",
                    "loss": loss,
                    "seed": seed,
                    "preset": "test",
                    "steps": 1,
                    "device": "cpu",
                    "status": "ok",
                    **values.values,
                    **values.texts,
                    **facts_texts([FrechetDistance(), ModeCoverage()]),
                }
            )
    wide = pd.DataFrame(rows)
    blob, perfect = wide[wide["loss"] == "blob"], wide[wide["loss"] == "sampler"]
    assert (perfect["modes_covered"] == 8).all() and (blob["modes_covered"] < 8).all()
    assert (blob["modes_high_quality"] < 0.01).all() and (perfect["modes_high_quality"] > 0.97).all()
    present = sorted(
        k
        for k in wide.columns
        if k
        not in ("run_id", "dataset", "model", "loss", "seed", "preset", "steps", "device", "status", "fid_features")
        and not k.endswith("_facts")
    )
    primary, headline, _compact = leading_metrics(wide, present)
    assert primary == "modes_covered" and headline[:3] == ["modes_covered", "modes_high_quality", "modes_kl"]
    assert headline.index("fid") > 2  # the coordinate Fréchet distance stays, after the protocol's measures
    summary = summarise(wide)
    ranks = summary[summary["metric"] == primary].set_index("loss")["rank"]
    assert ranks["sampler"] == 1 and ranks["blob"] == 2


def test_target_reached_reads_the_other_metrics_values(catalog) -> None:
    digits = catalog.datasets.get("digits")
    assert digits.target.describe() == "modes_covered >= 9; fid <= 10 x fid_floor"
    assert digits.target.reached({"modes_covered": 10, "fid": 40.0, "fid_floor": 5.0}) == 1.0
    assert digits.target.reached({"modes_covered": 10, "fid": 60.0, "fid_floor": 5.0}) == 0.0  # 12x the floor
    assert digits.target.reached({"modes_covered": 8, "fid": 6.0, "fid_floor": 5.0}) == 0.0
    assert math.isnan(digits.target.reached({"modes_covered": 10, "fid": 6.0}))  # no floor: cannot tell
    ring = catalog.datasets.get("ring8")
    assert ring.target.describe() == "modes_high_quality >= 0.8; modes_covered >= 6"
    fake = Samples(sampler(ring_centres(), RING_STD, 2500, 0))
    # TargetReached listed first still runs last: it reads what ModeCoverage computed
    values = run_metrics([TargetReached(), ModeCoverage()], context(ring, balanced_real(), fake))
    assert values.values["target_reached"] == 1.0 and not values.errors
    assert values.texts["target_rule"] == "modes_high_quality >= 0.8; modes_covered >= 6"
    collapsed = Samples(sampler(ring_centres()[:5], RING_STD, 2500, 0))  # 5 of 8 modes: 1 short of PacGAN's 6
    assert (
        run_metrics([TargetReached(), ModeCoverage()], context(ring, balanced_real(), collapsed)).values[
            "target_reached"
        ]
        == 0.0
    )
