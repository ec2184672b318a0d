"""
Files from object storage become Dify documents, rewritten only when a file's bytes change.

Every file under a prefix (``s3://bucket/handbook/``, ``gs://...``, or a local ``file:///...`` directory) that
matches ``glob`` becomes one document, named after its path under the prefix (``/`` becomes ``__``) and
uploaded as it is: Dify extracts the text (Markdown, PDF, DOCX, HTML, CSV...). The content hash of each file
is kept in the document's metadata, so a re-run uploads only new and changed files and deletes the documents
of files that were removed (``delete_missing``); the path and extension become metadata for filtering.

Remote prefixes need the matching Airflow provider (amazon, google...) and a ``conn_id`` in the URL or the
default connection of the store; files are downloaded to a temporary file, in blocks, only when they are read.

The file names the knowledge base (``KNOWLEDGE_BASE``, from ``DIFY_EXAMPLE_DOCS_KNOWLEDGE_BASE`` when the file is
parsed, default ``airflow-example-handbook``), so both tasks declare its asset
``dify-knowledge-base://dify_default/<name>`` and their events are quiet (docs/assets.md).

DAG params (defaults from environment variables):

* ``prefix`` (``DIFY_EXAMPLE_DOCS_PREFIX``, default: this folder's ``sample_docs``)
* ``glob`` (default ``**/*.md``)
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

DAG_ID = "example_dify_object_storage"
#: The knowledge base, named in the file: its writers declare its asset as their outlet.
KNOWLEDGE_BASE = os.environ.get("DIFY_EXAMPLE_DOCS_KNOWLEDGE_BASE", "airflow-example-handbook")
SAMPLE_DOCS = f"file://{Path(__file__).resolve().parent / 'sample_docs'}"

with DAG(
    DAG_ID,
    description="Files under an object storage prefix -> Dify documents, updated only when changed",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "prefix": Param(os.environ.get("DIFY_EXAMPLE_DOCS_PREFIX", SAMPLE_DOCS), type="string"),
        "glob": Param("**/*.md", type="string"),
    },
    tags=["dify", "example"],
) as dag:
    knowledge_base = DifyCreateDatasetOperator(
        task_id="knowledge_base",
        name=KNOWLEDGE_BASE,
        description="The handbook, uploaded from object storage by Airflow.",
        indexing_technique="economy",
    )

    sync_files = DifySyncDocumentsOperator(
        task_id="sync_files",
        dataset_name=KNOWLEDGE_BASE,
        path="{{ params.prefix }}",
        path_glob="{{ params.glob }}",
        name_prefix="handbook__",
        metadata_fields={"path": "source_path", "suffix": "file_type"},
        scope="object-storage:handbook",
        delete_missing=True,
    )

    knowledge_base >> sync_files
