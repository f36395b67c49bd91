"""Figures on hand-made tables with known content: colours keyed by loss name, linear loss axes, the heatmap's
numbers, image tiling, stability counts and the names of feature spaces."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.colors import to_hex
from PIL import Image

from lossbench.builtin.metrics import FrechetDistance, KernelInceptionDistance, ModeCoverage, Stability
from lossbench.records import facts_texts
from lossbench.report import figures
from lossbench.results import headlines
from lossbench.results.facts import declared_facts, feature_space_for, labels as metric_labels
from lossbench.results.leaderboard import loss_order

BUILTIN = [FrechetDistance(), ModeCoverage(), Stability()]  # the metrics whose facts the hand-made runs store

LOSSES = ["hinge", "nonsaturating", "wgan-gp"]


def colours_used(fig) -> set[str]:
    """Every colour drawn by lines, markers, collections and patches of a figure, as hex."""
    found = set()
    for ax in fig.axes:
        for line in ax.lines:
            found.add(to_hex(line.get_color()))
            found.add(to_hex(line.get_markerfacecolor()))
        for collection in ax.collections:
            for colour in collection.get_facecolor():
                found.add(to_hex(colour[:3]))
        for patch in ax.patches:
            found.add(to_hex(patch.get_facecolor()[:3]))
    return found


def wide_table() -> pd.DataFrame:
    """Three losses x three seeds; 'wgan-gp' seed 2 diverged, 'hinge' seed 1 failed."""
    rows = []
    fid = {"hinge": [1.0, None, 1.4], "nonsaturating": [0.5, 0.7, 0.6], "wgan-gp": [2.0, 2.2, None]}
    for loss in LOSSES:
        for seed in range(3):
            status = {("hinge", 1): "failed", ("wgan-gp", 2): "diverged"}.get((loss, seed), "ok")
            rows.append(
                {
                    "run_id": f"{loss}-{seed}",
                    "dataset": "ring8",
                    "model": "mlp",
                    "loss": loss,
                    "seed": seed,
                    "status": status,
                    "fid": fid[loss][seed],
                    "modes_covered": float(seed + 5),
                    "stability_d_overpowering": 1.0 if loss == "nonsaturating" and seed < 2 else 0.0,
                    "stability_diverged": 1.0 if status == "diverged" else 0.0,
                    "stability_equilibrium_gap": 0.1 * seed,
                    "fid_features": "coordinates",
                    **facts_texts(BUILTIN),
                }
            )
    return pd.DataFrame(rows)


def summary_table(wide: pd.DataFrame) -> pd.DataFrame:
    from lossbench.results.tables import summarise

    frame = wide.assign(preset="smoke", steps=20, device="cpu", reason="", failed_step=None)
    return summarise(frame.drop(columns=["fid_features"]))


def test_palette_is_colour_blind_safe_and_stable_across_reports() -> None:
    palette = figures.loss_palette(["wgan-gp", "hinge", "nonsaturating", "hinge"])
    colourblind = [to_hex(c) for c in sns.color_palette("colorblind", 10)]
    assert sorted(palette) == sorted(LOSSES)
    # built-in losses hold fixed slots: nonsaturating, hinge, wgan-gp are the palette's first three colours
    assert [to_hex(palette[name]) for name in ("nonsaturating", "hinge", "wgan-gp")] == colourblind[:3]
    assert figures.loss_palette(reversed(LOSSES)) == palette  # order of appearance does not matter
    alone = figures.loss_palette(["wgan-gp"])
    assert alone["wgan-gp"] == palette["wgan-gp"]  # the same colour in a report of one loss
    mine = figures.loss_palette(["my-loss"])["my-loss"]
    assert figures.loss_palette(["my-loss", "hinge", "dragan"])["my-loss"] == mine  # a plugin loss too


def test_every_loss_gets_its_own_colour_up_to_twenty_and_its_own_style_beyond() -> None:
    builtin = list(figures.BUILTIN_LOSS_SLOTS)
    names = builtin + [f"plugin-{i}" for i in range(9)]  # 20 losses: one colour each
    palette = figures.loss_palette(names)
    assert len({to_hex(c) for c in palette.values()}) == 20
    assert to_hex(palette["hinge"]) != to_hex(palette["wgan-gp"]) and to_hex(palette["dragan"]) != to_hex(
        palette["wgan-gp"]
    )
    many = figures.loss_palette(names + [f"extra-{i}" for i in range(60)])  # 80: colours repeat, styles do not
    styles = {(to_hex(s.colour), s.marker, s.linestyle) for s in many.styles.values()}
    assert len(styles) == 80 and len({to_hex(c) for c in many.values()}) == 20
    assert all(figures.repeats_colour(many, name) == (many.slots[name] >= 20) for name in many)


def test_a_loss_keeps_its_colour_when_others_are_absent() -> None:
    """Figures of a subset of losses use the store-wide colour of each loss, not the next colour in line."""
    palette = figures.loss_palette(LOSSES)
    wide = wide_table()
    subset = wide[wide["loss"].isin(["wgan-gp", "nonsaturating"])]
    summary = summary_table(subset)
    order = ["nonsaturating", "wgan-gp"]
    history = pd.DataFrame(
        [
            {
                "loss": loss,
                "seed": seed,
                "step": step,
                "d_loss": -0.5 * step + seed,
                "g_loss": 0.1 * step,
                "d_real": 0.6,
                "d_fake": 0.4,
            }
            for loss in order
            for seed in range(2)
            for step in (1, 10, 20)
        ]
    )
    curves = pd.DataFrame(
        [
            {"loss": loss, "seed": seed, "step": step, "key": "fid", "value": 3.0 - step / 10}
            for loss in order
            for seed in range(2)
            for step in (10, 20)
        ]
    )
    points = {loss: np.random.default_rng(0).normal(size=(50, 2)) for loss in order}
    drawn = [
        figures.leaderboard_figure(summary, subset, ["fid"], order, palette),
        figures.seeds_figure(subset, ["fid"], order, palette),
        figures.curves_figure(history, curves, order, palette, ["fid"]),
        figures.points_figure(points, None, palette),
    ]
    for fig in drawn:
        used = colours_used(fig)
        assert to_hex(palette["nonsaturating"]) in used and to_hex(palette["wgan-gp"]) in used
        assert to_hex(palette["hinge"]) not in used  # a positional palette would have reused it


def test_loss_axes_are_linear_and_show_negative_losses() -> None:
    palette = figures.loss_palette(["wgan-gp"])
    history = pd.DataFrame(
        [
            {
                "loss": "wgan-gp",
                "seed": seed,
                "step": step,
                "d_loss": -2.0 - step - seed,
                "g_loss": -1.0 * step,
                "d_real": np.nan,
                "d_fake": np.nan,
            }
            for seed in range(3)
            for step in (1, 5, 10)
        ]
    )
    history.loc[len(history)] = {
        "loss": "wgan-gp",
        "seed": 0,
        "step": 11,
        "d_loss": np.inf,
        "g_loss": -np.inf,
        "d_real": np.nan,
        "d_fake": np.nan,
    }  # a diverged run's last row
    fig = figures.curves_figure(
        history, pd.DataFrame(columns=["loss", "seed", "step", "key", "value"]), ["wgan-gp"], palette
    )
    d_axis, g_axis = fig.axes[0], fig.axes[1]
    for ax in fig.axes:
        assert ax.get_yscale() == "linear" and ax.get_xscale() == "linear"
    low, high = d_axis.get_ylim()
    assert low <= -14 and high >= -3 and np.isfinite([low, high]).all()
    mean_line = d_axis.lines[0]
    np.testing.assert_allclose(mean_line.get_ydata(), [-4.0, -8.0, -13.0])  # mean over seeds 0, 1, 2
    assert g_axis.get_ylim()[0] <= -10
    run = figures.run_curves_figure(
        history[history["seed"] == 0],
        pd.DataFrame(columns=["step", "key", "value"]),
        palette["wgan-gp"],
        None,
        failed_step=11,
    )
    assert all(ax.get_yscale() == "linear" for ax in run.axes)
    assert run.axes[0].get_ylim()[0] <= -12


def test_heatmap_annotates_the_median_of_each_loss_and_model() -> None:
    rows = []
    medians = {
        ("hinge", "mlp"): 1.25,
        ("hinge", "dcgan"): 4104.6,
        ("wgan-gp", "mlp"): 0.333,
        ("wgan-gp", "dcgan"): 12.0,
    }
    for (loss, model), median in medians.items():
        rows.append({"dataset": "ring8", "model": model, "loss": loss, "metric": "fid", "median": median})
    fig = figures.heatmap_figure(pd.DataFrame(rows), "fid", "FID [coordinates]")
    ax = fig.axes[0]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    index = [t.get_text() for t in ax.get_yticklabels()]
    assert columns == ["dcgan", "mlp"] and index == ["hinge", "wgan-gp"]
    annotations = {(round(t.get_position()[1] - 0.5), round(t.get_position()[0] - 0.5)): t.get_text() for t in ax.texts}
    expected = {
        ("hinge", "mlp"): "1.25",
        ("hinge", "dcgan"): "4,105",
        ("wgan-gp", "mlp"): "0.333",
        ("wgan-gp", "dcgan"): "12",
    }
    for (loss, model), text in expected.items():
        assert annotations[(index.index(loss), columns.index(model))] == text
    assert "FID [coordinates]" in fig.axes[1].get_ylabel()


def test_leaderboard_draws_the_tables_mean_and_ci() -> None:
    wide = wide_table()
    summary = summary_table(wide)
    order = loss_order(wide, summary, "fid")
    assert order == ["nonsaturating", "hinge", "wgan-gp"]
    fig = figures.leaderboard_figure(summary, wide, ["fid"], order, figures.loss_palette(LOSSES))
    ax = fig.axes[0]
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    means = summary[summary["metric"] == "fid"].set_index("loss")["mean"]
    assert [float(line.get_xdata()[0]) for line in markers] == [means[loss] for loss in order]
    assert [float(line.get_ydata()[0]) for line in markers] == [0, 1, 2]
    assert ax.get_xscale() == "linear"


def test_tile_images_places_and_scales_pixels() -> None:
    images = np.stack([np.full((1, 2, 2), value, dtype=np.float32) for value in (-1.0, 0.0, 1.0)])
    grid = figures.tile_images(images, columns=2)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1)
    assert (grid[1:3, 1:3] == 0).all() and (grid[1:3, 4:6] == 128).all() and (grid[4:6, 1:3] == 255).all()
    assert (grid[0, :] == 255).all() and (grid[:, 3] == 255).all()  # white gutters
    rgb = figures.tile_images(np.zeros((5, 3, 4, 4), dtype=np.float32), columns=8)
    assert rgb.shape == (4 + 2, 5 * 5 + 1, 3)
    with pytest.raises(ValueError, match="N, C, H, W"):
        figures.tile_images(np.zeros((4, 2)))


def test_image_grid_file_is_a_png_of_the_samples(tmp_path) -> None:
    rng = np.random.default_rng(1)
    samples = rng.uniform(-1, 1, size=(10, 1, 8, 8)).astype(np.float32)
    path = figures.save_image_grid(samples, tmp_path / "grid.png", scale=2, columns=5)
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels[::2, ::2], figures.tile_images(samples, 5))
    fig = figures.images_figure({"hinge": samples, "wgan-gp": None})
    assert fig.axes[0].images and not fig.axes[1].images  # no samples: a note instead of a grid


def test_points_figure_marks_every_mode_centre() -> None:
    angles = np.arange(8) * np.pi / 4
    centres = 2 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    samples = {"hinge": centres[[0, 1, 2]].repeat(20, axis=0), "wgan-gp": None}
    fig = figures.points_figure(samples, centres, figures.loss_palette(["hinge", "wgan-gp"]))
    ax = fig.axes[0]
    crosses = [c for c in ax.collections if len(c.get_offsets()) == 8]
    np.testing.assert_allclose(crosses[0].get_offsets(), centres)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < -2 and x1 > 2 and y0 < -2 and y1 > 2  # every centre is inside the view


def test_stability_counts_flags_and_statuses() -> None:
    wide = wide_table()
    assert figures.stability_flags(wide) == ["stability_d_overpowering"]  # 0/1 keys only; diverged is a status
    table = figures.stability_table(wide, LOSSES).set_index("loss")
    assert table.loc["hinge", "failed"] == 1 and table.loc["hinge", "diverged"] == 0
    assert table.loc["wgan-gp", "diverged"] == 1
    assert table.loc["nonsaturating", "stability_d_overpowering"] == 2
    assert table.loc["nonsaturating", "stability_d_overpowering__n"] == 3
    fig = figures.stability_figure(wide, LOSSES)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1/3", "0/3", "0/3", "0/3", "0/3", "2/3", "0/3", "1/3", "0/3"]


def test_metric_labels_name_the_feature_space() -> None:
    facts = declared_facts(BUILTIN)
    assert figures.metric_label("fid", "coordinates", facts) == "FID [coordinates]"
    assert figures.metric_label("fid", "digits-classifier", facts) == "FID [digits-classifier]"
    assert figures.metric_label("fid", "inception-v3-pool3", facts) == "FID [Inception-v3]"
    assert figures.metric_label("modes_kl", None, facts) == "mode KL (nats)"  # the metric's label and unit
    assert figures.metric_label("fid", "coordinates") == "fid [coordinates]"  # undeclared: the key with spaces
    assert "Inception" not in figures.feature_space_name("digits-classifier")
    prefixes = {"fid": 1, "prdc": 1}
    assert feature_space_for("fid_floor", prefixes) == "fid"
    assert feature_space_for("prdc_recall", prefixes) == "prdc"
    assert feature_space_for("modes_covered", prefixes) is None
    labels = metric_labels(wide_table(), "ring8", ["fid", "modes_covered"])
    assert labels == {"fid": "FID [coordinates]", "modes_covered": "modes covered"}
    facts = declared_facts([*BUILTIN, KernelInceptionDistance()])
    assert headlines.primary_metric(["modes_kl", "fid_floor", "fid", "kid"], facts) == "fid"
    assert headlines.primary_metric(["modes_kl", "modes_covered"], facts) == "modes_covered"
    assert headlines.primary_metric(["zeta", "alpha"], facts) == "alpha"
    assert headlines.primary_metric(["fid_floor", "zeta"], facts) == "zeta"  # a key declared "none" never ranks


def test_saved_figure_is_a_decodable_png(tmp_path) -> None:
    fig = figures.heatmap_figure(
        pd.DataFrame([{"dataset": "d", "model": "m", "loss": "l", "metric": "fid", "median": 1.0}]), "fid"
    )
    path = figures.save_figure(fig, tmp_path / "sub" / "f.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.width > 100 and image.height > 50
