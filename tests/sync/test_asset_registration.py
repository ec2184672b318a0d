"""A knowledge base that a parsed DAG names is registered before its first asset event, so Airflow 3.3 logs
no "AssetModel ... not found" or "inactive AssetModel" warning when a writing operator reports it through the
alias (docs/assets.md, "Airflow's warnings about a new knowledge base's first events"). Without it, both
lines appear: the test shows what the recipe avoids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.002)]

WARNINGS = ("not found; cannot create asset event", "Emitting event for inactive AssetModel")


@pytest.mark.parametrize("named_in_the_dag", [False, True], ids=["alias only", "asset named in inlets"])
def test_a_knowledge_base_named_in_the_dag_gets_its_events_without_warnings(
    dify_emulator: Any, named_in_the_dag: bool, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.providers.common.compat.sdk import DAG
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    from airflow_provider_dify.assets import knowledge_base_asset
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("the warnings are Airflow 3's asset manager's")
    dataset_id = dify_emulator.create_dataset(f"kb-named-{named_in_the_dag}", indexing_technique="economy")["id"]
    inlets = [knowledge_base_asset(dataset_id, host=dify_emulator.url)] if named_in_the_dag else []
    with DAG(f"asset_registration_{named_in_the_dag}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        DifySyncChunksOperator(
            task_id="chunks",
            dataset_id=dataset_id,
            records=[{"sku": "A-1", "text": "A grinder with 40 settings."}],
            key_field="sku",
            text_template="{{ text }}",
            document_name="products",
            poll_interval=0.05,
            inlets=inlets,
        )
    dag_run = run_dag(dag)
    assert task_state(dag_run, "chunks") == "success"
    assert xcom_value(dag_run, "chunks")["counts"]["added"] == 1  # it changed the knowledge base: an event
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "changed: asset event" in logged
    found = [warning for warning in WARNINGS if warning in logged]
    assert found == ([] if named_in_the_dag else list(WARNINGS))
