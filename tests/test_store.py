"""The SQLite store: one transaction per run, and corrupt or foreign files refused and left untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lossbench.plan.grid import RunSpec
from lossbench.records import HISTORY_COLUMNS, RunResult
from lossbench.results.store import Store

SPEC = RunSpec("nonsaturating", "mlp", "ring8", 0, 10, 8, 5, 5, 10, 10)


def test_commit_replaces_a_run_and_round_trips(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.commit(RunResult(SPEC, "failed", reason="first try", failed_step=3))
        store.commit(
            RunResult(
                SPEC,
                "ok",
                metrics={"modes_covered": 7.0, "modes_kl": float("nan")},
                texts={"fid_features": "coordinates"},
            )
        )
        assert store.finished_ids() == {SPEC.run_id}
        wide = store.runs_wide()
        assert len(wide) == 1 and wide.loc[0, "status"] == "ok" and wide.loc[0, "modes_covered"] == 7.0
        assert wide.loc[0, "fid_features"] == "coordinates"
        assert store.spec(SPEC.run_id) == SPEC


@pytest.mark.parametrize("content", [b"this is not a database at all" * 10, b""])
def test_corrupt_store_is_refused_and_left_untouched(cli, workdir: Path, content: bytes) -> None:
    db = workdir / "results" / "lossbench.db"
    db.parent.mkdir()
    db.write_bytes(content or b"SQLite format 3\x00" + b"\x00" * 50)  # a header with garbage behind it
    before = db.read_bytes()
    result = cli("run", "-l", "nonsaturating", "-d", "ring8", "--preset", "smoke", "--seeds", "0")
    assert result.exit_code == 1, result.output
    assert "lossbench.db" in result.output and "left untouched" in result.output
    assert "Traceback" not in result.output
    assert db.read_bytes() == before


def test_foreign_sqlite_database_is_refused_and_left_untouched(cli, workdir: Path) -> None:
    db = workdir / "results" / "lossbench.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
        connection.execute("INSERT INTO invoices VALUES (1, 9.5)")
    before = db.read_bytes()
    result = cli("run", "-l", "nonsaturating", "-d", "ring8", "--preset", "smoke", "--seeds", "0")
    assert result.exit_code == 1, result.output
    assert "another program" in result.output and "invoices" in result.output
    assert db.read_bytes() == before


def test_show_without_a_store_says_what_to_do(cli) -> None:
    result = cli("show")
    assert result.exit_code == 1 and "lossbench run --grid" in result.output


def test_replace_metrics_replaces_exactly_one_metrics_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.commit(
            RunResult(
                SPEC,
                "ok",
                metrics={"kid": 1.0, "kid_std": 0.5, "kidney": 9.0, "fid": 3.0},
                texts={"kid_features": "coordinates", "kid_error": "old failure"},
            )
        )
        store.replace_metrics(SPEC.run_id, ["kid"], {"kid": 2.0}, {"kid_features": "pixels"}, {"lossbench": "x"})
        stored = store.metrics().set_index("key")
        assert stored["value"].dropna().to_dict() == {"fid": 3.0, "kid": 2.0, "kidney": 9.0}
        assert stored["text"].dropna().to_dict() == {"kid_features": "pixels"}
        assert store.provenances() == {SPEC.run_id: {"lossbench": "x"}}


def test_a_replaced_run_is_kept_as_superseded_with_its_rows(tmp_path: Path) -> None:
    import pandas as pd

    history = pd.DataFrame(
        [[1, 0.5] + [float("nan")] * 10],
        columns=list(HISTORY_COLUMNS),
    )
    with Store.open(tmp_path) as store:
        store.commit(RunResult(SPEC, "ok", metrics={"fid": 1.0}, history=history), {"lossbench": "old"})
        store.commit(RunResult(SPEC, "ok", metrics={"fid": 2.0}), {"lossbench": "new"}, "stale: lossbench old -> new")
        superseded = store.superseded()
        assert superseded[["generation", "run_id", "reason"]].values.tolist() == [
            [1, SPEC.run_id, "stale: lossbench old -> new"]
        ]
        assert superseded.loc[0, "provenance_json"] == '{"lossbench": "old"}'
        rows = store.connection.execute("SELECT key, value FROM superseded_metrics WHERE generation = 1").fetchall()
        steps = store.connection.execute("SELECT step, d_loss FROM superseded_history WHERE generation = 1").fetchall()
        assert rows == [("fid", 1.0)] and steps == [(1.0, 0.5)]
        assert store.runs_wide()["fid"].tolist() == [2.0] and store.history().empty  # readers: the current run only
