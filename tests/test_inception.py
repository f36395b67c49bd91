"""The FID Inception path, offline, end to end, against pytorch-fid's own pipeline.

A randomly initialised state dict of pytorch-fid's FID Inception architecture is planted where pytorch-fid looks
(``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``): no network is touched. Inception costs
about 0.2 s per image on a CPU, so a handful of tiny images is used.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from pytorch_fid import fid_score, inception as fid_inception

from lossbench.api import Dataset, DataSpec, Samples
from lossbench.builtin.metrics import FrechetDistance
from lossbench.errors import DataUnavailable
from lossbench.plan.grid import RunSpec
from lossbench.scoring.evaluate import (
    INCEPTION_FEATURES,
    INCEPTION_FILE,
    INCEPTION_WEIGHTS_ENV,
    EvaluationContext,
    resolve_feature_space,
)
from lossbench.scoring.frechet import frechet_distance

N_IMAGES = 6  # per set


def fid_inception_architecture() -> torch.nn.Module:
    """pytorch-fid's FID Inception without its weights: ``fid_inception_v3`` minus the download.

    The same torchvision base and FID blocks that ``fid_inception_v3`` assembles, so the state dict's keys and
    shapes are the ones it loads. Convolutions get He initialisation so that features stay O(1) through ~90
    layers (PyTorch's default init shrinks them to ~1e-8, which would make every distance vanish).
    """
    torch.manual_seed(0)
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds random FID Inception weights; returns the TORCH_HOME."""
    home = tmp_path_factory.mktemp("torch-home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    assert fid_inception.FID_WEIGHTS_URL.endswith("/" + INCEPTION_FILE)
    torch.save(fid_inception_architecture().state_dict(), checkpoints / INCEPTION_FILE)
    return home


@pytest.fixture(autouse=True)
def one_thread():
    """Inception on a shared 2-core machine: one thread avoids oversubscription."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class GreyImages(Dataset):
    """Grey images without a feature network of their own, at a given side."""

    def __init__(self, side: int) -> None:
        self.name = f"grey{side}"
        self.spec = DataSpec(shape=(1, side, side), kind="image", n_modes=None)

    def load(self, root=None) -> Samples:
        raise AssertionError("not used")


def grey_images(seed: int, brightness: int) -> tuple[np.ndarray, torch.Tensor]:
    """uint8 images (for PNG files) and the same images in lossbench's [-1, 1] float convention."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(brightness, 40, (N_IMAGES, 16, 16)), 0, 255).astype(np.uint8)
    return pixels, torch.from_numpy(pixels).float().div(255).mul(2).sub(1).unsqueeze(1)


def write_pngs(pixels: np.ndarray, folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for index, image in enumerate(pixels):
        paths.append(folder / f"{index}.png")
        Image.fromarray(image, mode="L").save(paths[-1])
    return paths


def context(dataset: Dataset, real: torch.Tensor, fake: torch.Tensor) -> EvaluationContext:
    spec = RunSpec(
        loss="nonsaturating",
        model="dcgan",
        dataset=dataset.name,
        seed=0,
        steps=1,
        batch_size=8,
        log_every=1,
        eval_every=1,
        eval_samples=N_IMAGES,
        final_samples=N_IMAGES,
    )
    return EvaluationContext(
        real=Samples(real), fake=Samples(fake), dataset=dataset, spec=spec, history=pd.DataFrame(), final=False
    )


def test_fid_equals_pytorch_fid_on_the_same_images(planted, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(planted))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    real_pixels, real = grey_images(0, 100)
    fake_pixels, fake = grey_images(1, 160)
    ctx = context(GreyImages(16), real, fake)
    values = FrechetDistance().compute(ctx)
    assert values["fid_features"] == INCEPTION_FEATURES == "inception-v3-pool3"
    ours_real, ours_fake = ctx.features("default")
    assert ours_real.shape == (N_IMAGES, 2048)

    # pytorch-fid's own pipeline: PNG files -> RGB [0, 1] tensors -> InceptionV3 pool3 -> statistics
    model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    paths = {"real": write_pngs(real_pixels, tmp_path / "real"), "fake": write_pngs(fake_pixels, tmp_path / "fake")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = {
            name: fid_score.get_activations(
                [str(p) for p in files], model, batch_size=N_IMAGES, dims=2048, device="cpu", num_workers=0
            )
            for name, files in paths.items()
        }
    np.testing.assert_allclose(ours_real, theirs["real"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours_fake, theirs["fake"], rtol=1e-4, atol=1e-5)

    # pytorch-fid's calculate_frechet_distance on pytorch-fid's features. Its sqrtm of a 2048 x 2048 matrix takes
    # minutes on 2 shared cores, so both sets are first written in an orthonormal basis of the (2n - 1)-dim
    # affine span that holds all 2n samples: an isometry, under which means' distance, traces and
    # tr((Σ1 Σ2)^½) (and so the Fréchet distance) are exactly unchanged.
    origin = theirs["real"].mean(axis=0)
    basis = np.linalg.qr(np.vstack([theirs["real"], theirs["fake"]]).T - origin[:, None])[0]
    real_low, fake_low = ((theirs[name] - origin) @ basis for name in ("real", "fake"))
    stats_real = real_low.mean(axis=0), np.cov(real_low, rowvar=False)  # as pytorch-fid's statistics
    stats_fake = fake_low.mean(axis=0), np.cov(fake_low, rowvar=False)
    assert values["fid"] > 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = float(fid_score.calculate_frechet_distance(*stats_real, *stats_fake))
    except TypeError as exc:  # SciPy >= 1.18 removed sqrtm's disp argument that pytorch-fid 0.3.0 passes
        reference = frechet_distance(*stats_real, *stats_fake)
        warnings.warn(
            f"pytorch-fid's calculate_frechet_distance does not run on this SciPy ({exc}); "
            "compared with lossbench's statistics form instead",
            stacklevel=1,
        )
    assert values["fid"] == pytest.approx(reference, rel=1e-4)


def test_weights_given_by_path_are_used_offline(planted, tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "my-weights.pth"
    elsewhere.symlink_to(planted / "hub" / "checkpoints" / INCEPTION_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-home"))  # nothing in the hub cache
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(elsewhere))
    hub_before = torch.hub.get_dir()
    _pixels, images = grey_images(2, 120)
    space = resolve_feature_space("default", GreyImages(16), torch.device("cpu"))
    assert space.name == INCEPTION_FEATURES
    from_path = space(images[:2])
    assert torch.hub.get_dir() == hub_before  # the temporary hub folder is not left behind
    monkeypatch.setenv("TORCH_HOME", str(planted))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV)
    from_hub = resolve_feature_space("inception", GreyImages(16), torch.device("cpu"))(images[:2])
    np.testing.assert_array_equal(from_path, from_hub)  # the same weights, found either way


def test_without_weights_nothing_downloads(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    assert resolve_feature_space("default", GreyImages(16), torch.device("cpu")).name == "pixels"
    with pytest.raises(DataUnavailable, match="hub/checkpoints/pt_inception-2015-12-05-6726825d.pth"):
        resolve_feature_space("inception", GreyImages(16), torch.device("cpu"))
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(DataUnavailable, match="missing.pth"):
        resolve_feature_space("default", GreyImages(16), torch.device("cpu"))


def test_eight_pixel_images_keep_their_own_space(planted, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(planted))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    assert resolve_feature_space("default", GreyImages(8), torch.device("cpu")).name == "pixels"
    assert resolve_feature_space("default", GreyImages(16), torch.device("cpu")).name == INCEPTION_FEATURES
