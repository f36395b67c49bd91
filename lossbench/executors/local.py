"""Runs on this machine: in the driver (serial) or in local worker processes (Ray tasks: ``executors.ray``).

Whatever the executor, results come back to the driver, which alone writes the store, and every run goes through
``train.run_safely``. Worker processes are spawned (not forked) so that threads and CUDA start clean, and they
rebuild the plugin catalog from a picklable ``PluginConfig`` made portable by ``portable_config``.

Threads. How many intra-op threads a run uses changes how MKL/oneDNN/OpenBLAS split float reductions, so a count
derived from the executor (cores // workers) would make serial, ``--workers`` and Ray results of one RunSpec
differ. ``run_safely`` therefore pins every run to ``seeding.run_threads()`` threads, a constant (1 unless
``$LOSSBENCH_RUN_THREADS`` says otherwise, recorded with each run), in torch and in the BLAS libraries alike: one
RunSpec gives bitwise-identical results whatever executes it on the CPU. One thread is also the fast choice for
the models of a grid (two one-thread runs side by side beat one two-thread run, see docs/architecture.md, and on a busy
machine a two-thread run can be many times slower still), so cores are shared out by running runs side by side:
``--workers N`` gives each of its N processes one run, hence ``run_threads()`` threads, at a time.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from lossbench.executors.common import (
    POLL_SECONDS,
    Task,
    ThrottledProgress,
    failed,
    forwarded_environment,
    portable_config,
    warm_up,
)
from lossbench.plan import seeding
from lossbench.plan.grid import RunSpec
from lossbench.plugin.loader import Environment, PluginConfig, load_environment
from lossbench.records import RunResult
from lossbench.training import stacked
from lossbench.training.train import ProgressCallback, run_safely

# -- serial -------------------------------------------------------------------------------------------------------


def run_serial(
    specs: Sequence[RunSpec],
    env: Environment,
    progress: ProgressCallback | None = None,
    groups: Sequence[Sequence[RunSpec]] | None = None,
) -> Iterator[RunResult]:
    """Each run in turn in this process, reporting the current run's step through ``progress``; with ``groups``
    (``--vectorise``) each group trained stacked, its members' results handed on as each is final."""
    if specs:
        warm_up()
    if groups is not None:
        for group in groups:
            for result in stacked.iter_group(group, env.catalog, progress):
                result.environment["executor"] = "serial"
                yield result
        return
    for spec in specs:
        result = run_safely(spec, env.catalog, progress)
        result.environment["executor"] = "serial"
        yield result


# -- local worker processes ---------------------------------------------------------------------------------------

_WORKER: dict = {}


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Make this worker die with the driver, however the driver dies (SIGKILL included): on Linux the kernel
    sends SIGKILL when the parent exits (prctl PR_SET_PDEATHSIG); a driver already gone means exit now."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the orphan check below and the pool's own shutdown remain
            pass
    if os.getppid() != parent_pid:  # the driver died before the death signal was armed
        os._exit(1)


def _init_worker(config: PluginConfig, environ: dict[str, str], messages, parent_pid: int | None = None) -> None:
    """Runs once in each spawned worker: die with the driver, the driver's environment, CUDA settings, threads,
    then the plugins."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    os.environ.update(environ)
    seeding.prepare_process()
    torch.set_num_threads(seeding.run_threads())
    warm_up()
    _WORKER["env"] = load_environment(config)
    _WORKER["messages"] = messages


def _run_in_worker(task: Task) -> list[RunResult]:
    """A single run's result is returned; a group's members are sent one by one as each is final (so the driver
    stores a member while its group trains on), and nothing is returned."""
    env, messages = _WORKER.get("env"), _WORKER.get("messages")
    assert env is not None and messages is not None, "worker was not initialised"
    # SimpleQueue.put writes to the pipe before returning: the driver knows this run started even if the
    # process dies on the next line, which is how a crash is pinned on the run that caused it
    for spec in task.specs:
        messages.put(("start", spec.run_id, os.getpid()))
    progress = ThrottledProgress(lambda run_id, step: messages.put(("step", run_id, step)))
    if not task.stacked:
        result = run_safely(task.specs[0], env.catalog, progress)
        result.environment.update(executor="processes", worker_pid=os.getpid())
        return [result]
    for result in stacked.iter_group(task.specs, env.catalog, progress):
        result.environment.update(executor="processes", worker_pid=os.getpid())
        messages.put(("result", result.run_id, result))
    return []


def describe_exit(exitcode: int | None) -> str:
    """A dead worker's exit code in words (a negative code is the signal that killed it)."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


