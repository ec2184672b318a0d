"""
Daily warehouse export: products become Dify documents, FAQ entries become chunks, then a retrieval check.

* ``knowledge_base``: find or create the knowledge base (economy indexing: no embedding model needed).
* ``sync_products``: one document per product (``products`` table, key ``sku``), with category, brand,
  price and rating as Dify metadata; documents of products removed from the table are deleted
  (``delete_missing``), unchanged ones are not touched; waits until the written documents are indexed.
* ``sync_faq``: one chunk per FAQ entry in the document ``warehouse: faq`` (chunks are indexed at once).
* ``retrieve`` + ``check_hits``: a keyword search that must find something.

Backfill-safe: each run makes the knowledge base hold the table's current rows, whatever the logical date, so
any number of runs (``catchup``, ``airflow dags backfill``, retries, cleared tasks) leaves exactly one document
per product and one chunk per FAQ entry. ``max_active_runs=1`` keeps backfill runs from overlapping.

Settings (DAG params; defaults from environment variables, read when the file is parsed, no other I/O):

* ``knowledge_base`` (``DIFY_EXAMPLE_KNOWLEDGE_BASE``, default ``airflow-example-warehouse``)
* ``sql_conn_id`` (``DIFY_EXAMPLE_SQL_CONN_ID``, default ``warehouse_sqlite``): an Airflow SQL connection to
  the warehouse, e.g. ``AIRFLOW_CONN_WAREHOUSE_SQLITE='{"conn_type": "sqlite", "host": "/path/warehouse.db"}'``
  (``python -m example_dags.warehouse /path/warehouse.db`` builds the sample one).
* ``smoke_query`` (``DIFY_EXAMPLE_SMOKE_QUERY``, default ``espresso``)

The Dify connection is ``dify_default``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AirflowException, Param, task

from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator

DAG_ID = "example_dify_warehouse_export"
#: The id of the knowledge base the first task found or created.
DATASET_ID = "{{ ti.xcom_pull(task_ids='knowledge_base')['dataset_id'] }}"

PRODUCT_TEXT = """\
{{ name }} ({{ sku }})
Category: {{ category }}. Brand: {{ brand }}.
{{ description }}
Price: {{ '%.2f' | format(price) }} EUR. Customer rating: {{ rating }} / 5."""

with DAG(
    DAG_ID,
    description="Warehouse tables -> Dify knowledge base (documents and chunks), daily and backfill-safe",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "knowledge_base": Param(
            os.environ.get("DIFY_EXAMPLE_KNOWLEDGE_BASE", "airflow-example-warehouse"),
            type="string",
            minLength=1,
            maxLength=40,
        ),
        "sql_conn_id": Param(os.environ.get("DIFY_EXAMPLE_SQL_CONN_ID", "warehouse_sqlite"), type="string"),
        "smoke_query": Param(os.environ.get("DIFY_EXAMPLE_SMOKE_QUERY", "espresso"), type="string", maxLength=250),
    },
    tags=["dify", "example"],
) as dag:
    knowledge_base = DifyCreateDatasetOperator(
        task_id="knowledge_base",
        name="{{ params.knowledge_base }}",
        description="Products and FAQ exported from the warehouse by Airflow.",
        indexing_technique="economy",
    )

    sync_products = DifySyncDocumentsOperator(
        task_id="sync_products",
        dataset_id=DATASET_ID,
        sql="SELECT sku, name, category, brand, price, rating, description FROM products ORDER BY product_id",
        sql_conn_id="{{ params.sql_conn_id }}",
        key_field="sku",
        name_prefix="product ",
        text_template=PRODUCT_TEXT,
        metadata_fields=["category", "brand", "price", "rating"],
        scope="warehouse:products",
        delete_missing=True,
        wait_for_indexing=True,
        deferrable=True,
        poll_interval=2,
        indexing_timeout=3600,
    )

    sync_faq = DifySyncChunksOperator(
        task_id="sync_faq",
        dataset_id=DATASET_ID,
        sql="SELECT faq_id, category, question, answer FROM faq ORDER BY faq_id",
        sql_conn_id="{{ params.sql_conn_id }}",
        key_field="faq_id",
        text_template="Q: {{ question }}\nA: {{ answer }}\n({{ category }})",
        document_name="warehouse: faq",
        deferrable=True,
        poll_interval=2,
    )

    retrieve = DifyRetrieveOperator(
        task_id="retrieve",
        dataset_id=DATASET_ID,
        query="{{ params.smoke_query }}",
        top_k=3,
    )

    @task(task_id="check_hits")
    def check_hits(result: dict[str, Any]) -> dict[str, Any]:
        """Fail unless the smoke query found something; return a sample hit (name and the first line)."""
        records = result.get("records") or []
        if not records:
            raise AirflowException(f"The smoke query {result.get('query')!r} found nothing in the knowledge base.")
        first = records[0]
        return {
            "hits": len(records),
            "document": first.get("document_name"),
            "content": (first.get("content") or "")[:200],
        }

    knowledge_base >> [sync_products, sync_faq] >> retrieve
    check_hits(retrieve.output)
