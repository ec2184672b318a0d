"""Errors that cannot succeed on a retry fail the task at once, without Airflow's task retries; transient
errors keep them. Real DAG runs with ``retries=3`` (``dag.test()``), requests counted at the emulator."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_dify import exceptions
from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator, DifyDeleteDocumentOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, try_number

pytestmark = pytest.mark.usefixtures("airflow_db")
_numbers = itertools.count()
RETRIES = 3
FILE_ROUTE = "/datasets/{dataset_id}/document/create-by-file"


def _dag(operator_class: type, **arguments: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(f"no_retries_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        operator_class(task_id="task", retries=RETRIES, retry_delay=timedelta(seconds=0), **arguments)
    return dag


def _connection(dify: Any, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """The emulator's connection without the hook's own retries (so each Airflow try is one request)."""
    extra = {"max_retries": 0, **changes.pop("extra", {})}
    connection = {**json.loads(dify.connection_json), "extra": json.dumps(extra), **changes}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))


def test_errors_that_cannot_succeed_on_a_retry_are_airflow_fail_exceptions() -> None:
    for name in ("DifyAuthenticationError", "DifyQuotaExceededError", "DifyValidationError", "DifyFileRejectedError"):
        assert issubclass(getattr(exceptions, name), AirflowFailException), name
    assert issubclass(exceptions.DifyArgumentError, AirflowFailException)
    assert issubclass(exceptions.DifyArgumentError, ValueError)
    for name in ("DifyServerError", "DifyConnectionError", "DifyRateLimitError", "DifyResourceBusyError"):
        assert not issubclass(getattr(exceptions, name), AirflowFailException), name


def test_a_file_the_server_refuses_is_sent_once(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The connection lets .exe through, so the refusal is the server's (400 with an empty message).
    _connection(dify_emulator, monkeypatch, extra={"upload_extensions": "txt,exe"})
    dataset_id = dify_emulator.create_dataset("no-retries-file")["id"]
    path = tmp_path / "tool.exe"
    path.write_bytes(b"MZ\x90\x00")
    dag_run = run_dag(_dag(DifyCreateDocumentOperator, dataset_id=dataset_id, file=str(path)))
    assert task_state(dag_run, "task") == "failed"
    assert try_number(dag_run, "task") == 1
    assert dify_emulator.count("POST", FILE_ROUTE) == 1  # not four times


def test_a_refused_key_is_sent_once(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(dify_emulator, monkeypatch, password="dataset-" + "0" * 24)
    dataset_id = dify_emulator.create_dataset("no-retries-key")["id"]
    dag_run = run_dag(_dag(DifyRetrieveOperator, dataset_id=dataset_id, query="kettle"))
    assert task_state(dag_run, "task") == "failed"
    assert try_number(dag_run, "task") == 1
    assert dify_emulator.count(status=401) == 1
    assert len(dify_emulator.calls) == 1


def test_a_hostile_id_sends_nothing_and_is_not_retried(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(dify_emulator, monkeypatch)
    a = dify_emulator.create_dataset("no-retries-a")["id"]
    b = dify_emulator.create_dataset("no-retries-b")["id"]
    dify_emulator.create_document(b, "kept.txt", "Knowledge base B keeps this.")
    dag = _dag(DifyDeleteDocumentOperator, dataset_id=a, document_id="{{ params.doc }}", params={"doc": f"../../{b}"})
    dag_run = run_dag(dag)
    assert task_state(dag_run, "task") == "failed"
    assert try_number(dag_run, "task") == 1
    assert dify_emulator.calls == []
    assert [doc["name"] for doc in dify_emulator.documents(b)] == ["kept.txt"]


def test_a_transient_error_keeps_the_task_retries(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(dify_emulator, monkeypatch)
    dataset_id = dify_emulator.create_dataset("no-retries-transient")["id"]
    dify_emulator.fail_next(RETRIES + 1, 502, method="GET")
    dag_run = run_dag(_dag(DifyRetrieveOperator, dataset_id=dataset_id, query="kettle"))
    assert task_state(dag_run, "task") == "failed"
    assert try_number(dag_run, "task") == RETRIES + 1
    assert dify_emulator.count(status=502) == RETRIES + 1


def test_a_retry_policy_cannot_retry_a_refused_file(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Airflow 3.3's ``retry_policy`` is not consulted for an ``AirflowFailException``: asking to retry every
    exception still fails a refused upload at once."""
    retry_policy = pytest.importorskip("airflow.sdk.definitions.retry_policy")
    policy = retry_policy.ExceptionRetryPolicy(
        rules=[retry_policy.RetryRule(exception=Exception, action=retry_policy.RetryAction.RETRY)]
    )
    _connection(dify_emulator, monkeypatch, extra={"upload_extensions": "txt,exe"})
    dataset_id = dify_emulator.create_dataset("no-retries-policy")["id"]
    path = tmp_path / "tool.exe"
    path.write_bytes(b"MZ\x90\x00")
    dag = _dag(DifyCreateDocumentOperator, dataset_id=dataset_id, file=str(path), retry_policy=policy)
    dag_run = run_dag(dag)
    assert task_state(dag_run, "task") == "failed"
    assert try_number(dag_run, "task") == 1
    assert dify_emulator.count("POST", FILE_ROUTE) == 1
