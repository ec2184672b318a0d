"""
The change feed the real-Airflow backfill tests run (Airflow 3 and Airflow 2.11): a notes table's changes over 5
days, the DAG file that syncs a day's changes, and the rows the checks of :mod:`tests.change_feed_checks` compare
the knowledge base with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.change_feed_checks import SourceRow

DAG_ID = "e2e_dify_change_feed_backfill"
DATES = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05")
SCOPE = "e2e:notes"
#: The emulator's pacing: slow answers keep each run's task busy long enough for the DAG runs to overlap.
EMULATOR_KNOBS: dict[str, Any] = {"indexing_seconds": 0.05, "queue_pickup_seconds": 0.0, "latency_seconds": 0.1}

#: {day: [(note, body or None for a deletion)]}
CHANGES: dict[str, list[tuple[int, str | None]]] = {
    "2026-01-01": [(1, "note 1 v1"), (2, "note 2 v1")],
    "2026-01-02": [(1, "note 1 v2"), (3, "note 3 v2")],
    "2026-01-03": [(2, None), (4, "note 4 v3")],
    "2026-01-04": [(1, "note 1 v4"), (3, None)],
    "2026-01-05": [(5, "note 5 v5"), (4, "note 4 v5")],
}

DAG_FILE = '''
"""A day's changes of a notes table; the backfill runs several days at once, newest first."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

#: {{day: [(note, body or None for a deletion)]}}
CHANGES = {changes!r}


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
        scope={scope!r},
        deleted_field="is_deleted",
        version_field="updated_at",
        indexing_technique="economy",
        retries=2,
    )
'''


def dag_source(dataset_id: str) -> str:
    """
    The DAG file syncing :data:`CHANGES` into a knowledge base, one day a run.

    :param dataset_id: the knowledge base.
    """
    return DAG_FILE.format(dag_id=DAG_ID, dataset_id=dataset_id, changes=CHANGES, scope=SCOPE)


def day_records(day: str) -> list[dict[str, Any]]:
    """The records the DAG's ``changes`` callable gives the run of ``day``."""
    return [
        {"note_id": note, "body": body, "updated_at": day, "is_deleted": body is None}
        for note, body in CHANGES.get(day, [])
    ]


def source_rows() -> Iterator[SourceRow]:
    """Every row of :data:`CHANGES`, as the checks read them."""
    for day, notes in CHANGES.items():
        for note, body in notes:
            yield SourceRow(f"note-{note}", body, day)
