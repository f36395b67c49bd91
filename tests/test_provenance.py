"""Results tied to the code that made them: provenance, stale runs retrained (old records kept), checkpoints,
rescore."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from lossbench import __version__
from lossbench.plugin import provenance
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.results.store import Store
from lossbench.training.train import generate, sampling_network

LOSS = '''
import torch.nn.functional as F
from lossbench import AdversarialLoss, hookimpl

class Mine(AdversarialLoss):
    """A softplus hinge whose margin is edited by the test."""
    name = "mine"
    margin = MARGIN

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(self.margin - real_scores).mean() + F.softplus(self.margin + fake_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        return -fake_scores.mean()

@hookimpl
def register_losses(register):
    register(Mine())
'''

METRIC = '''
import numpy as np
from lossbench import Metric, hookimpl

class MeanShift(Metric):
    """Distance between the means of the real and generated features."""
    name = "meanshift"
    better = {"meanshift": "lower"}

    def compute(self, ctx):
        real, fake = ctx.features()
        return {"meanshift": float(np.linalg.norm(real.mean(0) - fake.mean(0))), "meanshift_n": float(len(fake))}

@hookimpl
def register_metrics(register):
    register(MeanShift())
'''

GRID = [
    "run",
    "-l",
    "mine",
    "-l",
    "nonsaturating",
    "-m",
    "mlp",
    "-d",
    "ring8",
    "--preset",
    "smoke",
    "--seeds",
    "0",
    "--no-report",
]


def write_loss(folder: Path, margin: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "mine.py"
    path.write_text(LOSS.replace("MARGIN", margin), encoding="utf-8")
    return path


def file_hash(path: Path) -> str:
    """The documented hash of a single-file plugin: sha256 over its name, a NUL, its bytes and a NUL."""
    return hashlib.sha256(path.name.encode() + b"\0" + path.read_bytes() + b"\0").hexdigest()[:16]


def test_edited_plugin_is_retrained_and_the_old_record_kept(cli, workdir: Path) -> None:
    path = write_loss(workdir / "plugins", "1.0")
    first = cli(*GRID)
    assert first.exit_code == 0, first.output
    with Store.open(workdir / "results") as store:
        recorded = store.provenances()
        old = store.runs_wide().set_index("loss")
    mine_id = old.loc["mine", "run_id"]
    assert recorded[mine_id]["loss"] == {"name": "mine", "plugin": "mine", "source": file_hash(path)}
    assert recorded[mine_id]["model"] == {
        "name": "mlp",
        "plugin": "lossbench.builtin.models",
        "distribution": "lossbench",
        "version": __version__,
    }
    assert recorded[mine_id]["lossbench"] == __version__

    same = cli(*GRID)
    assert "0 to train, 2 already stored (resumed)" in same.output and "other code" not in same.output

    write_loss(workdir / "plugins", "2.0")
    kept = cli(*GRID, "--reuse-stale")
    assert kept.exit_code == 0, kept.output
    assert (
        "warning: 1 stored run came from other code (loss 'mine': source changed): kept because of --reuse-stale"
    ) in kept.output
    assert "0 to train, 2 already stored" in kept.output

    edited = cli(*GRID)
    assert edited.exit_code == 0, edited.output
    assert (
        "1 stored run came from other code (loss 'mine': source changed): retraining them (the old records "
        "are kept as superseded); --reuse-stale keeps them"
    ) in edited.output
    assert "2 runs in the grid: 1 to train, 1 already stored (resumed)" in edited.output
    with Store.open(workdir / "results") as store:
        new = store.runs_wide().set_index("loss")
        superseded = store.superseded()
        assert store.provenances()[mine_id]["loss"]["source"] == file_hash(path)
    assert len(new) == 2  # readers see the current runs only
    assert new.loc["mine", "fid"] != old.loc["mine", "fid"]  # the margin changed the training
    assert new.loc["nonsaturating", "fid"] == old.loc["nonsaturating", "fid"]
    assert superseded[["run_id", "reason"]].values.tolist() == [[mine_id, "stale: loss 'mine': source changed"]]
    assert json.loads(superseded.loc[0, "provenance_json"])["loss"]["source"] == recorded[mine_id]["loss"]["source"]
    with sqlite3.connect(workdir / "results" / "lossbench.db") as connection:
        generation = int(superseded.loc[0, "generation"])
        old_fid = connection.execute(
            "SELECT value FROM superseded_metrics WHERE generation = ? AND key = 'fid'", (generation,)
        ).fetchone()[0]
        old_steps = connection.execute(
            "SELECT COUNT(*) FROM superseded_history WHERE generation = ?", (generation,)
        ).fetchone()[0]
    assert old_fid == old.loc["mine", "fid"] and old_steps == 5  # steps 1, 10, 20, 30, 40 of the smoke preset
    assert len(pd.read_csv(workdir / "results" / "runs.csv")) == 2

    shown = cli("show", "--runs")
    assert shown.exit_code == 0, shown.output
    assert f"loss mine: mine, source {file_hash(path)[:8]}" in shown.output
    assert f"model mlp: lossbench {__version__}" in shown.output
    assert "(1 superseded record(s) of runs trained again are kept in the store)" in shown.output
    as_json = json.loads(cli("show", "--runs", "--json").output)
    assert {row["provenance"]["loss"]["name"] for row in as_json} == {"mine", "nonsaturating"}

    listed = {p["name"]: p for p in json.loads(cli("plugins", "--json").output)["plugins"]}
    assert (
        listed["mine"]["source_hash"] == file_hash(path) and listed["lossbench.builtin.losses"]["source_hash"] is None
    )
    assert f"  source hash: {file_hash(path)} (stored with every run it takes part in)" in cli("plugins").output

    report = cli("report")
    assert report.exit_code == 0, report.output
    html = (workdir / "reports" / "runs" / f"{mine_id}.html").read_text(encoding="utf-8")  # the run's own page
    assert f"loss mine: mine, source {file_hash(path)[:8]}" in html


def test_run_finished_hooks_receive_the_provenance_that_is_stored(
    cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_loss(workdir / "plugins", "1.0")
    (workdir / "plugins" / "logger.py").write_text(
        "import json, os\nfrom lossbench import hookimpl\n\n@hookimpl\ndef run_finished(record):\n"
        "    with open(os.environ['CODE_LOG'], 'a') as log:\n"
        "        log.write(json.dumps([record['run_id'], record['provenance']]) + '\\n')\n"
    )
    monkeypatch.setenv("CODE_LOG", str(workdir / "code.jsonl"))
    assert cli(*GRID).exit_code == 0
    logged = dict(json.loads(line) for line in (workdir / "code.jsonl").read_text().splitlines())
    with Store.open(workdir / "results") as store:
        assert logged == store.provenances()
    assert {entry["loss"]["name"]: entry["loss"].get("source") for entry in logged.values()} == {
        "mine": file_hash(path),
        "nonsaturating": None,
    }
    assert set(next(iter(logged.values()))["metrics"]) == {"fid", "kid", "prdc", "modes", "stability", "target"}


def test_a_store_without_provenance_is_migrated_and_its_runs_are_kept(cli, workdir: Path) -> None:
    write_loss(workdir / "plugins", "1.0")
    assert cli(*GRID).exit_code == 0
    db = workdir / "results" / "lossbench.db"
    with sqlite3.connect(db) as connection:  # the store as the lossbench before provenance wrote it
        for table in (
            "provenance",
            "checkpoints",
            "superseded_runs",
            "superseded_metrics",
            "superseded_history",
            "superseded_curves",
            "superseded_samples",
        ):
            connection.execute(f"DROP TABLE {table}")
    with Store.open(workdir / "results") as store:
        assert len(store.runs()) == 2 and store.provenances() == {} and store.superseded().empty
    again = cli(*GRID)
    assert again.exit_code == 0, again.output
    assert "2 stored runs came from other code (no provenance recorded (stored by an older lossbench))" in again.output
    with Store.open(workdir / "results") as store:
        assert len(store.superseded()) == 2 and len(store.provenances()) == 2 and len(store.runs()) == 2


def test_checkpoint_is_content_addressed_and_reproduces_the_stored_samples(cli, workdir: Path) -> None:
    result = cli(
        "run", "-l", "nonsaturating", "-m", "mlp", "-d", "ring8", "--preset", "smoke", "--seeds", "0", "--no-report"
    )
    assert result.exit_code == 0, result.output
    env = load_environment(PluginConfig())
    with Store.open(workdir / "results") as store:
        run_id = store.runs().loc[0, "run_id"]
        path = store.checkpoint_path(run_id)
        samples = store.samples(run_id)
        spec = store.spec(run_id)
    data = path.read_bytes()
    assert path.name == hashlib.sha256(data).hexdigest() + ".pt"
    assert len(data) < 200_000  # the generator only: small
    model = env.catalog.models.get("mlp").build(env.catalog.datasets.get("ring8").spec)
    sampling_network(model)[1].load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    from lossbench.plan import seeding

    fake = generate(
        model, len(samples), seeding.noise_seed(spec.seed, spec.model, spec.dataset, "eval"), torch.device("cpu")
    )
    assert torch.equal(fake.x, torch.from_numpy(samples))


def test_a_metric_added_after_a_grid_is_rescored_to_the_values_of_a_fresh_grid(cli, workdir: Path) -> None:
    grid = [
        "run",
        "-l",
        "nonsaturating",
        "-l",
        "wgan-gp",
        "-m",
        "mlp",
        "-d",
        "ring8",
        "--preset",
        "smoke",
        "--seeds",
        "0",
        "--no-report",
    ]
    plugins = workdir / "plugins"
    plugins.mkdir()
    assert cli(*grid).exit_code == 0
    (plugins / "meanshift.py").write_text(METRIC, encoding="utf-8")

    resumed = cli(*grid)
    assert (
        "2 stored runs lack metrics or were scored by other metric code (metric 'meanshift': not computed): "
        "`lossbench rescore` scores them without training"
    ) in resumed.output
    assert "0 to train, 2 already stored" in resumed.output

    rescored = cli("rescore", "--no-report")
    assert rescored.exit_code == 0, rescored.output
    assert "rescored 2 run(s), 0 skipped" in rescored.output
    assert "rescored 0 run(s)" in cli("rescore", "--no-report").output  # nothing missing any more
    assert "lack metrics" not in cli(*grid).output

    fresh = cli(*grid, "--results", "fresh")
    assert fresh.exit_code == 0, fresh.output
    columns = ["run_id", "loss", "meanshift", "meanshift_n", "meanshift_facts", "fid", "modes_covered"]
    after = pd.read_csv(workdir / "results" / "runs.csv")[columns]
    reference = pd.read_csv(workdir / "fresh" / "runs.csv")[columns]
    assert after["meanshift_n"].tolist() == [2500.0, 2500.0]  # the smoke preset's final samples (2,500: the protocol's)
    pd.testing.assert_frame_equal(after, reference)  # bit for bit, as the CSV writes them

    one = cli("rescore", "--metric", "meanshift", "--no-report")
    assert "rescored 2 run(s)" in one.output
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "results" / "runs.csv")[columns], reference)
    # an edited metric: the plan says so, and rescoring replaces its values (here: exactly doubled)
    (plugins / "meanshift.py").write_text(METRIC.replace("float(np.linalg.norm(", "2 * float(np.linalg.norm("))
    assert "(metric 'meanshift': source changed)" in cli(*grid).output
    assert "rescored 2 run(s)" in cli("rescore", "--no-report").output
    doubled = pd.read_csv(workdir / "results" / "runs.csv")
    assert (doubled["meanshift"] == 2 * reference["meanshift"]).all()
    assert (doubled["fid"] == reference["fid"]).all()
    unknown = cli("rescore", "--metric", "meanshfit")
    assert unknown.exit_code == 2 and "did you mean 'meanshift'" in unknown.output


def test_rescore_skips_runs_it_cannot_score_and_says_why(cli, workdir: Path) -> None:
    path = write_loss(workdir / "plugins", "1.0")
    assert cli(*GRID).exit_code == 0
    path.unlink()  # the loss is no longer registered
    with Store.open(workdir / "results") as store:
        ids = store.runs_wide().set_index("loss")["run_id"]
        (workdir / "results" / "checkpoints" / store.checkpoint_path(ids["nonsaturating"]).name).unlink()
    result = cli("rescore", "--metric", "modes", "--no-report")
    assert result.exit_code == 0, result.output
    assert f"skipped {ids['mine']}: unknown loss 'mine'" in result.output
    assert f"skipped {ids['nonsaturating']}: checkpoint " in result.output and " is missing" in result.output
    assert "rescored 0 run(s), 2 skipped" in result.output


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (None, {}, ["no provenance recorded (stored by an older lossbench)"]),
        (
            {
                "lossbench": "0.1.0",
                "loss": {"name": "a", "plugin": "p", "source": "1"},
                "model": {"name": "m"},
                "dataset": {"name": "d"},
            },
            {
                "lossbench": "0.2.0",
                "loss": {"name": "a", "plugin": "p", "source": "2"},
                "model": {"name": "m"},
                "dataset": {"name": "d"},
            },
            ["lossbench 0.1.0 -> 0.2.0", "loss 'a': source changed"],
        ),
        (
            {
                "lossbench": "1",
                "loss": {"name": "a", "plugin": "x", "distribution": "lossbench-a", "version": "0.1"},
                "model": {"name": "m"},
                "dataset": {"name": "d", "plugin": "p"},
            },
            {
                "lossbench": "1",
                "loss": {"name": "a", "plugin": "x", "distribution": "lossbench-a", "version": "0.2"},
                "model": {"name": "m"},
                "dataset": {"name": "d", "plugin": "q"},
            },
            ["loss 'a': version 0.1 -> 0.2", "dataset 'd': now from q, was p"],
        ),
    ],
)
def test_training_changes_name_what_differs(old, new, expected) -> None:
    assert provenance.training_changes(old, new) == expected


def test_metric_changes_and_reason_summary() -> None:
    old = {"metrics": {"fid": {"plugin": "b", "version": "1"}, "x": {"plugin": "x", "source": "1"}}}
    new = {
        "metrics": {"fid": {"plugin": "b", "version": "1"}, "x": {"plugin": "x", "source": "2"}, "y": {"plugin": "y"}}
    }
    assert provenance.metric_changes(old, new) == {"x": "source changed", "y": "not computed"}
    assert provenance.summarise_reasons([["a", "b"], ["b"], ["c"], ["d"]], limit=2) == "b; a; and 2 more"


def test_an_editable_install_is_identified_by_a_hash_of_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real dist-info on sys.path, marked editable by its PEP 610 direct_url.json, whose entry point is a module
    of a package: the hash covers the whole package (a helper module changes the plugin too)."""
    site = tmp_path / "site"
    info = site / "lossbench_edit-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lossbench-edit\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[lossbench]\nedit = edit_pkg.plugin\n")
    (info / "direct_url.json").write_text(json.dumps({"url": f"file://{tmp_path}", "dir_info": {"editable": True}}))
    package = site / "edit_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("MARGIN = 1.0\n")
    (package / "plugin.py").write_text(LOSS.replace("MARGIN", "1.0").replace('"mine"', '"edit"'))
    monkeypatch.syspath_prepend(str(site))

    def expected() -> str:
        digest = hashlib.sha256()
        for name in ("__init__.py", "helper.py", "plugin.py"):  # sorted paths relative to the package
            digest.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def origin() -> dict:
        env = load_environment(PluginConfig(default_folders=False))
        return provenance.ProvenanceIndex(env).origin("loss", "edit").as_dict()

    try:
        first = origin()
        assert first == {"plugin": "edit", "distribution": "lossbench-edit", "version": "0.1.0", "source": expected()}
        (package / "helper.py").write_text("MARGIN = 2.0\n")
        assert origin()["source"] == expected() != first["source"]
    finally:
        for name in ("edit_pkg", "edit_pkg.plugin"):
            sys.modules.pop(name, None)


def test_a_read_only_older_store_is_still_read(cli, workdir: Path) -> None:
    assert (
        cli(
            "run", "-l", "nonsaturating", "-m", "mlp", "-d", "ring8", "--preset", "smoke", "--seeds", "0", "--no-report"
        ).exit_code
        == 0
    )
    db = workdir / "results" / "lossbench.db"
    with sqlite3.connect(db) as connection:
        for table in (
            "provenance",
            "checkpoints",
            "superseded_runs",
            "superseded_metrics",
            "superseded_history",
            "superseded_curves",
            "superseded_samples",
        ):
            connection.execute(f"DROP TABLE {table}")
    store = Store(db, sqlite3.connect(f"file:{db}?mode=ro", uri=True))  # a real read-only connection
    try:
        store._ensure_extensions()
        assert store.extensions is False
        assert store.provenances() == {} and store.superseded().empty and len(store.runs()) == 1
        assert store.checkpoint_path(store.runs().loc[0, "run_id"]) is None
    finally:
        store.close()
    with Store.open(workdir / "results") as writable:  # the next writable open migrates it
        assert writable.extensions is True and writable.provenances() == {}
