"""Change feeds through real DAG runs (``dag.test()`` with logical dates) against the emulator over HTTP.

The source is a SQLite change log, one partition per logical date (``WHERE change_date = '{{ ds }}'``), with a
soft-delete column and a version column. Each test first shows the failure of a snapshot-style sync (issue 24's
four failures), then the change feed's exact final state in the emulator's store.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators._content import metadata_values
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from airflow_provider_dify.operators.sync._versions import DELETED_FIELD, VERSION_FIELD
from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.02)]

CHANGES_CONN_ID = "changes_sqlite"
PARTITION_SQL = (
    "SELECT note_id, body, updated_at, is_deleted FROM note_changes WHERE change_date = '{{ ds }}' ORDER BY note_id"
)
_numbers = itertools.count()


@pytest.fixture
def changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty change log behind the Airflow connection ``changes_sqlite``."""
    from example_dags.warehouse import sqlite_connection_json

    path = tmp_path / "changes.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE note_changes (note_id INTEGER, body TEXT, updated_at TEXT, is_deleted INTEGER,"
            " change_date TEXT)"
        )
    connection.close()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CHANGES_CONN_ID.upper()}", sqlite_connection_json(path))
    return path


def change(path: Path, note_id: int, day: int, body: str | None, *, deleted: bool = False) -> None:
    """A change of note ``note_id`` on 2026-01-``day`` (its version: that day at noon)."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO note_changes VALUES (?, ?, ?, ?, ?)",
            (note_id, body, f"2026-01-{day:02d} 12:00:00", int(deleted), f"2026-01-{day:02d}"),
        )
    connection.close()


def feed_dag(dataset_id: str, **operator: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    settings: dict[str, Any] = {
        "sql": PARTITION_SQL,
        "sql_conn_id": CHANGES_CONN_ID,
        "key_field": "note_id",
        "name_prefix": "note-",
        "text_template": "{{ body }}",
        "scope": "notes",
        **operator,
    }
    with DAG(f"change_feed_{next(_numbers)}", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False) as dag:
        DifySyncDocumentsOperator(task_id="sync", dataset_id=dataset_id, **settings)
    return dag


def run_on(dag: Any, day: int) -> dict[str, Any]:
    from airflow_provider_dify.testing.dag_runner import run_dag

    dag_run = run_dag(dag, logical_date=datetime(2026, 1, day, tzinfo=UTC))
    assert task_state(dag_run, "sync") == "success"
    return xcom_value(dag_run, "sync")


def live(dify: Any, dataset_id: str) -> dict[str, str]:
    """``{name: text}`` of the documents retrieval can see (enabled, not archived)."""
    return {
        doc["name"]: doc["text"]
        for doc in dify.documents(dataset_id)
        if doc.get("enabled", True) and not doc.get("archived")
    }


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("change-feed")["id"]


def test_an_interval_sync_keeps_the_records_outside_its_interval(
    dify_emulator: Any, dataset_id: str, changes: Path
) -> None:
    change(changes, 1, 3, "note one, Jan 3")
    change(changes, 3, 3, "note three, Jan 3")
    change(changes, 1, 5, "note one, Jan 5")
    # Failure 1: as a snapshot (delete_missing) the Jan 5 interval deletes note 3, which it merely did not touch
    snapshot = feed_dag(dataset_id, delete_missing=True)
    run_on(snapshot, 3)
    assert run_on(snapshot, 5)["counts"]["deleted"] == 1
    assert sorted(live(dify_emulator, dataset_id)) == ["note-1"]

    other = dify_emulator.create_dataset("change-feed-2")["id"]
    dag = feed_dag(other, deleted_field="is_deleted", version_field="updated_at")
    run_on(dag, 3)
    manifest = run_on(dag, 5)
    assert manifest["counts"]["deleted"] == 0 and manifest["counts"]["updated"] == 1
    assert live(dify_emulator, other) == {"note-1": "note one, Jan 5", "note-3": "note three, Jan 3"}


def test_an_older_backfill_does_not_overwrite_newer_content(dify_emulator: Any, dataset_id: str, changes: Path) -> None:
    change(changes, 1, 3, "note one, Jan 3")
    change(changes, 1, 5, "note one, Jan 5")
    # Failure 2: without versions the Jan 3 backfill, run after Jan 5, leaves Jan 3's text
    plain = feed_dag(dataset_id)
    run_on(plain, 5)
    run_on(plain, 3)
    assert live(dify_emulator, dataset_id) == {"note-1": "note one, Jan 3"}

    other = dify_emulator.create_dataset("change-feed-2")["id"]
    dag = feed_dag(other, version_field="updated_at")
    run_on(dag, 5)
    assert dify_emulator.wait_for_indexing()
    dify_emulator.reset_counters()
    backfill = run_on(dag, 3)
    assert backfill["counts"]["stale"] == 1 and backfill["counts"]["updated"] == 0
    assert backfill["stale"] == [
        {
            "key": "1",
            "name": "note-1",
            "id": backfill["stale"][0]["id"],
            "operation": "write",
            "version": "2026-01-03T12:00:00+00:00",
            "held": "2026-01-05T12:00:00+00:00",
        }
    ]
    assert dify_emulator.write_count() == 0
    assert live(dify_emulator, other) == {"note-1": "note one, Jan 5"}
    (document,) = dify_emulator.documents(other)
    assert metadata_values(document)[VERSION_FIELD] == "2026-01-05T12:00:00+00:00"


@pytest.mark.parametrize("order", [(2, 4), (4, 2)], ids=["delete-after-create", "delete-before-create"])
def test_a_soft_deleted_row_deletes_in_either_order(
    dify_emulator: Any, dataset_id: str, changes: Path, order: tuple[int, int]
) -> None:
    change(changes, 2, 2, "note two, Jan 2")
    change(changes, 5, 2, "note five, Jan 2")
    change(changes, 2, 4, None, deleted=True)
    # Failure 3: without deleted_field the soft-deleted row is written as a document (its text rendered empty
    # is a failed record at best); the document of Jan 2 stays
    plain = feed_dag(dataset_id, text_template="{{ body or 'deleted' }}")
    run_on(plain, 2)
    run_on(plain, 4)
    assert "note-2" in live(dify_emulator, dataset_id)

    other = dify_emulator.create_dataset("change-feed-2")["id"]
    dag = feed_dag(other, deleted_field="is_deleted", version_field="updated_at")
    manifests = {}
    for day in order:
        manifests[day] = run_on(dag, day)
        assert dify_emulator.wait_for_indexing()
    assert live(dify_emulator, other) == {"note-5": "note five, Jan 2"}
    assert manifests[4]["counts"]["deleted"] == 1 and [entry["name"] for entry in manifests[4]["deleted"]] == ["note-2"]
    if order == (4, 2):
        assert manifests[2]["counts"]["stale"] == 1 and manifests[2]["stale"][0]["name"] == "note-2"
    remembered = {doc["name"]: doc for doc in dify_emulator.documents(other)}["note-2"]
    assert remembered["enabled"] is False
    assert metadata_values(remembered)[VERSION_FIELD] == "2026-01-04T12:00:00+00:00"
    assert metadata_values(remembered)[DELETED_FIELD] not in (None, "", "no")
    # running the older date again, and the deletion again, changes nothing
    dify_emulator.reset_counters()
    run_on(dag, 2)
    again = run_on(dag, 4)
    assert dify_emulator.write_count() == 0 and again["counts"]["deleted"] == 0
    assert live(dify_emulator, other) == {"note-5": "note five, Jan 2"}


def test_a_newer_version_brings_a_deleted_record_back(dify_emulator: Any, dataset_id: str, changes: Path) -> None:
    change(changes, 2, 2, "note two, Jan 2")
    change(changes, 2, 4, None, deleted=True)
    change(changes, 2, 6, "note two is back, Jan 6")
    dag = feed_dag(dataset_id, deleted_field="is_deleted", version_field="updated_at")
    for day in (2, 6, 4):  # the deletion arrives last, older than the revival
        run_on(dag, day)
        assert dify_emulator.wait_for_indexing()
    assert live(dify_emulator, dataset_id) == {"note-2": "note two is back, Jan 6"}
    (document,) = dify_emulator.documents(dataset_id)
    assert metadata_values(document)[DELETED_FIELD] == "no"

    other = dify_emulator.create_dataset("change-feed-2")["id"]  # deleted, then brought back by a newer version
    other_dag = feed_dag(other, deleted_field="is_deleted", version_field="updated_at")
    for day in (2, 4, 6):
        run_on(other_dag, day)
        assert dify_emulator.wait_for_indexing()
    assert live(dify_emulator, other) == {"note-2": "note two is back, Jan 6"}
    assert len(dify_emulator.documents(other)) == 1  # the same document, enabled again


def test_a_deletion_without_versions_deletes_and_costs_nothing_when_never_held(
    dify_emulator: Any, dataset_id: str, changes: Path
) -> None:
    change(changes, 2, 2, "note two, Jan 2")
    change(changes, 2, 4, None, deleted=True)
    change(changes, 7, 4, None, deleted=True)  # never held
    dag = feed_dag(dataset_id, deleted_field="is_deleted")
    run_on(dag, 2)
    assert dify_emulator.wait_for_indexing()
    dify_emulator.reset_counters()
    manifest = run_on(dag, 4)
    assert manifest["counts"]["deleted"] == 1 and "stale" not in manifest["counts"]
    assert dify_emulator.write_count() == 1  # the one delete
    assert dify_emulator.documents(dataset_id) == []


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (["2026-01-02T12:00:00", 17], "record '2' has a number in 'updated_at' (17) but record '1' has a datetime"),
        (["2026-01-02", "yesterday"], "record '2' has updated_at = 'yesterday', which cannot be ordered"),
        ([3, None], "record '2' has updated_at = None, which cannot be ordered"),
    ],
    ids=["mixed-kinds", "not-iso", "missing"],
)
def test_mixed_or_unorderable_versions_fail_before_any_write(
    dify_emulator: Any, dataset_id: str, versions: list[Any], message: str
) -> None:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.testing.dag_runner import run_dag

    records = [
        {"note_id": number, "body": f"note {number}", "updated_at": version}
        for number, version in enumerate(versions, start=1)
    ]
    with DAG(f"change_feed_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        operator = DifySyncDocumentsOperator(
            task_id="sync",
            dataset_id=dataset_id,
            records=records,
            key_field="note_id",
            name_prefix="note-",
            text_template="{{ body }}",
            version_field="updated_at",
        )
    dify_emulator.reset_counters()
    assert task_state(run_dag(dag), "sync") == "failed"
    assert dify_emulator.count() == 0  # not even a read: the records are read first
    with pytest.raises(ValueError, match=re.escape(message)):
        operator._read_records({})


@pytest.mark.parametrize("retention", [timedelta(seconds=1)])
def test_remembered_deletions_are_purged_after_the_retention(
    dify_emulator: Any, dataset_id: str, changes: Path, retention: timedelta
) -> None:
    change(changes, 2, 2, "note two, Jan 2")
    change(changes, 2, 4, None, deleted=True)
    dag = feed_dag(dataset_id, deleted_field="is_deleted", version_field="updated_at", deletion_retention=retention)
    run_on(dag, 2)
    assert dify_emulator.wait_for_indexing()
    run_on(dag, 4)
    assert [doc["enabled"] for doc in dify_emulator.documents(dataset_id)] == [False]
    import time

    time.sleep(1.2)
    purged = run_on(dag, 4)  # finds the remembered deletion past its retention
    assert dify_emulator.documents(dataset_id) == []
    assert [entry["name"] for entry in purged["deleted"]] == ["note-2"]


def test_the_deletion_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="deletion_retention"):
        DifySyncDocumentsOperator(
            task_id="t", dataset_name="kb", records=[], key_field="id", version_field="v", deletion_retention=0
        )


@pytest.mark.parametrize("argument", ["deleted_field", "version_field"])
def test_the_chunk_sync_refuses_a_change_feed_and_points_at_the_document_sync(argument: str) -> None:
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    with pytest.raises(ValueError, match=rf"^{argument}: the chunk sync is a snapshot .* DifySyncDocumentsOperator"):
        DifySyncChunksOperator(
            task_id="t", dataset_name="kb", document_name="notes", records=[], key_field="id", **{argument: "x"}
        )
