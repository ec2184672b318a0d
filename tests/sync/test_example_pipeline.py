"""The knowledge pipeline example DAG, run with ``dag.test()`` against the emulator (a seeded pipeline KB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.01)]


def test_the_example_runs_the_pipeline_once_per_file(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch, quiet_named_events: Any
) -> None:
    from airflow_provider_dify.assets import knowledge_base_named
    from airflow_provider_dify.testing.dag_runner import load_dag
    from example_dags.example_dify_knowledge_pipeline import SAMPLE_FILES
    from tests.sync.test_asset_events import asset_events
    from tests.sync.test_example_dags import EXAMPLES

    monkeypatch.setenv("DIFY_EXAMPLE_PIPELINE_KNOWLEDGE_BASE", "test-pipeline")  # read when the file is parsed
    dag = load_dag(EXAMPLES / "example_dify_knowledge_pipeline.py")
    dataset = dify_emulator.create_pipeline_dataset("test-pipeline")
    first = run_dag(dag)
    assert task_state(first, "run_pipeline") == "success"
    manifest = xcom_value(first, "run_pipeline")
    names = sorted(Path(path).name for path in SAMPLE_FILES)
    assert sorted(doc["name"] for doc in dify_emulator.documents(dataset["id"])) == names
    assert {result["indexing_status"] for result in manifest["indexing"]} == {"completed"}
    quiet_named_events("test-pipeline", ["run_pipeline"])
    [(_, extra)] = asset_events(knowledge_base_named("test-pipeline").uri)
    assert (extra["granularity"], extra["created"], extra["unchanged"]) == ("documents", len(names), 0)
    assert extra["batches"] == [manifest["batch"]]

    again = run_dag(dag)
    assert sorted(xcom_value(again, "run_pipeline")["skipped"]) == names
    assert len(dify_emulator.documents(dataset["id"])) == len(names)
    assert len(asset_events(knowledge_base_named("test-pipeline").uri)) == 1  # nothing produced: no event
