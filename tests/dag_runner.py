"""Run a DAG defined in a test with ``dag.test()`` on the real metadata database, on Airflow 2.11 and 3.x.

Airflow 3 runs ``dag.test()`` only for DAGs that a DAG bundle knows; a DAG built inside a test is first
written to the metadata database as if the dags-folder bundle had parsed it.
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