@dataclass
class _Batch:
    """What became of the runs handed to one pool: whether a worker died, and which runs did not come back."""

    broken: bool = False
    lost: list[RunSpec] = field(default_factory=list)
    in_flight: list[RunSpec] = field(default_factory=list)  # lost runs a worker had started


class _Pool:
    """One ProcessPoolExecutor and what the driver learns about it: which runs started, on which process."""

    def __init__(self, size: int, config: PluginConfig, context) -> None:
        self.messages = context.SimpleQueue()  # a fresh queue per pool: a dead writer cannot leave it locked
        self.executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=size,
            mp_context=context,
            initializer=_init_worker,
            initargs=(config, forwarded_environment(), self.messages, os.getpid()),
        )
        self.started: dict[str, int] = {}  # run_id -> worker pid
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self.finished = False

    def _watch(self) -> None:
        # the executor forgets its processes once it breaks: keep them to read the dead one's exit code
        self.processes.update(getattr(self.executor, "_processes", None) or {})

    def _drain(self, by_id: dict[str, RunSpec], progress: ProgressCallback | None) -> Iterator[RunResult]:
        """Progress and starts from the workers, and the group members' results they sent."""
        while not self.messages.empty():
            kind, run_id, value = self.messages.get()
            if kind == "start":
                self.started[run_id] = value
            elif kind == "result":
                yield value
            elif progress is not None:
                progress(by_id[run_id], value)

    def run(
        self, batch: Sequence[Task], by_id: dict[str, RunSpec], progress: ProgressCallback | None
    ) -> Generator[RunResult, None, _Batch]:
        """Yield the results of ``batch`` as they finish; return what did not come back if a worker died."""
        futures = {self.executor.submit(_run_in_worker, task): task for task in batch}
        pending, done, broken = set(futures), set(), False

        def hand(results: Iterable[RunResult]) -> Iterator[RunResult]:
            for result in results:
                done.add(result.run_id)
                yield result

        while pending and not broken:
            self._watch()
            finished, pending = concurrent.futures.wait(
                pending, timeout=POLL_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
            )
            yield from hand(self._drain(by_id, progress))  # before the results: steps were sent before them
            for future in finished:
                task = futures[future]
                try:
                    results = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:  # run_safely catches run errors; this is transport (pickling) trouble
                    reason = f"could not return the result from the worker: {type(exc).__name__}: {exc}"
                    results = [failed(spec, reason) for spec in task.specs if spec.run_id not in done]
                yield from hand(results)
        for future in pending:  # a broken pool still hands over the results that made it back
            if future.done() and future.exception() is None:
                yield from hand(future.result())
        yield from hand(self._drain(by_id, progress))
        lost = [spec for task in batch for spec in task.specs if spec.run_id not in done]
        return _Batch(broken, lost, [spec for spec in lost if spec.run_id in self.started])

    def exit_of(self, run_id: str) -> str:
        """How the process that ran ``run_id`` ended (any dead process's, for a run that never started)."""
        process = self.processes.get(self.started.get(run_id, -1))
        if process is None:
            process = next((p for p in self.processes.values() if p.exitcode not in (None, 0)), None)
        if process is not None:
            process.join(timeout=5)
        return describe_exit(None if process is None else process.exitcode)

    def died_by_itself(self, run_id: str) -> bool:
        """Whether the worker that ran ``run_id`` died on its own: the executor SIGTERMs the others of a broken
        pool, so a worker with any other non-zero exit is the one that broke it."""
        process = self.processes.get(self.started.get(run_id, -1))
        code = None if process is None else process.exitcode
        return code is not None and code not in (0, -signal.SIGTERM)

    def close(self) -> None:
        if not self.finished:  # Ctrl-C or the driver stopped reading: do not wait for the runs in flight
            self._watch()
            for process in self.processes.values():
                if process.is_alive():
                    process.terminate()
        self.executor.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _pool(size: int, config: PluginConfig, context) -> Iterator[_Pool]:
    pool = _Pool(size, config, context)
    try:
        yield pool
        pool.finished = True
    finally:
        pool.close()


