"""Each run a Ray task, on a Ray cluster (``--ray-address``) or on a local Ray started for the grid.

Ray does the scheduling, the placement on GPUs (a run on CUDA asks for one GPU) and the worker management; this
module only turns RunSpecs into tasks and the tasks' outcomes back into RunResults, which return to the driver
as they complete (``ray.wait``) so that each is committed on arrival and ``--resume`` continues after a driver
restart. A task that raises, or whose worker dies, comes back as a failed run with its reason; the others go on.

Ray is an optional extra: nothing here imports it before a Ray executor is asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from lossbench.errors import DeviceUnavailable, LossbenchError
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
from lossbench.training.train import ProgressCallback, resolve_device, run_safely

INSTALL_HINT = 'the ray executor needs Ray, which is not installed here: pip install "lossbench[ray]"'
PROGRESS_SECONDS = 0.5  # a task reports its step at most this often (each report is a message to an actor)


class RayUnavailable(LossbenchError):
    """Ray is not installed, or its cluster cannot be reached."""


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    return ray


def cluster_address(address: str | None) -> str | None:
    """The cluster to use: ``--ray-address``, else Ray's own ``$RAY_ADDRESS``, else None (a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


_STARTED_HERE = False  # whether this process started (and so must shut down) the Ray it is connected to
REACH_SECONDS = 10.0


def check_reachable(address: str) -> None:
    """Fail in seconds, in one line, when nothing listens at a ``host:port`` (or ``ray://host:port``) address:
    Ray itself keeps retrying an unreachable head for minutes. Other forms ("auto") are left to Ray."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS).close()
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Join the Ray at ``address``, or start a private local one with ``num_cpus`` CPUs (default: all).

    A Ray the caller already initialised is used as it is (and left running). The local Ray is started offline
    and lean: no usage-stats reporting, no dashboard, worker output kept out of the progress bar.
    """
    global _STARTED_HERE
    ray = require_ray()
    if ray.is_initialized():
        return ray
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never phone home, whatever the cluster
    seeding.prepare_process()
    address = cluster_address(address)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            # Ray enables token authentication for a new local cluster and warns that it did: the default is right
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
    except RayUnavailable:
        raise
    except Exception as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayUnavailable(f"could not start or reach {where}: {message}") from None
    finally:
        restore_sigterm(sigterm)
    _STARTED_HERE = True
    return ray


def restore_sigterm(handler: Any) -> None:
    """Put back the driver's SIGTERM handler: ``ray.init`` installs its own (which prints a C++ stack and exits 1),
    and a terminated grid must stop as Ctrl-C does (exit 143, the runs in flight cancelled)."""
    if threading.current_thread() is threading.main_thread() and callable(handler):
        signal.signal(signal.SIGTERM, handler)


def disconnect() -> None:
    """Shut down the Ray this process started; a Ray someone else started stays up."""
    global _STARTED_HERE
    if _STARTED_HERE:
        import ray

        ray.shutdown()
        _STARTED_HERE = False


def choose_device(requested: str, cluster_gpus: float, where: str) -> str:
    """The device the runs of a grid use on a cluster with ``cluster_gpus`` GPUs: ``auto`` -> CUDA when the
    cluster has GPUs; CUDA asked of a cluster without GPUs is a clear error."""
    if requested == "auto":
        return "cuda" if cluster_gpus > 0 else "cpu"
    if requested.startswith("cuda") and cluster_gpus <= 0:
        raise DeviceUnavailable(f"--device {requested}: {where} has no GPUs (use --device cpu or auto)")
    return requested


def cluster_device(requested: str, address: str | None = None, **_options: object) -> str:
    """The device named in the RunSpecs of a Ray grid. A local Ray runs on this machine, so this machine decides
    (without starting Ray); a remote cluster's GPUs count, not the driver's (a driver may well have none)."""
    address = cluster_address(address)
    if not address or requested == "cpu":
        device = resolve_device(requested)
        return str(device) if requested != "auto" or device.type != "cpu" else "cpu"
    ray = connect(address)
    return choose_device(requested, float(ray.cluster_resources().get("GPU", 0)), f"the Ray cluster at {address}")


def task_resources(spec: RunSpec) -> dict[str, float]:
    """What one run asks of Ray: one GPU for a CUDA run, else as many CPUs as it has threads."""
    if spec.device.startswith("cuda"):
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": seeding.run_threads()}


def spec_in_task(spec: RunSpec) -> RunSpec:
    """The spec as a task trains it: Ray shows a task only the GPU it was given, as ``cuda`` (index 0), so a
    ``cuda:N`` planned on the driver means that one GPU."""
    return dataclasses.replace(spec, device="cuda") if spec.device.startswith("cuda:") else spec


# -- inside the Ray worker ----------------------------------------------------------------------------------------

_ENVIRONMENTS: dict[PluginConfig, Environment] = {}


