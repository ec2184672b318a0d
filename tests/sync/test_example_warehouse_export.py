"""The warehouse export example DAG, run with ``dag.test()`` against the emulator, including a backfill."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import task_state, xcom_value
from tests.sync.conftest import execute_sql

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0),
]

CREATE = "/datasets/{dataset_id}/document/create-by-text"
UPDATE = "/datasets/{dataset_id}/documents/{document_id}/update-by-text"
SEGMENTS = "/datasets/{dataset_id}/documents/{document_id}/segments"
KNOWLEDGE_BASE = "test-warehouse-export"


EXPORT = Path(__file__).resolve().parents[2] / "example_dags" / "example_dify_warehouse_export.py"


@pytest.fixture(autouse=True)
def knowledge_base_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG file reads its knowledge base's name when it is parsed."""
    monkeypatch.setenv("DIFY_EXAMPLE_KNOWLEDGE_BASE", KNOWLEDGE_BASE)


def run(logical_date: datetime | None = None) -> Any:
    from airflow_provider_dify.testing.dag_runner import load_dag, run_dag

    dag = load_dag(EXPORT)
    arguments: dict[str, Any] = {"run_conf": {"smoke_query": "grinder"}}
    if logical_date is not None:
        arguments["logical_date"] = logical_date
    return run_dag(dag, **arguments)


def contents(dify: Any) -> tuple[Counter[str], Counter[str]]:
    """Document names, and the contents of the FAQ document's chunks."""
    dataset = dify.find_dataset(KNOWLEDGE_BASE)
    documents = dify.documents(dataset["id"])
    names = Counter(doc["name"] for doc in documents)
    [faq] = [doc for doc in documents if doc["name"] == "warehouse: faq"]
    return names, Counter(chunk["content"] for chunk in dify.segments(dataset["id"], faq["id"]))


def test_export_then_backfill_leaves_one_document_per_entity(dify_emulator: Any, warehouse: Path) -> None:
    first = run()
    for task_id in ("knowledge_base", "sync_products", "sync_faq", "retrieve", "check_hits"):
        assert task_state(first, task_id) == "success", task_id
    products = xcom_value(first, "sync_products")
    assert products["counts"]["created"] == 240
    assert products["indexing"] == {"documents": 240, "completed": 240, "chunks": 240}
    assert xcom_value(first, "sync_faq")["counts"]["added"] == 40
    hits = xcom_value(first, "check_hits")
    assert hits["hits"] >= 1 and "grinder" in hits["content"].lower()

    execute_sql(warehouse, "UPDATE products SET price = 99.5 WHERE sku = 'COF-0001'")
    dify_emulator.reset_counters()
    backfill = [run(datetime(2026, 3, day, tzinfo=UTC)) for day in (1, 2, 3)]
    assert all(task_state(dag_run, "check_hits") == "success" for dag_run in backfill)
    assert dify_emulator.count("POST", UPDATE) == 1 and dify_emulator.count("POST", CREATE) == 0
    assert dify_emulator.count("POST", SEGMENTS) == 0
    assert [xcom_value(dag_run, "sync_products")["counts"]["updated"] for dag_run in backfill] == [1, 0, 0]

    names, chunk_texts = contents(dify_emulator)
    assert set(names.values()) == {1} and len(names) == 241  # 240 products + the FAQ document
    assert len(chunk_texts) == 40 and set(chunk_texts.values()) == {1}
    assert not any("[key:" in text for text in chunk_texts)
