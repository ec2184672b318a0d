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

from airflow_provider_dify.testing.dag_runner import task_state, xcom_value
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


def _sync_in_process(dataset_id: str, count: int, results: Any, ready: Any, go: Any) -> None:
    """The body of one worker process: one sync task, its manifest (or its error) sent back."""
    try:
        ready.set()
        go.wait(120)
        manifest = run_sync(dataset_id, rows(count))
        results.put(("ok", manifest["counts"]))
    except BaseException as error:
        results.put(("error", repr(error)))


def _start_together(target: Any, argument_lists: list[tuple[Any, ...]]) -> tuple[list[Any], Any, Any]:
    """Spawn one process per argument list; return ``(processes, results queue, go event)`` once all are ready."""
    context = multiprocessing.get_context("spawn")
    results, go = context.Queue(), context.Event()
    readies = [context.Event() for _ in argument_lists]
    with _pythonpath():
        processes = [
            context.Process(target=target, args=(*arguments, results, ready, go))
            for arguments, ready in zip(argument_lists, readies, strict=True)
        ]
        for process in processes:
            process.start()
    for ready in readies:
        assert ready.wait(180), "a worker process did not start"
    return processes, results, go


def test_processes_syncing_one_scope_end_exact(dify_fast_retries: Any) -> None:
    import random

    from airflow_provider_dify.hooks.dify import DifyHook

    dify = dify_fast_retries
    dataset_id = dify.create_dataset("processes")["id"]
    records = rows(15)
    survivors = _seed_scope(dify, DifyHook(), dataset_id, random.Random(3), records)
    dify.reset_counters()
    processes, results, go = _start_together(_sync_in_process, [(dataset_id, 15)] * 2)
    go.set()  # both processes imported everything: they sync at the same moment
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert [kind for kind, _ in outcomes] == ["ok"] * 2, outcomes
    assert all(counts["failed"] == 0 for _, counts in outcomes)
    assert dify.wait_for_indexing()
    ids = assert_exact(dify, dataset_id, records)
    assert all(ids[name] == document_id for name, document_id in survivors.items())
    assert not deleted_ids(dify) & set(ids.values())


RENDEZVOUS_ENV = "DIFY_TEST_OVERLAP_RENDEZVOUS"


def _records_at_the_rendezvous(**_: Any) -> list[dict[str, Any]]:
    """The records source of the parallel runs: returns only once both tasks are running (a file per process)."""
    import time

    directory = Path(os.environ[RENDEZVOUS_ENV])
    (directory / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(directory.iterdir())) < 2:
        assert time.monotonic() < deadline, "the other run's task never started"
        time.sleep(0.02)
    return rows(12)


def _sync_dag(dataset_id: str, dag_id: str) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    from tests.sync.test_overlap import sync

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        sync(dataset_id, _records_at_the_rendezvous)  # type: ignore[arg-type]
    return dag


def _dag_test(dag: Any) -> Any:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    return dag.test() if AIRFLOW_V_3_0_PLUS else dag.test(execution_date=None)


def _dag_test_in_process(dataset_id: str, dag_id: str, results: Any, ready: Any, go: Any) -> None:
    """One ``dag.test()`` run in its own process (the DAG was registered by the parent), its outcome sent back."""
    try:
        dag = _sync_dag(dataset_id, dag_id)
        ready.set()
        go.wait(120)
        run = _dag_test(dag)
        results.put(("ok", task_state(run, "sync"), xcom_value(run, "sync")["counts"]))
    except BaseException as error:
        results.put(("error", repr(error), None))


@pytest.mark.usefixtures("airflow_db")
def test_parallel_dag_test_runs_end_exact(
    dify_fast_retries: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``dag.test()`` runs (real task runner, real metadata DB) of syncs over one scope at the same time: one
    in this process, one in a spawned one (``dag.test()`` needs a main thread). Both tasks read their records only
    once both are running, so they overlap by construction."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    dify = dify_fast_retries
    monkeypatch.setenv(RENDEZVOUS_ENV, str(tmp_path))
    dataset_id = dify.create_dataset("parallel-dag-test")["id"]
    dags = [_sync_dag(dataset_id, f"overlap_parallel_{index}") for index in range(2)]
    if AIRFLOW_V_3_0_PLUS:
        from airflow_provider_dify.testing.dag_runner import _register_in_bundle

        for dag in dags:
            _register_in_bundle(dag)
    processes, results, go = _start_together(_dag_test_in_process, [(dataset_id, dags[1].dag_id)])
    go.set()
    here = _dag_test(dags[0])
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(30)
    assert task_state(here, "sync") == "success" and xcom_value(here, "sync")["counts"]["failed"] == 0
    assert [outcome[:2] for outcome in outcomes] == [("ok", "success")], outcomes
    assert all(counts["failed"] == 0 for *_, counts in outcomes)
    creates = [call for call in dify.calls if call.path.endswith("/document/create-by-text")]
    assert len(creates) >= 12
    assert dify.wait_for_indexing()
    assert_exact(dify, dataset_id, rows(12))
