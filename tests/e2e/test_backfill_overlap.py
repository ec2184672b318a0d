"""
End to end: a backfill of several logical dates with ``max_active_runs`` > 1 on a real Airflow 3 (scheduler with
LocalExecutor): the runs of one document sync over one scope overlap, all succeed, and the knowledge base ends
with every record exactly once. Uses the harness of :mod:`tests.e2e.harness`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    AirflowDeployment,
    alias_link_task,
    assert_every_record_once,
    asset_consumer_dag,
    numbered_records_sync_arguments,
    requires_airflow_3,
)

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_dify_backfill_overlap"
LINK_DAG_ID = "e2e_dify_backfill_link"
DATES = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
RECORDS = 40

DAG_FILE = '''
"""One export over one scope, a run a day; the backfill runs several days at once."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dify.assets import knowledge_base_alias, knowledge_base_asset
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

{consumer_dag}
SYNC_ARGUMENTS = {sync_arguments}

# Paused until the alias is linked to the asset (the test unpauses it), so that its first runs, which overlap,
# do not race to make the link.
with DAG({dag_id!r}, schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=4,
         is_paused_upon_creation=True):
    DifySyncDocumentsOperator(task_id="sync", **SYNC_ARGUMENTS)

with DAG({link_dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
{link_alias}
    link_alias()
'''


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    # Slow answers keep each run's task busy long enough for the runs to overlap.
    with DifyEmulator(indexing_seconds=0.05, queue_pickup_seconds=0.0, latency_seconds=0.15) as dify:
        yield dify


@requires_airflow_3
def test_backfill_with_overlapping_runs_ends_exact(tmp_path: Path, emulator: Any) -> None:
    dataset_id = emulator.create_dataset("e2e-backfill")["id"]
    env = {"AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json}
    with AirflowDeployment(tmp_path, parallelism=4, env=env) as deployment:
        deployment.write_dag(
            f"{DAG_ID}.py",
            DAG_FILE.format(
                dag_id=DAG_ID,
                link_dag_id=LINK_DAG_ID,
                link_alias=textwrap.indent(alias_link_task(dataset_id, emulator.url), "    "),
                consumer_dag=asset_consumer_dag("e2e_dify_backfill_consumer", dataset_id, emulator.url),
                sync_arguments=numbered_records_sync_arguments(dataset_id, RECORDS, "e2e:backfill"),
            ),
        )
        deployment.cli("db", "migrate")
        deployment.start("api-server", "dag-processor", "scheduler")
        deployment.wait_for_api_server()
        deployment.wait_for_dag(DAG_ID)
        deployment.wait_for_dag(LINK_DAG_ID)
        deployment.cli("dags", "trigger", LINK_DAG_ID)
        linked = deployment.wait_until(lambda: deployment.finished_run_state(LINK_DAG_ID), 120, "the alias link")
        assert linked == "success", deployment.logs()
        # The unpaused DAG also gets its latest scheduled run: one more run of the same export, at the same time.
        states = deployment.backfill(DAG_ID, DATES, max_active_runs=4)
        assert set(states) == {"success"}, f"{states}\n{deployment.logs()}"
        intervals, overlapping = deployment.task_intervals(DAG_ID, "sync")
        assert len(intervals) == len(states) >= len(DATES)
        assert overlapping >= 1, f"no two sync tasks ran at the same time: {intervals}"
    stored = assert_every_record_once(emulator, dataset_id, RECORDS)
    # Every run read the same truth: nothing was deleted (checked above) and there is one create per record (later
    # runs' creates are Dify's same-name upserts onto the same document).
    assert len({doc["id"] for doc in stored}) == RECORDS
