"""
Curated Q&A chunks: a document written once, then hand-picked question/answer chunks added from a table.

* ``knowledge_base``: find or create the knowledge base.
* ``curated_document``: create the document that holds the curated answers (or leave it as it is), and wait
  until Dify has indexed it: Dify accepts chunks only on an indexed document.
* ``load_chunks``: read the curated entries of one FAQ category from the warehouse; each becomes a chunk
  ``Q: ... / A: ...``; Dify extracts its keywords (giving ``keywords`` would replace them, and keyword search
  would then match only those).
* ``add_chunks``: add the chunks that are not in the document yet (a re-run adds nothing).
* ``retrieve``: search them.

Use this when people curate the content and every run adds to it; to mirror a table (adds, updates and
deletes), use ``DifySyncChunksOperator`` as in ``example_dify_warehouse_export``.

The file names the knowledge base (``KNOWLEDGE_BASE``, from ``DIFY_EXAMPLE_QA_KNOWLEDGE_BASE`` when the file is
parsed, default ``airflow-example-curated-qa``), so the writing tasks declare its asset
``dify-knowledge-base://dify_default/<name>`` and their events are quiet (docs/assets.md).

DAG params (defaults from environment variables): ``sql_conn_id``
(``DIFY_EXAMPLE_SQL_CONN_ID``, default ``warehouse_sqlite``), ``category`` (default ``Care``), ``query``
(default ``descale``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator

DAG_ID = "example_dify_curated_qa"
#: The knowledge base, named in the file: its writers declare its asset as their outlet.
KNOWLEDGE_BASE = os.environ.get("DIFY_EXAMPLE_QA_KNOWLEDGE_BASE", "airflow-example-curated-qa")

with DAG(
    DAG_ID,
    description="Curated question/answer chunks added to one Dify document",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "sql_conn_id": Param(os.environ.get("DIFY_EXAMPLE_SQL_CONN_ID", "warehouse_sqlite"), type="string"),
        "category": Param("Care", type="string"),
        "query": Param("descale", type="string", maxLength=250),
    },
    tags=["dify", "example"],
) as dag:
    knowledge_base = DifyCreateDatasetOperator(
        task_id="knowledge_base",
        name=KNOWLEDGE_BASE,
        description="Answers curated by the support team.",
        indexing_technique="economy",
    )

    curated_document = DifyCreateDocumentOperator(
        task_id="curated_document",
        dataset_name=KNOWLEDGE_BASE,
        name="Curated answers",
        text="Curated answers of the support team, one question and answer per chunk.",
        on_existing="skip",
        wait_for_indexing=True,
        deferrable=True,
        poll_interval=2,
    )

    @task(task_id="load_chunks")
    def load_chunks(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The curated entries of one category as chunks."""
        from airflow.providers.common.compat.sdk import BaseHook

        params = params or {}
        hook = BaseHook.get_connection(params["sql_conn_id"]).get_hook()
        rows = hook.get_records(
            "SELECT question, answer, category FROM faq WHERE category = ? ORDER BY faq_id", [params["category"]]
        )
        return [{"content": f"Q: {question}\nA: {answer}\n({category})"} for question, answer, category in rows]

    add_chunks = DifyAddSegmentsOperator(
        task_id="add_chunks",
        dataset_name=KNOWLEDGE_BASE,
        document_id="{{ ti.xcom_pull(task_ids='curated_document')['document_id'] }}",
        segments=load_chunks(),
        deferrable=True,
        poll_interval=2,
    )

    retrieve = DifyRetrieveOperator(
        task_id="retrieve", dataset_name=KNOWLEDGE_BASE, query="{{ params.query }}", top_k=3
    )

    knowledge_base >> curated_document >> add_chunks >> retrieve
