"""The object storage, curated Q&A and housekeeping example DAGs, run with ``dag.test()`` against the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def run(dag: Any, **conf: Any) -> Any:
    from airflow_provider_dify.testing.dag_runner import run_dag

    return run_dag(dag, run_conf=conf)


def test_every_example_dag_parses_without_errors() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3

        bag = DagBag(dag_folder=str(EXAMPLES))
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2

        bag = DagBag(dag_folder=str(EXAMPLES), include_examples=False)
    assert bag.import_errors == {}
    assert {
        "example_dify_warehouse_export",
        "example_dify_object_storage",
        "example_dify_curated_qa",
        "example_dify_housekeeping",
        "example_dify_knowledge_base_changed",
    } <= set(bag.dag_ids)


def test_object_storage_files_updated_only_when_changed(
    dify_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_named_events: Any
) -> None:
    from airflow_provider_dify.testing.dag_runner import load_dag

    monkeypatch.setenv("DIFY_EXAMPLE_DOCS_KNOWLEDGE_BASE", "test-handbook")  # read when the file is parsed
    dag = load_dag(EXAMPLES / "example_dify_object_storage.py")
    prefix = tmp_path / "handbook"
    shutil.copytree(EXAMPLES / "sample_docs", prefix)
    conf = {"prefix": f"file://{prefix}"}
    first = xcom_value(run(dag, **conf), "sync_files")
    assert first["counts"]["created"] == 4
    quiet_named_events("test-handbook", ["knowledge_base", "sync_files"])
    dataset = dify_emulator.find_dataset("test-handbook")
    names = sorted(doc["name"] for doc in dify_emulator.documents(dataset["id"]))
    assert names == [
        "handbook__guides__cast-iron-seasoning.md",
        "handbook__guides__espresso-machine-care.md",
        "handbook__returns-policy.md",
        "handbook__warranty.md",
    ]
    assert dify_emulator.wait_for_indexing()

    dify_emulator.reset_counters()
    assert xcom_value(run(dag, **conf), "sync_files")["counts"]["unchanged"] == 4
    assert dify_emulator.write_count() == 0

    (prefix / "warranty.md").write_text("# Warranty\n\nThree years on everything from now on.\n")
    dify_emulator.reset_counters()
    third = xcom_value(run(dag, **conf), "sync_files")
    assert (third["counts"]["updated"], third["counts"]["unchanged"]) == (1, 3)
    assert [entry["name"] for entry in third["updated"]] == ["handbook__warranty.md"]
    stored = {doc["name"]: doc for doc in dify_emulator.documents(dataset["id"])}
    assert "Three years on everything" in stored["handbook__warranty.md"]["text"]


def test_curated_qa_adds_chunks_once_and_finds_them(
    dify_emulator: Any, warehouse: Path, monkeypatch: pytest.MonkeyPatch, quiet_named_events: Any
) -> None:
    from airflow_provider_dify.testing.dag_runner import load_dag

    monkeypatch.setenv("DIFY_EXAMPLE_QA_KNOWLEDGE_BASE", "test-curated")  # read when the file is parsed
    dag = load_dag(EXAMPLES / "example_dify_curated_qa.py")
    dag_run = run(dag, category="Care", query="descale")
    for task_id in ("knowledge_base", "curated_document", "load_chunks", "add_chunks", "retrieve"):
        assert task_state(dag_run, task_id) == "success", task_id
    quiet_named_events("test-curated", ["knowledge_base", "curated_document", "add_chunks"])
    added = xcom_value(dag_run, "add_chunks")
    assert added["added"] == 7
    hits = xcom_value(dag_run, "retrieve")["records"]
    assert hits and "descale" in hits[0]["content"].lower()

    dify_emulator.reset_counters()
    again = run(dag, category="Care", query="descale")
    assert xcom_value(again, "add_chunks")["added"] == 0
    assert dify_emulator.count("POST", "/datasets/{dataset_id}/documents/{document_id}/segments") == 0
    dataset = dify_emulator.find_dataset("test-curated")
    [document] = dify_emulator.documents(dataset["id"])
    assert len(dify_emulator.segments(dataset["id"], document["id"])) == 1 + 7  # the document's own text + 7


def test_housekeeping_deletes_only_the_prefixed_knowledge_bases(dify_emulator: Any) -> None:
    from example_dags.example_dify_housekeeping import dag

    for name in ("run-42-products", "run-42-faq", "production-kb"):
        dify_emulator.create_dataset(name)
    dry = run(dag, name_prefix="run-42-", dry_run=True)
    assert task_state(dry, "find") == "success" and len(dify_emulator.datasets()) == 3
    dag_run = run(dag, name_prefix="run-42-", dry_run=False)
    assert task_state(dag_run, "find") == "success"
    assert sorted(dataset["name"] for dataset in dify_emulator.datasets()) == ["production-kb"]


def test_knowledge_base_changed_check_retrieves_and_skips_other_changes(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.testing.dag_runner import load_dag
    from example_dags.example_dify_knowledge_base_changed import content_changes

    monkeypatch.setenv("DIFY_EXAMPLE_KNOWLEDGE_BASE", "test-kb-changed")  # read when the file is parsed
    dag = load_dag(EXAMPLES / "example_dify_knowledge_base_changed.py")

    dataset_id = dify_emulator.create_dataset("test-kb-changed", indexing_technique="economy")["id"]
    DifyHook().create_document_by_text(
        dataset_id, "grinders", "The burr grinder has ceramic burrs.", process_rule={"mode": "automatic"}
    )
    assert dify_emulator.wait_for_indexing()
    dag_run = run(dag, smoke_query="grinder")
    assert [task_state(dag_run, task) for task in ("what_changed", "retrieve", "check_hits")] == ["success"] * 3
    assert xcom_value(dag_run, "check_hits") >= 1

    def event(name: str, granularity: str) -> Any:
        return SimpleNamespace(extra={"dataset_name": name, "granularity": granularity, "created": 1})

    events = {"dify://h/datasets/1": [event("test-kb-changed", "knowledge_base"), event("other", "documents")]}
    assert content_changes(events, "test-kb-changed") == []  # only the empty knowledge base was created
    events["dify://h/datasets/1"].append(event("test-kb-changed", "chunks"))
    assert [change["granularity"] for change in content_changes(events, "test-kb-changed")] == ["chunks"]


@pytest.mark.parametrize("only", ["sync_products", "sync_faq"])
def test_knowledge_base_changed_check_passes_after_either_sync_alone(
    dify_emulator: Any, warehouse: Path, monkeypatch: pytest.MonkeyPatch, only: str
) -> None:
    """The scheduler may start a check run per event: one that follows either sync's event alone finds hits
    with the default query (Dify's keyword search is case-sensitive: ``espresso`` misses the products)."""
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from airflow_provider_dify.testing.dag_runner import load_dag

    monkeypatch.setenv("DIFY_EXAMPLE_KNOWLEDGE_BASE", "test-one-sync")
    monkeypatch.delenv("DIFY_EXAMPLE_SMOKE_QUERY", raising=False)
    export = load_dag(EXAMPLES / "example_dify_warehouse_export.py")
    other = export.get_task("sync_faq" if only == "sync_products" else "sync_products")

    def not_this_time(self: Any, context: Any) -> None:
        raise AirflowSkipException("only one sync writes in this test")

    monkeypatch.setattr(type(other), "execute", not_this_time)
    exported = run(export)
    assert (task_state(exported, only), task_state(exported, other.task_id)) == ("success", "skipped")
    check = run(load_dag(EXAMPLES / "example_dify_knowledge_base_changed.py"))
    assert [task_state(check, task) for task in ("what_changed", "retrieve", "check_hits")] == ["success"] * 3
    assert xcom_value(check, "check_hits") >= 1
