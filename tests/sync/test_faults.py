"""1,000 records synced while the emulator injects 5xx answers, connection resets and rate-limit 403s.

The run must end with every document (or chunk) present exactly once: the hook retries what is safe to
repeat, the chunk sync reconciles adds whose outcome is unknown, and the task retry finishes the rest.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_dify.operators._content import HASH_FIELD, metadata_values
from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

pytestmark = pytest.mark.usefixtures("airflow_db")

RECORDS = 1000
_numbers = itertools.count()


def _records() -> list[dict[str, Any]]:
    return [
        {"id": f"item-{number:04d}", "title": f"Item {number}", "body": f"Item {number} is catalogue entry {number}."}
        for number in range(RECORDS)
    ]


def _dag(operator_class: type, dataset_id: str, **operator: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(f"sync_faults_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        operator_class(
            task_id="sync",
            dataset_id=dataset_id,
            records=_records(),
            key_field="id",
            text_template="{{ title }}: {{ body }}",
            retries=3,
            retry_delay=timedelta(seconds=0),
            **operator,
        )
    return dag


def _run(dag: Any) -> Any:
    from airflow_provider_dify.testing.dag_runner import run_dag

    return run_dag(dag)


def _inject_faults(dify: Any, *, rate_limit: int) -> None:
    """Random 5xx and resets, and a rate limit of ``rate_limit`` requests per half-second window
    (the connection waits 0.6 s after a rate-limit answer: longer than the window, as it should)."""
    dify.configure(
        fault_rate=0.04,
        fault_statuses=(500, 502, 503),
        reset_rate=0.02,
        rate_limit_per_minute=rate_limit,
        rate_limit_window_seconds=0.5,
        seed=7,
    )


@pytest.mark.dify_emulator(indexing_seconds=0.001, queue_pickup_seconds=0)
def test_documents_each_present_once_despite_faults(dify_fast_retries: Any) -> None:
    dify = dify_fast_retries
    dataset_id = dify.create_dataset("faults-documents")["id"]
    _inject_faults(dify, rate_limit=80)
    dag_run = _run(_dag(DifySyncDocumentsOperator, dataset_id, name_prefix="doc-", scope="faults", max_workers=4))
    assert task_state(dag_run, "sync") == "success"
    faults = Counter(call.fault for call in dify.calls if call.fault)
    rate_limited = dify.count(status=403)
    assert faults["injected"] > 0 and faults["reset"] > 0 and rate_limited > 0  # the faults did happen

    dify.configure(fault_rate=0.0, reset_rate=0.0, rate_limit_per_minute=None)
    documents = dify.documents(dataset_id)
    names = Counter(doc["name"] for doc in documents)
    assert len(documents) == RECORDS and set(names.values()) == {1}
    assert set(names) == {f"doc-item-{number:04d}" for number in range(RECORDS)}
    assert all(metadata_values(doc).get(HASH_FIELD) for doc in documents)
    by_name = {doc["name"]: doc for doc in documents}
    assert by_name["doc-item-0421"]["text"] == "Item 421: Item 421 is catalogue entry 421."

    dify.reset_counters()
    rerun = xcom_value(_run(_dag(DifySyncDocumentsOperator, dataset_id, name_prefix="doc-", scope="faults")), "sync")
    assert rerun["counts"]["unchanged"] == RECORDS and dify.write_count() == 0


@pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0)
def test_chunks_each_present_once_despite_faults(dify_fast_retries: Any) -> None:
    dify = dify_fast_retries
    dataset_id = dify.create_dataset("faults-chunks")["id"]
    _inject_faults(dify, rate_limit=6)
    # A few adds are processed but their answers are lost, on top of the random faults.
    dify.fail_next(
        count=2,
        status="reset",
        method="POST",
        route="/datasets/{dataset_id}/documents/{document_id}/segments",
        after_processing=True,
    )
    dag_run = _run(
        _dag(DifySyncChunksOperator, dataset_id, document_name="catalogue", batch_size=50, poll_interval=0.05)
    )
    assert task_state(dag_run, "sync") == "success"
    assert any(call.fault for call in dify.calls) and dify.count(status=403) > 0

    dify.configure(fault_rate=0.0, reset_rate=0.0, rate_limit_per_minute=None)
    [document] = dify.documents(dataset_id)
    contents = Counter(chunk["content"] for chunk in dify.segments(dataset_id, document["id"]))
    assert set(contents.values()) == {1}  # no copies, and no header chunk: the holder has no text of its own
    assert set(contents) == {f"{record['title']}: {record['body']}" for record in _records()}
