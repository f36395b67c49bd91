"""`lossbench new-plugin`: the generated package installs with pip, is discovered through its entry point, trains
in a grid, and its own tests pass; the scaffold never overwrites anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tomllib

from lossbench.authoring.scaffold import PLUGIN_KINDS, REGISTRY_KINDS, ScaffoldError, create_plugin, plugin_files
from lossbench.authoring.scaffold_templates import DESCRIPTIONS, TEMPLATES


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOSSBENCH_PLUGINS_DIR", "LOSSBENCH_DISABLE_PLUGINS")}
    env.update(extra)
    return env


def start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """Exit code, stdout, and stdout + stderr (for assertion messages)."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, out + err


@pytest.mark.slow
def test_new_plugin_installs_is_discovered_runs_and_passes_its_tests(cli, workdir: Path) -> None:
    started = time.perf_counter()
    created = cli("new-plugin", "mine")
    assert created.exit_code == 0, created.output
    package = workdir / "lossbench-mine"
    assert (package / "pyproject.toml").is_file()

    # A real pip install (wheel built by setuptools from the generated pyproject, no network). It goes to a
    # private --target folder put on PYTHONPATH: entry-point discovery is the real one (importlib.metadata
    # reads the installed dist-info), while other tests running in parallel in this environment never see
    # `mine`, and nothing is left installed whatever happens here.
    site = workdir / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-compile",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    entry_points = (site / "lossbench_mine-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[lossbench]" in entry_points and "mine = lossbench_mine.plugin" in entry_points
    env = child_env(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))

    lossbench = [sys.executable, "-m", "lossbench.cli"]
    jobs = {  # independent, so they run side by side
        "list": start([*lossbench, "list", "losses", "--json"], workdir, env),
        "plugins": start([*lossbench, "plugins", "--json"], workdir, env),
        "run": start(
            [
                *lossbench,
                "run",
                "--grid",
                "-l",
                "mine",
                "-d",
                "ring8",
                "--seeds",
                "0",
                "--preset",
                "smoke",
                "--results",
                "results",
                "--no-report",
            ],
            workdir,
            env,
        ),
        "pytest": start([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], package, env),
    }
    outputs = {name: finish(process) for name, process in jobs.items()}

    code, out, output = outputs["list"]
    assert code == 0, output
    listing = {row["name"]: row for row in json.loads(out)}
    assert listing["mine"]["plugin"] == "mine" and listing["mine"]["family"] == "gan"
    assert listing["mine"]["description"] == DESCRIPTIONS["hinge"]  # the default template's, set in one place

    code, out, output = outputs["plugins"]
    assert code == 0, output
    info = {p["name"]: p for p in json.loads(out)["plugins"]}["mine"]
    assert (info["source"], info["distribution"], info["version"]) == ("entry point", "lossbench-mine", "0.1.0")
    assert info["location"] == "lossbench_mine.plugin" and info["registered"] == {"losses": ["mine"]}

    code, _out, output = outputs["run"]
    assert code == 0, output
    runs = pd.read_csv(workdir / "results" / "runs.csv")
    assert runs[["loss", "model", "dataset", "status"]].values.tolist() == [["mine", "mlp", "ring8", "ok"]]

    code, _out, output = outputs["pytest"]
    assert code == 0, output
    assert "3 passed" in output, output
    print(f"new-plugin -> pip install -> list/plugins/run/pytest: {time.perf_counter() - started:.1f}s")


@pytest.mark.slow
def test_every_kind_and_template_scaffolds_a_package_whose_tests_pass(tmp_path: Path) -> None:
    """Every template but the default loss one (tested installed, above), from their sources."""
    chosen = [
        (kind, template)
        for kind in PLUGIN_KINDS
        for template in TEMPLATES[kind]
        if (kind, template) != ("loss", "hinge")
    ]
    folders = [create_plugin(f"kit-{template}", kind, tmp_path, template=template) for kind, template in chosen]
    env = child_env(PYTHONPATH=os.pathsep.join(str(folder / "src") for folder in folders))
    tests = [str(folder / "tests") for folder in folders]
    code, _out, output = finish(
        start(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *tests],
            tmp_path,
            env,
        )
    )
    assert code == 0, output
    assert "18 passed" in output, output  # 3 tests each, 4 for the Wasserstein template's penalty, 2 for the projection


