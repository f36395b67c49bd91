"""The CLI answers at once: what ``lossbench --help`` and ``lossbench show`` need is imported without torch.

Each check runs a fresh interpreter (an import already made by this pytest session would hide one) and reads its
``sys.modules`` afterwards. Speed itself is measured by benchmarks/cli_latency.py, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossbench.plan.grid import RunSpec
from lossbench.records import RunResult
from lossbench.results.store import Store

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "scipy", "matplotlib", "seaborn", "sklearn", "torchvision", "pytorch_fid")
PROBE = """
import json, runpy, sys
args = sys.argv[1:]
if args[0] == "--import":
    for name in args[1:]:
        __import__(name)
else:
    sys.argv = ["lossbench", *args]
    try:
        runpy.run_module("lossbench.cli", run_name="__main__")
    except SystemExit as exit:
        if exit.code:
            raise
print("\\n#loaded " + json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded(*args: str, cwd: Path = REPO) -> set[str]:
    """Top-level packages in ``sys.modules`` of a fresh interpreter after ``--import MODULE...``/``lossbench ARGS``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.rsplit("#loaded ", 1)[1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(modules.intersection(HEAVY))


def test_the_cli_module_imports_nothing_heavy() -> None:
    assert heavy(loaded("--import", "lossbench.cli")) == []


@pytest.mark.parametrize("args", [["--help"], ["show", "--help"], ["report", "--help"], ["run", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    assert heavy(loaded(*args)) == []


def test_the_pytest_plugin_imports_nothing_heavy() -> None:
    """lossbench.testing is loaded into every pytest session where lossbench is installed (entry point pytest11)."""
    assert heavy(loaded("--import", "lossbench.testing")) == []


def test_a_pytest_session_with_the_plugin_loaded_imports_nothing_heavy(tmp_path: Path) -> None:
    """pytest registers the plugin (entry point ``lossbench``, installed with lossbench) by reading its attributes:
    that must not load the helpers (and torch)."""
    (tmp_path / "test_light.py").write_text(
        "import sys\n\n\n"
        "def test_light(pytestconfig):\n"
        "    assert pytestconfig.pluginmanager.get_plugin('lossbench').__name__ == 'lossbench.testing'\n"
        f"    assert sorted(set({HEAVY!r}).intersection(m.split('.')[0] for m in sys.modules)) == []\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_light.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_plugin_api_and_the_package_import_without_torch() -> None:
    assert "torch" not in loaded(
        "--import",
        "lossbench",
        "lossbench.api",
        "lossbench.hookspecs",
        "lossbench.plugin.registry",
        "lossbench.plan.grid",
    )


def test_records_store_and_tables_import_without_torch() -> None:
    modules = loaded("--import", "lossbench.records", "lossbench.results.store", "lossbench.results.tables")
    assert "torch" not in modules and "pandas" in modules  # the probe sees what these modules do import


def test_public_names_still_import_from_the_package() -> None:
    """The lazy re-exports give the same objects as their modules, ``lossbench.testing``'s helpers too."""
    import lossbench
    import lossbench.testing
    from lossbench import AdversarialLoss, EvaluationContext, RunSpec as Spec, hookimpl
    from lossbench.api import AdversarialLoss as Defined, hookimpl as defined_hookimpl
    from lossbench.authoring.conformance import check_loss
    from lossbench.scoring.evaluate import EvaluationContext as Context

    assert AdversarialLoss is Defined and hookimpl is defined_hookimpl and EvaluationContext is Context
    assert Spec is RunSpec and lossbench.testing.check_loss is check_loss
    assert set(lossbench.__all__) <= set(dir(lossbench))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lossbench.Nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lossbench.testing.nope  # noqa: B018


@pytest.fixture(scope="module")
def hand_made_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two losses x two seeds of one higher-is-better key, its direction stored with the runs as training does."""
    results = tmp_path_factory.mktemp("imports") / "results"
    directions = json.dumps({"modes_covered": "higher"})
    with Store.open(results) as store:
        for loss, covered in (("nonsaturating", 3.0), ("lsgan", 7.0)):
            for seed in (0, 1):
                spec = RunSpec(loss, "mlp", "ring8", seed, 10, 8, 5, 5, 10, 10)
                store.commit(
                    RunResult(
                        spec, "ok", metrics={"modes_covered": covered + seed}, texts={"modes_directions": directions}
                    )
                )
    return results


@pytest.mark.parametrize("args", [[], ["--json"], ["--runs"], ["--format", "latex"]])
def test_show_reads_a_store_without_torch(hand_made_store: Path, args: list[str]) -> None:
    found = heavy(loaded("show", "--results", str(hand_made_store), *args, cwd=hand_made_store.parent))
    # the tables; the paired tests of a few seeds are enumerated without scipy; no torch, no plotting
    assert set(found) <= {"pandas"}, found


def test_show_ranks_by_the_directions_stored_with_the_runs(hand_made_store: Path) -> None:
    """No plugin is loaded: a higher-is-better key ranks the highest first, from the store alone."""
    from click.testing import CliRunner

    from lossbench.cli import main

    shown = CliRunner().invoke(main, ["show", "--results", str(hand_made_store), "--json"], catch_exceptions=False)
    rows = {row["loss"]: row for row in json.loads(shown.output) if row["metric"] == "modes_covered"}
    assert rows["lsgan"]["rank"] == 1 and rows["nonsaturating"]["rank"] == 2  # lsgan's 7, 8 beat 3, 4
    assert rows["lsgan"]["mean"] == 7.5 and rows["lsgan"]["better"] == "higher"
