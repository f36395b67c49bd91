"""The results store of record: one SQLite file, written by the driver only, one transaction per finished run.

A crash or SIGKILL loses at most the runs in flight: each committed run is complete (run row, history, curves,
metrics, samples) or absent. A file that is not a lossbench store (corrupt, or another program's database) is
refused with a clear message and never written to. The schema and its meta rows are created in one transaction;
a store left half-made by an older lossbench killed between the two, or missing some of its tables, is repaired.
One ``lossbench run`` at a time writes to a results folder (``WriterLock``); readers are never blocked.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import os
import platform
import re
import sqlite3
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from lossbench.errors import StoreError
from lossbench.plan.grid import RunSpec
from lossbench.records import HISTORY_COLUMNS, RunResult
from lossbench.results.files import atomic_path

DB_NAME = "lossbench.db"
APP_ID = "lossbench"
SCHEMA_VERSION = "1"
SQLITE_MAGIC = b"SQLite format 3\x00"

RUN_KEY_COLUMNS = ["run_id", "dataset", "model", "loss", "seed", "preset", "steps", "device"]
RUN_OUTCOME_COLUMNS = ["status", "reason", "failed_step"]

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, dataset TEXT NOT NULL, model TEXT NOT NULL, loss TEXT NOT NULL, seed INTEGER NOT NULL,
    preset TEXT, steps INTEGER, device TEXT, spec_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')), reason TEXT, failed_step INTEGER,
    train_seconds REAL, eval_seconds REAL, environment_json TEXT, finished_at TEXT NOT NULL
);
CREATE TABLE history (run_id TEXT NOT NULL REFERENCES runs(run_id), {", ".join(f"{c} REAL" for c in HISTORY_COLUMNS)});
CREATE INDEX history_run ON history(run_id);
CREATE TABLE curves (run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER, key TEXT, value REAL);
CREATE INDEX curves_run ON curves(run_id);
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id), key TEXT NOT NULL, value REAL, text TEXT,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE samples (run_id TEXT PRIMARY KEY REFERENCES runs(run_id), npy BLOB NOT NULL);
"""


TABLES = tuple(re.findall(r"CREATE TABLE (\w+)", SCHEMA))
# the same statements, safe to run over a store that has some of them already: how a store is created and repaired
IDEMPOTENT_SCHEMA = SCHEMA.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ").replace(
    "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "
)
LOCK_NAME = ".lossbench.lock"


