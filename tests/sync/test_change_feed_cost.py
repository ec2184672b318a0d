"""What a run reads is set by its changes, not by the size of the scope (request counts, never times).

A change feed (no ``delete_missing``) finds its records' documents by exact-name lookups when they are fewer
than the listing's pages; a snapshot (``delete_missing``) lists the scope.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.operators._content import metadata_values
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from airflow_provider_dify.operators.sync._versions import VERSION_FIELD
from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.0)]

LIST = "/datasets/{dataset_id}/documents"
_numbers = itertools.count()


def sync(dataset_id: str, records: list[dict[str, Any]], **operator: Any) -> dict[str, Any]:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.testing.dag_runner import run_dag

    with DAG(f"change_feed_cost_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        DifySyncDocumentsOperator(
            task_id="sync",
            dataset_id=dataset_id,
            records=records,
            key_field="note_id",
            name_prefix="note-",
            text_template="{{ body }}",
            max_workers=8,
            **operator,
        )
    dag_run = run_dag(dag)
    assert task_state(dag_run, "sync") == "success"
    return xcom_value(dag_run, "sync")


def notes(numbers: range | list[int], body: str = "note {n}", version: int = 1) -> list[dict[str, Any]]:
    return [{"note_id": f"{n:06d}", "body": body.format(n=n), "updated_at": version} for n in numbers]


def seed(dify: Any, dataset_id: str, count: int) -> None:
    """``count`` indexed documents named like the sync's (``note-000001``...), straight into the store."""
    with dify.lock:
        now = dify.state.now()
        dataset = dify.state.get_dataset(dataset_id)
        for n in range(1, count + 1):
            values = {"name": f"note-{n:06d}", "text": f"note {n}", "process_rule": {"mode": "automatic"}}
            dify.state.create_text_document(dataset, values, now)
        dify.state.drain(now)
        dify.state.bump()


def reads(dify: Any) -> int:
    return dify.count("GET")


def test_five_changes_into_a_hundred_thousand_documents_read_at_most_eight_pages(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("big")["id"]
    seed(dify_emulator, dataset_id, 100_000)
    changed = [7, 4_242, 50_000, 77_777, 99_999]
    dify_emulator.reset_counters()
    manifest = sync(
        dataset_id, notes(changed, "note {n}, new", version=2), version_field="updated_at", verify_versions=False
    )
    assert manifest["found_by"] == "lookups"
    assert manifest["counts"]["updated"] == 5 and manifest["counts"]["created"] == 0
    # the knowledge base, the first list page's total, five lookups, the metadata fields
    assert reads(dify_emulator) <= 5 + 3
    # the verifying read after the writes (the default with version_field) looks the five names up again
    dify_emulator.reset_counters()
    verified = sync(dataset_id, notes([8, 9, 10, 11, 12], "note {n}, new", version=2), version_field="updated_at")
    assert verified["counts"]["updated"] == 5 and not verified["failed"]
    assert reads(dify_emulator) <= 5 + 3 + 1 + 5
    stored = [dify_emulator.document(dataset_id, entry["id"]) for entry in manifest["updated"]]
    assert {doc["name"]: doc["text"] for doc in stored} == {f"note-{n:06d}": f"note {n}, new" for n in changed}
    assert all(metadata_values(doc)[VERSION_FIELD] == "2" for doc in stored)


def test_a_snapshot_lists_and_a_change_feed_looks_up(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("snapshot")["id"]
    snapshot = notes(range(1, 2001))
    sync(dataset_id, snapshot, delete_missing=True)
    assert dify_emulator.wait_for_indexing()

    dify_emulator.reset_counters()
    unchanged = sync(dataset_id, snapshot, delete_missing=True)
    assert unchanged["counts"]["unchanged"] == 2000 and unchanged["found_by"] == "listing"
    assert dify_emulator.write_count() == 0
    listing_reads = reads(dify_emulator)
    assert listing_reads <= 25  # 20 pages of 100, the knowledge base

    # Failure 4: one changed record, synced as the snapshot it belongs to, reads the whole listing again
    snapshot[41] = {**snapshot[41], "body": "note 42, changed"}
    dify_emulator.reset_counters()
    sync(dataset_id, snapshot, delete_missing=True)
    assert reads(dify_emulator) >= 20

    # as a change feed it reads what the one record needs
    dify_emulator.reset_counters()
    feed = sync(dataset_id, notes([43], "note 43, changed"))
    assert feed["found_by"] == "lookups" and feed["counts"]["updated"] == 1
    assert reads(dify_emulator) <= 1 + 3
    texts = {doc["name"]: doc["text"] for doc in dify_emulator.documents(dataset_id)}
    assert texts["note-000042"] == "note 42, changed" and texts["note-000043"] == "note 43, changed"
    assert len(texts) == 2000


def test_lookups_of_names_inside_many_others_fall_back_to_the_listing(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("prefixes")["id"]
    with dify_emulator.lock:
        now = dify_emulator.state.now()
        dataset = dify_emulator.state.get_dataset(dataset_id)
        for n in range(1, 1001):  # note-1 is inside note-10..note-19, note-100..note-199, note-1000
            dify_emulator.state.create_text_document(
                dataset, {"name": f"note-{n}", "text": f"note {n}", "process_rule": {"mode": "automatic"}}, now
            )
        dify_emulator.state.drain(now)
    dify_emulator.reset_counters()
    records = [{"note_id": n, "body": f"note {n}, new"} for n in (1, 2, 3, 4, 5)]
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.testing.dag_runner import run_dag

    with DAG(f"change_feed_cost_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        DifySyncDocumentsOperator(
            task_id="sync",
            dataset_id=dataset_id,
            records=records,
            key_field="note_id",
            name_prefix="note-",
            text_template="{{ body }}",
        )
    manifest = xcom_value(run_dag(dag), "sync")
    assert manifest["counts"]["updated"] == 5
    # note-1, note-2 and note-3 each match 111 or 112 names (two pages): by the third the lookups would read more
    # than the 10 pages of the listing, which is read instead; a run reads at most about twice the listing
    assert manifest["found_by"] == "listing"
    assert reads(dify_emulator) <= 2 * 10 + 3
