"""The knowledge pipeline example DAG, run with ``dag.test()`` against the emulator (a seeded pipeline KB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.01)]


def test_the_example_runs_the_pipeline_once_per_file(dify_emulator: Any, tmp_path: Path) -> None:
    from example_dags.example_dify_knowledge_pipeline import SAMPLE_FILES, dag

    dataset = dify_emulator.create_pipeline_dataset("test-pipeline")
    conf = {"knowledge_base": "test-pipeline"}
    first = run_dag(dag, run_conf=conf)
    assert task_state(first, "run_pipeline") == "success"
    manifest = xcom_value(first, "run_pipeline")
    names = sorted(Path(path).name for path in SAMPLE_FILES)
    assert sorted(doc["name"] for doc in dify_emulator.documents(dataset["id"])) == names
    assert {result["indexing_status"] for result in manifest["indexing"]} == {"completed"}

    again = run_dag(dag, run_conf=conf)
    assert sorted(xcom_value(again, "run_pipeline")["skipped"]) == names
    assert len(dify_emulator.documents(dataset["id"])) == len(names)
