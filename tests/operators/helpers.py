"""Helpers of the operator tests: a stand-in task instance, XCom and rendered-field readers for DAG runs."""

from __future__ import annotations

import itertools
import json
from typing import Any

SEGMENTS_ROUTE = "/datasets/{dataset_id}/documents/{document_id}/segments"
RETRIEVE_ROUTE = "/datasets/{dataset_id}/retrieve"
_dag_numbers = itertools.count()


def dag_id(prefix: str) -> str:
    """A DAG id not used before in this test session."""
    return f"{prefix}_{next(_dag_numbers)}"


class RecordingTaskInstance:
    """Enough of a task instance for ``operator.execute(context)`` outside a DAG run: records XCom pushes."""

    task_id = "task"
    map_index = -1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.pushed.get(key)


def context() -> dict[str, Any]:
    """A minimal task context for unit tests."""
    return {"ti": RecordingTaskInstance()}


def all_xcom_text(dag_run: Any) -> str:
    """Every XCom value of the run (all tasks, all keys) as one JSON text."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.models.xcom import XComModel

            rows = session.scalars(
                select(XComModel).where(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
            ).all()
            values = [(row.task_id, row.key, XComModel.deserialize_value(row)) for row in rows]
        else:
            from airflow.models.xcom import XCom

            rows = session.scalars(select(XCom).where(XCom.dag_id == dag_run.dag_id, XCom.run_id == dag_run.run_id))
            values = [(row.task_id, row.key, row.value) for row in rows]  # deserialized when loaded
    assert values, "the run pushed no XCom"
    return json.dumps(values, default=str)


def rendered_fields_text(dag_run: Any) -> str:
    """The rendered template fields of every task of the run, as one JSON text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Rtif).where(Rtif.dag_id == dag_run.dag_id, Rtif.run_id == dag_run.run_id)).all()
        return json.dumps([row.rendered_fields for row in rows], default=str)


def content_writes(dify: Any) -> list[Any]:
    """The requests that change Dify's state (every non-GET request but searches)."""
    return [
        call
        for call in dify.calls
        if call.method not in ("GET", "HEAD", "OPTIONS") and call.route not in (RETRIEVE_ROUTE,)
    ]
