"""DifySyncChunksOperator in real DAGs against the emulator (queued document indexing, immediate chunk indexing)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators._chunk_sync import key_of_chunk
from airflow_provider_dify.operators.sync import DifySyncChunksOperator
from tests.dag_runner import task_state, try_number, xcom_value
from tests.sync.conftest import WAREHOUSE_CONN_ID, execute_sql

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.05)]

SEGMENTS = "/datasets/{dataset_id}/documents/{document_id}/segments"
SEGMENT = "/datasets/{dataset_id}/documents/{document_id}/segments/{segment_id}"
CREATE = "/datasets/{dataset_id}/document/create-by-text"
_numbers = itertools.count()


class RecordingChunksOperator(DifySyncChunksOperator):
    """The operator, recording in XCom the error that failed it (to check its text)."""

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except Exception as error:
            context["ti"].xcom_push(key="failure", value=f"{type(error).__name__}: {error}")
            raise


def chunks_dag(
    dataset_id: str, *, retries: int = 0, operator_class: type = DifySyncChunksOperator, **operator: Any
) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    settings = {
        "sql": "SELECT * FROM products",
        "sql_conn_id": WAREHOUSE_CONN_ID,
        "key_field": "sku",
        "text_template": "{{ name }}: {{ description }} Price {{ price }} EUR.",
        "document_name": "warehouse: products",
        "document_header": "Product catalogue exported from the warehouse, one chunk per product.",
        "poll_interval": 0.1,
        **operator,
    }
    with DAG(f"sync_chunks_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        operator_class(
            task_id="sync", dataset_id=dataset_id, retries=retries, retry_delay=timedelta(seconds=0), **settings
        )
    return dag


def run(dag: Any) -> Any:
    from tests.dag_runner import run_dag

    return run_dag(dag)


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("chunk-sync")["id"]


def chunk_keys(dify: Any, dataset_id: str, document_id: str) -> list[str | None]:
    return [key_of_chunk(chunk["content"]) for chunk in dify.segments(dataset_id, document_id)]


def assert_each_chunk_once(dify: Any, dataset_id: str, document_id: str, expected_keys: set[str]) -> None:
    keys = chunk_keys(dify, dataset_id, document_id)
    keyed = [key for key in keys if key is not None]
    assert len(keyed) == len(set(keyed)), "a chunk is duplicated"
    assert set(keyed) == expected_keys
    assert keys.count(None) == 1  # the header


def test_first_run_rerun_change_and_removal(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dag = chunks_dag(dataset_id)
    first_run = run(dag)
    assert task_state(first_run, "sync") == "success"
    first = xcom_value(first_run, "sync")
    assert first["counts"] == {"records": 240, "added": 240, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert dify_emulator.count("POST", SEGMENTS) == math.ceil(240 / 100) == first["requests"]["add"]
    assert dify_emulator.count("POST", CREATE) == 1  # the document standing for the table, created once
    document_id = first["document_id"]
    [document] = dify_emulator.documents(dataset_id)
    assert document["id"] == document_id and document["name"] == "warehouse: products"
    skus = {f"{sku}" for (sku,) in _rows(warehouse, "SELECT sku FROM products")}
    assert_each_chunk_once(dify_emulator, dataset_id, document_id, skus)
    chunk = next(c for c in dify_emulator.segments(dataset_id, document_id) if key_of_chunk(c["content"]) == "COF-0001")
    assert chunk["content"].startswith("Alder & Co Burr Grinder Classic: The Alder")
    assert chunk["status"] == "completed" and chunk["keywords"]  # indexed at once, keywords extracted by Dify

    dify_emulator.reset_counters()
    second = xcom_value(run(dag), "sync")
    assert second["counts"]["unchanged"] == 240 and second["counts"]["added"] == 0
    assert dify_emulator.write_count() == 0

    execute_sql(warehouse, "UPDATE products SET price = 9.99 WHERE sku = 'KIT-0002'")
    execute_sql(warehouse, "DELETE FROM products WHERE sku = 'OUT-0003'")
    before = {key_of_chunk(c["content"]): c["id"] for c in dify_emulator.segments(dataset_id, document_id)}
    dify_emulator.reset_counters()
    third = xcom_value(run(dag), "sync")
    assert third["counts"] == {"records": 239, "added": 0, "updated": 1, "unchanged": 238, "deleted": 1, "failed": 0}
    assert dify_emulator.count("POST", SEGMENT) == 1 and dify_emulator.count("DELETE", SEGMENT) == 1
    assert dify_emulator.write_count() == 2
    after = {key_of_chunk(c["content"]): c for c in dify_emulator.segments(dataset_id, document_id)}
    assert after["KIT-0002"]["id"] == before["KIT-0002"]  # updated in place, same chunk
    assert "Price 9.99 EUR." in after["KIT-0002"]["content"] and "OUT-0003" not in after


def test_without_a_key_a_changed_record_is_a_delete_and_an_add(
    dify_emulator: Any, dataset_id: str, warehouse: Path
) -> None:
    dag = chunks_dag(
        dataset_id, sql="SELECT * FROM faq", key_field=None, text_template="Q: {{ question }}\nA: {{ answer }}"
    )
    first = xcom_value(run(dag), "sync")
    assert first["counts"]["added"] == 40 and dify_emulator.count("POST", SEGMENTS) == 1
    execute_sql(warehouse, "UPDATE faq SET answer = 'Within 14 days.' WHERE faq_id = 6")
    dify_emulator.reset_counters()
    second = xcom_value(run(dag), "sync")
    assert (second["counts"]["added"], second["counts"]["deleted"], second["counts"]["unchanged"]) == (1, 1, 39)
    assert dify_emulator.write_count() == 2
    contents = [c["content"] for c in dify_emulator.segments(dataset_id, first["document_id"])]
    assert sum("Within 14 days." in content for content in contents) == 1 and len(contents) == 41


def test_a_fault_half_way_then_the_task_retry_leaves_each_chunk_once(
    dify_emulator: Any, dataset_id: str, warehouse: Path
) -> None:
    # Of the 10 add requests: two are processed but their answers are lost, three fail before processing.
    dify_emulator.fail_next(count=2, status=502, method="POST", route=SEGMENTS, after_processing=True)
    dify_emulator.fail_next(count=3, status=503, method="POST", route=SEGMENTS)
    dag = chunks_dag(dataset_id, sql=_thousand_products(), retries=1, repair_passes=0)
    dag_run = run(dag)
    assert task_state(dag_run, "sync") == "success" and try_number(dag_run, "sync") == 2
    manifest = xcom_value(dag_run, "sync")
    assert manifest["counts"]["added"] == 300  # what the first attempt could not add
    assert dify_emulator.count("POST", SEGMENTS) == 10 + 3
    assert_each_chunk_once(dify_emulator, dataset_id, manifest["document_id"], {f"P{n:04d}" for n in range(1000)})


def test_the_repair_pass_finishes_in_the_same_attempt(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dify_emulator.fail_next(count=1, status="reset", method="POST", route=SEGMENTS, after_processing=True)
    dify_emulator.fail_next(count=1, status=500, method="POST", route=SEGMENTS)
    dag_run = run(chunks_dag(dataset_id, sql=_thousand_products()))
    assert task_state(dag_run, "sync") == "success" and try_number(dag_run, "sync") == 1
    manifest = xcom_value(dag_run, "sync")
    assert manifest["requests"]["passes"] == 2 and manifest["requests"]["add"] == 11
    assert_each_chunk_once(dify_emulator, dataset_id, manifest["document_id"], {f"P{n:04d}" for n in range(1000)})


def test_sandbox_plan_refusal_suggests_documents(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dify_emulator.configure(sandbox_plan=True)
    dag_run = run(chunks_dag(dataset_id, operator_class=RecordingChunksOperator))
    assert task_state(dag_run, "sync") == "failed"
    failure = xcom_value(dag_run, "sync", key="failure")
    assert failure.startswith("DifyQuotaExceededError") and "DifySyncDocumentsOperator" in failure
    assert dify_emulator.count("POST", SEGMENTS, status=403) >= 1


def test_keywords_given_by_the_user_replace_dify_s(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    manifest = xcom_value(
        run(
            chunks_dag(
                dataset_id, sql="SELECT *, category || ',' || brand AS tags FROM products", keywords_field="tags"
            )
        ),
        "sync",
    )
    chunk = next(
        c
        for c in dify_emulator.segments(dataset_id, manifest["document_id"])
        if key_of_chunk(c["content"]) == "COF-0001"
    )
    assert sorted(chunk["keywords"]) == ["Alder & Co", "Coffee"]
    dify_emulator.reset_counters()
    run(chunks_dag(dataset_id, sql="SELECT *, category || ',' || brand AS tags FROM products", keywords_field="tags"))
    assert dify_emulator.write_count() == 0


def test_deferrable_waits_for_the_new_document_in_the_triggerer(
    dify_emulator: Any, dataset_id: str, warehouse: Path
) -> None:
    dag_run = run(
        chunks_dag(
            dataset_id,
            sql="SELECT * FROM faq",
            key_field="faq_id",
            text_template="Q: {{ question }}\nA: {{ answer }}",
            deferrable=True,
        )
    )
    assert task_state(dag_run, "sync") == "success"
    manifest = xcom_value(dag_run, "sync")
    assert manifest["counts"]["added"] == 40
    assert dify_emulator.document(dataset_id, manifest["document_id"])["indexing_status"] == "completed"


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(path) as connection:
        rows = connection.execute(sql).fetchall()
    connection.close()
    return rows


def _thousand_products() -> str:
    """A query producing 1,000 products from the warehouse's 240 (keys P0000..P0999)."""
    return (
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)"
        " SELECT printf('P%04d', n.i) AS sku, p.name || ' #' || n.i AS name, p.description, p.price"
        " FROM n JOIN products p ON p.product_id = 1 + n.i % 240"
    )
