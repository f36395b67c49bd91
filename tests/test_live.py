"""Live logging: the ``run_logged`` hook (batched on the run's schedule, in the process that trains the run), the
built-in TensorBoard logger read back with TensorBoard's own event reader, and one progress line per finished run
when stderr is not a terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from lossbench.cli import main
from lossbench.jobs.progress import RunLines, clock_text
from lossbench.plugin import live
from lossbench.results.store import Store

STEPS = 60  # smoke preset: a history row at step 1 and every 10 steps, a light evaluation at 20 and 40
RECORDER = """
import json, os
from lossbench import hookimpl

@hookimpl
def run_logged(batch):
    with open(os.environ["RECORD_TO"], "a") as out:
        out.write(json.dumps({"pid": os.getpid(), "run_id": batch["run_id"], "label": batch["label"],
                              "step": batch["step"], "final": batch["final"], "status": batch["status"],
                              "rows": batch["history"]["step"].tolist(), "curves": batch["curves"]["step"].tolist(),
                              "metrics": batch["metrics"]}) + "\\n")
"""
RUN = [
    "run",
    "--preset",
    "smoke",
    "--steps",
    str(STEPS),
    "-l",
    "nonsaturating",
    "-m",
    "mlp",
    "-d",
    "ring8",
    "--device",
    "cpu",
    "--no-report",
]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine, executor",
    [(["--no-vectorise"], "processes"), ([], "serial")],  # stacked: the two runs are one group, trained in the driver
    ids=["sequential", "stacked"],
)
def test_run_logged_gets_batches_on_the_schedule_in_the_training_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: list[str], executor: str
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "recorder.py").write_text(RECORDER)
    record = tmp_path / "batches.jsonl"
    monkeypatch.setenv("LOSSBENCH_RECORD_TO", str(record))  # LOSSBENCH_* reaches the workers
    monkeypatch.setenv("RECORD_TO", str(record))
    code, output = invoke(
        *RUN, "--seeds", "0,1", "--workers", "2", *engine, "--results", str(tmp_path / "results"),
        "--plugins-dir", str(plugins),
    )  # fmt: skip
    assert code == 0, output
    batches = [json.loads(line) for line in record.read_text().splitlines()]
    with Store.open(tmp_path / "results", create=False) as store:
        history, metrics, runs = store.history(), store.metrics(), store.runs()
    environments = dict(zip(runs["run_id"], runs["environment_json"].map(json.loads)))
    for run_id in history["run_id"].unique():
        mine = [b for b in batches if b["run_id"] == run_id]
        assert environments[run_id]["executor"] == executor
        trained_in = environments[run_id].get("worker_pid", os.getpid())  # a worker, or the driver itself
        assert {b["pid"] for b in mine} == {trained_in}
        assert [b["step"] for b in mine] == [20, 40, STEPS]  # each light evaluation, then the end
        assert [b["final"] for b in mine] == [False, False, True] and mine[-1]["status"] == "ok"
        assert [b["status"] for b in mine[:-1]] == ["running", "running"]
        sent = [step for b in mine for step in b["rows"]]
        assert sent == history.loc[history["run_id"] == run_id, "step"].tolist()  # every row once, in order
        assert mine[0]["rows"] == [1, 10, 20] and mine[-1]["rows"] == [50, 60]
        assert sorted({s for b in mine for s in b["curves"]}) == [20, 40]
        stored = metrics[(metrics["run_id"] == run_id) & metrics["value"].notna()].set_index("key")["value"]
        assert mine[-1]["metrics"]["fid"] == pytest.approx(stored["fid"])
    lines = [line for line in output.splitlines() if line.startswith("[")]  # stderr is not a terminal here
    assert [line.split()[0] for line in lines] == ["[1/2]", "[2/2]"]
    # ring8 is a mixture scored in raw coordinates: its protocol's modes covered leads, as on the leaderboard
    assert all(" ok, modes_covered " in line and " · elapsed " in line and ", ETA " in line for line in lines)
    assert lines[-1].endswith("ETA 0:00:00")


@pytest.mark.slow
def test_tensorboard_logger_writes_one_folder_per_run_that_tensorboard_reads(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    code, output = invoke(
        *RUN,
        "--seeds",
        "3",
        "--workers",
        "1",
        "--results",
        str(tmp_path / "results"),
        "--plugins-dir",
        str(tmp_path),
        "--log",
        "tensorboard",
        "--log-dir",
        str(logs),
    )
    assert code == 0, output
    with Store.open(tmp_path / "results", create=False) as store:
        runs, history, metrics = store.runs(), store.history(), store.metrics()
    run_id = runs["run_id"].iloc[0]
    folders = [p.name for p in logs.iterdir()]
    assert folders == [f"ring8_mlp_nonsaturating_seed3-{run_id}"]
    events = EventAccumulator(str(logs / folders[0]))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/d_loss", "train/g_loss", "final/fid"} <= scalars
    d_loss = events.Scalars("train/d_loss")
    assert [e.step for e in d_loss] == history["step"].tolist()
    assert [e.value for e in d_loss] == pytest.approx(history["d_loss"].tolist(), rel=1e-6)
    fid = metrics[(metrics["key"] == "fid")]["value"].iloc[0]
    assert [(e.step, e.value) for e in events.Scalars("final/fid")] == [(STEPS, pytest.approx(fid, rel=1e-6))]
    assert os.environ.get(live.LOG_ENV) is None  # the choice ends with the command
    assert f"live logs (tensorboard): {logs}" in output


def test_unknown_logger_and_a_lone_log_dir_are_one_line_errors(tmp_path: Path) -> None:
    code, output = invoke(*RUN, "--seeds", "0", "--log", "tensorbord", "--results", str(tmp_path / "r"))
    assert code == 2 and "unknown --log logger 'tensorbord'; did you mean 'tensorboard'?" in output
    code, output = invoke(*RUN, "--seeds", "0", "--log-dir", str(tmp_path), "--results", str(tmp_path / "r"))
    assert code == 2 and "--log-dir goes with --log NAME" in output
    assert "Traceback" not in output


def test_progress_lines_count_runs_and_extrapolate_the_eta() -> None:
    now = [100.0]
    lines: list[str] = []
    progress = RunLines(4, lines.append, clock=lambda: now[0])
    spec = SimpleNamespace(label="ring8/mlp/hinge/seed0")
    now[0] = 130.0  # first run done after 30 s: three left at 30 s each
    progress.finished(
        SimpleNamespace(
            spec=spec,
            status="ok",
            reason="",
            metrics={"fid": 0.123456, "kid": 1.0},
            texts={"fid_features": "inception-v3-pool3"},
        )
    )
    now[0] = 3700.0
    progress.finished(SimpleNamespace(spec=spec, status="failed", reason="ValueError: boom", metrics={}, texts={}))
    assert lines == [
        "[1/4] ring8/mlp/hinge/seed0 ok, fid 0.1235 · elapsed 0:00:30, ETA 0:01:30",
        "[2/4] ring8/mlp/hinge/seed0 failed: ValueError: boom · elapsed 1:00:00, ETA 1:00:00",
    ]
    assert clock_text(59.6) == "0:01:00"


def test_hook_caller_is_none_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    from lossbench.plugin.loader import PluginConfig, load_environment

    monkeypatch.delenv(live.LOG_ENV, raising=False)
    env = load_environment(PluginConfig(entry_points=False, default_folders=False))
    assert env.catalog.live is None  # the built-in TensorBoard logger listens only when chosen
    monkeypatch.setenv(live.LOG_ENV, "tensorboard")
    env = load_environment(PluginConfig(entry_points=False, default_folders=False))
    assert env.catalog.live is not None
