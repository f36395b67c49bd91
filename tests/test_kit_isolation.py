"""The test kit does not depend on the machine: built-ins plus exactly the plugins under test, unless asked."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from lossbench.testing import ConformanceError, smoke_run

MINE = textwrap.dedent('''
    import torch.nn.functional as F
    from lossbench import AdversarialLoss, hookimpl

    class Mine(AdversarialLoss):
        """Non-saturating loss under the name the test uses."""
        name = "mine"
        def discriminator_loss(self, real_scores, fake_scores):
            return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        def generator_loss(self, fake_scores, real_scores):
            return F.softplus(-fake_scores).mean()

    @hookimpl
    def register_losses(register):
        register(Mine())
''')

GRID = dict(losses=["mine"], models=["mlp"], datasets=["ring8"])


def import_file(path: Path, name: str):
    """Import a plugin file the way an author's test might (``spec_from_file_location``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def installed_rival(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed distribution (a real .dist-info on sys.path) whose entry point also registers loss 'mine'."""
    site = tmp_path / "site"
    (site / "rival-0.3.dist-info").mkdir(parents=True)
    (site / "rival-0.3.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: rival\nVersion: 0.3\n")
    (site / "rival-0.3.dist-info" / "entry_points.txt").write_text("[lossbench]\nrival = rival_plugin\n")
    (site / "rival_plugin.py").write_text(MINE.replace("Non-saturating", "A rival"))
    monkeypatch.syspath_prepend(str(site))
    yield "rival"
    sys.modules.pop("rival_plugin", None)


def test_unrelated_plugins_of_the_machine_do_not_reach_a_smoke_run(
    workdir: Path, tmp_path: Path, installed_rival, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "broken.py").write_text("raise RuntimeError('not mine')\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "also_broken.py").write_text("import nonexistent_package\n")
    monkeypatch.setenv("LOSSBENCH_PLUGINS_DIR", str(elsewhere))
    (tmp_path / "mine_plugin.py").write_text(MINE)
    module = import_file(tmp_path / "mine_plugin.py", "mine_plugin")

    result = smoke_run(**GRID, modules=[module], results_dir=tmp_path / "r1")
    assert result.statuses == {"ok": 1} and result.problems == [] and result.other_problems == []

    # the environment back: the rival registers 'mine' first, which concerns the plugin under test
    with pytest.raises(
        ConformanceError,
        match=r"plugin problems: plugin 'mine_plugin': loss 'mine' is already "
        r"registered by plugin 'rival'",
    ):
        smoke_run(**GRID, modules=[module], environment=True, results_dir=tmp_path / "r2")

    # ... while problems of plugins that are not under test are kept aside and never fail the run
    kept = smoke_run(losses=["mine"], models=["mlp"], datasets=["ring8"], environment=True, results_dir=tmp_path / "r3")
    assert kept.statuses == {"ok": 1} and kept.problems == []
    assert [p.split(":")[0] for p in kept.other_problems] == ["plugin 'also_broken'"]


def test_a_named_entry_point_is_under_test(tmp_path: Path, installed_rival, workdir: Path) -> None:
    result = smoke_run(**GRID, entry_points=[installed_rival], results_dir=tmp_path / "r")
    assert result.statuses == {"ok": 1}
    with pytest.raises(ConformanceError, match=r"plugin 'absent': no installed entry point of this name .*rival"):
        smoke_run(**GRID, entry_points=["absent"], results_dir=tmp_path / "r2")


@pytest.mark.parametrize("environment", [False, True])
def test_a_module_also_loaded_from_the_plugins_folder_is_registered_once(workdir: Path, environment: bool) -> None:
    (workdir / "plugins").mkdir()
    path = workdir / "plugins" / "mine.py"
    path.write_text(MINE)
    module = import_file(path, "mine")  # the test imports the file that ./plugins also holds
    result = smoke_run(
        **GRID,
        modules=[module],
        plugins_dir=None if environment else "plugins",
        environment=environment,
        results_dir=workdir / "results",
    )
    assert result.statuses == {"ok": 1} and result.problems == []
