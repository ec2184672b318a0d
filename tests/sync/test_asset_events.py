"""Asset events of the writing operators, run with ``dag.test()`` on the real metadata DB (Airflow 2.11 and 3.x).

A run that changes the knowledge base records one asset event with the counts in its extra: for
``dify-knowledge-base://dify_default/<name>`` (the outlet the operators declare) when the DAG file names the
knowledge base, for ``dify://<host>/datasets/<id>`` through the alias ``dify:dify_default`` when it is known only
at run time. A run that changes nothing records none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0),
]

RECORDS: list[dict[str, Any]] = [
    {"sku": "A-1", "name": "Burr grinder", "text": "Ceramic burrs, 40 grind settings."},
    {"sku": "A-2", "name": "Milk frother", "text": "Steam wand for latte art."},
]


def asset_events(uri: str) -> list[tuple[str, dict[str, Any]]]:
    """``(source task id, extra)`` of every asset event of ``uri``, oldest first."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        join = Event.asset_id == Model.id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        join = Event.dataset_id == Model.id
    with create_session() as session:
        rows = session.scalars(select(Event).join(Model, join).where(Model.uri == uri).order_by(Event.id)).all()
        return [(str(row.source_task_id), dict(row.extra or {})) for row in rows]


def counts(extra: dict[str, Any]) -> dict[str, int]:
    return {name: extra[name] for name in ("created", "updated", "deleted", "unchanged")}


def sync_dag(records: list[dict[str, Any]], knowledge_base: str = "test-assets", *, in_the_file: bool = True) -> Any:
    """The DAG creates and syncs ``knowledge_base``, named in the DAG file or known only at run time (a param)."""
    name = knowledge_base if in_the_file else "{{ params.knowledge_base }}"
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    with DAG(
        "test_dify_asset_events",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"knowledge_base": knowledge_base},
    ) as dag:
        DifyCreateDatasetOperator(task_id="knowledge_base", name=name, indexing_technique="economy")
        DifySyncDocumentsOperator(
            task_id="sync",
            dataset_name=name,
            records=records,
            key_field="sku",
            name_prefix="product ",
            text_template="{{ name }}: {{ text }}",
            scope="test:products",
            delete_missing=True,
        ).set_upstream(dag.get_task("knowledge_base"))
    return dag


@pytest.mark.parametrize("in_the_file", [True, False], ids=["named in the DAG file", "known at run time"])
def test_a_changing_run_records_one_event_and_an_unchanged_run_none(dify_emulator: Any, in_the_file: bool) -> None:
    from airflow_provider_dify.assets import knowledge_base_named_uri, knowledge_base_uri

    name = "test-assets" if in_the_file else "test-assets-at-run-time"
    first = run_dag(sync_dag(RECORDS, name, in_the_file=in_the_file))
    assert task_state(first, "sync") == "success"
    dataset_id = xcom_value(first, "sync")["dataset_id"]
    by_id = knowledge_base_uri(dify_emulator.url, dataset_id)
    by_name = knowledge_base_named_uri("dify_default", name)
    uri, other = (by_name, by_id) if in_the_file else (by_id, by_name)
    assert asset_events(other) == []  # one event per change, on one asset
    events = asset_events(uri)
    assert [task for task, _ in events] == ["knowledge_base", "sync"]
    created, synced = (extra for _, extra in events)
    assert created["granularity"] == "knowledge_base" and created["action"] == "created"
    assert synced["dataset_id"] == dataset_id and synced["dataset_name"] == name
    assert synced["granularity"] == "documents" and synced["scope"] == "test:products"
    assert counts(synced) == {"created": 2, "updated": 0, "deleted": 0, "unchanged": 0}
    assert len(synced["batches"]) == 2

    again = run_dag(sync_dag(RECORDS, name, in_the_file=in_the_file))
    assert task_state(again, "sync") == "success"
    assert xcom_value(again, "sync")["counts"]["unchanged"] == 2
    assert len(asset_events(uri)) == 2  # neither task changed anything: no event

    changed = [RECORDS[0], {**RECORDS[1], "text": "Steam wand and a cold-foam mode."}]
    third = run_dag(sync_dag(changed[1:], name, in_the_file=in_the_file))  # one record rewritten, the other deleted
    assert task_state(third, "sync") == "success"
    events = asset_events(uri)
    assert len(events) == 3
    assert counts(events[-1][1]) == {"created": 0, "updated": 1, "deleted": 1, "unchanged": 0}


