"""
Files go through a knowledge base's knowledge pipeline; the DAG waits, in the triggerer, until they are indexed.

A knowledge base whose ``runtime_mode`` is ``rag_pipeline`` is built in Dify's console with a published
pipeline (a file datasource, an extractor, a chunker, the knowledge index). Documents written to it with
create-by-text or create-by-file would skip that pipeline, so this DAG runs the pipeline itself: each file is
uploaded and becomes one document of one batch. A re-run leaves out files whose document is already there.

The file names the knowledge base (``KNOWLEDGE_BASE``, from ``DIFY_EXAMPLE_PIPELINE_KNOWLEDGE_BASE`` when the file
is parsed, default ``airflow-example-pipeline``; the pipeline knowledge base must exist), so the task declares
its asset ``dify-knowledge-base://dify_default/<name>`` and its event is quiet (docs/assets.md).

DAG param ``files``: the files to run the pipeline on (default: the Markdown files of this folder's
``sample_docs``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_dify.operators.pipeline import DifyRunPipelineOperator

DAG_ID = "example_dify_knowledge_pipeline"
#: The pipeline knowledge base, named in the file: the task declares its asset as its outlet.
KNOWLEDGE_BASE = os.environ.get("DIFY_EXAMPLE_PIPELINE_KNOWLEDGE_BASE", "airflow-example-pipeline")
SAMPLE_FILES = sorted(str(path) for path in (Path(__file__).resolve().parent / "sample_docs").glob("*.md"))

with DAG(
    DAG_ID,
    description="Files -> a Dify knowledge pipeline, waited for in the triggerer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "files": Param(SAMPLE_FILES, type="array", minItems=1),
    },
    render_template_as_native_obj=True,
    tags=["dify", "example"],
) as dag:
    DifyRunPipelineOperator(
        task_id="run_pipeline",
        dataset_name=KNOWLEDGE_BASE,
        files="{{ params.files }}",
        deferrable=True,
        poll_interval=5,
    )
