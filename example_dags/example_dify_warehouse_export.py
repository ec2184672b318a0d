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

The file names the knowledge base (``KNOWLEDGE_BASE``), so the writing tasks declare its asset
``dify-knowledge-base://dify_default/<name>`` when the file is parsed: their events are quiet, and
``example_dify_knowledge_base_changed`` schedules on the same asset (docs/assets.md).

Settings (read when the file is parsed from environment variables, no other I/O):

* ``DIFY_EXAMPLE_KNOWLEDGE_BASE``: the knowledge base's name (default ``airflow-example-warehouse``)

DAG params (defaults from environment variables):

* ``sql_conn_id`` (``DIFY_EXAMPLE_SQL_CONN_ID``, default ``warehouse_sqlite``): an Airflow SQL connection to
  the warehouse, e.g. ``AIRFLOW_CONN_WAREHOUSE_SQLITE='{"conn_type": "sqlite", "host": "/path/warehouse.db"}'``
  (``python -m example_dags.warehouse /path/warehouse.db`` builds the sample one).
* ``smoke_query`` (``DIFY_EXAMPLE_SMOKE_QUERY``, default ``Espresso``: Dify's keyword search is case-sensitive,
  and product names and an FAQ answer hold the word so written)

The Dify connection is ``dify_default``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AirflowException, Param, task

from airflow_provider_dify.assets import knowledge_base_named
from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator

DAG_ID = "example_dify_warehouse_export"
#: The knowledge base, named in the file: its writers declare its asset, KNOWLEDGE_BASE_ASSET, as their outlet.
KNOWLEDGE_BASE = os.environ.get("DIFY_EXAMPLE_KNOWLEDGE_BASE", "airflow-example-warehouse")
KNOWLEDGE_BASE_ASSET = knowledge_base_named(KNOWLEDGE_BASE)

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
        "sql_conn_id": Param(os.environ.get("DIFY_EXAMPLE_SQL_CONN_ID", "warehouse_sqlite"), type="string"),
        "smoke_query": Param(os.environ.get("DIFY_EXAMPLE_SMOKE_QUERY", "Espresso"), type="string", maxLength=250),
    },
    tags=["dify", "example"],
) as dag:
    knowledge_base = DifyCreateDatasetOperator(
        task_id="knowledge_base",
        name=KNOWLEDGE_BASE,
        description="Products and FAQ exported from the warehouse by Airflow.",
        indexing_technique="economy",
    )

    sync_products = DifySyncDocumentsOperator(
        task_id="sync_products",
        dataset_name=KNOWLEDGE_BASE,
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
        dataset_name=KNOWLEDGE_BASE,
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
        dataset_name=KNOWLEDGE_BASE,
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
