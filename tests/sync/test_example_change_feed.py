"""The change-feed example DAG, run with ``dag.test()`` hour by hour in reverse order against the emulator."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0, status_change_seconds=0),
]

ROWS = [  # note_id, title, body, updated_at, is_deleted
    (1, "Note 1", "first", "2026-01-01T01:30:00", 0),
    (2, "Note 2", "created", "2026-01-01T02:30:00", 0),
    (1, "Note 1", "second", "2026-01-01T03:30:00", 0),
    (2, "Note 2", None, "2026-01-01T04:30:00", 1),
    (3, "Note 3", "late", "2026-01-01T05:30:00", 0),
]


def test_hours_backfilled_newest_first_end_with_the_newest_versions(
    dify_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_named_events: Any
) -> None:
    from example_dags.warehouse import sqlite_connection_json

    path = tmp_path / "changes.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE note_changes (note_id INTEGER, title TEXT, body TEXT, updated_at TEXT, is_deleted INTEGER)"
        )
        connection.executemany("INSERT INTO note_changes VALUES (?, ?, ?, ?, ?)", ROWS)
    connection.close()
    monkeypatch.setenv("AIRFLOW_CONN_CHANGES_SQLITE", sqlite_connection_json(path))
    dataset_id = dify_emulator.create_dataset("airflow-example-changes")["id"]

    from airflow_provider_dify.testing.dag_runner import run_dag
    from example_dags.example_dify_change_feed import dag

    assert dag.catchup and dag.max_active_runs > 1
    assert dag.get_task("sync_changes").max_active_tis_per_dag == 1
    stale, changed = 0, 0
    for hour in range(7, -1, -1):  # the newest hour first, as a backfill run in reverse
        dag_run = run_dag(dag, logical_date=datetime(2026, 1, 1, hour, tzinfo=UTC))
        assert task_state(dag_run, "sync_changes") == "success"
        counts = xcom_value(dag_run, "sync_changes")["counts"]
        stale += counts["stale"]
        changed += any(counts[kind] for kind in ("created", "updated", "deleted"))
        dify_emulator.wait_for_indexing()
    assert stale == 2  # note 1's first version and note 2's creation came after newer ones
    # The file names the knowledge base: each changing hour's event is quiet.
    quiet_named_events("airflow-example-changes", ["sync_changes"] * changed)
    live = {
        doc["name"]: doc["text"]
        for doc in dify_emulator.documents(dataset_id)
        if doc["enabled"] and not doc["archived"]
    }
    assert live == {"note-1": "Note 1\n\nsecond", "note-3": "Note 3\n\nlate"}