def test_single_document_and_chunk_writes_report_the_knowledge_base(dify_emulator: Any) -> None:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.assets import knowledge_base_uri
    from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator, DifyDeleteDocumentOperator
    from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator

    dataset_id = dify_emulator.create_dataset("test-assets-single", indexing_technique="economy")["id"]
    with DAG("test_dify_asset_events_single", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        create = DifyCreateDocumentOperator(
            task_id="create", dataset_id=dataset_id, name="notes", text="First paragraph.", wait_for_indexing=True
        )
        chunks = DifyAddSegmentsOperator(
            task_id="chunks", dataset_id=dataset_id, document_name="notes", segments=[{"content": "A chunk."}]
        )
        delete = DifyDeleteDocumentOperator(task_id="delete", dataset_id=dataset_id, document_name="notes")
        create >> chunks >> delete
    dag_run = run_dag(dag)
    assert all(task_state(dag_run, task) == "success" for task in ("create", "chunks", "delete"))
    events = asset_events(knowledge_base_uri(dify_emulator.url, dataset_id))
    assert [(task, extra["granularity"], counts(extra)) for task, extra in events] == [
        ("create", "document", {"created": 1, "updated": 0, "deleted": 0, "unchanged": 0}),
        ("chunks", "chunks", {"created": 1, "updated": 0, "deleted": 0, "unchanged": 0}),
        ("delete", "document", {"created": 0, "updated": 0, "deleted": 1, "unchanged": 0}),
    ]
    assert events[0][1]["document_name"] == "notes" and events[0][1]["batches"]


def test_a_retry_that_finds_nothing_to_write_still_tells_the_consumers(dify_emulator: Any) -> None:
    """The failed try before it may have written; its event was never recorded."""
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator
    from tests.operators.helpers import context

    dataset_id = dify_emulator.create_dataset("test-assets-retry", indexing_technique="economy")["id"]
    added: list[tuple[Any, dict[str, Any]]] = []

    class Events(dict):
        def __missing__(self, alias: Any) -> Any:
            class Accessor:
                def add(self, asset: Any, extra: dict[str, Any]) -> None:
                    added.append((asset, extra))

            return Accessor()

    from airflow.providers.common.compat.sdk import DAG
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    with DAG("test_dify_asset_events_retry", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        operator = DifySyncChunksOperator(
            task_id="chunks",
            dataset_id=dataset_id,
            records=RECORDS,
            key_field="sku",
            document_name="products",
            poll_interval=0.05,
        )
    if not AIRFLOW_V_3_0_PLUS:
        dag.sync_to_db()  # the alias must be in the metadata DB on 2.11
    first = {**context(), "outlet_events": Events()}
    operator.execute(first)
    assert [extra["created"] for _, extra in added] == [2]
    again = {**context(), "outlet_events": Events()}
    operator.execute(again)  # unchanged, first try: no event
    assert len(added) == 1
    again["ti"].try_number = 2
    operator.execute(again)
    assert len(added) == 2 and added[-1][1]["retry"] is True and added[-1][1]["created"] == 0


def test_on_airflow_2_a_dag_unknown_to_the_metadata_db_warns_instead_of_failing(
    dify_emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """2.11 fails a task whose alias event names an alias the DB lacks (dag.test() of an unparsed DAG)."""
    import uuid

    from airflow.providers.common.compat.sdk import DAG
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    if AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 3 creates a missing alias")
    dataset_id = dify_emulator.create_dataset("test-assets-unknown", indexing_technique="economy")["id"]
    with DAG("test_dify_asset_events_unknown", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        DifySyncChunksOperator(
            task_id="chunks",
            dataset_id=dataset_id,
            records=RECORDS,
            key_field="sku",
            document_name="products",
            poll_interval=0.05,
            asset_alias=f"dify:test-{uuid.uuid4()}",
        )
    dag_run = dag.test()  # not run_dag: it writes the DAG to the DB first, as the scheduler's parse does
    assert task_state(dag_run, "chunks") == "success"
    assert xcom_value(dag_run, "chunks")["counts"]["added"] == 2
    assert "is not in the metadata database" in caplog.text
