"""Local worker processes (--workers N): bitwise the serial results, failures isolated, progress forwarded."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from scale_helpers import (
    BOOM_REASON,
    OK_LOSSES,
    SMOKE,
    assert_bitwise_equal,
    environments,
    serial_reference,
    tables,
    write_failing_plugin,
)

from lossbench.executors.common import ThrottledProgress, portable_config
from lossbench.executors.local import describe_exit, run_processes
from lossbench.jobs.driver import GridListener, GridOptions, run_grid
from lossbench.plan import seeding
from lossbench.plan.grid import expand
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.training.stacked_plan import plan_groups


class Recorder(GridListener):
    def __init__(self) -> None:
        self.steps: list[tuple[str, int]] = []
        self.finished_ids: list[str] = []

    def step(self, spec, step: int) -> None:
        self.steps.append((spec.run_id, step))

    def finished(self, result) -> None:
        self.finished_ids.append(result.run_id)


def test_two_workers_store_bitwise_the_serial_results(workdir: Path) -> None:
    serial, plugins = serial_reference()
    config = PluginConfig(plugins_dir=plugins)
    listener = Recorder()
    outcome = run_grid(
        load_environment(config),
        config,
        GridOptions(losses=[*OK_LOSSES, "boom"], results=workdir / "results", workers=2, **SMOKE),
        listener,
    )

    assert outcome.counts == {"ok": 4, "failed": 2}
    runs = tables(workdir / "results")["runs"]
    ok_ids = set(runs.loc[runs["status"] == "ok", "run_id"])
    assert len(ok_ids) == 4
    assert_bitwise_equal(serial, workdir / "results", set(runs["run_id"]))
    assert set(runs.loc[runs["loss"] == "boom", "reason"]) == {BOOM_REASON}

    # the runs ran in worker processes, one thread each, and reported their steps back to the driver
    envs = environments(workdir / "results")
    assert {envs[run_id]["executor"] for run_id in ok_ids} == {"processes"}
    assert all(envs[run_id]["worker_pid"] != os.getpid() for run_id in ok_ids)
    assert {envs[run_id]["run_threads"] for run_id in ok_ids} == {1}
    assert {envs[run_id]["torch_threads"] for run_id in ok_ids} == {1}
    assert {run_id for run_id, _step in listener.steps} >= ok_ids
    assert {(run_id, 40) for run_id in ok_ids} <= set(listener.steps)  # the last step is always forwarded
    assert sorted(listener.finished_ids) == sorted(runs["run_id"])
    serial_envs = environments(serial)
    assert {serial_envs[run_id]["executor"] for run_id in ok_ids} == {"serial"}


@pytest.mark.parametrize("stacked", [False, True], ids=["sequential", "stacked"])
def test_a_worker_that_dies_fails_only_its_run(workdir: Path, stacked: bool) -> None:
    # stacked: the crash takes its group's worker; its groupmates train again as stacks of one, whose bits are
    # those of the group (the reference trains them in a group of two)
    serial, plugins = serial_reference(stacked)
    config = PluginConfig(plugins_dir=plugins)
    catalog = load_environment(config).catalog
    crash = expand(catalog, losses=["crash"], **{**SMOKE, "seeds": [0]}).specs
    ok = expand(catalog, losses=["nonsaturating"], **SMOKE).specs
    groups = plan_groups([*crash, *ok], catalog, None, workers=2, where_it_pays=True) if stacked else None
    if stacked:
        assert sorted(len(g) for g in groups) == [3]  # one recipe: the crash shares the group
    results = {r.run_id: r for r in run_processes([*crash, *ok], config, workers=2, groups=groups)}

    assert len(results) == 3
    assert results[crash[0].run_id].status == "failed"
    assert results[crash[0].run_id].reason == "worker process died while running it (exit code 3)"
    from lossbench.results.store import Store

    with Store.open(workdir / "results") as store:
        for result in results.values():
            store.commit(result)
    assert_bitwise_equal(serial, workdir / "results", {spec.run_id for spec in ok})


def test_runs_pin_their_threads_whatever_the_process_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with seeding.pinned_threads(1):
        assert torch.get_num_threads() == 1
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and set(blas) == {1}
    assert torch.get_num_threads() == before

    monkeypatch.setenv(seeding.RUN_THREADS_ENV, "3")
    assert seeding.run_threads() == 3
    monkeypatch.setenv(seeding.RUN_THREADS_ENV, "many")
    from lossbench.errors import UsageError

    with pytest.raises(UsageError, match="LOSSBENCH_RUN_THREADS='many'"):
        seeding.run_threads()


def test_throttled_progress_sends_first_and_last_steps() -> None:
    from lossbench.plan.grid import RunSpec

    spec = RunSpec(
        "l", "m", "d", 0, steps=100, batch_size=8, log_every=1, eval_every=50, eval_samples=8, final_samples=8
    )
    sent: list[int] = []
    progress = ThrottledProgress(lambda _run_id, step: sent.append(step), interval=3600)
    for step in range(1, 101):
        progress(spec, step)
    assert sent == [1, 100]
    every = ThrottledProgress(lambda _run_id, step: sent.append(step), interval=0)
    sent.clear()
    for step in (1, 2, 3):
        every(spec, step)
    assert sent == [1, 2, 3]


def test_worker_config_is_absolute_and_carries_blocked_plugins(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_failing_plugin(workdir / "plugins")
    monkeypatch.setenv("LOSSBENCH_DISABLE_PLUGINS", "ragan")
    portable = portable_config(PluginConfig())  # ./plugins, found from the driver's cwd
    assert portable.plugins_dir == (workdir / "plugins").resolve() and portable.plugins_dir.is_absolute()
    assert portable.disabled == frozenset({"ragan"})
    assert portable_config(PluginConfig(plugins_dir=Path("plugins"))).plugins_dir == (workdir / "plugins").resolve()


def test_exit_codes_are_described() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL (out of memory?)"
    assert describe_exit(None) == "exit status unknown"
