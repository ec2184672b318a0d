"""
End to end: ``airflow backfill create`` of 5 dates, newest first, with ``max_active_runs=3`` on a real Airflow 3
(scheduler with LocalExecutor) over a change feed with deletions and versions. The DAG runs overlap; the
versioned sync task runs one instance at a time (``max_active_tis_per_dag=1``), and the knowledge base ends with
each record's newest version exactly once and nothing its newest version deleted. Uses :mod:`tests.e2e.harness`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators._content import metadata_values
from airflow_provider_dify.operators.sync._versions import VERSION_FIELD
from tests.e2e.harness import AirflowDeployment, requires_airflow_3

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_dify_change_feed_backfill"
DATES = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05")

DAG_FILE = '''
"""A day's changes of a notes table; the backfill runs several days at once, newest first."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

#: {{day: [(note, body or None for a deletion)]}}
CHANGES = {{
    "2026-01-01": [(1, "note 1 v1"), (2, "note 2 v1")],
    "2026-01-02": [(1, "note 1 v2"), (3, "note 3 v2")],
    "2026-01-03": [(2, None), (4, "note 4 v3")],
    "2026-01-04": [(1, "note 1 v4"), (3, None)],
    "2026-01-05": [(5, "note 5 v5"), (4, "note 4 v5")],
}}


def changes(ds):
    return [
        {{"note_id": note, "body": body, "updated_at": ds, "is_deleted": body is None}}
        for note, body in CHANGES.get(ds, [])
    ]


with DAG({dag_id!r}, schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=3,
         is_paused_upon_creation=True):
    DifySyncDocumentsOperator(
        task_id="sync",
        dataset_id={dataset_id!r},
        records=changes,
        key_field="note_id",
        name_prefix="note-",
        text_template="{{{{ body }}}}",
        scope="e2e:notes",
        deleted_field="is_deleted",
        version_field="updated_at",
        indexing_technique="economy",
        retries=2,
    )
'''


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    # Slow answers keep each run's task busy long enough for the DAG runs to overlap.
    with DifyEmulator(indexing_seconds=0.05, queue_pickup_seconds=0.0, latency_seconds=0.1) as dify:
        yield dify


@requires_airflow_3
def test_a_backfill_newest_first_with_three_runs_at_once_ends_with_the_newest_versions(
    tmp_path: Path, emulator: Any
) -> None:
    dataset_id = emulator.create_dataset("e2e-change-feed")["id"]
    env = {"AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json}
    with AirflowDeployment(tmp_path, parallelism=4, env=env) as deployment:
        deployment.write_dag(f"{DAG_ID}.py", DAG_FILE.format(dag_id=DAG_ID, dataset_id=dataset_id))
        deployment.cli("db", "migrate")
        deployment.start("api-server", "dag-processor", "scheduler")
        deployment.wait_for_api_server()
        deployment.wait_for_dag(DAG_ID)
        states = deployment.backfill(DAG_ID, DATES, max_active_runs=3, backwards=True)
        assert set(states) == {"success"}, f"{states}\n{deployment.logs()}"
        intervals, overlapping = deployment.task_intervals(DAG_ID, "sync")
        assert overlapping == 0, f"two versioned sync tasks ran at once: {intervals}"
    live = {doc["name"]: doc for doc in emulator.documents(dataset_id) if doc["enabled"] and not doc["archived"]}
    assert {name: doc["text"] for name, doc in live.items()} == {
        "note-1": "note 1 v4",
        "note-4": "note 4 v5",
        "note-5": "note 5 v5",
    }
    assert {name: metadata_values(doc)[VERSION_FIELD] for name, doc in live.items()} == {
        "note-1": "2026-01-04",
        "note-4": "2026-01-05",
        "note-5": "2026-01-05",
    }
    names = sorted(doc["name"] for doc in emulator.documents(dataset_id))
    assert names == ["note-1", "note-2", "note-3", "note-4", "note-5"]  # each once; 2 and 3 remembered as deleted
