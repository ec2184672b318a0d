"""DifySyncDocumentsOperator in real DAGs (``dag.test()``, SQLite metadata DB) against the emulator over HTTP.

Writes are counted on the emulator's request log, so "unchanged" means no request that writes.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators._content import HASH_FIELD, metadata_values
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import task_state, try_number, xcom_value
from tests.sync.conftest import WAREHOUSE_CONN_ID, execute_sql

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.02)]

CREATE = "/datasets/{dataset_id}/document/create-by-text"
UPDATE = "/datasets/{dataset_id}/documents/{document_id}/update-by-text"
DELETE = "/datasets/{dataset_id}/documents/{document_id}"
METADATA = "/datasets/{dataset_id}/documents/metadata"
PRODUCT_TEXT = "{{ name }} ({{ sku }}), {{ category }}: {{ description }} Price: {{ price }} EUR."
_numbers = itertools.count()


def sync_dag(dataset_id: str, *, task_id: str = "sync", retries: int = 0, **operator: Any) -> Any:
    """A DAG with one DifySyncDocumentsOperator over the warehouse's products (unless told otherwise)."""
    from airflow.providers.common.compat.sdk import DAG

    settings = {
        "sql": "SELECT * FROM products WHERE product_id <= 30",
        "sql_conn_id": WAREHOUSE_CONN_ID,
        "key_field": "product_id",
        "name_prefix": "product-",
        "text_template": PRODUCT_TEXT,
        "metadata_fields": ["category", "price"],
        "scope": "warehouse:products",
        "delete_missing": True,
        **operator,
    }
    with DAG(f"sync_documents_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        DifySyncDocumentsOperator(
            task_id=task_id,
            dataset_id=dataset_id,
            retries=retries,
            retry_delay=timedelta(seconds=0),
            **settings,
        )
    return dag


def run(dag: Any) -> Any:
    from airflow_provider_dify.testing.dag_runner import run_dag

    return run_dag(dag)


def document_names(dify: Any, dataset_id: str) -> list[str]:
    return sorted(doc["name"] for doc in dify.documents(dataset_id))


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("warehouse-sync")["id"]


