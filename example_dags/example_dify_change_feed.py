"""
Hourly change feed: the rows of a table changed in each run's data interval become Dify documents.

* ``sync_changes``: a query over the run's data interval (``updated_at`` in ``[data_interval_start,
  data_interval_end)``) of the table ``note_changes`` (``note_id``, ``title``, ``body``, ``updated_at``,
  ``is_deleted``). A row with ``is_deleted`` true deletes its note's document (remembered as a disabled
  document carrying the deletion's version, so an older backfill does not bring it back); ``updated_at`` orders
  each note's versions, so a backfill that runs an older hour after a newer one is skipped as ``stale``. No
  ``delete_missing``: an interval holds only what changed in it, so the notes it does not mention stay.

``catchup=True`` with ``max_active_runs=3``: backfills run several hours at once and in any order; the sync task
runs one instance at a time (``max_active_tis_per_dag=1``, its default with ``version_field``) and every run ends
with each note's newest version (see docs/warehouse-sync.md, "Snapshots and change feeds").

The file names the knowledge base (``KNOWLEDGE_BASE``), so the sync declares its asset
``dify-knowledge-base://dify_default/<name>`` when the file is parsed and its events are quiet (docs/assets.md).

Settings (environment variables, read when the file is parsed, no other I/O):

* ``DIFY_EXAMPLE_CHANGES_KNOWLEDGE_BASE`` (default ``airflow-example-changes``): the name of an existing
  knowledge base.
* ``DIFY_EXAMPLE_CHANGES_SQL_CONN_ID`` (default ``changes_sqlite``): the DAG param ``sql_conn_id``'s default, an
  Airflow SQL connection to the database holding ``note_changes``.

The Dify connection is ``dify_default``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

DAG_ID = "example_dify_change_feed"
#: The knowledge base, named in the file: the sync declares its asset as its outlet.
KNOWLEDGE_BASE = os.environ.get("DIFY_EXAMPLE_CHANGES_KNOWLEDGE_BASE", "airflow-example-changes")

#: The rows changed in the run's data interval (ISO-8601 text compares in time order in SQLite).
CHANGES_SQL = """\
SELECT note_id, title, body, updated_at, is_deleted
FROM note_changes
WHERE updated_at >= '{{ data_interval_start.strftime('%Y-%m-%dT%H:%M:%S') }}'
  AND updated_at < '{{ data_interval_end.strftime('%Y-%m-%dT%H:%M:%S') }}'
ORDER BY note_id"""

with DAG(
    DAG_ID,
    description="A table's changes per hour -> Dify documents, deletions and versions kept, any backfill order",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=True,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "sql_conn_id": Param(os.environ.get("DIFY_EXAMPLE_CHANGES_SQL_CONN_ID", "changes_sqlite"), type="string"),
    },
    tags=["dify", "example"],
) as dag:
    DifySyncDocumentsOperator(
        task_id="sync_changes",
        dataset_name=KNOWLEDGE_BASE,
        sql=CHANGES_SQL,
        sql_conn_id="{{ params.sql_conn_id }}",
        key_field="note_id",
        name_prefix="note-",
        text_template="{{ title }}\n\n{{ body }}",
        scope="notes",
        deleted_field="is_deleted",
        version_field="updated_at",
    )
