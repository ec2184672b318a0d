"""
Run a DAG in a test with ``dag.test()`` on the real metadata database, on Airflow 3.x and 2.11 alike.

:func:`run_dag` takes a DAG object or the path of a DAG file, runs it for a logical date (and conf) in this
process, deferrable tasks included (their triggers run inline and the tasks resume), and returns a
:class:`DagRunResult`: the run's state, each task's state and try number, and its XCom values. It needs a
metadata database: the ``airflow_db`` fixture of the provider's pytest plugin gives each test session one.

The DAG is first written to the metadata database as the scheduler's parse would write it: Airflow 3 runs
``dag.test()`` only for DAGs that a DAG bundle knows, and both lines record asset events only for assets and
aliases that a parsed DAG registered. So a DAG defined in a test or kept anywhere runs, and its asset events are
recorded as in a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


def _register_in_bundle(dag: Any) -> None:
    """Write ``dag`` to the metadata database as the DAGs-folder bundle's parse would (Airflow 3)."""
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


def load_dag(path: str | Path, dag_id: str | None = None) -> Any:
    """
    The DAG defined in a DAG file, parsed as Airflow's DAG processor parses it.

    :param path: the ``.py`` file.
    :param dag_id: which DAG, when the file defines several.
    :raises ValueError: the file does not import, defines no DAG, or several without ``dag_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {str(path)!r} is not a file; give the path of a DAG file (.py).")
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+

        bag = DagBag(dag_folder=str(path))
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2

        bag = DagBag(dag_folder=str(path), include_examples=False)
    if bag.import_errors:
        errors = "\n".join(f"{file}: {error}" for file, error in bag.import_errors.items())
        raise ValueError(f"path: {path} does not import as a DAG file:\n{errors}")
    if dag_id is not None:
        if dag_id not in bag.dags:
            raise ValueError(f"dag_id: {path} defines {sorted(bag.dags)}, not {dag_id!r}.")
        return bag.dags[dag_id]
    if len(bag.dags) != 1:
        raise ValueError(f"dag_id: {path} defines {len(bag.dags)} DAGs ({sorted(bag.dags)}); name one with dag_id.")
    return next(iter(bag.dags.values()))


def _state(value: Any) -> str | None:
    """A task or run state as a lower-case string (``"success"``), ``None`` when it has none."""
    return None if value is None else str(getattr(value, "value", value)).rsplit(".", 1)[-1].lower()


@dataclass(frozen=True)
class DagRunResult:
    """
    What a test asserts on after :func:`run_dag`: states, try numbers and XCom values, read from the database.

    :param dag_run: the ``DagRun`` that ``dag.test()`` returned.
    :param state: the run's final state (``"success"``, ``"failed"``).
    :param task_states: every task's final state by task id (mapped tasks: by ``task_id[map_index]``).
    :param try_numbers: every task's try number (the attempts it made) by the same keys.
    """

    dag_run: Any = field(repr=False)
    state: str | None
    task_states: dict[str, str | None]
    try_numbers: dict[str, int]

    @property
    def dag_id(self) -> str:
        """The DAG's id."""
        return str(self.dag_run.dag_id)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.dag_run.run_id)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """An XCom value the run's task pushed (``return_value``: what it returned); ``None`` without one."""
        return xcom_value(self.dag_run, task_id, key)

    def task_state(self, task_id: str) -> str | None:
        """A task's final state (``task_states[task_id]``), with an error naming the tasks for an unknown id."""
        if task_id not in self.task_states:
            raise KeyError(f"task_id: the run has no task {task_id!r}; its tasks are {sorted(self.task_states)}.")
        return self.task_states[task_id]


def _task_instance_key(ti: Any) -> str:
    map_index = getattr(ti, "map_index", -1)
    return ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}[{map_index}]"


def run_dag(
    dag: Any,
    *,
    logical_date: datetime | None = None,
    conf: dict[str, Any] | None = None,
    dag_id: str | None = None,
    **test_kwargs: Any,
) -> DagRunResult:
    """
    Run a DAG with ``dag.test()`` in this process (triggers included) and return what it left.

    :param dag: a DAG object, or the path of a DAG file (parsed with Airflow's ``DagBag``).
    :param logical_date: the run's logical date (default: now); ``execution_date`` on Airflow 2.
    :param conf: the run's ``dag_run.conf`` (``params`` and ``{{ dag_run.conf }}`` read it).
    :param dag_id: which DAG of the file, when ``dag`` is a path to a file defining several.
    :param test_kwargs: more arguments of ``dag.test()`` (``run_conf`` is the same as ``conf``).
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if isinstance(dag, (str, Path)):
        dag = load_dag(dag, dag_id)
    if conf is not None:
        test_kwargs["run_conf"] = conf
    if logical_date is not None:
        test_kwargs["logical_date" if AIRFLOW_V_3_0_PLUS else "execution_date"] = logical_date
    elif not AIRFLOW_V_3_0_PLUS and "logical_date" in test_kwargs:
        test_kwargs["execution_date"] = test_kwargs.pop("logical_date")  # Airflow 2 names it execution_date
    if AIRFLOW_V_3_0_PLUS:
        _register_in_bundle(dag)
    else:
        dag.sync_to_db()  # its datasets and dataset aliases too, as the scheduler's parse writes them
    dag_run = dag.test(**test_kwargs)
    task_states: dict[str, str | None] = {}
    try_numbers: dict[str, int] = {}
    for ti in _task_instances(dag_run):
        key = _task_instance_key(ti)
        task_states[key] = _state(ti.state)
        try_numbers[key] = int(ti.try_number or 0)
    return DagRunResult(dag_run=dag_run, state=_state(dag_run.state), task_states=task_states, try_numbers=try_numbers)


def _task_instances(dag_run: Any) -> list[Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        session.expunge_all()
        return list(rows)


def _dag_run_of(run: Any) -> Any:
    return run.dag_run if isinstance(run, DagRunResult) else run


def task_state(run: Any, task_id: str) -> str | None:
    """A task's final state as a lower-case string (``success``, ``failed``...), read from the database.

    :param run: a :class:`DagRunResult` or a ``DagRun``.
    """
    dag_run = _dag_run_of(run)
    return _state(dag_run.get_task_instance(task_id).state)


def try_number(run: Any, task_id: str) -> int:
    """The try number of a task of a run (the attempts it made), read from the metadata database.

    :param run: a :class:`DagRunResult` or a ``DagRun``.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_run = _dag_run_of(run)
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


def xcom_value(run: Any, task_id: str, key: str = "return_value") -> Any:
    """An XCom value of a run, read from the metadata database (Airflow 2.11 and 3.x).

    :param run: a :class:`DagRunResult` or a ``DagRun``.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    dag_run = _dag_run_of(run)
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
