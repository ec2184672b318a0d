"""
End to end: ``airflow backfill create`` of 5 dates, newest first, with ``max_active_runs=3`` on a real Airflow 3
(scheduler with LocalExecutor) over a change feed with deletions and versions. The DAG runs overlap; the
versioned sync task runs one instance at a time (``max_active_tis_per_dag=1``), and the knowledge base ends with
each record's newest version exactly once, nothing its newest version deleted, and no write older than what Dify
held (:mod:`tests.change_feed_checks`). Uses :mod:`tests.e2e.harness`; the DAG is :mod:`tests.e2e.change_feed_dag`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.change_feed_checks import assert_newest_versions, assert_no_write_older_than_held
from tests.e2e.change_feed_dag import DAG_ID, DATES, EMULATOR_KNOBS, dag_source, source_rows
from tests.e2e.harness import AirflowDeployment, requires_airflow_3

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    with DifyEmulator(**EMULATOR_KNOBS) as dify:
        yield dify


@requires_airflow_3
def test_a_backfill_newest_first_with_three_runs_at_once_ends_with_the_newest_versions(
    tmp_path: Path, emulator: Any
) -> None:
    dataset_id = emulator.create_dataset("e2e-change-feed")["id"]
    env = {"AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json}
    with AirflowDeployment(tmp_path, parallelism=4, env=env) as deployment:
        deployment.write_dag(f"{DAG_ID}.py", dag_source(dataset_id))
        deployment.cli("db", "migrate")
        deployment.start("api-server", "dag-processor", "scheduler")
        deployment.wait_for_api_server()
        deployment.wait_for_dag(DAG_ID)
        states = deployment.backfill(DAG_ID, DATES, max_active_runs=3, backwards=True)
        assert set(states) == {"success"}, f"{states}\n{deployment.logs()}"
        intervals, overlapping = deployment.task_intervals(DAG_ID, "sync")
        assert overlapping == 0, f"two versioned sync tasks ran at once: {intervals}"
    assert_newest_versions(emulator, dataset_id, source_rows())
    assert_no_write_older_than_held(emulator, dataset_id, source_rows())
    names = sorted(doc["name"] for doc in emulator.documents(dataset_id))
    assert names == ["note-1", "note-2", "note-3", "note-4", "note-5"]  # each once; 2 and 3 remembered as deleted
