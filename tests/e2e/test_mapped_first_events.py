"""
End to end: mapped tasks that all send the first event of a new knowledge base at the same moment, on a real
Airflow 3 (scheduler with LocalExecutor, dag-processor, api-server).

Two knowledge bases are declared in the mapped tasks' ``outlets`` (``partial(outlets=[knowledge_base_asset(...)])``);
the third is created by the run itself and named only by its name in the file (``dataset_name="..."``), as in the
README's DAG: the operators declare its ``dify-knowledge-base://`` asset themselves. No event has named any of them
yet: parsing the file registers them, so every task's change is its outlet's own event.
Nothing is created or linked when the events arrive, so nothing races (through the alias, Airflow 3.3.2 creates the
asset and links the alias on the first events, and tasks doing it at once fail on SQLite's unique keys:
docs/assets.md), and Airflow logs neither "not found" nor "inactive AssetModel". The DAGs scheduled on the assets run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    AirflowDeployment,
    assert_every_record_once,
    numbered_records_sync_arguments,
    requires_airflow_3,
)

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_dify_mapped_first_events"
SHARDS = 4
NAMED = "e2e-mapped-named"
CONSUMERS = ("e2e_dify_sharded_consumer", "e2e_dify_documents_consumer", "e2e_dify_named_consumer")
RECORDS = 40
DOCUMENTS = ("alpha", "beta", "gamma", "delta")
WARNINGS = ("not found; cannot create asset event", "inactive AssetModel", "inactive assets")

DAG_FILE = '''
"""Shards of one sync, and mapped single-document writes, each group on a knowledge base no event has named."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dify.assets import knowledge_base_asset, knowledge_base_named
from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator
from airflow_provider_dify.operators.shards import shards
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

SHARDED = knowledge_base_asset({sharded_id!r}, host={host!r})
DOCUMENTS = knowledge_base_asset({documents_id!r}, host={host!r})
NAMED = knowledge_base_named({named!r})
SYNC_ARGUMENTS = {sync_arguments}
NAMED_SYNC_ARGUMENTS = {named_sync_arguments}

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DifySyncDocumentsOperator.partial(task_id="sync", outlets=[SHARDED], **SYNC_ARGUMENTS).expand(
        shard=shards({shards})
    )
    DifyCreateDocumentOperator.partial(
        task_id="create", dataset_id={documents_id!r}, text="A document.", retries=0, outlets=[DOCUMENTS]
    ).expand(name={names!r})
    DifyCreateDatasetOperator(
        task_id="knowledge_base", name={named!r}, indexing_technique="economy"
    ) >> DifySyncDocumentsOperator.partial(task_id="named_sync", **NAMED_SYNC_ARGUMENTS).expand(shard=shards({shards}))

for consumer, asset in (
    ("e2e_dify_sharded_consumer", SHARDED),
    ("e2e_dify_documents_consumer", DOCUMENTS),
    ("e2e_dify_named_consumer", NAMED),
):
    with DAG(consumer, schedule=[asset], start_date=datetime(2026, 1, 1), catchup=False):
        task(task_id="consume")(lambda: None)()
'''


@pytest.fixture
def emulator() -> Any:
    from airflow_provider_dify.testing import DifyEmulator

    # Slow answers keep the mapped tasks running together, so they finish (and report their events) together.
    with DifyEmulator(indexing_seconds=0.05, queue_pickup_seconds=0.0, latency_seconds=0.1) as dify:
        yield dify


@requires_airflow_3
def test_mapped_tasks_sending_a_new_knowledge_bases_first_events_at_once(tmp_path: Path, emulator: Any) -> None:
    from airflow_provider_dify.assets import knowledge_base_named_uri, knowledge_base_uri

    sharded_id = emulator.create_dataset("e2e-mapped-shards")["id"]
    documents_id = emulator.create_dataset("e2e-mapped-documents")["id"]
    env = {"AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json}
    with AirflowDeployment(tmp_path, parallelism=8, env=env) as deployment:
        deployment.write_dag(
            f"{DAG_ID}.py",
            DAG_FILE.format(
                dag_id=DAG_ID,
                host=emulator.url,
                sharded_id=sharded_id,
                documents_id=documents_id,
                shards=SHARDS,
                names=list(DOCUMENTS),
                sync_arguments=numbered_records_sync_arguments(sharded_id, RECORDS, "e2e:mapped"),
                named=NAMED,
                named_sync_arguments=numbered_records_sync_arguments(None, RECORDS, "e2e:named", dataset_name=NAMED),
            ),
        )
        deployment.cli("db", "migrate")
        deployment.start("api-server", "dag-processor", "scheduler")
        deployment.wait_for_api_server()
        for dag_id in (DAG_ID, *CONSUMERS):
            deployment.wait_for_dag(dag_id)
        for consumer in CONSUMERS:
            deployment.cli("dags", "unpause", consumer)
        deployment.cli("dags", "trigger", DAG_ID)
        state = deployment.wait_until(lambda: deployment.finished_run_state(DAG_ID), 300, "the mapped run")
        states = deployment.query("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", DAG_ID)
        assert state == "success", f"{states}\n{deployment.logs()}"
        assert sorted(states) == sorted(
            [("sync", index, "success") for index in range(SHARDS)]
            + [("create", index, "success") for index in range(len(DOCUMENTS))]
            + [("named_sync", index, "success") for index in range(SHARDS)]
            + [("knowledge_base", -1, "success")]
        )
        for task_id in ("sync", "create", "named_sync"):
            intervals, overlapping = deployment.task_intervals(DAG_ID, task_id)
            assert overlapping >= 1, f"no two {task_id} tasks ran at the same time: {intervals}"

        named_id = next(kb["id"] for kb in emulator.datasets() if kb["name"] == NAMED)
        assert deployment.query(  # the created knowledge base's events are its named asset's, none by its id
            "SELECT COUNT(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            knowledge_base_uri(emulator.url, named_id),
        ) == [(0,)]
        for uri, task_id, count in (
            (knowledge_base_uri(emulator.url, sharded_id), "sync", SHARDS),
            (knowledge_base_uri(emulator.url, documents_id), "create", len(DOCUMENTS)),
            (knowledge_base_named_uri("dify_default", NAMED), "named_sync", SHARDS),
        ):
            events = deployment.query(
                "SELECT e.source_task_id, e.source_map_index, e.extra FROM asset_event e"
                " JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
                uri,
            )
            # One event per mapped task (every shard created its part), each the outlet's own: none came
            # through the alias, which is what would have created the asset and linked it.
            shown = sorted((task, index) for task, index, _ in events if task != "knowledge_base")
            assert shown == [(task_id, i) for i in range(count)]
            aliased = deployment.query(
                "SELECT COUNT(*) FROM asset_alias_asset_event l JOIN asset_event e ON e.id = l.event_id"
                " JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
                uri,
            )
            assert aliased == [(0,)]

        def consumers_ran() -> bool:
            return all(deployment.finished_run_state(consumer) == "success" for consumer in CONSUMERS)

        deployment.wait_until(consumers_ran, 120, "the DAGs scheduled on the knowledge bases")
        logged = "\n".join(deployment.log(name) for name in ("api-server", "scheduler"))
        assert [warning for warning in WARNINGS if warning in logged] == []
    assert_every_record_once(emulator, sharded_id, RECORDS)
    assert sorted(doc["name"] for doc in emulator.documents(named_id)) == sorted(f"rec-{n}" for n in range(RECORDS))
    assert sorted(doc["name"] for doc in emulator.documents(documents_id)) == sorted(DOCUMENTS)
