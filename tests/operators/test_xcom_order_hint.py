"""A template that pulls the XCom of a task that does not run first: the render error says what to fix.

The README's first DAG once pulled ``kb``'s XCom in ``dataset_id`` without ``kb >> sync``; under ``dag.test()``
the sync sometimes ran first, found nothing, and failed with Jinja's "'None' has no attribute 'dataset_id'"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.testing import run_dag

pytestmark = [
    pytest.mark.usefixtures("airflow_db", "dify_emulator"),
    pytest.mark.dify_emulator(indexing_seconds=0.002),
]

PULL = "{{ ti.xcom_pull(task_ids='kb')['dataset_id'] }}"


def _dag(ordered: bool) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    with DAG(f"xcom_order_{ordered}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        kb = DifyCreateDatasetOperator(task_id="kb", name=f"kb-order-{ordered}", indexing_technique="economy")
        sync = DifySyncDocumentsOperator(
            task_id="sync", dataset_id=PULL, records=[{"id": 1, "q": "a"}], key_field="id", text_template="{{ q }}"
        )
        if ordered:
            kb >> sync
        else:
            sync >> kb  # the order dag.test() may pick when nothing orders them: the pull finds nothing
    return dag


def test_the_render_error_names_the_task_that_does_not_run_first(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    result = run_dag(_dag(ordered=False))
    assert result.task_state("sync") == "failed"
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "pull the XCom of 'kb', which does not run before it" in logged
    assert "(kb >> sync)" in logged


def test_an_ordered_pull_renders_and_names_nothing() -> None:
    from airflow_provider_dify.operators._base import xcom_sources_not_upstream

    dag = _dag(ordered=True)
    assert xcom_sources_not_upstream(dag.get_task("sync")) == []
    assert xcom_sources_not_upstream(_dag(ordered=False).get_task("sync")) == ["kb"]
    result = run_dag(dag)
    assert result.state == "success" and result.xcom("sync")["counts"]["created"] == 1
