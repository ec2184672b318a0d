"""What the chunk sync writes is what retrieval sees: ranking as good as plain chunks, contents untouched.

On the emulator, whose economy keyword index is Dify's (jieba TF-IDF, 10 keywords a chunk): 200 product-like
rows with SKUs and numbers (English, Chinese and mixed), 60 queries each naming one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value
from bench import retrieval

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.01)]


def test_the_chunk_sync_ranks_as_plain_chunks_and_returns_the_records_texts(dify_emulator: Any) -> None:
    from airflow.providers.common.compat.sdk import DAG

    rows = retrieval.catalogue(200)
    assert sum(any("\u4e00" <= c <= "\u9fff" for c in row["text"]) for row in rows) >= 40  # Chinese and mixed
    text_of = {row["id"]: row["text"] for row in rows}
    asked = retrieval.queries(rows, 60)
    assert len(asked) == 60 and len({row_id for _, row_id in asked}) == 60
    hook = DifyHook()
    synced = dify_emulator.create_dataset("quality-sync")["id"]
    plain = dify_emulator.create_dataset("quality-plain")["id"]
    keyed = dify_emulator.create_dataset("quality-key-lines")["id"]

    with DAG("retrieval_quality", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        retrieval.sync_operator(synced, rows)
    dag_run = run_dag(dag)
    assert task_state(dag_run, "sync_catalogue") == "success"
    assert xcom_value(dag_run, "sync_catalogue")["counts"]["added"] == 200
    retrieval.load_plain(hook, plain, [row["text"] for row in rows])
    retrieval.load_plain(hook, keyed, [f"{row['text']}\n\n[key: {row['id']}]" for row in rows])

    by_sync = retrieval.first_hits(hook, synced, asked, text_of)
    by_plain = retrieval.first_hits(hook, plain, asked, text_of)
    by_key_lines = retrieval.first_hits(hook, keyed, asked, text_of)
    assert by_sync["right_first"] == by_plain["right_first"]
    assert by_sync["right_first"] >= 0.9 * len(asked)  # the queries do find their rows
    assert by_sync["foreign_contents"] == [] and by_plain["foreign_contents"] == []
    # What the earlier versions wrote: every hit carries the key line, and ranking is worse.
    assert by_key_lines["foreign_contents"] and by_key_lines["right_first"] < by_plain["right_first"]

    [document] = dify_emulator.documents(synced)
    chunks = dify_emulator.segments(synced, document["id"])
    assert sorted(chunk["content"] for chunk in chunks) == sorted(text_of.values())  # no header chunk either
    hook.close()
