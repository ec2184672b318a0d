"""Overlapping document syncs as separate processes and as parallel ``dag.test()`` runs, against one emulator."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.dag_runner import task_state, xcom_value
from tests.sync.test_overlap import _seed_scope, assert_exact, deleted_ids, rows, run_sync

# Not imported from tests.conftest: a spawned process importing it would make itself a new AIRFLOW_HOME.
REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0.0, status_change_seconds=0.0)


@contextlib.contextmanager
def _pythonpath() -> Iterator[None]:
    """Spawned processes import the tests and the provider from this checkout."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def _sync_in_process(dataset_id: str, count: int, results: Any) -> None:
    """The body of one worker process: one sync task, its manifest (or its error) sent back."""
    try:
        manifest = run_sync(dataset_id, rows(count))
        results.put(("ok", manifest["counts"]))
    except BaseException as error:
        results.put(("error", repr(error)))


def test_processes_syncing_one_scope_end_exact(dify_fast_retries: Any) -> None:
    import random

    from airflow_provider_dify.hooks.dify import DifyHook

    dify = dify_fast_retries
    dataset_id = dify.create_dataset("processes")["id"]
    records = rows(15)
    survivors = _seed_scope(dify, DifyHook(), dataset_id, random.Random(3), records)
    dify.reset_counters()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with _pythonpath():
        workers = [context.Process(target=_sync_in_process, args=(dataset_id, 15, results)) for _ in range(2)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(30)
    assert [kind for kind, _ in outcomes] == ["ok"] * 2, outcomes
    assert all(counts["failed"] == 0 for _, counts in outcomes)
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    assert all(ids[name] == document_id for name, document_id in survivors.items())
    assert not deleted_ids(dify) & set(ids.values())


def _sync_dag(dataset_id: str, dag_id: str) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    from tests.sync.test_overlap import sync

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        sync(dataset_id, rows(12))
    return dag


def _dag_test_in_process(dataset_id: str, dag_id: str, results: Any) -> None:
    """One ``dag.test()`` run in its own process (the DAG was registered by the parent), its outcome sent back."""
    try:
        from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

        dag = _sync_dag(dataset_id, dag_id)
        run = dag.test() if AIRFLOW_V_3_0_PLUS else dag.test(execution_date=None)
        results.put(("ok", task_state(run, "sync"), xcom_value(run, "sync")["counts"]))
    except BaseException as error:
        results.put(("error", repr(error), None))


@pytest.mark.usefixtures("airflow_db")
def test_parallel_dag_test_runs_end_exact(dify_fast_retries: Any) -> None:
    """Two ``dag.test()`` runs (real task runner, real metadata DB) of syncs over one scope, in parallel."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    dify = dify_fast_retries
    dataset_id = dify.create_dataset("parallel-dag-test")["id"]
    dag_ids = [f"overlap_parallel_{index}" for index in range(2)]
    if AIRFLOW_V_3_0_PLUS:
        from tests.dag_runner import _register_in_bundle

        for dag_id in dag_ids:
            _register_in_bundle(_sync_dag(dataset_id, dag_id))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with _pythonpath():
        workers = [context.Process(target=_dag_test_in_process, args=(dataset_id, d, results)) for d in dag_ids]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=180) for _ in workers]
        for worker in workers:
            worker.join(30)
    assert [outcome[:2] for outcome in outcomes] == [("ok", "success")] * 2, outcomes
    assert all(counts["failed"] == 0 for *_, counts in outcomes)
    assert dify.wait_for_indexing()
    assert_exact(dify, dataset_id, rows(12))
