"""Hostile and unlucky use, each case of issue 12 as a test: output folders, bounds, shutdown, paths, preflight,
atomic files, one writer, plugin blame. Real subprocesses, real signals, real SQLite; a grid is interrupted only
once a run is held at a gate (a file) the test opens, never on a timer."""

from __future__ import annotations

import copy
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import make_spec, run_lossbench
from scale_helpers import gate_plugin
from torch import nn

from lossbench.api import GAN
from lossbench.plan.grid import MAX_SEED, expand, parse_seeds
from lossbench.plugin.contracts import ModelContractError, check_shapes
from lossbench.plugin.loader import PluginConfig, load_environment
from lossbench.results.files import MARKER, UnsafePath, atomic_path, inside
from lossbench.results.store import SCHEMA
from lossbench.training.train import run_safely

BASE = ["-m", "mlp", "-d", "ring8", "--preset", "smoke", "--steps", "4", "--device", "cpu"]
ONE_RUN = ["run", "-l", "nonsaturating", "--seeds", "0", *BASE]
# 1 run, then 1 held; the sequential engine's interruption contract, run by run (stacked, a held member would hold
# its group: tests/test_stacked_runs.py interrupts stacked groups)
HELD = ["run", "-l", "nonsaturating", "-l", "gated", "--seeds", "0", *BASE, "--no-report", "--no-vectorise"]
PATIENCE = 300  # seconds a child may take to reach a state the test waits for (a safety net, not a clock)

BLAME_PLUGIN = '''"""Models and a loss that break the plugin contract, each in its own way."""
from torch import nn

from lossbench import GAN, Metric, ModelFactory, hookimpl
from lossbench.builtin.losses import NonSaturating


class WideGenerator(ModelFactory):
    """Its generator returns one coordinate too many."""

    name = "wide-g"
    family = "gan"

    def supports(self, data):
        return data.kind == "points"

    def build(self, data):
        (dim,) = data.shape
        return GAN(nn.Linear(8, dim + 1), nn.Sequential(nn.Linear(dim, 1), nn.Flatten(0)), 8)


class ColumnCritic(ModelFactory):
    """Its discriminator returns [B, 1] instead of [B]: most losses would broadcast it silently."""

    name = "column-d"
    family = "gan"

    def supports(self, data):
        return data.kind == "points"

    def build(self, data):
        (dim,) = data.shape
        return GAN(nn.Linear(8, dim), nn.Linear(dim, 1), 8)


class Oops(NonSaturating):
    """Raises in a helper of its generator loss."""

    name = "oops"

    def scale(self):
        return 1 / 0

    def generator_loss(self, fake_scores, real_scores):
        return super().generator_loss(fake_scores, real_scores) * self.scale()


class Kaboom(Metric):
    """Raises whenever it scores a run."""

    name = "kaboom"

    def compute(self, ctx):
        raise RuntimeError("kaboom")


@hookimpl
def register_models(register):
    register(WideGenerator())
    register(ColumnCritic())


@hookimpl
def register_metrics(register):
    register(Kaboom())


@hookimpl
def register_losses(register):
    register(Oops())
    register("str")
'''

ATOMIC_WRITER = """import sys, time
from pathlib import Path
from lossbench.results.files import atomic_path

target, gate = Path(sys.argv[1]), Path(sys.argv[2])
with atomic_path(target) as temporary:
    with open(temporary, "w") as handle:
        handle.write("half of the new content")
        handle.flush()
        (gate / "half").touch()
        while True:  # killed here, mid-write
            time.sleep(0.05)
"""


# -- helpers ------------------------------------------------------------------------------------------------------


def gated_plugins(root: Path) -> tuple[Path, Path]:
    """(plugins folder holding the gate plugin, gate folder)."""
    gate, plugins = root / "gate", root / "plugins"
    gate.mkdir()
    plugins.mkdir()
    (plugins / "gate.py").write_text(gate_plugin(gate, "gated"))
    return plugins, gate


