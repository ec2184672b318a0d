"""The syncs delete only what the source said to delete (real DAGs through ``dag.test()``, the emulator over HTTP).

Each case asserts the emulator's store (nothing deleted that a record might still stand for) and its request log
(no write before the refusal).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import task_state, xcom_value
from tests.sync.conftest import WAREHOUSE_CONN_ID, execute_sql

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.02)]

ROWS = 200
INTERVAL_ROWS = 10
_numbers = itertools.count()


class RecordingDocuments(DifySyncDocumentsOperator):
    """The document sync, recording in XCom the error that failed it (to check its text)."""

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except Exception as error:
            context["ti"].xcom_push(key="failure", value=f"{type(error).__name__}: {error}")
            raise


class RecordingChunks(DifySyncChunksOperator):
    """The chunk sync, recording in XCom the error that failed it."""

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except Exception as error:
            context["ti"].xcom_push(key="failure", value=f"{type(error).__name__}: {error}")
            raise


def run_sync(operator_class: type, dataset_id: str, **arguments: Any) -> Any:
    """Run one sync task in a DAG of its own; return the DAG run."""
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.testing.dag_runner import run_dag

    with DAG(f"delete_safety_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        operator_class(task_id="sync", dataset_id=dataset_id, retries=0, **arguments)
    return run_dag(dag)


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("delete-safety")["id"]


@pytest.fixture
def events(warehouse: Path) -> Path:
    """A table of ``ROWS`` events, ``INTERVAL_ROWS`` a day, in the warehouse."""
    execute_sql(warehouse, "CREATE TABLE events (id INTEGER, day TEXT, body TEXT)")
    for number in range(ROWS):
        day = f"2026-01-{1 + number // INTERVAL_ROWS:02d}"
        execute_sql(warehouse, "INSERT INTO events VALUES (?, ?, ?)", number, day, f"event {number} of {day}")
    return warehouse


def document_texts(dify: Any, dataset_id: str) -> dict[str, str]:
    return {document["name"]: document["text"] for document in dify.documents(dataset_id)}


def chunk_texts(dify: Any, dataset_id: str) -> list[str]:
    [holder] = dify.documents(dataset_id)
    return sorted(chunk["content"] for chunk in dify.segments(dataset_id, holder["id"]))


DOCUMENTS = {
    "sql_conn_id": WAREHOUSE_CONN_ID,
    "key_field": "id",
    "name_prefix": "event-",
    "text_template": "{{ body }}",
    "scope": "warehouse:events",
    "delete_missing": True,
}
CHUNKS = {
    "sql_conn_id": WAREHOUSE_CONN_ID,
    "key_field": "id",
    "text_template": "{{ body }}",
    "document_name": "warehouse: events",
    "poll_interval": 0.05,
}
INTERVAL = "SELECT id, day, body || ' (updated)' AS body FROM events WHERE day = '2026-01-03'"


def test_interval_query_with_delete_missing_is_refused_by_the_document_sync(
    dify_emulator: Any, dataset_id: str, events: Path
) -> None:
    assert task_state(run_sync(RecordingDocuments, dataset_id, sql="SELECT * FROM events", **DOCUMENTS), "sync") == (
        "success"
    )
    before = document_texts(dify_emulator, dataset_id)
    assert len(before) == ROWS
    dify_emulator.reset_counters()

    refused = run_sync(RecordingDocuments, dataset_id, sql=INTERVAL, **DOCUMENTS)

    assert task_state(refused, "sync") == "failed"
    failure = xcom_value(refused, "sync", key="failure")
    deletes = ROWS - INTERVAL_ROWS
    assert failure.startswith("AirflowFailException: max_deletes:")
    assert f"delete {deletes} of the {ROWS} documents" in failure and "delete_missing" in failure
    assert "max_deletes=0.5 allows (100)" in failure and "max_deletes=None" in failure
    assert dify_emulator.write_count() == 0  # not one write: the 10 updates wait with the deletes
    assert document_texts(dify_emulator, dataset_id) == before

    # The argument that allows it: the same run deletes the other 190 documents.
    allowed = run_sync(RecordingDocuments, dataset_id, sql=INTERVAL, max_deletes=None, **DOCUMENTS)
    assert task_state(allowed, "sync") == "success"
    assert xcom_value(allowed, "sync")["counts"]["deleted"] == deletes
    assert len(document_texts(dify_emulator, dataset_id)) == INTERVAL_ROWS


def test_interval_query_is_refused_by_the_chunk_sync(dify_emulator: Any, dataset_id: str, events: Path) -> None:
    assert task_state(run_sync(RecordingChunks, dataset_id, sql="SELECT * FROM events", **CHUNKS), "sync") == "success"
    before = chunk_texts(dify_emulator, dataset_id)
    assert len(before) == ROWS
    dify_emulator.reset_counters()

    refused = run_sync(RecordingChunks, dataset_id, sql=INTERVAL, **CHUNKS)

    assert task_state(refused, "sync") == "failed"
    failure = xcom_value(refused, "sync", key="failure")
    assert failure.startswith("AirflowFailException: max_deletes:")
    assert f"delete {ROWS} of the {ROWS} chunks" in failure  # every old text goes: the interval's texts changed
    assert dify_emulator.write_count() == 0
    assert chunk_texts(dify_emulator, dataset_id) == before

    # A count allows it as well as a fraction does.
    allowed = run_sync(RecordingChunks, dataset_id, sql=INTERVAL, max_deletes=ROWS, **CHUNKS)
    assert task_state(allowed, "sync") == "success"
    assert len(chunk_texts(dify_emulator, dataset_id)) == INTERVAL_ROWS


def test_a_small_change_passes_the_guard(dify_emulator: Any, dataset_id: str, events: Path) -> None:
    run_sync(RecordingDocuments, dataset_id, sql="SELECT * FROM events", **DOCUMENTS)
    # Half of the scope gone is still allowed by the default (more than half is refused).
    kept = run_sync(RecordingDocuments, dataset_id, sql="SELECT * FROM events WHERE id % 2 = 0", **DOCUMENTS)
    assert task_state(kept, "sync") == "success"
    assert xcom_value(kept, "sync")["counts"]["deleted"] == ROWS // 2


@pytest.mark.parametrize("good_rows", [0, 1])
def test_null_keys_delete_no_document(dify_emulator: Any, dataset_id: str, events: Path, good_rows: int) -> None:
    run_sync(RecordingDocuments, dataset_id, sql="SELECT * FROM events WHERE id < 3", **DOCUMENTS)
    before = document_texts(dify_emulator, dataset_id)
    assert len(before) == 3
    dify_emulator.reset_counters()
    # The key column is NULL in every row, or in all rows but one; the guard is off, so only the failed
    # records protect the scope.
    query = f"SELECT CASE WHEN id < {good_rows} THEN id END AS id, body FROM events WHERE id < 3"

    dag_run = run_sync(RecordingDocuments, dataset_id, sql=query, max_deletes=None, **DOCUMENTS)

    assert task_state(dag_run, "sync") == "failed"
    manifest = xcom_value(dag_run, "sync", key="manifest")
    assert manifest["counts"]["deleted"] == 0 and manifest["counts"]["failed"] == 3 - good_rows
    assert "2 record(s) failed before their name was known" in manifest["deletes_withheld"] or good_rows == 0
    assert "no document was deleted" in manifest["deletes_withheld"]
    assert "key_field 'id' is empty" in xcom_value(dag_run, "sync", key="failure")
    assert dify_emulator.count("DELETE") == 0
    assert document_texts(dify_emulator, dataset_id) == before


def test_null_keys_delete_no_chunk(dify_emulator: Any, dataset_id: str) -> None:
    records = [{"id": number, "t": f"chunk {number}"} for number in range(5)]
    arguments = {"key_field": "id", "text_template": "{{ t }}", "document_name": "holder", "poll_interval": 0.05}
    assert task_state(run_sync(RecordingChunks, dataset_id, records=records, **arguments), "sync") == "success"
    before = chunk_texts(dify_emulator, dataset_id)
    assert len(before) == 5
    dify_emulator.reset_counters()

    dag_run = run_sync(RecordingChunks, dataset_id, records=[{"id": None, "t": "new"}], max_deletes=None, **arguments)

    assert task_state(dag_run, "sync") == "failed"
    manifest = xcom_value(dag_run, "sync", key="manifest")
    assert manifest["counts"]["deleted"] == 0
    assert "1 record(s) failed before their text was known" in manifest["deletes_withheld"]
    assert dify_emulator.write_count() == 0
    assert chunk_texts(dify_emulator, dataset_id) == before


def test_max_deletes_is_checked_when_the_dag_is_built() -> None:
    for wrong in (-1, 0.0, 1.5, "half", True):
        with pytest.raises(ValueError, match="max_deletes"):
            DifySyncDocumentsOperator(
                task_id="sync", dataset_name="kb", records=[], key_field="id", name_prefix="p-", max_deletes=wrong
            )


HANDBOOK = "\n\n".join(f"Handbook section {number}: " + "the rules of the house. " * 10 for number in range(8))
CHUNK_ARGUMENTS = {"key_field": "id", "text_template": "{{ t }}", "document_name": "handbook.md", "poll_interval": 0.05}
TWO_RECORDS = [{"id": 1, "t": "first record"}, {"id": 2, "t": "second record"}]


def upload_handbook(dify: Any, dataset_id: str, tmp_path: Path) -> dict[str, Any]:
    """An uploaded file ``handbook.md`` split into several chunks, as a colleague would upload it."""
    from airflow_provider_dify.hooks.dify import DifyHook

    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)
    rule = {
        "mode": "custom",
        "rules": {"pre_processing_rules": [], "segmentation": {"separator": "\n\n", "max_tokens": 500}},
    }
    answer = DifyHook().create_document_by_file(dataset_id, path, indexing_technique="economy", process_rule=rule)
    dify.complete_indexing()
    return answer["document"]


def test_chunk_sync_refuses_a_document_it_did_not_make(dify_emulator: Any, dataset_id: str, tmp_path: Path) -> None:
    handbook = upload_handbook(dify_emulator, dataset_id, tmp_path)
    before = chunk_texts(dify_emulator, dataset_id)
    assert len(before) == 8
    dify_emulator.reset_counters()

    refused = run_sync(RecordingChunks, dataset_id, records=TWO_RECORDS, **CHUNK_ARGUMENTS)

    assert task_state(refused, "sync") == "failed"
    failure = xcom_value(refused, "sync", key="failure")
    assert failure.startswith("AirflowFailException: document_name:") and "an upload of 'handbook.md'" in failure
    assert "take_over_document=True" in failure and "airflow_chunk_holder" in failure
    assert dify_emulator.write_count() == 0
    assert chunk_texts(dify_emulator, dataset_id) == before

    # Handed over explicitly: the holder is marked, and the next runs need no argument.
    taken = run_sync(
        RecordingChunks, dataset_id, records=TWO_RECORDS, take_over_document=True, max_deletes=None, **CHUNK_ARGUMENTS
    )
    assert task_state(taken, "sync") == "success"
    assert chunk_texts(dify_emulator, dataset_id) == ["first record", "second record"]
    assert holder_mark(dify_emulator, dataset_id, handbook["id"]) == "DifySyncChunksOperator"
    again = run_sync(RecordingChunks, dataset_id, records=TWO_RECORDS, **CHUNK_ARGUMENTS)
    assert task_state(again, "sync") == "success"


def holder_mark(dify: Any, dataset_id: str, document_id: str) -> Any:
    from airflow_provider_dify.operators._content import metadata_values

    return metadata_values(dify.document(dataset_id, document_id)).get("airflow_chunk_holder")


def test_chunk_sync_refuses_a_hand_made_text_document(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.create_document(dataset_id, "handbook.md", HANDBOOK)
    before = chunk_texts(dify_emulator, dataset_id)
    dify_emulator.reset_counters()

    refused = run_sync(RecordingChunks, dataset_id, records=TWO_RECORDS, **CHUNK_ARGUMENTS)

    assert task_state(refused, "sync") == "failed"
    assert "is a document that DifySyncChunksOperator did not make" in xcom_value(refused, "sync", key="failure")
    assert dify_emulator.write_count() == 0 and chunk_texts(dify_emulator, dataset_id) == before


@pytest.mark.parametrize("created_with", ["", "handbook.md"], ids=["empty", "name-as-header"])
def test_a_holder_of_an_earlier_version_is_recognised(dify_emulator: Any, dataset_id: str, created_with: str) -> None:
    # Earlier versions made the holder from an empty text (the oldest from its name) and wrote no mark.
    holder = dify_emulator.create_document(dataset_id, "handbook.md", created_with)
    dag_run = run_sync(RecordingChunks, dataset_id, records=TWO_RECORDS, **CHUNK_ARGUMENTS)
    assert task_state(dag_run, "sync") == "success"
    assert "first record" in chunk_texts(dify_emulator, dataset_id)
    assert holder_mark(dify_emulator, dataset_id, holder["id"]) == "DifySyncChunksOperator"


def test_a_holder_the_sync_makes_carries_the_mark(dify_emulator: Any, dataset_id: str) -> None:
    dag_run = run_sync(RecordingChunks, dataset_id, records=TWO_RECORDS, **CHUNK_ARGUMENTS)
    assert task_state(dag_run, "sync") == "success"
    [holder] = dify_emulator.documents(dataset_id)
    assert holder_mark(dify_emulator, dataset_id, holder["id"]) == "DifySyncChunksOperator"
