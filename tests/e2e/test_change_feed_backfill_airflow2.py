"""
A real Airflow 2.11 backfill over the change feed of :mod:`tests.e2e.change_feed_dag`: ``airflow dags backfill``
of 5 dates, newest first (``--run-backwards``), the DAG's ``max_active_runs=3``, in an isolated ``AIRFLOW_HOME``
against an emulator this test starts. It must end as the Airflow 3 backfill does (tests/e2e/
test_change_feed_backfill.py): each record's newest version exactly once, nothing its newest version deleted, no
write older than what Dify held (:mod:`tests.change_feed_checks`).

What overlaps on Airflow 2.11 with SQLite: Airflow 2 refuses any executor but the SequentialExecutor on SQLite,
and ``dags backfill`` runs its executor in the CLI's own process. The backfill starts up to ``max_active_runs``
(3) DAG runs at once, so DAG runs do overlap (a run is running while the others' tasks run), but the executor
runs one task instance at a time: the sync tasks cannot overlap, whatever ``max_active_tis_per_dag`` says. What
this test adds to the Airflow 3 one is the Airflow 2 path itself (its CLI, its task runner, the DAG parsed and
run by Airflow 2.11) and the order ``--run-backwards`` gives. The test reads the task instances' start and end
dates and asserts what happened: no two sync tasks overlapped, at least two DAG runs were running at once, and
the runs started newest date first, in waves of at most 3.

Not marked ``e2e``: the suite deselects ``e2e`` on Airflow 2.11, where this test is meant to run; on Airflow 3 it
is skipped (the Airflow 3 backfill is the e2e test beside it). It takes about a minute (the CLI process and one
``airflow tasks run`` process per date each import Airflow).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.change_feed_checks import assert_newest_versions, assert_no_write_older_than_held
from tests.e2e.change_feed_dag import DAG_ID, DATES, EMULATOR_KNOBS, dag_source, source_rows
from tests.e2e.harness import AirflowDeployment

pytestmark = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS, reason="runs Airflow 2.11's `dags backfill`; on Airflow 3 the e2e backfill test runs instead"
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    with DifyEmulator(**EMULATOR_KNOBS) as dify:
        yield dify


def test_dags_backfill_newest_first_with_three_runs_at_once_ends_with_the_newest_versions(
    tmp_path: Path, emulator: Any
) -> None:
    dataset_id = emulator.create_dataset("af2-change-feed")["id"]
    env = {"AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json}
    with AirflowDeployment(tmp_path, env=env) as deployment:
        assert deployment.env["AIRFLOW__CORE__EXECUTOR"] == "SequentialExecutor"
        deployment.write_dag(f"{DAG_ID}.py", dag_source(dataset_id))
        deployment.cli("db", "migrate")
        states = deployment.backfill(DAG_ID, DATES, max_active_runs=3, backwards=True)
        assert states == ["success"] * len(DATES), states
        intervals, overlapping = deployment.task_intervals(DAG_ID, "sync")
        runs = deployment.query(
            "SELECT date(execution_date), start_date, end_date FROM dag_run WHERE dag_id = ? ORDER BY start_date",
            DAG_ID,
        )
        tasks = deployment.query(
            "SELECT date(r.execution_date), t.start_date FROM task_instance t JOIN dag_run r"
            " ON t.dag_id = r.dag_id AND t.run_id = r.run_id WHERE t.dag_id = ? AND t.task_id = 'sync'"
            " ORDER BY t.start_date",
            DAG_ID,
        )
    assert overlapping == 0, f"two sync tasks ran at once: {intervals}"
    assert len(intervals) == len(DATES)
    most_at_once = max(sum(1 for _, start, end in runs if start <= moment < end) for _, moment, _ in runs)
    assert 2 <= most_at_once <= 3, f"DAG runs running at once: {most_at_once} ({runs})"
    started = [day for day, _ in tasks]
    assert sorted(started[:3], reverse=True) == list(reversed(DATES))[:3], f"the newest 3 dates ran first: {started}"
    assert sorted(started[3:], reverse=True) == list(reversed(DATES))[3:], started
    assert_newest_versions(emulator, dataset_id, source_rows())
    assert_no_write_older_than_held(emulator, dataset_id, source_rows())
    names = sorted(doc["name"] for doc in emulator.documents(dataset_id))
    assert names == ["note-1", "note-2", "note-3", "note-4", "note-5"]  # each once; 2 and 3 remembered as deleted
