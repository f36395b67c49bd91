"""The worked examples in plugins/: their formulas against hand computation, the plugin contract, and a real smoke
grid (from a copy of the folder, through --plugins-dir) whose runs appear in the stored results and the report."""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import torch
from torch import nn

from lossbench.testing import check_loss

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "plugins"


def load_example(stem: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{stem}", EXAMPLES / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_losses(module: ModuleType) -> list:
    found: list = []
    module.register_losses(found.append)
    return found


def softplus(t: float) -> float:
    return math.log1p(math.exp(t))


def test_ragan_matches_the_paper_formula_on_known_scores() -> None:
    (loss,) = registered_losses(load_example("ragan"))
    assert loss.name == "ragan" and loss.generator_needs_real
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])  # mean real 2, mean fake 1
    # L_D = mean softplus(-(r - mean f)) + mean softplus(f - mean r): (sp(0) + sp(-2))/2 + (sp(-2) + sp(0))/2
    expected_d = softplus(0) + softplus(-2)
    # L_G = mean softplus(-(f - mean r)) + mean softplus(r - mean f): (sp(2) + sp(0))/2 + (sp(0) + sp(2))/2
    expected_g = softplus(0) + softplus(2)
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert loss.generator_loss(fake, real).item() == pytest.approx(expected_g, rel=1e-6)


def test_ragan_generator_learns_from_the_real_scores_relative_to_the_fakes() -> None:
    """Unlike the standard GAN, raising the real scores raises the generator's loss (it is relativistic)."""
    (loss,) = registered_losses(load_example("ragan"))
    fake = torch.zeros(4)
    assert loss.generator_loss(fake, torch.full((4,), 2.0)).item() > loss.generator_loss(fake, torch.zeros(4)).item()


class Linear(nn.Module):
    """critic(x) = slope * x[:, 0]: its input gradient has norm |slope| everywhere."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(slope))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope * x[:, 0]


def test_wgan_lp_penalises_only_gradient_norms_above_one() -> None:
    (loss,) = registered_losses(load_example("wgan_lp"))
    assert loss.name == "wgan-lp" and not loss.scores_are_logits and loss.recipe.n_critic == 5
    real, fake = torch.randn(32, 2), torch.randn(32, 2)
    assert loss.penalty(Linear(0.5), real, fake).item() == 0.0  # one-sided: WGAN-GP would give 10 * 0.25
    assert loss.penalty(Linear(3.0), real, fake).item() == pytest.approx(10 * (3 - 1) ** 2)
    assert loss.penalty(Linear(-3.0), real, fake).item() == pytest.approx(40.0)
    real_scores, fake_scores = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert loss.discriminator_loss(real_scores, fake_scores).item() == pytest.approx(0.0 - 3.0)
    assert loss.generator_loss(fake_scores, real_scores).item() == pytest.approx(0.0)


@pytest.mark.parametrize("stem", ["ragan", "wgan_lp"])
def test_examples_keep_the_plugin_contract(stem: str) -> None:
    for loss in registered_losses(load_example(stem)):
        check_loss(loss)


def test_readme_covers_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for path in EXAMPLES.glob("*.py"):
        assert path.name in readme, f"plugins/README.md does not mention {path.name}"


def test_examples_run_in_a_smoke_grid_and_appear_in_the_report(cli, workdir: Path) -> None:
    copy = workdir / "my-plugins"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    listed = cli("list", "losses", "--plugins-dir", str(copy))
    assert listed.exit_code == 0, listed.output
    assert re.search(r"^  ragan .*\(ragan\)$", listed.output, re.M), listed.output
    assert re.search(r"^  wgan-lp .*\(wgan_lp\)$", listed.output, re.M), listed.output

    result = cli(
        "run",
        "--grid",
        "-l",
        "ragan",
        "-l",
        "wgan-lp",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--seeds",
        "0",
        "--preset",
        "smoke",
        "--plugins-dir",
        str(copy),
        "--results",
        "out",
        "--reports",
        "report",
        "--strict-plugins",
    )
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(workdir / "out" / "runs.csv")
    assert sorted(runs["loss"]) == ["ragan", "wgan-lp"]
    assert (runs["status"] == "ok").all(), runs[["loss", "status", "reason"]]
    history = pd.read_csv(workdir / "out" / "history.csv")
    assert history.groupby("run_id")["step"].max().tolist() == [40, 40]  # smoke preset: 40 steps on points
    assert history["penalty"].notna().any()  # wgan-lp's penalty was applied and logged

    html = (workdir / "report" / "index.html").read_text(encoding="utf-8")
    for loss in ("ragan", "wgan-lp"):
        assert re.search(rf"<tr[^>]*>(?:(?!</tr>).)*\b{re.escape(loss)}\b", html, re.S), f"{loss} not in a report table"
