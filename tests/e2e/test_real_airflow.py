"""
End to end: a real Airflow 3 (api-server, scheduler with LocalExecutor, dag-processor, triggerer) on SQLite runs a
DAG whose deferrable DifyIndexingSensor waits in the triggerer for a document that the DAG's first task created in
the Dify emulator.

The deployment is :mod:`tests.e2e.harness`'s (every process on 127.0.0.1, a fresh AIRFLOW_HOME under ``tmp_path``,
everything stopped when the test ends); the Dify connection comes through ``AIRFLOW_CONN_DIFY_DEFAULT``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import AirflowDeployment, requires_airflow_3

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_dify_indexing"
RUN_TIMEOUT = 240.0
STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"

DAG_FILE = '''
"""Create a document in Dify, then wait for its indexing in the triggerer."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dify.sensors.indexing import DifyIndexingSensor

DATASET_ID = {dataset_id!r}

with DAG({dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False):

    @task(task_id="create")
    def create() -> dict:
        from airflow_provider_dify.hooks.dify import DifyHook

        answer = DifyHook().create_document_by_text(
            DATASET_ID,
            "e2e.txt",
            "A paragraph written by the end-to-end test.\\n\\nAnother paragraph to index.",
            indexing_technique="economy",
            process_rule={{"mode": "automatic"}},
        )
        return {{"batch": answer["batch"], "document_ids": [answer["document"]["id"]]}}

    wait = DifyIndexingSensor(
        task_id="wait",
        dataset_id=DATASET_ID,
        batch="{{{{ ti.xcom_pull(task_ids='create')['batch'] }}}}",
        document_ids="{{{{ ti.xcom_pull(task_ids='create')['document_ids'] | tojson }}}}",
        deferrable=True,
        poke_interval=1,
        timeout=180,
        stall_timeout=120,
    )
    create() >> wait
'''


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    with DifyEmulator(indexing_seconds=6.0) as dify:
        yield dify


@requires_airflow_3
def test_deferrable_sensor_waits_in_a_real_triggerer(tmp_path: Path, emulator: Any) -> None:
    dataset_id = emulator.create_dataset("e2e")["id"]
    with AirflowDeployment(tmp_path, env={"AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json}) as deployment:
        deployment.write_dag(f"{DAG_ID}.py", DAG_FILE.format(dataset_id=dataset_id, dag_id=DAG_ID))
        deployment.cli("db", "migrate")
        deployment.start("api-server", "dag-processor", "scheduler", "triggerer")
        deployment.wait_for_api_server()
        deployment.wait_for_dag(DAG_ID)
        deployment.cli("dags", "trigger", DAG_ID)

        seen_states: set[str] = set()

        def run_finished() -> str | None:
            for (state,) in deployment.query(
                "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = 'wait'", DAG_ID
            ):
                seen_states.add(str(state))
            return deployment.finished_run_state(DAG_ID)

        final = deployment.wait_until(run_finished, RUN_TIMEOUT, "the DAG run to finish")
        assert final == "success", f"the run ended {final}\n{deployment.logs()}"
        assert "deferred" in seen_states, f"the sensor was never seen deferred: {seen_states}\n{deployment.logs()}"

        [(wait_state, try_number)] = deployment.query(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND task_id = 'wait'", DAG_ID
        )
        assert (wait_state, try_number) == ("success", 1)  # deferring and resuming is one try
        [document] = deployment.return_value(DAG_ID, "wait")
        stored = emulator.documents(dataset_id)
        assert [doc["id"] for doc in stored] == [document["id"]]
        assert document["indexing_status"] == "completed" == stored[0]["indexing_status"]
        assert document["completed_segments"] == document["total_segments"] > 0
        # The sensor checked once, then the triggerer polled until the document completed.
        assert emulator.count("GET", STATUS_ROUTE) >= 3
        assert emulator.write_count() == 1  # the create task; waiting only reads