_STARTED: list[subprocess.Popen] = []


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """``lossbench ARGS`` in the background, its output in files (a pipe would wait for any orphan holding it);
    killed at the end of the test if still running."""
    name = f"child{len(_STARTED)}"
    with open(cwd / f"{name}.out", "w") as out, open(cwd / f"{name}.err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "lossbench.cli", *args], cwd=cwd, text=True, stdout=out, stderr=err
        )
    process.out_path, process.err_path = cwd / f"{name}.out", cwd / f"{name}.err"  # type: ignore[attr-defined]
    _STARTED.append(process)
    return process


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    """Wait for a background ``lossbench``: (exit status, stdout, stderr)."""
    code = process.wait(timeout=PATIENCE)
    return code, process.out_path.read_text(), process.err_path.read_text()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """A failing test must not leave a driver held at its gate forever."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.wait()


def stored(results: Path) -> int:
    try:
        with sqlite3.connect(results / "lossbench.db", timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    """Poll ``condition`` until it holds; the child must stay alive meanwhile."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the child ended before {what}: {finish(process)}")
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.05)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def wait_dead(pids: list[int]) -> list[int]:
    """The pids still alive once every one is dead or PATIENCE has passed."""
    deadline = time.monotonic() + PATIENCE
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def freeze(path: Path) -> None:
    """Make ``path`` unwritable even for root (immutable attribute), or read-only for a normal user."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("running as root without chattr +i: cannot make a file unwritable")
    else:
        path.chmod(0o555 if path.is_dir() else 0o444)


def thaw(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        path.chmod(0o755 if path.is_dir() else 0o644)


def one_line_error(result: subprocess.CompletedProcess | str) -> str:
    """The single error line of a failed command (no traceback)."""
    text = result if isinstance(result, str) else result.stderr
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    return errors[0]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with two stored runs (seeds 0 and 1), made once; tests copy it."""
    root = tmp_path_factory.mktemp("two-runs")
    result = run_lossbench("run", "-l", "nonsaturating", "--seeds", "0,1", *BASE, "--no-report", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "results"


def copy_results(two_runs: Path, workdir: Path) -> Path:
    return Path(shutil.copytree(two_runs, workdir / "results"))


# -- 1. output folders: lossbench's only where lossbench made them -----------------------------------------------


def test_report_never_deletes_or_overwrites_the_users_figures(two_runs: Path, workdir: Path) -> None:
    copy_results(two_runs, workdir)
    figures = workdir / "reports" / "figures"
    figures.mkdir(parents=True)
    (figures / "mine.png").write_bytes(b"the user's figure for a paper")
    for _ in range(2):  # a rebuild prunes too
        result = run_lossbench("report", cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert (figures / "mine.png").read_bytes() == b"the user's figure for a paper"
    html = (workdir / "reports" / "index.html").read_text()
    own = figures / "lossbench"  # figures/ was the user's: lossbench writes into its own subfolder
    assert (own / MARKER).is_file() and not (figures / MARKER).exists()
    drawn = sorted(p.name for p in own.glob("*.png"))
    assert drawn and all(f'src="figures/lossbench/{name}"' in html for name in drawn)
    assert sorted(p.name for p in figures.iterdir()) == ["lossbench", "mine.png"]


def test_prune_removes_only_figures_lossbench_wrote(two_runs: Path, workdir: Path) -> None:
    results = copy_results(two_runs, workdir)
    assert run_lossbench("report", cwd=workdir).returncode == 0
    figures = workdir / "reports" / "figures"
    assert (figures / MARKER).is_file()  # lossbench made figures/: it is lossbench's
    (figures / "notes.png").write_bytes(b"dropped in by the user")
    with sqlite3.connect(results / "lossbench.db") as connection:  # one run leaves the store: its figures go
        run_id = connection.execute("SELECT run_id FROM runs WHERE seed = 1").fetchone()[0]
        for table in ("history", "curves", "metrics", "samples", "runs"):
            connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    assert any(run_id in p.name for p in figures.iterdir())
    result = run_lossbench("report", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert not any(run_id in p.name for p in figures.iterdir())
    assert (figures / "notes.png").read_bytes() == b"dropped in by the user"


def test_a_users_index_html_is_not_overwritten(two_runs: Path, workdir: Path) -> None:
    copy_results(two_runs, workdir)
    index = workdir / "reports" / "index.html"
    index.parent.mkdir()
    index.write_text("<html>my own page</html>")
    result = run_lossbench("report", cwd=workdir)
    assert result.returncode == 1
    assert "index.html was not written by lossbench" in one_line_error(result)
    assert index.read_text() == "<html>my own page</html>"


# -- 2. bounds ----------------------------------------------------------------------------------------------------


def _memory_capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))  # a 21 GB seed list would die here


@pytest.mark.parametrize(
    "seeds, message",
    [
        ("0-99999999999999999999", "seed 99999999999999999999 is too large; seeds go up to 9223372036854775807"),
        ("0-9000000000000000000", "9,000,000,000,000,000,001 seeds, more than the limit of 10,000 runs"),
        ("0-100000", "100,001 seeds, more than the limit of 10,000 runs"),
        (str(2**63), f"seed {2**63} is too large"),
    ],
)
def test_huge_or_unstorable_seeds_are_refused_at_parse_time(workdir: Path, seeds: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lossbench.cli", "run", "-l", "nonsaturating", "--seeds", seeds],
        cwd=workdir,
        capture_output=True,
        text=True,
        preexec_fn=_memory_capped,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        timeout=PATIENCE,
    )
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert not (workdir / "results").exists()


def test_parse_seeds_sizes_ranges_before_making_them() -> None:
    assert parse_seeds("3,0-2,2") == [0, 1, 2, 3]
    assert parse_seeds(f"{MAX_SEED}") == [MAX_SEED]
    assert parse_seeds("0-10000", max_seeds=None)[-1] == 10000


def test_grid_larger_than_max_runs_is_refused_and_max_runs_raises_it(cli) -> None:
    result = cli("run", "-l", "nonsaturating", "-l", "wgan-gp", "-m", "mlp", "-d", "ring8", "--seeds", "0-5999")
    assert result.exit_code == 2 and "the grid has 12,000 runs, more than the limit of 10,000" in result.output
    assert "--max-runs 12000" in result.output
    assert cli("run", "-l", "nonsaturating", "--n-seeds", "20000").exit_code == 2
    catalog = load_environment(PluginConfig()).catalog
    grid = dict(losses=["nonsaturating", "wgan-gp"], models=["mlp"], datasets=["ring8"], seeds=range(6000))
    assert len(expand(catalog, **grid, max_runs=12_000).specs) == 12_000
    with pytest.raises(Exception, match="12,000 runs"):
        expand(catalog, **grid, max_runs=11_999)


def test_largest_seed_trains_and_is_stored(workdir: Path) -> None:
    result = run_lossbench("run", "-l", "nonsaturating", "--seeds", str(MAX_SEED), *BASE, "--no-report", cwd=workdir)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(workdir / "results" / "lossbench.db") as connection:
        assert connection.execute("SELECT seed, status FROM runs").fetchall() == [(MAX_SEED, "ok")]


def test_workers_are_capped_at_the_runs_and_warned_above_the_cores(workdir: Path) -> None:
    result = run_lossbench(*ONE_RUN, "--workers", "1000", "--no-report", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert f"warning: --workers 1000 is more than the {os.cpu_count()} CPU cores here" in result.stderr
    with sqlite3.connect(workdir / "results" / "lossbench.db") as connection:
        (environment,) = connection.execute("SELECT environment_json FROM runs").fetchone()
    assert '"executor": "serial"' in environment  # one run: no worker process at all


# -- 3. clean shutdown --------------------------------------------------------------------------------------------


def test_sigkill_of_the_driver_takes_its_workers_and_resource_tracker_with_it(workdir: Path) -> None:
    plugins, gate = gated_plugins(workdir)
    driver = start(
        ["run", "-l", "gated", "--seeds", "0,1", *BASE, "--workers", "2", "--no-report", "--no-vectorise"]
        + ["--plugins-dir", str(plugins)],
        workdir,
    )
    wait_for(lambda: (gate / "claimed").exists(), driver, "a worker holds a run")
    children = descendants(driver.pid)
    assert len(children) >= 3, children  # two workers and multiprocessing's resource tracker
    driver.kill()
    driver.wait()
    assert wait_dead(children) == []


def test_sigterm_is_handled_like_ctrl_c(workdir: Path) -> None:
    plugins, gate = gated_plugins(workdir)
    args = [*HELD, "--workers", "2", "--plugins-dir", str(plugins)]
    driver = start(args, workdir)
    wait_for(
        lambda: stored(workdir / "results") >= 1 and (gate / "claimed").exists(), driver, "one run stored and one held"
    )
    children = descendants(driver.pid)
    driver.send_signal(signal.SIGTERM)
    code, _out, err = finish(driver)
    assert code == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "terminated (SIGTERM): the runs committed so far are kept; run the same command again to resume"
    )
    assert wait_dead(children) == []
    with sqlite3.connect(workdir / "results" / "lossbench.db") as connection:  # nothing half-done
        assert connection.execute("SELECT loss, status FROM runs").fetchall() == [("nonsaturating", "ok")]
        assert connection.execute("SELECT COUNT(DISTINCT run_id) FROM history").fetchone()[0] == 1
    (gate / "open").touch()
    again = run_lossbench(*args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "1 to train, 1 already stored (resumed)" in again.stderr


def test_sigterm_stops_a_ray_grid_like_ctrl_c(workdir: Path) -> None:
    """``ray.init`` installs its own SIGTERM handler (a C++ stack dump, exit 1); the driver's must win."""
    pytest.importorskip("ray")
    plugins, gate = gated_plugins(workdir)
    driver = start(
        [
            "run",
            "-l",
            "gated",
            "--seeds",
            "0,1",
            *BASE,
            "--executor",
            "ray",
            "--workers",
            "2",
            "--no-report",
            "--no-vectorise",
            "--plugins-dir",
            str(plugins),
        ],
        workdir,
    )
    wait_for(lambda: (gate / "claimed").exists(), driver, "a Ray task holds a run")
    children = descendants(driver.pid)
    driver.send_signal(signal.SIGTERM)
    code, _out, err = finish(driver)
    assert code == 143, err
    assert err.strip().splitlines()[-1].startswith("terminated (SIGTERM): the runs committed so far are kept")
    assert wait_dead(children) == []


# -- 4. paths from the store stay inside their folder -------------------------------------------------------------


def test_a_crafted_run_id_cannot_lead_report_outside_reports(two_runs: Path, workdir: Path) -> None:
    results = copy_results(two_runs, workdir)
    with sqlite3.connect(results / "lossbench.db") as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs WHERE seed = 0").fetchone()
        for table in ("history", "curves", "metrics", "samples", "runs"):
            connection.execute(f"UPDATE {table} SET run_id = '/../../../x' WHERE run_id = ?", (run_id,))
    before = {p for p in workdir.parent.rglob("*")}
    result = run_lossbench("report", "--reports", "out/reports", cwd=workdir)
    assert result.returncode == 0, result.stderr
    new = {p for p in workdir.parent.rglob("*")} - before
    assert new and all(p.is_relative_to(workdir / "out" / "reports") or p == workdir / "out" for p in new), new


def test_inside_refuses_names_that_leave_the_folder(tmp_path: Path) -> None:
    assert inside(tmp_path, "run-1.png") == tmp_path / "run-1.png"
    (tmp_path / "link").symlink_to("/")
    for name in ("../x.png", "/etc/x.png", "a/../../x.png", "link/x.png", ".", ""):
        with pytest.raises(UnsafePath):
            inside(tmp_path, name)


# -- 5. preflight: unusable folders and stores are found before training ------------------------------------------


def test_an_immutable_store_is_refused_before_training(two_runs: Path, workdir: Path) -> None:
    results = copy_results(two_runs, workdir)
    db = results / "lossbench.db"
    before = db.read_bytes()
    freeze(db)
    try:
        result = run_lossbench("run", "-l", "nonsaturating", "--seeds", "0-2", *BASE, "--no-report", cwd=workdir)
        shown = run_lossbench("show", cwd=workdir)  # reading it still works
    finally:
        thaw(db)
    assert shown.returncode == 0 and "nonsaturating" in shown.stdout, shown.stderr
    assert result.returncode == 1
    assert "lossbench.db cannot be written" in one_line_error(result)
    assert "to train" not in result.stderr  # refused before the grid started
    assert db.read_bytes() == before


@pytest.mark.parametrize("where", ["results", "reports"])
def test_unwritable_parent_folders_are_one_line_before_training(workdir: Path, where: str) -> None:
    locked = workdir / "locked"
    locked.mkdir()
    freeze(locked)
    try:
        result = run_lossbench(*ONE_RUN, f"--{where}", str(locked / where), cwd=workdir)
    finally:
        thaw(locked)
    assert result.returncode == 1
    assert f"--{where} {locked / where}" in one_line_error(result)
    assert "to train" not in result.stderr
    assert not (locked / where).exists()


def test_results_on_a_device_file_is_one_line(workdir: Path) -> None:
    result = run_lossbench(*ONE_RUN, "--results", "/dev/null", "--no-report", cwd=workdir)
    assert result.returncode == 1
    assert "--results /dev/null" in one_line_error(result)


def test_a_store_missing_tables_is_repaired(two_runs: Path, workdir: Path) -> None:
    results = copy_results(two_runs, workdir)
    with sqlite3.connect(results / "lossbench.db") as connection:
        connection.execute("DROP TABLE curves")
        connection.execute("DROP TABLE samples")
    shown = run_lossbench("show", cwd=workdir)
    assert shown.returncode == 0 and "nonsaturating" in shown.stdout, shown.stderr
    result = run_lossbench("run", "-l", "nonsaturating", "--seeds", "0-2", *BASE, "--no-report", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "1 to train, 2 already stored" in result.stderr
    assert stored(results) == 3


def test_a_half_made_store_from_an_earlier_kill_is_repaired(workdir: Path) -> None:
    db = workdir / "results" / "lossbench.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as connection:  # what a kill between the schema and the meta rows used to leave
        connection.executescript(SCHEMA)
    result = run_lossbench(*ONE_RUN, "--no-report", cwd=workdir)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as connection:
        assert dict(connection.execute("SELECT key, value FROM meta WHERE key IN ('app', 'schema_version')")) == {
            "app": "lossbench",
            "schema_version": "1",
        }
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


def test_a_foreign_store_with_a_runs_table_is_not_taken_for_a_half_made_one(workdir: Path) -> None:
    db = workdir / "results" / "lossbench.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE runs (id INTEGER, started TEXT)")
    before = db.read_bytes()
    result = run_lossbench(*ONE_RUN, "--no-report", cwd=workdir)
    assert result.returncode == 1
    assert "a SQLite database of another program (tables: runs)" in one_line_error(result)
    assert db.read_bytes() == before


def test_a_store_deleted_mid_grid_stops_the_grid_and_keeps_the_runs_done(workdir: Path) -> None:
    plugins, gate = gated_plugins(workdir)
    args = [*HELD, "--plugins-dir", str(plugins)]
    driver = start(args, workdir)
    wait_for(
        lambda: stored(workdir / "results") >= 1 and (gate / "claimed").exists(), driver, "one run stored and one held"
    )
    shutil.rmtree(workdir / "results")
    (gate / "open").touch()
    code, _out, err = finish(driver)
    assert code == 1, err
    line = one_line_error(err)
    assert "was deleted or replaced while the grid ran: the grid stopped" in line
    assert "The 1 runs it held were saved back to results/lossbench.db" in line
    assert stored(workdir / "results") == 1
    again = run_lossbench(*args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "1 to train, 1 already stored (resumed)" in again.stderr


# -- 6. atomic files ----------------------------------------------------------------------------------------------


def test_a_kill_mid_write_leaves_the_old_file_whole(workdir: Path) -> None:
    target, gate = workdir / "runs.csv", workdir / "gate"
    gate.mkdir()
    target.write_text("the old, complete content")
    writer = subprocess.Popen([sys.executable, "-c", ATOMIC_WRITER, str(target), str(gate)])
    wait_for(lambda: (gate / "half").exists(), writer, "half written")
    writer.kill()
    writer.wait()
    assert target.read_text() == "the old, complete content"


def test_a_failed_write_leaves_neither_a_cut_file_nor_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("new but")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


def test_exports_and_report_leave_no_temporaries(two_runs: Path, workdir: Path) -> None:
    result = run_lossbench(*ONE_RUN, cwd=workdir)
    assert result.returncode == 0, result.stderr
    leftovers = [p for p in workdir.rglob("*.tmp")]
    assert leftovers == [] and (workdir / "results" / "runs.csv").is_file()


# -- 7. one writer ------------------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_or_waits_while_readers_read(workdir: Path) -> None:
    plugins, gate = gated_plugins(workdir)
    args = [*HELD, "--plugins-dir", str(plugins)]
    first = start(args, workdir)
    wait_for(
        lambda: stored(workdir / "results") >= 1 and (gate / "claimed").exists(), first, "one run stored and one held"
    )
    second = run_lossbench(*args, cwd=workdir)
    assert second.returncode == 1
    line = one_line_error(second)
    assert f"another lossbench run is writing to results/ (pid {first.pid} on " in line and "--wait" in line
    rescore = run_lossbench("rescore", "--plugins-dir", str(plugins), "--no-report", cwd=workdir)  # a writer too
    assert rescore.returncode == 1 and "another lossbench run is writing to results/" in one_line_error(rescore)
    shown = run_lossbench("show", cwd=workdir)  # readers are not blocked
    assert shown.returncode == 0 and "nonsaturating" in shown.stdout, shown.stderr
    report = run_lossbench("report", "--plugins-dir", str(plugins), cwd=workdir)
    assert report.returncode == 0, report.stderr

    waiter = start([*args, "--wait"], workdir)
    waiting = "waiting: another lossbench run is writing to this results folder"
    wait_for(lambda: waiting in waiter.err_path.read_text(), waiter, "the second writer waits")
    assert f"{waiting} (pid {first.pid} on " in waiter.err_path.read_text()
    (gate / "open").touch()
    code, _out, err = finish(first)
    assert code == 0, err
    code, _out, err = finish(waiter)
    assert code == 0, err
    assert "0 to train, 2 already stored (resumed)" in err


# -- 8. plugin blame ----------------------------------------------------------------------------------------------


@pytest.fixture
def blame_env(tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "blame.py").write_text(BLAME_PLUGIN)
    return load_environment(PluginConfig(plugins_dir=plugins))


def test_wrong_generator_shape_is_a_failed_run_naming_model_and_plugin(blame_env) -> None:
    result = run_safely(make_spec(model="wide-g", steps=2), blame_env.catalog)
    assert result.status == "failed"
    assert result.reason == (
        "model 'wide-g' (plugin 'blame'): the generator returned shape [64, 3]; expected shape [64, 2]"
    )


def test_a_discriminator_returning_b_by_1_is_failed_not_ok(blame_env) -> None:
    result = run_safely(make_spec(model="column-d", steps=2), blame_env.catalog)
    assert result.status == "failed"
    assert result.reason == (
        "model 'column-d' (plugin 'blame'): the discriminator returned shape [64, 1]; expected shape [64]"
    )


def test_an_exception_in_a_losss_code_names_the_loss_and_plugin(blame_env) -> None:
    result = run_safely(make_spec(loss="oops", steps=2), blame_env.catalog)
    assert result.status == "failed" and result.failed_step == 1
    assert result.reason == "loss 'oops' (plugin 'blame'): ZeroDivisionError: division by zero"


def test_a_metric_that_raises_is_named_with_its_plugin_and_the_run_is_kept(blame_env) -> None:
    result = run_safely(make_spec(steps=2), blame_env.catalog)
    assert result.status == "ok" and "fid" in result.metrics and "kaboom" not in result.metrics
    assert result.reason == "metric 'kaboom' (plugin 'blame') failed: RuntimeError: kaboom"


def test_registering_a_string_says_it_is_not_a_loss(blame_env) -> None:
    reasons = [problem.reason for problem in blame_env.problems if problem.plugin == "blame"]
    assert len(reasons) == 1 and "register() got 'str' (a str), which is not a loss" in reasons[0], reasons


def test_the_shape_check_changes_no_weights_statistics_or_random_state() -> None:
    """It runs before the first step of every run, so it must leave the run exactly as it found it: batch-norm
    statistics, dropout's random draws and the train/eval mode included."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 2))
    discriminator = nn.Sequential(
        nn.Linear(2, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 1), nn.Flatten(0)
    )
    real = torch.randn(64, 2)
    states = [copy.deepcopy(net.state_dict()) for net in (generator, discriminator)]
    random_state = torch.get_rng_state()
    check_shapes(GAN(generator, discriminator, 8), real, (2,), "m", "p")
    assert torch.equal(torch.get_rng_state(), random_state)
    for net, state in zip((generator, discriminator), states):
        assert net.training
        for key, value in net.state_dict().items():
            assert torch.equal(value, state[key]), key
    with pytest.raises(
        ModelContractError,
        match=r"model 'm' \(plugin 'p'\): the generator returned shape \[64, 2\]; "
        r"expected shape \[64, 3\]",
    ):
        check_shapes(GAN(generator, discriminator, 8), real, (3,), "m", "p")
