"""Feature spaces as plugins: the example resnet18 space end to end, the built-ins through the hook, the errors.

The resnet18 weights are made here (a seeded, freshly initialised torchvision resnet18, ``torch.save``-d): nothing
is downloaded. The stored FID in a chosen space must equal the Fréchet distance computed directly from the same
extractor's features of the same samples (the run's real set and its generator's evaluation samples).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from conftest import run_cli

from lossbench import FeatureSpace, hookimpl
from lossbench.api import DataSpec
from lossbench.examples import resnet18_space
from lossbench.plan import seeding
from lossbench.plugin.loader import (
    PluginConfig,
    PluginInfo,
    build_catalog,
    load_environment,
    load_plugins,
    register_plugin,
)
from lossbench.records import base_key, space_key, space_of
from lossbench.results.store import Store
from lossbench.results.tables import better_direction
from lossbench.scoring.chosen import SPACES_ENV
from lossbench.training.train import evaluation_sets, generate, load_data

EXAMPLE = Path(resnet18_space.__file__)
GRID = (
    "run",
    "-l",
    "nonsaturating",
    "-m",
    "dcgan",
    "-d",
    "digits",
    "--preset",
    "smoke",
    "--steps",
    "40",
    "--seeds",
    "0",
    "--workers",
    "1",
    "--no-report",
)  # 40 steps: one light evaluation (at 20) besides the final


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), written out with scipy (not lossbench's maths)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> dict:
    """One smoke run on 8x8 digits scored also in the example resnet18 space (a plugins folder holding it)."""
    root = tmp_path_factory.mktemp("spaces")
    plugins = root / "plugins"
    plugins.mkdir()
    shutil.copy(EXAMPLE, plugins / "resnet18_space.py")
    torch.manual_seed(0)
    from torchvision.models import resnet18

    weights = root / "resnet18.pt"
    torch.save(resnet18(weights=None).state_dict(), weights)
    mp = pytest.MonkeyPatch()
    mp.setenv(resnet18_space.WEIGHTS_ENV, str(weights))
    results = root / "results"
    code, output = run_cli(
        *GRID, "--feature-space", "resnet18", "--results", str(results), "--plugins-dir", str(plugins)
    )
    yield {"code": code, "output": output, "results": results, "plugins": plugins, "weights": weights, "mp": mp}
    mp.undo()


def stored(results: Path) -> tuple[dict, dict, object]:
    with Store.open(results, create=False) as store:
        metrics = store.metrics()
        run_id = store.runs()["run_id"].iloc[0]
        spec = store.spec(run_id)
        checkpoint = store.checkpoint_path(run_id).read_bytes()
    values = metrics.dropna(subset=["value"]).set_index("key")["value"].to_dict()
    texts = metrics.dropna(subset=["text"]).set_index("key")["text"].to_dict()
    return values, texts, (spec, checkpoint)


def run_samples(spec, checkpoint: bytes, plugins: Path):
    """The run's real and reference sets and its generator's final evaluation samples, rebuilt from the store."""
    import io

    catalog = load_environment(PluginConfig(plugins_dir=plugins)).catalog
    dataset = catalog.datasets.get(spec.dataset)
    model = catalog.models.get(spec.model).build(dataset.spec)
    model.generator.load_state_dict(torch.load(io.BytesIO(checkpoint), weights_only=True))
    real, reference = evaluation_sets(load_data(dataset), spec)
    fake = generate(
        model, len(real), seeding.noise_seed(spec.seed, spec.model, spec.dataset, "eval"), torch.device("cpu")
    )
    return real.x, reference.x, fake.x


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_fid_in_a_plugin_space_is_the_frechet_distance_of_its_features(grid) -> None:
    assert grid["code"] == 0, grid["output"]
    values, texts, (spec, checkpoint) = stored(grid["results"])
    assert texts["fid@resnet18_features"] == "resnet18-avgpool"
    assert texts["fid_features"] == "digits-classifier"  # the default space's keys are unchanged
    assert {
        "fid",
        "kid",
        "prdc_recall",
        "fid@resnet18",
        "fid@resnet18_floor",
        "kid@resnet18",
        "prdc@resnet18_recall",
    } <= set(values)
    real, reference, fake = run_samples(spec, checkpoint, grid["plugins"])
    extractor = resnet18_space.ResNet18Features(grid["weights"], torch.device("cpu"))
    with torch.no_grad():
        features = [extractor.features(x).double().numpy() for x in (real, fake, reference)]
    assert features[0].shape == (len(real), 512)
    assert values["fid@resnet18"] == pytest.approx(frechet(features[0], features[1]), rel=1e-6)
    assert values["fid@resnet18_floor"] == pytest.approx(frechet(features[0], features[2]), rel=1e-6)
    assert values["fid@resnet18"] != pytest.approx(values["fid"])
    with Store.open(grid["results"], create=False) as store:
        curve_keys = set(store.curves()["key"])
    assert "fid" in curve_keys and not any("@" in key for key in curve_keys)  # extra spaces: final evaluation only
    assert values["fid@resnet18"] != pytest.approx(values["fid@resnet18_floor"], rel=0.01)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_rescore_adds_a_space_to_stored_runs_and_run_says_they_lack_it(grid) -> None:
    assert grid["code"] == 0, grid["output"]
    code, output = run_cli(
        *GRID, "--feature-space", "raw", "--results", str(grid["results"]), "--plugins-dir", str(grid["plugins"])
    )
    assert code == 0 and "trained 0 runs" in output, output  # resumed, not trained again ...
    assert "1 stored run lacks values in feature space(s) raw: `lossbench rescore --feature-space raw`" in output
    code, output = run_cli(
        "rescore",
        "--feature-space",
        "raw",
        "--results",
        str(grid["results"]),
        "--no-report",
        "--plugins-dir",
        str(grid["plugins"]),
    )
    assert code == 0 and "rescored 1 run(s)" in output, output
    values, texts, (spec, checkpoint) = stored(grid["results"])
    real, _reference, fake = run_samples(spec, checkpoint, grid["plugins"])
    pixels = [x.reshape(len(x), -1).double().numpy() for x in (real, fake)]
    assert texts["fid@raw_features"] == "pixels"
    assert values["fid@raw"] == pytest.approx(frechet(*pixels), rel=1e-6)
    assert "fid@resnet18" in values  # the other space is kept
    code, output = run_cli(
        "rescore",
        "--feature-space",
        "raw",
        "--results",
        str(grid["results"]),
        "--no-report",
        "--plugins-dir",
        str(grid["plugins"]),
    )
    assert "rescored 0 run(s)" in output  # nothing lacks it any more


def test_a_missing_weights_file_is_one_line_naming_the_space_and_path(grid, tmp_path, monkeypatch) -> None:
    missing = tmp_path / "nowhere" / "resnet18.pt"
    monkeypatch.setenv(resnet18_space.WEIGHTS_ENV, str(missing))
    code, output = run_cli(
        *GRID, "--feature-space", "resnet18", "--results", str(tmp_path / "r"), "--plugins-dir", str(grid["plugins"])
    )
    assert code != 0
    lines = [line for line in output.splitlines() if line.startswith("Error")]
    assert lines == [f"Error: feature space 'resnet18': its weights file {missing} does not exist"], output
    assert "Traceback" not in output and not (tmp_path / "r" / "lossbench.db").exists()


def test_unknown_and_unsuitable_spaces_are_one_line(grid, tmp_path) -> None:
    code, output = run_cli(
        *GRID, "--feature-space", "resnet81", "--results", str(tmp_path / "r"), "--plugins-dir", str(grid["plugins"])
    )
    assert code == 2 and "Error: unknown feature space 'resnet81'; did you mean 'resnet18'?" in output
    code, output = run_cli(
        "run",
        "-l",
        "nonsaturating",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--preset",
        "smoke",
        "--feature-space",
        "resnet18",
        "--results",
        str(tmp_path / "r"),
        "--no-report",
        "--plugins-dir",
        str(grid["plugins"]),
    )
    assert (
        code == 2
        and ("Error: feature space 'resnet18' cannot score dataset 'ring8': it takes images, not points") in output
    ), output
    assert SPACES_ENV not in os.environ  # the choice ends with the command (runs later in this process are plain)


class TinySpaces:
    """A plugin registering one good and two malformed spaces (``register_feature_spaces`` in a test)."""

    @hookimpl
    def register_feature_spaces(register):
        register(MeanSpace())
        bad = MeanSpace()
        bad.name, bad.inputs = "bad-inputs", "audio"
        register(bad)
        wide = MeanSpace()
        wide.name, wide.width = "bad-width", 0
        register(wide)


class MeanSpace(FeatureSpace):
    """Per-sample mean and std of the values: a 2-d space for anything."""

    name = "mean-std"
    inputs = "vector"
    width = 2

    def build(self, dataset, device):
        class Net:
            name = "mean-std"

            def features(self, x):
                flat = x.reshape(len(x), -1)
                return torch.stack([flat.mean(1), flat.std(1)], dim=1)

        return Net()


def test_spaces_register_through_the_hook_and_malformed_ones_are_named() -> None:
    loaded = load_plugins(PluginConfig(entry_points=False, default_folders=False))
    register_plugin(loaded, "tiny", TinySpaces, PluginInfo("tiny", "test", "tests"))
    catalog = build_catalog(loaded)
    assert catalog.feature_spaces.names() == ["inception", "classifier", "raw", "mean-std"]
    assert catalog.feature_spaces.plugin_of("inception") == "lossbench.builtin.spaces"
    problems = [str(p) for p in loaded.problems]
    assert problems == [
        "plugin 'tiny': feature space 'bad-inputs' inputs must be one of image, vector, not 'audio'",
        "plugin 'tiny': feature space 'bad-width' width must be a positive int or None, not 0",
    ]


def test_declared_input_decides_what_a_space_takes() -> None:
    space = resnet18_space.ResNet18Space()
    assert space.refuses(DataSpec((1, 8, 8), "image")) is None
    assert space.refuses(DataSpec((3, 32, 32), "image")) is None
    assert space.refuses(DataSpec((2,), "points")) == "it takes images, not points"
    assert space.refuses(DataSpec((4, 8, 8), "image")) == "it takes 1 or 3-channel images, not 4-channel"
    assert space.refuses(DataSpec((1, 4, 4), "image")) == "it takes images of side at least 8 px, not 4 px"
    assert MeanSpace().refuses(DataSpec((2,), "points")) is None


def test_keys_in_a_space_keep_the_default_keys_and_their_directions() -> None:
    assert space_key("fid", "fid", "s") == "fid@s" and space_key("prdc_recall", "prdc", "s") == "prdc@s_recall"
    assert base_key("prdc@my-space_recall") == "prdc_recall" and base_key("fid") == "fid"
    assert space_of("prdc@my-space_recall") == "my-space" and space_of("fid@s") == "s" and space_of("fid") is None
    from lossbench.builtin.metrics import FrechetDistance, KernelInceptionDistance, PrecisionRecallDensityCoverage
    from lossbench.records import facts_texts
    from lossbench.results.facts import known_facts
    from lossbench.results.tables import directions

    builtin = [FrechetDistance(), KernelInceptionDistance(), PrecisionRecallDensityCoverage()]
    assert better_direction("prdc@s_recall", builtin) == "higher" and better_direction("fid@s_floor", builtin) == "none"
    assert better_direction("fid@s", builtin) == "lower"
    wide = pd.DataFrame({"kid@s_std": [1.0], "fid@s": [2.0], **{k: [v] for k, v in facts_texts(builtin).items()}})
    assert known_facts(wide)["fid@s"].label == "FID @s" and known_facts(wide)["fid@s"].headline is None
    assert directions(wide)["kid@s_std"] == "none"


def test_a_chosen_space_that_is_the_default_is_extracted_once_and_agrees() -> None:
    """On points the default space is raw: --feature-space raw gives fid@raw == fid from one extraction per set."""
    import dataclasses

    from lossbench.authoring.conformance import builtin, make_context
    from lossbench.scoring.evaluate import run_metrics
    from lossbench.scoring.spaces import RawSpace, builtin_spaces

    calls = []

    class CountingRaw(RawSpace):
        def build(self, dataset, device):
            network = super().build(dataset, device)
            inner = network.features
            network.features = lambda x: calls.append(len(x)) or inner(x)
            return network

    ring8 = builtin("datasets", "ring8")
    ctx = make_context(ring8, n=200)
    ctx = dataclasses.replace(ctx, _registry={**builtin_spaces(), "raw": CountingRaw()}, _extra_spaces=("raw",))
    outcome = run_metrics([builtin("metrics", name) for name in ("fid", "kid", "prdc")], ctx)
    assert not outcome.errors
    assert len(calls) == 3  # real, fake and reference, once each, for six metric computations
    for key in ("fid", "fid_floor", "kid", "prdc_recall"):
        assert outcome.values[space_key(key, key.split("_")[0], "raw")] == outcome.values[key]
    assert outcome.texts["fid@raw_features"] == outcome.texts["fid_features"] == "coordinates"


def test_in_the_default_grid_a_dataset_a_space_cannot_take_is_a_note() -> None:
    from lossbench.authoring.conformance import builtin
    from lossbench.errors import UsageError
    from lossbench.scoring.chosen import check_spaces

    registry = {"resnet18": resnet18_space.ResNet18Space(), "mean-std": MeanSpace()}
    ring8, digits = builtin("datasets", "ring8"), builtin("datasets", "digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(resnet18_space.WEIGHTS_ENV, __file__)  # any existing file: only its presence is checked here
        notes = check_spaces(registry, ("resnet18", "mean-std"), [ring8, digits], named=False)
        assert notes == ["feature space 'resnet18' skips dataset 'ring8' (it takes images, not points)"]
        with pytest.raises(UsageError, match="feature space 'resnet18' cannot score dataset 'ring8'"):
            check_spaces(registry, ("resnet18",), [ring8], named=True)


def test_check_feature_space_passes_the_builtins_and_names_a_wrong_width() -> None:

    from lossbench.api import FeatureSpace
    from lossbench.authoring.conformance import builtin
    from lossbench.scoring.spaces import builtin_spaces
    from lossbench.testing import ConformanceError, check_feature_space

    assert check_feature_space(builtin_spaces()["raw"]).shape == (64, 64)  # digits (taken first): 8x8 pixels
    assert check_feature_space(builtin_spaces()["raw"], builtin("datasets", "ring8")).shape == (64, 2)  # coordinates
    assert check_feature_space(builtin_spaces()["classifier"]).shape == (64, 128)  # digits' classifier features

    class Net:
        name = "three"

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(len(x), -1)[:, :3]

    class Declares5(FeatureSpace):
        name, inputs, width = "declares5", "vector", 5

        def build(self, dataset, device):
            return Net()

    with pytest.raises(ConformanceError, match="feature space 'declares5': declares width 5 but returned 3"):
        check_feature_space(Declares5())