class StoreLost(StoreError):
    """The store file disappeared (or was replaced) while a grid was writing to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"the store {path} was deleted or replaced while the grid ran")
        self.path = path


class WriterLock:
    """An advisory lock (``flock``) on a results folder: one ``lossbench run`` writes there at a time.

    The lock file says who holds it (pid, host, since when), so a second writer can say so. The kernel releases
    the lock when its holder dies, however it dies; readers (``show``, ``report``) never take it.
    """

    def __init__(self, results_dir: Path) -> None:
        self.path = Path(results_dir) / LOCK_NAME
        self.handle: IO[str] | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return f"pid {info['pid']} on {info['host']}, since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self, wait: bool = False, on_wait=None) -> WriterLock:
        """Take the lock, or raise ``StoreError`` naming its holder; with ``wait``, block until it is free
        (``on_wait(holder)`` is called once first)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(
                f"--results {self.path.parent}: cannot create its lock file ({exc.strerror or exc})"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                handle.close()
                raise StoreError(
                    f"another lossbench run is writing to {self.path.parent}/ ({self.holder()}); "
                    "wait for it to finish, or add --wait"
                ) from None
            if on_wait is not None:
                on_wait(self.holder())
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
            + "\n"
        )
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file releases the flock
            self.handle = None

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- provenance, checkpoints and superseded runs (issue 14) ------------------------------------------------------
# Added to every store, new or old, by ``_ensure_extensions`` (CREATE ... IF NOT EXISTS: an older store gains the
# tables on open and keeps its runs). Superseded runs are copies of a run's rows under their own ``generation``;
# the ``runs``/``metrics``/... tables hold only current runs, so every reader sees only those.
CHECKPOINTS_DIR = "checkpoints"
EXTENSION_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS provenance (run_id TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoints (run_id TEXT PRIMARY KEY, role TEXT NOT NULL, sha256 TEXT NOT NULL, "
    "bytes INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS superseded_runs (generation INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, "
    "superseded_at TEXT NOT NULL, reason TEXT NOT NULL, run_json TEXT NOT NULL, provenance_json TEXT, checkpoint TEXT)",
    "CREATE INDEX IF NOT EXISTS superseded_run ON superseded_runs(run_id)",
    "CREATE TABLE IF NOT EXISTS superseded_metrics "
    "(generation INTEGER NOT NULL, key TEXT NOT NULL, value REAL, text TEXT)",
    f"CREATE TABLE IF NOT EXISTS superseded_history (generation INTEGER NOT NULL, "
    f"{', '.join(f'{c} REAL' for c in HISTORY_COLUMNS)})",
    "CREATE TABLE IF NOT EXISTS superseded_curves (generation INTEGER NOT NULL, step INTEGER, key TEXT, value REAL)",
    "CREATE TABLE IF NOT EXISTS superseded_samples (generation INTEGER PRIMARY KEY, npy BLOB NOT NULL)",
)
EXTENSION_TABLES = ("provenance", "checkpoints")  # per current run, replaced with it


def _write_atomically(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


# -- end of issue-14 schema -----------------------------------------------------------------------------------------


MetricRow = tuple[str, str, float | None, str | None]
"""A row of the metrics table: run id, key, value (NULL for a text fact or NaN), text."""


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching keys that start with ``prefix`` ('!' escapes LIKE's own wildcards)."""
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


class Store:
    """A lossbench SQLite store. Open with ``Store.open(results_dir)``."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection
        stat = os.stat(path)
        self.identity = (stat.st_dev, stat.st_ino)  # to notice the file being deleted or replaced under us
        self.extensions = False  # whether the provenance/checkpoint/superseded tables exist (see _ensure_extensions)

    # -- opening ------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, results_dir: Path, create: bool = True) -> Store:
        """Open (or, with ``create``, start) the store in ``results_dir``; refuse corrupt or foreign files."""
        path = Path(results_dir) / DB_NAME
        if path.exists():
            with open(path, "rb") as handle:
                if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                    raise StoreError(
                        f"{path} is not a SQLite database (corrupt or foreign); it was left untouched. "
                        "Move it away or choose another --results folder."
                    )
        elif not create:
            raise StoreError(f"no results store at {path}; run `lossbench run --grid --results {results_dir}` first")
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"--results {results_dir}: cannot create the folder ({exc.strerror or exc})") from None
        try:
            connection = sqlite3.connect(path, timeout=30)
            store = cls(path, connection)
            store._check_or_initialise()
            store._ensure_extensions()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{path} is not a readable lossbench store ({exc}); it was left untouched. "
                "Move it away or choose another --results folder."
            ) from None
        except OSError as exc:
            raise StoreError(f"--results {results_dir}: cannot open {path} ({exc.strerror or exc})") from None
        return store

    def _tables(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _create_schema(self) -> None:
        """The whole schema and its meta rows in one transaction: a kill leaves a complete store or none."""
        try:
            self.connection.executescript(
                "BEGIN;"
                + IDEMPOTENT_SCHEMA
                + f"INSERT OR REPLACE INTO meta VALUES ('app', '{APP_ID}');"
                + f"INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;"
            )
        except sqlite3.OperationalError as exc:
            if self.connection.in_transaction:
                self.connection.rollback()
            raise StoreError(
                f"{self.path} needs its lossbench tables created or repaired, and cannot be written "
                f"({exc}); it was left untouched. Make it writable or choose another --results."
            ) from None

    def _half_made(self, tables: set[str], meta: dict[str, str]) -> bool:
        """Whether a store is lossbench's schema without its meta rows and without runs: what an older lossbench
        left when killed between creating the tables and writing the meta rows."""
        if meta or not tables <= set(TABLES):
            return False
        reference = sqlite3.connect(":memory:")  # the tables must be lossbench's, column for column
        try:
            reference.executescript(SCHEMA)
            ours = dict(reference.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"))
        finally:
            reference.close()
        theirs = dict(self.connection.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"))
        if any(theirs[name] != ours[name] for name in tables):
            return False
        return "runs" not in tables or self.connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0

    def _check_or_initialise(self) -> None:
        tables = self._tables()
        if not tables:
            self._create_schema()
            return
        meta = dict(self.connection.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        if self._half_made(tables, meta):
            self._create_schema()
            return
        if meta.get("app") != APP_ID:
            raise StoreError(
                f"{self.path} is a SQLite database of another program (tables: {', '.join(sorted(tables))}); "
                "it was left untouched. Choose another --results folder."
            )
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema {meta.get('schema_version')!r}; this lossbench reads "
                f"schema {SCHEMA_VERSION!r}. Use the lossbench version that wrote it, or another --results."
            )
        check = self.connection.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"{self.path} is corrupt ({check}); it was left untouched.")
        if set(TABLES) - tables:  # a lossbench store that lost tables: recreate the missing ones, empty
            self._create_schema()

    def check_writable(self) -> None:
        """Fail now, in one line, if the store cannot be written (read-only or immutable file, read-only folder),
        rather than after the first run has trained: a write that is rolled back."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute("INSERT OR REPLACE INTO meta VALUES ('write_check', ?)", (str(os.getpid()),))
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"{self.path} cannot be written ({exc}); make it and its folder writable, "
                "or choose another --results folder"
            ) from None
        finally:
            if self.connection.in_transaction:
                self.connection.rollback()

    def check_present(self) -> None:
        """Raise ``StoreLost`` if the store file was deleted or replaced since it was opened (``results/`` removed
        mid-grid): the connection would go on writing into a file nobody can see any more."""
        try:
            stat = os.stat(self.path)
            same = (stat.st_dev, stat.st_ino) == self.identity
        except OSError:
            same = False
        if not same:
            raise StoreLost(self.path)

    def rescue(self) -> Path:
        """Copy the open (deleted or replaced) store's content, every run committed so far, back into a file:
        its own path when free, else ``lossbench.db.recovered`` beside it. Returns where it went."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = self.path if not self.path.exists() else self.path.with_name(DB_NAME + ".recovered")
        copy = sqlite3.connect(target)
        try:
            self.connection.backup(copy)
        finally:
            copy.close()
        return target

    def _ensure_extensions(self) -> None:
        """Add the provenance, checkpoint and superseded-run tables (a no-op when they exist). A read-only older
        store is still read: it simply has no provenance, checkpoints or superseded runs."""
        present = {row[0] for row in self.connection.execute("SELECT name FROM sqlite_master")}
        self.extensions = {"provenance", "checkpoints", "superseded_runs", "superseded_samples"} <= present
        if self.extensions:
            return
        try:
            with self.connection:
                for statement in EXTENSION_SCHEMA:
                    self.connection.execute(statement)
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc).replace("-", "").replace(" ", ""):
                raise
            return
        self.extensions = True

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------------
    def commit(self, result: RunResult, provenance: dict | None = None, superseding: str = "trained again") -> None:
        """Write one finished run in a single transaction, with the code that produced it (``provenance``) and its
        checkpoint; an earlier record of the same run is kept as superseded, with ``superseding`` as the reason.
        A store deleted or replaced since it was opened raises ``StoreLost`` instead."""
        self.check_present()
        try:
            self._commit(result, provenance, superseding)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"could not write run {result.spec.label} to {self.path} ({exc}); the runs committed before it are kept"
            ) from None

    def _commit(self, result: RunResult, provenance: dict | None, superseding: str) -> None:
        spec, run_id = result.spec, result.run_id
        checkpoint = self._save_checkpoint(result.checkpoint) if result.checkpoint else None
        with self.connection:
            self._supersede(run_id, superseding)
            for table in ("history", "curves", "metrics", "samples", "runs", *EXTENSION_TABLES):
                self.connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            self.connection.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    spec.dataset,
                    spec.model,
                    spec.loss,
                    spec.seed,
                    spec.preset,
                    spec.steps,
                    spec.device,
                    json.dumps(spec.to_dict(), sort_keys=True),
                    result.status,
                    result.reason,
                    result.failed_step,
                    result.train_seconds,
                    result.eval_seconds,
                    json.dumps(result.environment, sort_keys=True),
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                ),
            )
            self.connection.executemany(
                f"INSERT INTO history VALUES (?, {', '.join('?' for _ in HISTORY_COLUMNS)})",
                [(run_id, *map(_nan_to_none, row)) for row in result.history.itertuples(index=False)],
            )
            self.connection.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?)",
                [
                    (run_id, int(step), key, _nan_to_none(value))
                    for step, key, value in result.curves.itertuples(index=False)
                ],
            )
            rows: list[MetricRow] = [(run_id, key, _nan_to_none(value), None) for key, value in result.metrics.items()]
            rows += [(run_id, key, None, text) for key, text in result.texts.items() if key not in result.metrics]
            self.connection.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", rows)
            if result.samples is not None:
                buffer = io.BytesIO()
                np.save(buffer, result.samples, allow_pickle=False)
                self.connection.execute("INSERT INTO samples VALUES (?, ?)", (run_id, buffer.getvalue()))
            if provenance is not None:
                self.connection.execute(
                    "INSERT INTO provenance VALUES (?, ?)", (run_id, json.dumps(provenance, sort_keys=True))
                )
            if checkpoint is not None:
                self.connection.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
                    (run_id, result.checkpoint_role, checkpoint, len(result.checkpoint or b"")),
                )

    def _save_checkpoint(self, data: bytes) -> str:
        """Write a checkpoint as ``checkpoints/<sha256>.pt`` (content-addressed: equal weights are stored once)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path.parent / CHECKPOINTS_DIR / f"{digest}.pt"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        return digest

    def _supersede(self, run_id: str, reason: str) -> int | None:
        """Copy the current record of ``run_id`` (if any) to the superseded tables; return its generation."""
        connection = self.connection
        row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        columns = [d[0] for d in connection.execute("SELECT * FROM runs LIMIT 0").description]
        provenance = connection.execute("SELECT json FROM provenance WHERE run_id = ?", (run_id,)).fetchone()
        checkpoint = connection.execute("SELECT sha256 FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
        cursor = connection.execute(
            "INSERT INTO superseded_runs (run_id, superseded_at, reason, run_json, provenance_json, checkpoint) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                run_id,
                datetime.now(timezone.utc).isoformat(timespec="seconds"),
                reason,
                json.dumps(dict(zip(columns, row)), sort_keys=True),
                provenance and provenance[0],
                checkpoint and checkpoint[0],
            ),
        )
        generation = cursor.lastrowid
        for table, columns_sql in (
            ("metrics", "key, value, text"),
            ("history", ", ".join(HISTORY_COLUMNS)),
            ("curves", "step, key, value"),
            ("samples", "npy"),
        ):
            connection.execute(
                f"INSERT INTO superseded_{table} SELECT ?, {columns_sql} FROM {table} WHERE run_id = ?",
                (generation, run_id),
            )
        return generation

    def replace_metrics(
        self, run_id: str, names: list[str], values: dict[str, float], texts: dict[str, str], provenance: dict | None
    ) -> None:
        """Replace the values of the metrics ``names`` of one run (``lossbench rescore``), in one transaction."""
        with self.connection:
            for name in names:
                self.connection.execute(
                    "DELETE FROM metrics WHERE run_id = ? AND (key = ? OR key LIKE ? ESCAPE '!')",
                    (run_id, name, _like_prefix(name + "_")),
                )  # its values and <name>_error
            rows: list[MetricRow] = [(run_id, key, _nan_to_none(value), None) for key, value in values.items()]
            rows += [(run_id, key, None, text) for key, text in texts.items() if key not in values]
            self.connection.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)", rows)
            if provenance is not None:
                self.connection.execute(
                    "INSERT OR REPLACE INTO provenance VALUES (?, ?)", (run_id, json.dumps(provenance, sort_keys=True))
                )

    # -- reading ------------------------------------------------------------------------------------------------
    def finished_ids(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT run_id FROM runs")}

    def failed_ids(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT run_id FROM runs WHERE status = 'failed'")}

    def runs(self) -> pd.DataFrame:
        """One row per run: identity, outcome, timings and environment (not the metrics)."""
        return pd.read_sql_query("SELECT * FROM runs ORDER BY dataset, model, loss, seed, run_id", self.connection)

    def metrics(self) -> pd.DataFrame:
        """Long table: run_id, key, value, text."""
        return pd.read_sql_query("SELECT * FROM metrics ORDER BY run_id, key", self.connection)

    def history(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM history ORDER BY run_id, step", self.connection)

    def curves(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM curves ORDER BY run_id, step, key", self.connection)

    def samples(self, run_id: str) -> np.ndarray | None:
        row = self.connection.execute("SELECT npy FROM samples WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else np.load(io.BytesIO(row[0]), allow_pickle=False)

    def provenances(self) -> dict[str, dict]:
        """run_id -> the provenance stored with each current run (runs stored before provenance have none)."""
        if not self.extensions:
            return {}
        return {
            run_id: json.loads(text) for run_id, text in self.connection.execute("SELECT run_id, json FROM provenance")
        }

    def checkpoint_path(self, run_id: str) -> Path | None:
        """The file of a run's final generator (GAN) or decoder (VAE) weights, or None when it has none."""
        if not self.extensions:
            return None
        row = self.connection.execute("SELECT sha256 FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else self.path.parent / CHECKPOINTS_DIR / f"{row[0]}.pt"

    def superseded(self) -> pd.DataFrame:
        """Earlier records of runs that were trained again: generation, run_id, when, why, and the old row."""
        if not self.extensions:
            return pd.DataFrame(
                columns=["generation", "run_id", "superseded_at", "reason", "run_json", "provenance_json", "checkpoint"]
            )
        return pd.read_sql_query("SELECT * FROM superseded_runs ORDER BY generation", self.connection)

    def spec(self, run_id: str) -> RunSpec:
        row = self.connection.execute("SELECT spec_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return RunSpec.from_dict(json.loads(row[0]))

    def runs_wide(self) -> pd.DataFrame:
        """One row per run with its metric values as columns: the deterministic content of ``runs.csv``."""
        runs = self.runs()[RUN_KEY_COLUMNS + RUN_OUTCOME_COLUMNS]
        metrics = self.metrics()
        numeric = metrics.dropna(subset=["value"]).pivot(index="run_id", columns="key", values="value")
        text = metrics.dropna(subset=["text"]).pivot(index="run_id", columns="key", values="text")
        wide = runs.set_index("run_id").join(numeric).join(text).reset_index()
        return wide


def history_with_keys(store: Store) -> pd.DataFrame:
    """The history table with each run's dataset, model, loss and seed, for exports and figures."""
    keys = store.runs()[["run_id", "dataset", "model", "loss", "seed"]]
    return keys.merge(store.history(), on="run_id", how="inner")


def export(store: Store, results_dir: Path, extra_tables: Iterable[tuple[str, pd.DataFrame]] = ()) -> list[Path]:
    """Write runs.csv, history.csv, curves.csv (and each extra table) as CSV and Parquet; return the paths."""
    results_dir = Path(results_dir)
    curves = store.runs()[["run_id", "dataset", "model", "loss", "seed"]].merge(store.curves(), on="run_id")
    tables = [("runs", store.runs_wide()), ("history", history_with_keys(store)), ("curves", curves), *extra_tables]
    written = []
    for name, frame in tables:  # each file whole or not at all: a kill mid-export leaves no cut CSV
        csv_path = results_dir / f"{name}.csv"
        with atomic_path(csv_path) as temporary:
            frame.to_csv(temporary, index=False)
        with atomic_path(results_dir / f"{name}.parquet") as temporary:
            frame.to_parquet(temporary, index=False)
        written.append(csv_path)
    return written
