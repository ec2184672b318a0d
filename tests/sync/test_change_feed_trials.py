"""20 seeded trials: change-feed runs of six logical dates over one scope, in random orders and overlaps.

Each trial draws a change log (writes and soft deletes of six records over six days), then starts one sync per
date, in a random order, in waves of one to three DAG runs at once (threads, as ``max_active_runs=3`` starts
them), each retried like a task with ``retries=2``. A versioned sync runs one task instance at a time
(``max_active_tis_per_dag=1``, the operator's default with ``version_field``): the runs of a wave queue on it in
whatever order the threads reach it, as task instances queue in Airflow. Every trial must end exact: each
record's newest version once, live, with its text and version; nothing that the newest version deleted live; and
on the way no record written a version older than one Dify held (:mod:`tests.change_feed_checks`).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from bench.environment import minimal_context
from tests.change_feed_checks import SourceRow, assert_newest_versions, assert_no_write_older_than_held
from tests.sync.test_overlap import _operator_thread

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0.0, status_change_seconds=0.0)

TRIALS = 20
RECORDS = 6
DAYS = 6
TRIES = 3


def change_log(rng: random.Random, seed: int) -> dict[int, list[dict[str, Any]]]:
    """``{day: rows}``: each record changes on some days; a change is a write or, one time in four, a delete."""
    numeric = seed % 2 == 1  # half the trials version by a number, half by ISO-8601 text
    log: dict[int, list[dict[str, Any]]] = {day: [] for day in range(1, DAYS + 1)}
    for record in range(1, RECORDS + 1):
        for day in range(1, DAYS + 1):
            if rng.random() < 0.45:
                deleted = rng.random() < 0.25
                log[day].append(
                    {
                        "note_id": record,
                        "body": None if deleted else f"note {record} on day {day} (trial {seed})",
                        "updated_at": day * 100 + record if numeric else f"2026-01-{day:02d}T{record:02d}:00:00",
                        "is_deleted": deleted,
                    }
                )
    return log


def run_date(dataset_id: str, rows: list[dict[str, Any]], stale: list[int], slot: threading.Lock) -> None:
    """One logical date's run, retried like a task, in the task's one slot (``max_active_tis_per_dag=1``)."""
    _operator_thread()
    with slot:
        run_in_slot(dataset_id, rows, stale)


def run_in_slot(dataset_id: str, rows: list[dict[str, Any]], stale: list[int]) -> None:
    for attempt in range(1, TRIES + 1):
        operator = DifySyncDocumentsOperator(
            task_id="sync",
            dataset_id=dataset_id,
            records=rows,
            key_field="note_id",
            name_prefix="note-",
            text_template="{{ body }}",
            scope="trial",
            deleted_field="is_deleted",
            version_field="updated_at",
            indexing_technique="economy",
        )
        assert operator.max_active_tis_per_dag == 1
        try:
            manifest = operator.execute(minimal_context())
        except AirflowException:
            if attempt == TRIES:
                raise
            continue
        stale.append(manifest["counts"]["stale"])
        return


@pytest.mark.parametrize("seed", range(TRIALS))
def test_runs_in_any_order_and_overlap_end_with_the_newest_versions(dify_emulator: Any, seed: int) -> None:
    rng = random.Random(seed)
    log = change_log(rng, seed)
    order = list(range(1, DAYS + 1))
    rng.shuffle(order)
    waves: list[list[int]] = []
    while order:
        size = rng.randint(1, 3)
        waves.append(order[:size])
        order = order[size:]
    dataset_id = dify_emulator.create_dataset(f"trial-{seed}")["id"]
    stale: list[int] = []
    slot = threading.Lock()
    for wave in waves:
        threads = [
            threading.Thread(target=run_date, args=(dataset_id, [dict(row) for row in log[day]], stale, slot))
            for day in wave
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        dify_emulator.wait_for_indexing()
    assert len(stale) == DAYS, f"a run failed for good (waves {waves})"

    rows = [
        SourceRow(f"note-{row['note_id']}", None if row["is_deleted"] else row["body"], row["updated_at"])
        for day_rows in log.values()
        for row in day_rows
    ]
    assert_newest_versions(dify_emulator, dataset_id, rows)
    assert_no_write_older_than_held(dify_emulator, dataset_id, rows)
