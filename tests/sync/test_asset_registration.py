"""How Airflow 3.3 takes a knowledge base's first asset events (docs/assets.md, "Which events are quiet, and which
race"): through the alias, a knowledge base no parsed DAG names makes Airflow log "AssetModel ... not found" and
"inactive AssetModel", and one that a parsed DAG names (here in ``inlets``) does not; declared in the writing task's
``outlets``, its changes are the outlet's own events, quiet, and an unchanged run records none (2.11 too)."""

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


def _chunk_sync(dataset_id: str, text: str, outlets: list[Any]) -> Any:
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    return DifySyncChunksOperator(
        task_id="chunks",
        dataset_id=dataset_id,
        records=[{"sku": "A-1", "text": text}],
        key_field="sku",
        text_template="{{ text }}",
        document_name="products",
        poll_interval=0.05,
        outlets=outlets,
    )


def test_a_knowledge_base_declared_in_outlets_gets_its_own_events_quietly(
    dify_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The operator reports the change as the declared outlet's event (no alias, no warning); an unchanged run
    drops the outlet, so Airflow records no event for it. On 2.11 too, once the DAG is in the metadata DB."""
    from airflow.providers.common.compat.sdk import DAG
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    from airflow_provider_dify.assets import knowledge_base_asset
    from tests.sync.test_asset_events import asset_events

    dataset_id = dify_emulator.create_dataset("kb-declared", indexing_technique="economy")["id"]
    asset = knowledge_base_asset(dataset_id, host=dify_emulator.url)

    def run(text: str) -> Any:
        with DAG("asset_declared", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            _chunk_sync(dataset_id, text, [asset])
        dag_run = run_dag(dag)
        assert task_state(dag_run, "chunks") == "success"
        return dag_run

    first = run("A grinder with 40 settings.")
    assert xcom_value(first, "chunks")["counts"]["added"] == 1
    events = asset_events(asset.uri)
    assert [(task, extra["granularity"], extra["created"]) for task, extra in events] == [("chunks", "chunks", 1)]
    run("A grinder with 40 settings.")  # unchanged: no event, though the asset is an outlet
    assert len(asset_events(asset.uri)) == 1
    run("A grinder with 41 settings.")
    assert [extra["created"] for _, extra in asset_events(asset.uri)] == [1, 1]
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "changed: asset event" in logged
    assert [warning for warning in (*WARNINGS, "inactive assets", "not found") if warning in logged] == []
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:  # the outlet's own events: none went through the alias
            query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            events = session.scalars(query.where(AssetModel.uri == asset.uri)).all()
            assert len(events) == 2 and [event.source_aliases for event in events] == [[], []]


def test_a_dify_outlet_that_is_not_the_knowledge_base_written_gets_no_event(
    dify_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Its event would tell of a change to a knowledge base the task did not write: dropped, with a warning;
    the one written is reported through the alias as when nothing is declared."""
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.assets import knowledge_base_asset, knowledge_base_uri
    from tests.sync.test_asset_events import asset_events

    written = dify_emulator.create_dataset("kb-written", indexing_technique="economy")["id"]
    other = knowledge_base_asset(dify_emulator.create_dataset("kb-other")["id"], host=dify_emulator.url)
    with DAG("asset_declared_other", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        _chunk_sync(written, "A kettle.", [other])
    dag_run = run_dag(dag)
    assert task_state(dag_run, "chunks") == "success"
    assert asset_events(other.uri) == []
    assert [task for task, _ in asset_events(knowledge_base_uri(dify_emulator.url, written))] == ["chunks"]
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert f"outlets: {other.uri} is not the knowledge base this task wrote" in logged


@pytest.mark.dify_emulator(indexing_seconds=0.3)
def test_a_declared_knowledge_base_of_a_deferred_sync_gets_its_event_when_the_task_resumes(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync waits for indexing in the triggerer and reports when it resumes, in a task built anew: the change
    is still the declared outlet's event; an unchanged re-run records none."""
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.assets import knowledge_base_asset
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
    from tests.indexing.test_sensor_dags import _trigger_groups
    from tests.sync.test_asset_events import asset_events

    triggers = _trigger_groups(monkeypatch, 500)
    dataset_id = dify_emulator.create_dataset("kb-declared-deferred", indexing_technique="economy")["id"]
    asset = knowledge_base_asset(dataset_id, host=dify_emulator.url)

    def run() -> Any:
        with DAG("asset_declared_deferred", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            DifySyncDocumentsOperator(
                task_id="sync",
                dataset_id=dataset_id,
                records=[{"sku": "A-1", "text": "A grinder."}, {"sku": "A-2", "text": "A kettle."}],
                key_field="sku",
                text_template="{{ text }}",
                scope="test:deferred",
                wait_for_indexing=True,
                deferrable=True,
                poll_interval=0.05,
                outlets=[asset],
            )
        dag_run = run_dag(dag)
        assert task_state(dag_run, "sync") == "success"
        return dag_run

    first = run()
    assert xcom_value(first, "sync")["counts"]["created"] == 2
    assert triggers, "the sync did not defer"
    assert [(task, extra["created"]) for task, extra in asset_events(asset.uri)] == [("sync", 2)]
    again = run()
    assert xcom_value(again, "sync")["counts"]["unchanged"] == 2
    assert len(asset_events(asset.uri)) == 1


def test_airflow_3_records_no_outlet_event_for_an_asset_no_parsed_dag_names(
    dify_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Why a knowledge base known only at run time goes through the alias (docs/assets.md, "Which events are
    quiet, and which race"): an outlet added while the task runs, for an asset no parsed DAG names, gets
    Airflow 3.3's "inactive assets" warning and no event. The alias is the only way a task can make one."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 3's outlet events")
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    from airflow_provider_dify.assets import knowledge_base_asset
    from tests.sync.test_asset_events import asset_events

    asset = knowledge_base_asset(dify_emulator.create_dataset("kb-runtime-outlet")["id"], host=dify_emulator.url)

    def report(**context: Any) -> None:
        context["task"].outlets = [*context["task"].outlets, asset]
        context["outlet_events"][asset].extra = {"created": 1}

    with DAG("asset_runtime_outlet", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        PythonOperator(task_id="report", python_callable=report)
    dag_run = run_dag(dag)
    assert task_state(dag_run, "report") == "success"
    assert asset_events(asset.uri) == []
    captured = capfd.readouterr()
    assert "Task has inactive assets" in captured.out + captured.err + caplog.text


def _register(dag: Any, *, unpaused: bool) -> None:
    """Write ``dag`` to the metadata DB as the scheduler's parse does, without running it."""
    from airflow.models.dag import DagModel
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow_provider_dify.testing.dag_runner import _register_in_bundle

        _register_in_bundle(dag)
    else:
        dag.sync_to_db()
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag.dag_id).update({"is_paused": not unpaused})


def _queued_for(dag_id: str) -> int:
    """How many asset (dataset) events wait to start a run of ``dag_id``: what the scheduler turns into a run."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetDagRunQueue as Queue
    else:
        from airflow.models.dataset import DatasetDagRunQueue as Queue
    with create_session() as session:
        return session.query(Queue).filter(Queue.target_dag_id == dag_id).count()


def test_a_knowledge_base_the_dag_file_names_gets_quiet_events_that_wake_its_consumers(
    dify_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The README's DAG shape: the run creates the knowledge base, so its id is known only at run time, but the
    file names it. The operators declare ``knowledge_base_named(...)`` as their outlet: its events are its own,
    Airflow logs no warning (on 2.11 either), a DAG scheduled on the same call is queued, and an unchanged
    re-run records nothing."""
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.assets import knowledge_base_named, knowledge_base_uri
    from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator
    from airflow_provider_dify.operators.shards import shards
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
    from tests.sync.test_asset_events import asset_events

    name = "kb-named-in-the-file"
    records = [{"id": n, "text": f"Record {n}."} for n in range(6)]

    def producer() -> Any:
        with DAG("asset_named_producer", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
            kb = DifyCreateDatasetOperator(task_id="kb", name=name, indexing_technique="economy")
            sync = DifySyncDocumentsOperator.partial(
                task_id="sync", dataset_name=name, records=records, key_field="id", text_template="{{ text }}"
            ).expand(shard=shards(2))
            kb >> sync
        return dag

    with DAG("asset_named_consumer", schedule=[knowledge_base_named(name)], start_date=datetime(2026, 1, 1)) as dag:
        DifyCreateDatasetOperator(task_id="unused", name="never-run", indexing_technique="economy")
    _register(dag, unpaused=True)

    first = run_dag(producer())
    assert first.state == "success" and set(first.task_states.values()) == {"success"}
    uri = knowledge_base_named(name).uri
    assert [(task, extra["created"]) for task, extra in asset_events(uri)] == [("kb", 1), ("sync", 3), ("sync", 3)]
    dataset_id = first.xcom("kb")["dataset_id"]
    assert asset_events(knowledge_base_uri(dify_emulator.url, dataset_id)) == []  # nothing through the alias
    assert _queued_for("asset_named_consumer") == 1
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "changed: asset event dify-knowledge-base://dify_default/kb-named-in-the-file" in logged
    assert [line for line in logged.splitlines() if "warning" in line.lower()] == []

    again = run_dag(producer())
    assert again.state == "success" and len(asset_events(uri)) == 3  # nothing changed: no event