@pytest.mark.parametrize("kind, template", [(k, t) for k in PLUGIN_KINDS for t in TEMPLATES[k]])
def test_generated_files_are_valid_and_wired_to_the_entry_point(kind: str, template: str) -> None:
    files = plugin_files("my-thing", kind, template)
    assert set(files) == {
        "pyproject.toml",
        "README.md",
        "src/lossbench_my_thing/__init__.py",
        "src/lossbench_my_thing/plugin.py",
        "tests/test_lossbench_my_thing.py",
    }
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")  # raises SyntaxError on a broken template
        assert "$" not in text, f"unsubstituted placeholder in {path}"
    project = tomllib.loads(files["pyproject.toml"])
    assert project["project"]["name"] == "lossbench-my-thing"
    assert project["project"]["entry-points"]["lossbench"] == {"my-thing": "lossbench_my_thing.plugin"}
    plugin = files["src/lossbench_my_thing/plugin.py"]
    assert 'name = "my-thing"' in plugin and f"def register_{REGISTRY_KINDS[kind]}(register)" in plugin
    assert "lossbench.testing" in files["tests/test_lossbench_my_thing.py"]
    # the description is written once, in the plugin class; nothing else repeats or paraphrases it
    assert [path for path, text in files.items() if DESCRIPTIONS[template] in text] == [
        "src/lossbench_my_thing/plugin.py"
    ]
    assert plugin.count(DESCRIPTIONS[template]) == 1
    assert "MyThing" in plugin and "my-thing" in files["README.md"]


def test_templates_differ_and_a_wrong_one_is_one_line(cli, workdir: Path) -> None:
    plugins = {
        template: plugin_files("mine", "loss", template)["src/lossbench_mine/plugin.py"]
        for template in TEMPLATES["loss"]
    }
    assert "F.relu(1 - real_scores)" in plugins["hinge"] and "F.softplus(-real_scores)" in plugins["nonsaturating"]
    assert "def penalty(" in plugins["wasserstein"] and "scores_are_logits = False" in plugins["wasserstein"]
    result = cli("new-plugin", "mine", "--kind", "model", "--template", "wasserstein")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --template 'wasserstein' is not a model template; use one of mlp"
    ]
    assert list(workdir.iterdir()) == []
    made = cli("new-plugin", "mine", "--template", "wasserstein")
    assert made.exit_code == 0 and "from the wasserstein template" in made.output


def test_new_plugin_refuses_to_overwrite_and_explains_in_one_line(cli, workdir: Path) -> None:
    existing = workdir / "lossbench-mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    result = cli("new-plugin", "mine")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: lossbench-mine already exists; remove it or choose another name or --dir (nothing was written)"
    ]
    assert [p.name for p in existing.iterdir()] == ["notes.txt"] and (existing / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["hinge"],
            "Error: a loss called 'hinge' is already registered (see `lossbench list losses`); choose another name",
        ),
        (["Bad_Name"], "Error: plugin name 'Bad_Name' is not a lowercase slug like 'my-loss' (letters, digits, '-')"),
        (
            ["mlp", "--kind", "model"],
            "Error: a model called 'mlp' is already registered (see `lossbench list models`); choose another name",
        ),
    ],
)
def test_new_plugin_rejects_bad_or_taken_names(cli, workdir: Path, args: list[str], message: str) -> None:
    result = cli("new-plugin", *args)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message]
    assert list(workdir.iterdir()) == []


def test_new_plugin_dir_option_and_next_steps(cli, workdir: Path) -> None:
    result = cli("new-plugin", "soft-hinge", "--dir", "packages")
    assert result.exit_code == 0, result.output
    folder = workdir / "packages" / "lossbench-soft-hinge"
    assert (folder / "src" / "lossbench_soft_hinge" / "plugin.py").read_text().count("class SoftHingeLoss(") == 1
    assert "pip install -e packages/lossbench-soft-hinge" in result.output


def test_create_plugin_errors_are_lossbench_errors() -> None:
    with pytest.raises(ScaffoldError, match="--kind 'optimizer' is not a plugin kind"):
        create_plugin("x", "optimizer")
