"""Run a DAG defined in a test with ``dag.test()`` on the real metadata database, on Airflow 2.11 and 3.x.

Airflow 3 runs ``dag.test()`` only for DAGs that a DAG bundle knows; a DAG built inside a test is first
written to the metadata database as if the dags-folder bundle had parsed it. :func:`task_state`,
:func:`try_number` and :func:`xcom_value` read what the run left in the metadata database.
"""

from __future__ import annotations

from typing import Any


def _register_in_bundle(dag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        manager = DagBundlesManager()
        manager.sync_bundles_to_db(session=session)
        session.commit()
        bundle = next(iter(manager.get_all_dag_bundles()))
        update_dag_parsing_results_in_db(
            bundle.name, None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test(**kwargs)`` for DAGs defined outside the DAGs folder, on Airflow 2 and 3; returns the DagRun.

    Pass ``logical_date=`` on both versions (it becomes ``execution_date`` on Airflow 2).
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        _register_in_bundle(dag)
    elif "logical_date" in kwargs:
        kwargs["execution_date"] = kwargs.pop("logical_date")  # Airflow 2 names it execution_date
    return dag.test(**kwargs)


def task_state(dag_run: Any, task_id: str) -> str:
    """A task's final state as a lower-case string (``success``, ``failed``...)."""
    return str(dag_run.get_task_instance(task_id).state).rsplit(".", 1)[-1].lower()


def try_number(dag_run: Any, task_id: str) -> int:
    """The try number of a task of a DAG run (the attempts it made), read from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return int(
            session.scalar(
                select(TaskInstance.try_number).where(
                    TaskInstance.dag_id == dag_run.dag_id,
                    TaskInstance.run_id == dag_run.run_id,
                    TaskInstance.task_id == task_id,
                )
            )
        )


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """An XCom value of the run, read from the metadata DB (Airflow 2.11 and 3.x)."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
            ).first()
            return XComModel.deserialize_value(row) if row is not None else None
    from airflow.models.xcom import XCom

    return XCom.get_one(run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key)
