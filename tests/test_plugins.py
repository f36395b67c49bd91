"""Plugin discovery and isolation: a plugins folder, an installed distribution, and every way a plugin can break."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_lossbench

from lossbench.plugin.loader import PluginConfig, load_environment

GOOD_LOSS = '''
import torch.nn.functional as F
from lossbench import AdversarialLoss, Recipe, hookimpl


class {cls}(AdversarialLoss):
    """{doc}"""

    name = "{name}"
    recipe = Recipe(betas=(0.0, 0.9))

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(1 - real_scores).mean() + F.softplus(1 + fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        return {generator}


@hookimpl
def register_losses(register):
    register({cls}())
'''


def write_loss_plugin(folder: Path, stem: str, name: str, generator: str = "-fake_scores.mean()") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(GOOD_LOSS.format(cls="Plugged", doc=f"Softplus hinge ({name}).", name=name, generator=generator))
    return path


def test_plugin_file_in_plugins_folder_is_listed_and_trains(cli, workdir: Path) -> None:
    write_loss_plugin(workdir / "plugins", "softhinge", "soft-hinge")
    listing = cli("list", "losses", "--json")
    assert listing.exit_code == 0, listing.output
    entries = {row["name"]: row for row in json.loads(listing.output)}
    assert entries["soft-hinge"]["plugin"] == "softhinge"
    assert entries["soft-hinge"]["description"] == "Softplus hinge (soft-hinge)."
    assert "nonsaturating" in entries  # built-ins still there

    ran = cli("run", "--grid", "-l", "soft-hinge", "-d", "ring8", "--preset", "smoke", "--seeds", "0")
    assert ran.exit_code == 0, ran.output
    runs = pd.read_csv(workdir / "results" / "runs.csv")
    assert list(runs["loss"]) == ["soft-hinge"] and list(runs["status"]) == ["ok"]


def test_plugins_dir_flag_and_environment_variable(cli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_loss_plugin(workdir / "elsewhere", "other", "other-loss")
    assert "other-loss" in cli("list", "losses", "--plugins-dir", "elsewhere").output
    assert "other-loss" not in cli("list", "losses").output
    monkeypatch.setenv("LOSSBENCH_PLUGINS_DIR", str(workdir / "elsewhere"))
    assert "other-loss" in cli("list", "losses").output
    monkeypatch.setenv("LOSSBENCH_DISABLE_PLUGINS", "other")
    assert "other-loss" not in cli("list", "losses").output


def test_installed_distribution_with_entry_point_is_discovered(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_loss_plugin(site, "lossbench_distplug", "dist-loss")
    dist_info = site / "lossbench_distplug-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lossbench-distplug\nVersion: 1.2.3\n")
    (dist_info / "entry_points.txt").write_text("[lossbench]\ndistplug = lossbench_distplug\n")
    env = {"PYTHONPATH": str(site)}
    work = tmp_path / "work"
    work.mkdir()

    listing = run_lossbench("list", "losses", "--json", cwd=work, env=env)
    assert listing.returncode == 0, listing.stderr
    entries = {row["name"]: row for row in json.loads(listing.stdout)}
    assert entries["dist-loss"]["plugin"] == "distplug"

    plugins = json.loads(run_lossbench("plugins", "--json", cwd=work, env=env).stdout)["plugins"]
    info = next(p for p in plugins if p["name"] == "distplug")
    assert (info["distribution"], info["version"], info["source"]) == ("lossbench-distplug", "1.2.3", "entry point")
    assert info["registered"] == {"losses": ["dist-loss"]}

    ran = run_lossbench("run", "-l", "dist-loss", "-d", "ring8", "--preset", "smoke", "--seeds", "0", cwd=work, env=env)
    assert ran.returncode == 0, ran.stderr
    assert list(pd.read_csv(work / "results" / "runs.csv")["status"]) == ["ok"]


BROKEN = {
    "fails_import": "import lossbench_no_such_module\n",
    "raises_in_hook": textwrap.dedent("""
        from lossbench import hookimpl

        @hookimpl
        def register_losses(register):
            raise RuntimeError("boom while registering")
    """),
    "typo_hook": textwrap.dedent("""
        from lossbench import hookimpl

        @hookimpl
        def register_loss(register):
            pass
    """),
}


def make_broken_folder(folder: Path) -> None:
    folder.mkdir()
    for stem, source in BROKEN.items():
        (folder / f"{stem}.py").write_text(source)
    write_loss_plugin(folder, "duplicate", "nonsaturating")  # clashes with the built-in
    write_loss_plugin(folder, "vector", "vector-loss", generator="-fake_scores")  # non-scalar generator loss
    write_loss_plugin(folder, "nanloss", "nan-loss", generator="fake_scores.mean() * float('nan')")
    write_loss_plugin(folder, "healthy", "healthy-loss")


def test_broken_plugins_are_reported_by_name_and_the_rest_still_work(cli, workdir: Path) -> None:
    make_broken_folder(workdir / "plugins")
    env = load_environment(PluginConfig())
    problems = {problem.plugin: problem.reason for problem in env.problems}
    assert "ModuleNotFoundError" in problems["fails_import"] and "lossbench_no_such_module" in problems["fails_import"]
    assert "boom while registering" in problems["raises_in_hook"] and "register_losses" in problems["raises_in_hook"]
    assert "register_loss" in problems["typo_hook"] and "register_losses" in problems["typo_hook"]
    assert "'lossbench.builtin.losses'" in problems["duplicate"] and "'duplicate'" in problems["duplicate"]
    assert env.catalog.losses.plugin_of("nonsaturating") == "lossbench.builtin.losses"
    assert {"healthy-loss", "vector-loss", "nan-loss"} <= set(env.catalog.losses.names())

    result = cli(
        "run",
        "-l",
        "healthy-loss",
        "-l",
        "vector-loss",
        "-l",
        "nan-loss",
        "-l",
        "nonsaturating",
        "-d",
        "ring8",
        "--preset",
        "smoke",
        "--seeds",
        "0",
    )
    assert result.exit_code == 1, result.output  # a failed run makes the command fail, after finishing the grid
    for stem in ("fails_import", "raises_in_hook", "typo_hook", "duplicate"):
        assert f"warning: plugin '{stem}'" in result.output
    runs = pd.read_csv(workdir / "results" / "runs.csv").set_index("loss")
    assert runs.loc["healthy-loss", "status"] == "ok" and runs.loc["nonsaturating", "status"] == "ok"
    assert runs.loc["vector-loss", "status"] == "failed"
    assert "'vector-loss'" in runs.loc["vector-loss", "reason"] and "'vector'" in runs.loc["vector-loss", "reason"]
    assert runs.loc["nan-loss", "status"] == "diverged" and runs.loc["nan-loss", "failed_step"] == 1
    assert "failed: ring8/mlp/vector-loss/seed0" in result.output

    strict = cli("list", "losses", "--strict-plugins")
    assert strict.exit_code != 0
    assert "--strict-plugins" in strict.output and "Traceback" not in strict.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "-l", "nonsaturatng"], "did you mean 'nonsaturating'"),
        (["run", "-d", "rign8"], "did you mean 'ring8'"),
        (["run", "-m", "mpl"], "did you mean 'mlp'"),
        (["run", "--grid", "--seeds", "0,x"], "'x' is not a seed"),
        (["run"], "--grid"),
        (["list", "widgets"], "widgets"),
    ],
)
def test_bad_names_and_values_exit_2_with_one_clear_line(cli, args: list[str], expected: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (Path("results") / "lossbench.db").exists()
