"""DifySyncChunksOperator in real DAGs against the emulator (queued document indexing, immediate chunk indexing)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_dify.operators.sync import DifySyncChunksOperator
from airflow_provider_dify.operators.sync._chunk_sync import key_of_chunk
from airflow_provider_dify.testing.dag_runner import task_state, try_number, xcom_value
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
        "poll_interval": 0.1,
        **operator,
    }
    with DAG(f"sync_chunks_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        operator_class(
            task_id="sync", dataset_id=dataset_id, retries=retries, retry_delay=timedelta(seconds=0), **settings
        )
    return dag


def run(dag: Any) -> Any:
    from airflow_provider_dify.testing.dag_runner import run_dag

    return run_dag(dag)


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("chunk-sync")["id"]


PRODUCT_TEXT = "SELECT sku, name || ': ' || description || ' Price ' || price || ' EUR.' FROM products"


def chunk_by_text(dify: Any, dataset_id: str, document_id: str) -> dict[str, dict[str, Any]]:
    """The document's chunks by content, checking that no content is there twice."""
    chunks = dify.segments(dataset_id, document_id)
    by_text = {chunk["content"]: chunk for chunk in chunks}
    assert len(by_text) == len(chunks), "a chunk is duplicated"
    return by_text


def assert_each_record_once(dify: Any, dataset_id: str, document_id: str, expected_texts: set[str]) -> None:
    """Exactly one chunk per wanted text, and nothing else (no key lines, no header chunk)."""
    assert set(chunk_by_text(dify, dataset_id, document_id)) == expected_texts


def product_texts(warehouse: Path) -> dict[str, str]:
    """What each product's chunk must hold, by SKU (the default template, rendered by SQLite)."""
    return dict(_rows(warehouse, PRODUCT_TEXT))


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
    texts = product_texts(warehouse)
    assert_each_record_once(dify_emulator, dataset_id, document_id, set(texts.values()))
    chunk = chunk_by_text(dify_emulator, dataset_id, document_id)[texts["COF-0001"]]
    assert chunk["content"].startswith("Alder & Co Burr Grinder Classic: The Alder")
    assert chunk["status"] == "completed" and chunk["keywords"]  # indexed at once, keywords extracted by Dify
    assert "COF" not in chunk["keywords"] and "key" not in chunk["keywords"]  # nothing but the record's words

    dify_emulator.reset_counters()
    second = xcom_value(run(dag), "sync")
    assert second["counts"]["unchanged"] == 240 and second["counts"]["added"] == 0
    assert dify_emulator.write_count() == 0 and dify_emulator.count("GET", SEGMENTS) == 3  # one listing, 3 pages

    execute_sql(warehouse, "UPDATE products SET price = 9.99 WHERE sku = 'KIT-0002'")
    execute_sql(warehouse, "DELETE FROM products WHERE sku = 'OUT-0003'")
    dify_emulator.reset_counters()
    third = xcom_value(run(dag), "sync")
    # The changed record: its old chunk deleted, its new text added; the removed record: its chunk deleted.
    assert third["counts"] == {"records": 239, "added": 1, "updated": 0, "unchanged": 238, "deleted": 2, "failed": 0}
    assert dify_emulator.count("POST", SEGMENTS) == 1 and dify_emulator.count("DELETE", SEGMENT) == 2
    assert dify_emulator.write_count() == 3
    new_texts = product_texts(warehouse)
    assert "Price 9.99 EUR." in new_texts["KIT-0002"] and "OUT-0003" not in new_texts
    assert_each_record_once(dify_emulator, dataset_id, document_id, set(new_texts.values()))


def test_a_changed_record_keeps_its_old_chunk_until_its_new_one_is_in(
    dify_emulator: Any, dataset_id: str, warehouse: Path
) -> None:
    dag = chunks_dag(dataset_id, repair_passes=0)
    document_id = xcom_value(run(dag), "sync")["document_id"]
    old_text = product_texts(warehouse)["KIT-0002"]
    execute_sql(warehouse, "UPDATE products SET price = 9.99 WHERE sku = 'KIT-0002'")
    new_text = product_texts(warehouse)["KIT-0002"]
    dify_emulator.fail_next(count=1, status=503, method="POST", route=SEGMENTS)  # the add of the new text
    dify_emulator.reset_counters()
    assert task_state(run(dag), "sync") == "failed"
    assert dify_emulator.count("DELETE", SEGMENT) == 0  # no delete while an add failed
    texts = chunk_by_text(dify_emulator, dataset_id, document_id)
    assert old_text in texts and new_text not in texts  # the record is never missing

    assert task_state(run(dag), "sync") == "success"
    assert_each_record_once(dify_emulator, dataset_id, document_id, set(product_texts(warehouse).values()))


