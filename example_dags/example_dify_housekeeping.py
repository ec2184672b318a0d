"""
Housekeeping: delete the knowledge bases whose name starts with a prefix (those the example DAGs or a test
run created), one mapped delete task per knowledge base.

``find`` lists the knowledge bases of the workspace (a read); ``delete`` removes each one with its documents.
Deleting one that is already gone succeeds, so the DAG can be re-run. Dify refuses (409) to delete a knowledge
base that an app still uses: detach it from the app first.

Settings (DAG params): ``name_prefix`` (``DIFY_EXAMPLE_HOUSEKEEPING_PREFIX``, default ``airflow-example-``),
``dry_run`` (default ``false``: only list what would be deleted when ``true``).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_dify.operators.datasets import DifyDeleteDatasetOperator

DAG_ID = "example_dify_housekeeping"

with DAG(
    DAG_ID,
    description="Delete the Dify knowledge bases whose name starts with a prefix",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "name_prefix": Param(
            os.environ.get("DIFY_EXAMPLE_HOUSEKEEPING_PREFIX", "airflow-example-"), type="string", minLength=3
        ),
        "dry_run": Param(False, type="boolean"),
    },
    tags=["dify", "example"],
) as dag:

    @task(task_id="find")
    def find(params: dict | None = None) -> list[str]:
        """The ids of the knowledge bases named with the prefix (none when ``dry_run``: they are only logged)."""
        import logging

        from airflow_provider_dify.hooks.dify import DifyHook

        log = logging.getLogger("airflow.task")
        params = params or {}
        prefix = params["name_prefix"]
        found = [
            dataset
            for dataset in DifyHook().iter_datasets(keyword=prefix, include_all=True)
            if str(dataset.get("name", "")).startswith(prefix)
        ]
        for dataset in found:
            log.info(
                "%s %r (%s)", "Would delete" if params.get("dry_run") else "Deleting", dataset["name"], dataset["id"]
            )
        return [] if params.get("dry_run") else [str(dataset["id"]) for dataset in found]

    DifyDeleteDatasetOperator.partial(task_id="delete").expand(dataset_id=find())
