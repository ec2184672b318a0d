"""Writers that overlap on one holder document, for tests/sync/test_chunk_overlap.py (threads and processes).

Each writer is a full chunk sync over real HTTP: it lists the holder's chunks, plans, writes and verifies.
``barrier`` makes the writers plan from the same listing (both read before either writes), the case where
two runs would both add every chunk.
"""

from __future__ import annotations

import os
import random
from datetime import datetime
from typing import Any

from airflow_provider_dify.operators.sync._chunk_sync import ChunkSync, plan_chunks, reconcile
from airflow_provider_dify.operators.sync._records import RecordRenderer, render_all

TEMPLATE = "{{ name }}: {{ detail }}"


def records(count: int, *, changed: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Product-like records; those in ``changed`` have a new text."""
    return [
        {
            "sku": f"SKU-{number:03d}",
            "name": f"Item {number}",
            "detail": f"{'revised ' if number in changed else ''}detail of item {number}",
        }
        for number in range(count)
    ]


def texts(rows: list[dict[str, Any]]) -> set[str]:
    """The chunk contents those records must end as."""
    return {f"{row['name']}: {row['detail']}" for row in rows}


def _wait_after_first_listing(sync: ChunkSync, barrier: Any, seed: int) -> None:
    listing = sync.list_chunks
    calls = {"n": 0}
    pause = random.Random(seed)

    def list_chunks() -> list[dict[str, Any]]:
        chunks = listing()
        calls["n"] += 1
        if calls["n"] == 1 and barrier is not None:
            barrier.wait(timeout=60)
            if pause.random() < 0.5:
                import time

                time.sleep(pause.uniform(0, 0.02))
        return chunks

    sync.list_chunks = list_chunks  # type: ignore[method-assign]


def sync_holder(
    conn_json: str,
    dataset_id: str,
    document_id: str,
    rows: list[dict[str, Any]],
    *,
    batch_size: int = 100,
    barrier: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """One writer: reconcile the holder's chunks with ``rows``; return the outcome as plain data."""
    os.environ["AIRFLOW_CONN_DIFY_OVERLAP"] = conn_json
    from airflow_provider_dify.hooks.dify import DifyHook

    rendered, failures = render_all(RecordRenderer(key_field="sku", text_template=TEMPLATE, names=False), rows)
    assert not failures
    sync = ChunkSync(DifyHook(dify_conn_id="dify_overlap"), dataset_id, document_id, batch_size=batch_size)
    _wait_after_first_listing(sync, barrier, seed)
    _, result = reconcile(sync, lambda chunks: plan_chunks(rendered, chunks, keyed=True, header=""))
    return {
        "added": len(result.added),
        "deleted": len(result.deleted),
        "failed": result.failed,
        "verified": result.verified,
        "passes": result.passes,
        "copies_removed": result.copies_removed,
    }


def run_in_process(arguments: tuple[Any, ...], keywords: dict[str, Any], answers: Any) -> None:
    """Entry point of a writer process: puts its outcome (or its error) on ``answers``."""
    try:
        answers.put(sync_holder(*arguments, **keywords))
    except BaseException as error:  # reported to the test, which fails on it
        answers.put({"error": f"{type(error).__name__}: {error}"})


def run_dag_in_process(dataset_id: str, rows: list[dict[str, Any]], dag_id: str, barrier: Any, answers: Any) -> None:
    """Entry point of a process running ``dag.test()`` of a chunk-sync DAG (the parent's AIRFLOW_HOME and DB)."""
    try:
        from airflow.providers.common.compat.sdk import DAG

        from airflow_provider_dify.operators.sync import DifySyncChunksOperator
        from airflow_provider_dify.operators.sync._chunk_sync import ChunkSync as Writer
        from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

        listing = Writer.list_chunks
        calls = {"n": 0}

        def list_chunks(self: Writer) -> list[dict[str, Any]]:
            chunks = listing(self)
            calls["n"] += 1
            if calls["n"] == 1:
                barrier.wait(timeout=120)
            return chunks

        Writer.list_chunks = list_chunks  # type: ignore[method-assign]
        with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
            DifySyncChunksOperator(
                task_id="sync",
                dataset_id=dataset_id,
                records=rows,
                key_field="sku",
                text_template=TEMPLATE,
                document_name="overlap holder",
                poll_interval=0.05,
            )
        dag_run = run_dag(dag)
        answers.put({"state": task_state(dag_run, "sync"), "manifest": xcom_value(dag_run, "sync")})
    except BaseException as error:
        answers.put({"error": f"{type(error).__name__}: {error}"})