def test_first_run_rerun_change_and_delete(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dag = sync_dag(dataset_id)
    first = run(dag)
    assert task_state(first, "sync") == "success"
    manifest = xcom_value(first, "sync")
    assert manifest["counts"] == {"records": 30, "created": 30, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert dify_emulator.count("POST", CREATE) == 30
    assert document_names(dify_emulator, dataset_id) == sorted(f"product-{number}" for number in range(1, 31))
    assert len(manifest["batches"]) == 30 and "text" not in str(manifest["created"][0])
    stored = {doc["name"]: doc for doc in dify_emulator.documents(dataset_id)}
    assert "Price:" in stored["product-7"]["text"]
    assert metadata_values(stored["product-7"])["category"]
    assert metadata_values(stored["product-7"])[HASH_FIELD].startswith("sha256:")
    # 30 documents' hashes and metadata in one request (the call takes many documents)
    assert dify_emulator.count("POST", METADATA) == 1

    dify_emulator.reset_counters()
    second = xcom_value(run(dag), "sync")
    assert second["counts"]["unchanged"] == 30 and second["counts"]["created"] == 0
    assert dify_emulator.write_count() == 0

    assert dify_emulator.wait_for_indexing()  # as the example DAG does; else updates go through the upsert
    execute_sql(warehouse, "UPDATE products SET description = 'Now with a lifetime warranty.' WHERE product_id = 5")
    execute_sql(warehouse, "DELETE FROM products WHERE product_id = 9")
    dify_emulator.reset_counters()
    third = xcom_value(run(dag), "sync")
    assert third["counts"] == {"records": 29, "created": 0, "updated": 1, "unchanged": 28, "deleted": 1, "failed": 0}
    assert dify_emulator.count("POST", UPDATE) == 1
    assert dify_emulator.count("DELETE", DELETE) == 1
    assert dify_emulator.count("POST", CREATE) == 0
    assert dify_emulator.write_count() == 3  # the update, the delete, the new hash
    assert [entry["name"] for entry in third["updated"]] == ["product-5"]
    assert [entry["name"] for entry in third["deleted"]] == ["product-9"]
    stored = {doc["name"]: doc for doc in dify_emulator.documents(dataset_id)}
    assert "lifetime warranty" in stored["product-5"]["text"] and "product-9" not in stored


def test_metadata_only_change_is_not_a_rewrite(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dag = sync_dag(dataset_id, text_template="{{ name }}: {{ description }}")
    run(dag)
    execute_sql(warehouse, "UPDATE products SET price = 1.25 WHERE product_id = 3")
    dify_emulator.reset_counters()
    manifest = xcom_value(run(dag), "sync")
    assert manifest["counts"]["updated"] == 1 and manifest["updated"][0]["batch"] is None
    assert dify_emulator.write_count() == 1 and dify_emulator.count("POST", METADATA) == 1
    stored = {doc["name"]: doc for doc in dify_emulator.documents(dataset_id)}
    assert float(metadata_values(stored["product-3"])["price"]) == 1.25


def test_two_scopes_do_not_interfere(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    products = sync_dag(dataset_id)
    faq = sync_dag(
        dataset_id,
        sql="SELECT * FROM faq",
        key_field="faq_id",
        name_prefix="faq-",
        text_template="Q: {{ question }}\nA: {{ answer }}",
        metadata_fields=["category"],
        scope="warehouse:faq",
    )
    run(products)
    run(faq)
    faq_documents = {
        doc["name"]: doc["id"] for doc in dify_emulator.documents(dataset_id) if doc["name"].startswith("faq-")
    }
    assert len(faq_documents) == 40 and len(dify_emulator.documents(dataset_id)) == 70

    execute_sql(warehouse, "DELETE FROM products WHERE product_id > 20")
    dify_emulator.reset_counters()
    manifest = xcom_value(run(products), "sync")
    assert manifest["counts"]["deleted"] == 10 and dify_emulator.count("DELETE", DELETE, status=204) == 10
    after = {doc["name"]: doc["id"] for doc in dify_emulator.documents(dataset_id) if doc["name"].startswith("faq-")}
    assert after == faq_documents

    dify_emulator.reset_counters()
    manifest = xcom_value(run(faq), "sync")
    assert manifest["counts"]["unchanged"] == 40 and dify_emulator.write_count() == 0
    assert len([name for name in document_names(dify_emulator, dataset_id) if name.startswith("product-")]) == 20


def test_a_name_owned_by_another_scope_is_not_overwritten(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    run(sync_dag(dataset_id))
    before = {doc["id"]: doc["text"] for doc in dify_emulator.documents(dataset_id)}
    dify_emulator.reset_counters()
    intruder = run(sync_dag(dataset_id, scope="someone-else", text_template="{{ name }}"))
    assert task_state(intruder, "sync") == "failed"
    manifest = xcom_value(intruder, "sync", key="manifest")
    assert (
        manifest["counts"]["failed"] == 30 and "belongs to scope 'warehouse:products'" in manifest["failed"][0]["error"]
    )
    assert {doc["id"]: doc["text"] for doc in dify_emulator.documents(dataset_id)} == before
    assert dify_emulator.write_count() == 0


def test_partial_failure_fails_after_the_rest_and_the_retry_finishes(
    dify_emulator: Any, dataset_id: str, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two creates answered 502 with the hook told not to repeat anything: a transient failure, the task's retry
    # writes the two.
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_DIFY_NO_REPEATS", json.dumps({**dify_emulator.connection_dict, "extra": {"max_retries": 0}})
    )
    dify_emulator.fail_next(count=2, status=502, method="POST", route=CREATE)
    dag_run = run(sync_dag(dataset_id, retries=1, dify_conn_id="dify_no_repeats"))
    assert task_state(dag_run, "sync") == "success" and try_number(dag_run, "sync") == 2
    manifest = xcom_value(dag_run, "sync")
    assert manifest["counts"]["created"] == 2 and manifest["counts"]["unchanged"] == 28
    assert dify_emulator.count("POST", CREATE) == 32  # 30 + the 2 refused ones written by the retry
    assert document_names(dify_emulator, dataset_id) == sorted(f"product-{number}" for number in range(1, 31))


def test_a_failure_no_retry_can_fix_fails_the_task_for_good(
    dify_emulator: Any, dataset_id: str, warehouse: Path
) -> None:
    """Dify refused a record (400: validation): the rest are written, and the task fails without its retries
    (a retry would send the refused record again)."""
    dify_emulator.fail_next(count=1, status=400, method="POST", route=CREATE)
    dag_run = run(sync_dag(dataset_id, retries=2))
    assert task_state(dag_run, "sync") == "failed" and try_number(dag_run, "sync") == 1
    manifest = xcom_value(dag_run, "sync", key="manifest")
    [failure] = manifest["failed"]
    assert failure["permanent"] is True and failure["operation"] == "create"
    assert dify_emulator.count("POST", CREATE) == 30  # the refused one was sent once
    assert len(dify_emulator.documents(dataset_id)) == 29


def test_partial_failure_lists_the_failed_documents(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    dify_emulator.fail_next(count=1, status=400, method="POST", route=CREATE)
    dag_run = run(sync_dag(dataset_id))
    assert task_state(dag_run, "sync") == "failed"
    manifest = xcom_value(dag_run, "sync", key="manifest")
    assert manifest["counts"]["created"] == 29 and manifest["counts"]["failed"] == 1
    [failure] = manifest["failed"]
    assert failure["operation"] == "create" and failure["name"].startswith("product-")
    assert "Injected error 400" in failure["error"]
    assert len(dify_emulator.documents(dataset_id)) == 29


@pytest.mark.dify_emulator(indexing_seconds=0.5)
@pytest.mark.parametrize("group_limit", [500, 3], ids=["one-trigger", "in-groups"])
def test_wait_for_indexing_deferred_in_the_triggerer(
    dify_emulator: Any, dataset_id: str, warehouse: Path, monkeypatch: pytest.MonkeyPatch, group_limit: int
) -> None:
    """The sync's manifest and indexing summary come through the deferral whole, in one trigger or in groups
    (a wait on more documents than a trigger takes)."""
    from tests.indexing.test_sensor_dags import _trigger_groups

    groups = _trigger_groups(monkeypatch, group_limit)
    dag_run = run(
        sync_dag(
            dataset_id,
            sql="SELECT * FROM products WHERE product_id <= 8",
            wait_for_indexing=True,
            deferrable=True,
            poll_interval=0.2,
        )
    )
    assert task_state(dag_run, "sync") == "success"
    manifest = xcom_value(dag_run, "sync")
    assert manifest["counts"]["created"] == 8
    assert manifest["indexing"]["documents"] == manifest["indexing"]["completed"] == 8
    assert all(doc["indexing_status"] == "completed" for doc in dify_emulator.documents(dataset_id))
    # The first deferral waits on all 8 in one trigger, or on a group of group_limit; whether the task defers
    # again depends on how far the emulator indexed while it checked, which a loaded machine changes.
    assert len(groups[0]) == min(group_limit, 8)
    assert all(len(group) <= group_limit for group in groups)


def test_empty_source_does_not_empty_the_scope(dify_emulator: Any, dataset_id: str, warehouse: Path) -> None:
    run(sync_dag(dataset_id))
    execute_sql(warehouse, "DELETE FROM products")
    dify_emulator.reset_counters()
    refused = run(sync_dag(dataset_id))
    assert task_state(refused, "sync") == "failed" and dify_emulator.write_count() == 0
    allowed = run(sync_dag(dataset_id, allow_empty_source=True))
    assert xcom_value(allowed, "sync")["counts"]["deleted"] == 30 and dify_emulator.documents(dataset_id) == []


def test_files_from_object_storage_update_only_when_changed(
    dify_emulator: Any, dataset_id: str, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "guides" / "setup.md").write_text("# Setup\n\nPlug the kettle in and press the button.\n")
    (docs / "returns.txt").write_text("Returns are free within 30 days.\n")
    dag = sync_dag(
        dataset_id,
        sql=None,
        sql_conn_id=None,
        path=f"file://{docs}",
        key_field=None,
        text_template=None,
        metadata_fields=["path", "suffix"],
        name_prefix="kb-",
        scope="files",
    )
    first = xcom_value(run(dag), "sync")
    assert first["counts"]["created"] == 2
    assert document_names(dify_emulator, dataset_id) == ["kb-guides__setup.md", "kb-returns.txt"]
    dify_emulator.reset_counters()
    assert xcom_value(run(dag), "sync")["counts"]["unchanged"] == 2 and dify_emulator.write_count() == 0

    (docs / "returns.txt").write_text("Returns are free within 60 days.\n")
    (docs / "guides" / "setup.md").unlink()
    assert dify_emulator.wait_for_indexing()  # updated by id only once available (else Dify's same-name upsert)
    dify_emulator.reset_counters()
    third = xcom_value(run(dag), "sync")
    assert (third["counts"]["updated"], third["counts"]["deleted"]) == (1, 1)
    assert (
        dify_emulator.count("PATCH", DELETE)
        + dify_emulator.count("POST", "/datasets/{dataset_id}/documents/{document_id}/update-by-file")
        == 1
    )
    [stored] = dify_emulator.documents(dataset_id)
    assert "60 days" in stored["text"] and metadata_values(stored)["path"] == "returns.txt"


def test_records_callable_gets_the_context_variables_it_names(dify_emulator: Any, dataset_id: str) -> None:
    """Airflow calls a callable template field with ``context=`` and ``jinja_env=``; ``records`` is called by the
    operator instead, when it reads the records, with only the context variables the callable names."""
    seen: list[str] = []

    def extract(ds: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        seen.append(ds)
        return [{"id": number, "text": f"row {number} of {ds}"} for number in range(params.get("rows", 3))]

    dag = sync_dag(
        dataset_id,
        records=extract,
        sql=None,
        sql_conn_id=None,
        key_field="id",
        name_prefix="row-",
        text_template="{{ text }}",
        metadata_fields=None,
        scope=None,
    )
    result = run(dag)
    assert task_state(result, "sync") == "success"
    assert len(seen) == 1 and seen[0]  # called once, by the operator, with the run's ds
    assert xcom_value(result, "sync")["counts"]["created"] == 3
    stored = sorted(doc["name"] for doc in dify_emulator.documents(dataset_id))
    assert stored == ["row-0", "row-1", "row-2"]


def _progress_lines(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> list[str]:
    """The operator's progress lines, each once: Airflow 3 logs them through structlog (to the captured output),
    Airflow 2.11 through logging (caplog, and perhaps also the output)."""
    captured = capfd.readouterr()
    found = set(re.findall(r"Wrote \d+ of \d+ document\(s\)", caplog.text + captured.out + captured.err))
    return sorted(found, key=lambda line: int(line.split()[1]))


def test_a_long_sync_logs_its_progress_not_a_line_per_document(
    dify_emulator: Any,
    dataset_id: str,
    warehouse: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: Any,
) -> None:
    from airflow_provider_dify.operators.sync import documents

    monkeypatch.setattr(documents, "PROGRESS_SECONDS", 3600.0)  # count-based lines only, however slow the machine
    caplog.set_level(logging.DEBUG)
    assert task_state(run(sync_dag(dataset_id, sql="SELECT * FROM products")), "sync") == "success"

    def messages(level: int, start: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == level and r.getMessage().startswith(start)]

    assert messages(logging.INFO, "Created document") == []
    assert len(messages(logging.DEBUG, "Created document")) == 240
    assert _progress_lines(caplog, capfd) == [f"Wrote {n} of 240 document(s)" for n in (100, 200, 240)]


def test_the_progress_line_also_comes_after_some_seconds(
    monkeypatch: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_dify.operators.sync import documents

    operator = DifySyncDocumentsOperator(
        task_id="sync", dataset_id=str(uuid.uuid4()), records=[], key_field="id", text_template="x"
    )
    clock = iter([0.0, 4.0, 11.0, 12.0, 25.0])
    monkeypatch.setattr(documents.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO)
    report = operator._progress_logger()  # started at 0 s
    for done in (1, 2, 3, 4):  # at 4 s, 11 s, 12 s, 25 s
        report(done, 1000)
    assert _progress_lines(caplog, capfd) == ["Wrote 2 of 1000 document(s)", "Wrote 4 of 1000 document(s)"]