def test_a_holder_written_with_key_lines_converges_to_plain_chunks(
    dify_emulator: Any, dataset_id: str, warehouse: Path
) -> None:
    """A holder of the earlier form (header chunk, a ``[key: ...]`` line in every chunk, a lost-answer copy)."""
    texts = product_texts(warehouse)
    holder = dify_emulator.create_document(dataset_id, "warehouse: products", "warehouse: products")
    legacy = [{"content": f"{text}\n\n[key: {sku}]"} for sku, text in texts.items()]
    legacy[5]["content"] = legacy[5]["content"].replace("EUR.", "EUR (old price).")  # changed since
    legacy.append(dict(legacy[7]))  # a copy left by an add whose answer was lost
    legacy.append({"content": "Discontinued kettle\n\n[key: GONE-1]"})  # a record no longer there
    answer = requests.post(
        f"{dify_emulator.url}/datasets/{dataset_id}/documents/{holder['id']}/segments",
        json={"segments": legacy},
        headers={"Authorization": f"Bearer {dify_emulator.api_key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    ids_before = {key_of_chunk(chunk["content"]): chunk["id"] for chunk in answer.json()["data"]}

    dify_emulator.reset_counters()
    manifest = xcom_value(run(chunks_dag(dataset_id)), "sync")
    assert manifest["document_id"] == holder["id"]
    # Each old chunk rewritten in place (same id), the copy, the gone record and the old header deleted.
    assert manifest["counts"]["updated"] == 240 and manifest["counts"]["added"] == 0
    assert manifest["counts"]["deleted"] == 3
    by_text = chunk_by_text(dify_emulator, dataset_id, holder["id"])
    assert set(by_text) == set(texts.values())
    assert by_text[texts["COF-0001"]]["id"] == ids_before["COF-0001"]
    assert not any("[key:" in text for text in by_text)

    dify_emulator.reset_counters()
    again = xcom_value(run(chunks_dag(dataset_id)), "sync")
    assert again["counts"]["unchanged"] == 240 and dify_emulator.write_count() == 0


def test_a_header_given_stays_and_is_never_deleted(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    header = "Product catalogue exported from the warehouse, one chunk per product."
    dag = chunks_dag(dataset_id, document_header=header)
    manifest = xcom_value(run(dag), "sync")
    by_text = chunk_by_text(dify_emulator, dataset_id, manifest["document_id"])
    assert header in by_text and len(by_text) == 241
    dify_emulator.reset_counters()
    assert xcom_value(run(dag), "sync")["counts"]["unchanged"] == 240 and dify_emulator.write_count() == 0
    assert header in chunk_by_text(dify_emulator, dataset_id, manifest["document_id"])


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
    assert sum("Within 14 days." in content for content in contents) == 1 and len(contents) == 40  # no header


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
    assert_each_record_once(
        dify_emulator, dataset_id, manifest["document_id"], set(dict(_rows(warehouse, _thousand_texts())).values())
    )


def test_the_repair_pass_finishes_in_the_same_attempt(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dify_emulator.fail_next(count=1, status="reset", method="POST", route=SEGMENTS, after_processing=True)
    dify_emulator.fail_next(count=1, status=500, method="POST", route=SEGMENTS)
    dag_run = run(chunks_dag(dataset_id, sql=_thousand_products()))
    assert task_state(dag_run, "sync") == "success" and try_number(dag_run, "sync") == 1
    manifest = xcom_value(dag_run, "sync")
    assert manifest["requests"]["passes"] == 3 and manifest["requests"]["add"] == 11  # the last pass verifies
    assert_each_record_once(
        dify_emulator, dataset_id, manifest["document_id"], set(dict(_rows(warehouse, _thousand_texts())).values())
    )


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
    chunk = chunk_by_text(dify_emulator, dataset_id, manifest["document_id"])[product_texts(warehouse)["COF-0001"]]
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


def _thousand_texts() -> str:
    """The texts of :func:`_thousand_products`' records, by key."""
    return f"SELECT sku, name || ': ' || description || ' Price ' || price || ' EUR.' FROM ({_thousand_products()})"