def _run_task(task: Task, config: PluginConfig, environ: dict[str, str], sink: Any, reports: bool) -> list[RunResult]:
    """One run, or one group trained stacked (``--vectorise``), in a Ray worker (reused across tasks, so the
    plugins load once per worker and config). A group hands each member's result to ``sink`` as soon as it is
    final, as a local worker does, so that the driver commits it while the others train on (a grid stopped
    mid-group keeps it); a lone run's result is what the task returns. ``reports``: send progress to ``sink``."""
    os.environ.update(environ)
    seeding.prepare_process()
    if config not in _ENVIRONMENTS:
        warm_up()
        _ENVIRONMENTS[config] = load_environment(config)
    catalog = _ENVIRONMENTS[config].catalog
    progress = None
    if reports:
        progress = ThrottledProgress(lambda run_id, step: sink.report.remote(run_id, step), PROGRESS_SECONDS)
    import ray

    planned = {spec.run_id: spec for spec in task.specs}

    def placed(result: RunResult) -> RunResult:
        result.spec = planned[result.run_id]  # the id and device the grid was planned with
        result.environment.update(executor="ray", node=ray.util.get_node_ip_address(), worker_pid=os.getpid())
        return result

    if not task.stacked:
        return [placed(run_safely(spec_in_task(task.specs[0]), catalog, progress))]
    from lossbench.training.stacked import iter_group

    for result in iter_group([spec_in_task(spec) for spec in task.specs], catalog, progress):
        ray.get(sink.deliver.remote(placed(result)))  # acknowledged: it is the driver's before the next member
    return []


class _Sink:
    """A Ray actor collecting what the tasks send the driver before they end: (run_id, step) progress reports and
    the results of finished group members, until the driver drains them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.results: list[RunResult] = []

    def report(self, run_id: str, step: int) -> None:
        self.events.append((run_id, step))

    def deliver(self, result: RunResult) -> None:
        self.results.append(result)

    def drain(self) -> tuple[list[tuple[str, int]], list[RunResult]]:
        drained = self.events, self.results
        self.events, self.results = [], []
        return drained


# -- in the driver ------------------------------------------------------------------------------------------------


def failure_reason(exc: BaseException) -> str:
    """One line saying why a task produced no result."""
    ray = require_ray()
    if isinstance(exc, ray.exceptions.RayTaskError):  # raised past run_safely (e.g. SystemExit in a plugin)
        cause = getattr(exc, "cause", None) or exc
        return f"the Ray task raised {type(cause).__name__}: {cause}".splitlines()[0]
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Ray worker lost ({type(exc).__name__}): {first}".rstrip(": ")


def run_ray(
    specs: Sequence[RunSpec],
    config: PluginConfig,
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    progress: ProgressCallback | None = None,
    groups: Sequence[Sequence[RunSpec]] | None = None,
) -> Iterator[RunResult]:
    """Run every spec as a Ray task (with ``groups``, ``--vectorise``: every group stacked in one task) and yield
    each RunResult as its task completes.

    Connects at once (so a missing Ray or an unreachable cluster is reported before any run), unless there is
    nothing to run. Shuts down the local Ray it started when the grid ends, is interrupted, or the caller stops.
    """
    if not specs:
        return iter(())
    ray = connect(address, num_cpus)
    tasks = [Task((spec,)) for spec in specs] if groups is None else [Task(tuple(g), True) for g in groups]
    return _results(ray, list(specs), tasks, portable_config(config), progress)


def _results(
    ray: Any, specs: list[RunSpec], tasks: list[Task], config: PluginConfig, progress: ProgressCallback | None
) -> Iterator[RunResult]:
    refs: dict[Any, Task] = {}
    sink = None
    try:
        by_id = {spec.run_id: spec for spec in specs}
        open_ids = set(by_id)  # runs whose result has not reached the driver yet
        if progress is not None or any(work.stacked for work in tasks):
            sink = ray.remote(num_cpus=0)(_Sink).remote()
        task = ray.remote(_run_task)
        environ = forwarded_environment()

        def submit(work: Task) -> Any:
            # max_retries=0: a run that kills its worker would kill it again; it is recorded as failed instead
            first = work.specs[0]
            name = first.label if len(work.specs) == 1 else f"{first.dataset}/{first.model} group of {len(work.specs)}"
            options = {**task_resources(first), "max_retries": 0, "name": f"lossbench {name}"}
            ref = task.options(**options).remote(work, config, environ, sink, progress is not None)
            refs[ref] = work
            return ref

        def arrived(results: list[RunResult]) -> list[RunResult]:
            """The results not seen before (a group's members come through the sink, the rest with their task)."""
            fresh = [result for result in results if result.run_id in open_ids]
            open_ids.difference_update(result.run_id for result in fresh)
            return fresh

        for work in tasks:
            submit(work)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
            if sink is not None:  # before the ready tasks: a group's task ends only after its members are here
                events, delivered = ray.get(sink.drain.remote())
                if progress is not None:
                    for run_id, step in events:
                        if run_id in open_ids:  # a late report of a run already returned is dropped
                            progress(by_id[run_id], step)
                yield from arrived(delivered)
            for ref in ready:
                work = refs.pop(ref)
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    unfinished = [spec for spec in work.specs if spec.run_id in open_ids]
                    if work.stacked and len(work.specs) > 1:
                        # one member killed or broke the group's task: each member that had not finished trains
                        # again alone, so that, as with local workers, only the run that kills its worker fails
                        pending.extend(submit(Task((spec,), True)) for spec in unfinished)  # stacks of one
                        continue
                    results = [failed(spec, failure_reason(exc)) for spec in unfinished]
                yield from arrived(results)
    finally:
        for ref in refs:  # still running: the driver is stopping (Ctrl-C, an error while committing)
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        if sink is not None:
            try:
                ray.kill(sink)
            except Exception:
                pass
        disconnect()