def run_processes(
    specs: Sequence[RunSpec],
    config: PluginConfig,
    workers: int,
    progress: ProgressCallback | None = None,
    groups: Sequence[Sequence[RunSpec]] | None = None,
) -> Iterator[RunResult]:
    """Runs spread over ``workers`` spawned processes; yields each result as it finishes. With ``groups``
    (``--vectorise``) a worker trains a group stacked at a time.

    A worker that dies (segfault, out of memory, ``os._exit`` in a plugin) breaks the whole pool, whose other
    workers are then terminated. The run whose worker died of its own accord (not of that SIGTERM) is recorded as
    failed, with how the process died; every other run goes on in a fresh pool. When the culprit cannot be told
    apart (its worker too died of SIGTERM), the runs that were in flight are run again one at a time, so that
    still only the run that kills its worker fails. The members of a group whose worker died are such suspects
    too: each trains again alone.
    """
    config = portable_config(config)
    context = multiprocessing.get_context("spawn")
    by_id = {spec.run_id: spec for spec in specs}
    tasks = [Task((spec,)) for spec in specs] if groups is None else [Task(tuple(g), True) for g in groups]
    # members of groups of two or more: a death there cannot be pinned on one of them (a group of one's can)
    grouped = {spec.run_id for task in tasks if task.stacked and len(task.specs) > 1 for spec in task.specs}
    waiting: list[RunSpec] = list(specs)
    while waiting:
        left = {spec.run_id for spec in waiting}
        tasks = [
            Task(kept, task.stacked)
            for task in tasks
            if (kept := tuple(spec for spec in task.specs if spec.run_id in left))
        ]
        with _pool(min(workers, len(tasks)), config, context) as pool:
            batch = yield from pool.run(tasks, by_id, progress)
        # the pool is shut down: its processes are joined and their exit codes known
        if not batch.broken:
            return
        if not batch.in_flight:  # died before starting any run: starting again would die again
            for spec in batch.lost:
                yield failed(spec, f"worker process died while starting ({pool.exit_of('')})")
            return
        culprits = [spec for spec in batch.in_flight if spec.run_id not in grouped and pool.died_by_itself(spec.run_id)]
        if len(batch.in_flight) == 1:
            culprits = batch.in_flight
        for spec in culprits:
            yield failed(spec, f"worker process died while running it ({pool.exit_of(spec.run_id)})")
        waiting = [spec for spec in batch.lost if spec not in culprits]
        if culprits:
            continue
        suspects = [spec for spec in waiting if spec in batch.in_flight]
        waiting = [spec for spec in waiting if spec not in batch.in_flight]
        while suspects:
            culprit = None
            with _pool(1, config, context) as alone:  # reused while it survives
                while suspects:
                    spec = suspects.pop(0)
                    outcome = yield from alone.run([Task((spec,), spec.run_id in grouped)], by_id, progress)
                    if outcome.broken:
                        culprit = spec
                        break
            # the exit code is read once the pool is shut down, as above: while the executor's own thread reaps the
            # dead worker, a second waiter can find it reaped with its code not yet recorded ("exit status unknown")
            if culprit is not None:
                yield failed(culprit, f"worker process died while running it ({alone.exit_of(culprit.run_id)})")
