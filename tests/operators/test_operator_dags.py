"""The operators in real DAGs (``dag.test()`` on the SQLite metadata DB) against the Dify emulator over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators._content import HASH_FIELD, metadata_values
from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator, DifyDeleteDatasetOperator
from airflow_provider_dify.operators.documents import (
    DifyCreateDocumentOperator,
    DifyDeleteDocumentOperator,
    DifyUpdateDocumentOperator,
)
from airflow_provider_dify.operators.metadata import DifyUpdateDocumentMetadataOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, try_number, xcom_value
from tests.operators.helpers import (
    SEGMENTS_ROUTE,
    all_xcom_text,
    content_writes,
    dag_id,
    rendered_fields_text,
)
from tests.unit.helpers import assert_no_key_piece

pytestmark = pytest.mark.usefixtures("airflow_db")

KB = "ops-handbook"
TEXT = (
    "Refund policy. Customers may return items within thirty days.\n\n"
    "Shipping policy. Orders ship within two business days."
)
CHUNKS = [
    {"content": "Gift cards cannot be refunded.", "keywords": ["giftcard"]},
    {"content": "Express shipping costs ten euros.", "keywords": ["express"]},
    {"content": "Returns need the original receipt.", "keywords": ["receipt"]},
]
FIRST_DAY = datetime(2025, 3, 1, tzinfo=UTC)


def make_dag(**dag_kwargs: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    return DAG(
        dag_id("dify_ops"),
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
        catchup=False,
        **dag_kwargs,
    )


def lifecycle_dag() -> Any:
    """create the knowledge base >> write a document (wait) >> add chunks >> set metadata >> (search)."""
    with make_dag(params={"text": TEXT, "team": "support"}) as dag:
        dataset = DifyCreateDatasetOperator(task_id="dataset", name=KB, indexing_technique="economy")
        document = DifyCreateDocumentOperator(
            task_id="document",
            dataset_id="{{ ti.xcom_pull('dataset')['dataset_id'] }}",
            name="policies.txt",
            text="{{ params.text }}",
            metadata={"team": "{{ params.team }}", "version": 3},
            wait_for_indexing=True,
            deferrable=False,
            poll_interval=0.1,
        )
        chunks = DifyAddSegmentsOperator(
            task_id="chunks", dataset_name=KB, document_name="policies.txt", segments=CHUNKS, batch_size=2
        )
        metadata = DifyUpdateDocumentMetadataOperator(
            task_id="metadata",
            dataset_name=KB,
            document_id="{{ ti.xcom_pull('document')['document_id'] }}",
            metadata={"reviewed": "yes"},
        )
        dataset >> document >> chunks >> metadata
    return dag


def only_dataset(dify: Any) -> dict[str, Any]:
    [dataset] = [item for item in dify.datasets() if item["name"] == KB]
    return dataset


def test_lifecycle_writes_once_then_reruns_and_backfills_write_nothing(dify_emulator: Any) -> None:
    dag = lifecycle_dag()
    run = run_dag(dag, logical_date=FIRST_DAY)
    assert all(task_state(run, task) == "success" for task in ("dataset", "document", "chunks", "metadata"))

    dataset = only_dataset(dify_emulator)
    [document] = dify_emulator.documents(dataset["id"])
    assert document["name"] == "policies.txt" and document["text"] == TEXT
    assert document["indexing_status"] == "completed"
    values = metadata_values(dify_emulator.document(dataset["id"], document["id"]))
    assert values["team"] == "support" and values["reviewed"] == "yes" and float(values["version"]) == 3
    assert values[HASH_FIELD].startswith("sha256:")
    contents = [segment["content"] for segment in dify_emulator.segments(dataset["id"], document["id"])]
    for chunk in CHUNKS:
        assert contents.count(chunk["content"]) == 1

    manifest = xcom_value(run, "document")
    assert manifest["action"] == "created" and manifest["document_id"] == document["id"]
    assert manifest["batch"] and manifest["indexing"][0]["indexing_status"] == "completed"
    assert manifest["console_url"] == f"{dify_emulator.base_url}/datasets/{dataset['id']}/documents/{document['id']}"
    assert xcom_value(run, "dataset")["action"] == "created"
    assert xcom_value(run, "chunks")["added"] == 3
    assert xcom_value(run, "metadata")["action"] == "updated"
    xcoms = all_xcom_text(run)
    assert "Refund policy" not in xcoms and "Gift cards" not in xcoms  # no document or chunk text in XCom

    dify_emulator.reset_counters()
    rerun = run_dag(dag, logical_date=FIRST_DAY)  # the same run again, as after a clear
    assert all(task_state(rerun, task) == "success" for task in ("dataset", "document", "chunks", "metadata"))
    assert content_writes(dify_emulator) == []
    assert dify_emulator.calls  # it did read
    assert xcom_value(rerun, "dataset")["action"] == "reused"
    assert xcom_value(rerun, "document")["action"] == "unchanged"
    assert xcom_value(rerun, "chunks")["action"] == "unchanged"
    assert xcom_value(rerun, "metadata")["action"] == "unchanged"

    backfill = run_dag(dag, logical_date=FIRST_DAY + timedelta(days=1))  # another date, same data
    assert task_state(backfill, "metadata") == "success"
    assert content_writes(dify_emulator) == []
    assert len(dify_emulator.documents(dataset["id"])) == 1
    assert len(dify_emulator.segments(dataset["id"], document["id"])) == len(contents)


def test_changed_text_updates_the_same_document_and_chunks_come_back(dify_emulator: Any) -> None:
    dag = lifecycle_dag()
    first = run_dag(dag, logical_date=FIRST_DAY)
    first_id = xcom_value(first, "document")["document_id"]

    changed = TEXT + "\n\nWarranty. Two years on electronics."
    second = run_dag(dag, logical_date=FIRST_DAY + timedelta(days=1), run_conf={"text": changed})

    manifest = xcom_value(second, "document")
    assert manifest["action"] == "updated" and manifest["document_id"] == first_id
    dataset = only_dataset(dify_emulator)
    [document] = dify_emulator.documents(dataset["id"])
    assert document["text"] == changed
    # Dify's re-split dropped the hand-added chunks; the chunk task added them back, once each.
    assert xcom_value(second, "chunks")["added"] == len(CHUNKS)
    contents = [segment["content"] for segment in dify_emulator.segments(dataset["id"], document["id"])]
    assert all(contents.count(chunk["content"]) == 1 for chunk in CHUNKS)


def test_api_key_never_reaches_xcom_or_rendered_fields(dify_emulator: Any) -> None:
    run = run_dag(lifecycle_dag(), logical_date=FIRST_DAY)
    assert task_state(run, "metadata") == "success"
    rendered = rendered_fields_text(run)
    assert "policies.txt" in rendered  # the rendered fields were stored
    assert_no_key_piece(dify_emulator.api_key, all_xcom_text(run), rendered)


def test_console_link(dify_emulator: Any) -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    from airflow_provider_dify.links import DifyConsoleLink

    run = run_dag(lifecycle_dag(), logical_date=FIRST_DAY)
    dataset = only_dataset(dify_emulator)
    document_id = xcom_value(run, "document")["document_id"]
    expected = f"{dify_emulator.base_url}/datasets/{dataset['id']}/documents/{document_id}"
    if AIRFLOW_V_3_0_PLUS:
        # The worker resolves the link when the task ends and stores it for the UI under the link's key.
        assert xcom_value(run, "document", key=DifyConsoleLink().xcom_key) == expected
        assert xcom_value(run, "dataset", key=DifyConsoleLink().xcom_key) == (
            f"{dify_emulator.base_url}/datasets/{dataset['id']}/documents"
        )
    else:
        task = run.dag_run.get_dag().get_task("document") if run.dag_run.get_dag() else None
        ti = run.dag_run.get_task_instance("document")
        assert DifyConsoleLink().get_link(task, ti_key=ti.key) == expected
    assert DifyConsoleLink.name == "Dify"


def test_create_dataset_reuses_and_if_exists_error_fails(dify_emulator: Any) -> None:
    existing = dify_emulator.create_dataset(KB)
    with make_dag() as dag:
        DifyCreateDatasetOperator(task_id="reuse", name=KB)
        DifyCreateDatasetOperator(task_id="error", name=KB, if_exists="error")
    run = run_dag(dag)
    assert xcom_value(run, "reuse")["action"] == "reused"
    assert xcom_value(run, "reuse")["dataset_id"] == existing["id"]
    assert task_state(run, "error") == "failed"
    assert [item["name"] for item in dify_emulator.datasets()] == [KB]
    assert dify_emulator.count("POST", "/datasets") == 0


def test_delete_dataset_missing_and_ignore_missing(dify_emulator: Any) -> None:
    kept = dify_emulator.create_dataset("keep-me")
    doomed = dify_emulator.create_dataset("delete-me")
    dify_emulator.create_document(doomed["id"], "a.txt", TEXT)
    with make_dag() as dag:
        delete = DifyDeleteDatasetOperator(task_id="delete", dataset_name="delete-me")
        again = DifyDeleteDatasetOperator(task_id="again", dataset_id=doomed["id"])
        strict = DifyDeleteDatasetOperator(task_id="strict", dataset_name="delete-me", ignore_missing=False)
        delete >> again >> strict
    run = run_dag(dag)
    assert xcom_value(run, "delete")["action"] == "deleted"
    assert xcom_value(run, "again")["action"] == "missing" and task_state(run, "again") == "success"
    assert task_state(run, "strict") == "failed"
    assert [item["id"] for item in dify_emulator.datasets()] == [kept["id"]]


STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"


def complete_indexing_once(dify: Any, happened: Callable[[], bool]) -> threading.Thread:
    """Finish the emulator's indexing as soon as ``happened()`` (the operator was seen waiting), not before."""

    def finish() -> None:
        deadline = time.monotonic() + 120
        while not happened() and time.monotonic() < deadline:
            time.sleep(0.01)
        dify.complete_indexing()

    thread = threading.Thread(target=finish, name="complete-indexing", daemon=True)
    thread.start()
    return thread


class RecordingCreateDocument(DifyCreateDocumentOperator):
    """Records that the task deferred, and in XCom that it resumed from the trigger."""

    deferred = threading.Event()

    def _defer(self, *args: Any, **kwargs: Any) -> Any:
        type(self).deferred.set()
        return super()._defer(*args, **kwargs)

    def execute_complete(self, context: Any, event: Any = None, manifest: Any = None) -> Any:
        context["ti"].xcom_push(key="resumed_with", value=(event or {}).get("status"))
        return super().execute_complete(context, event, manifest)


class RecordingAddSegments(DifyAddSegmentsOperator):
    """Records that the task deferred, and in XCom that it resumed from the trigger."""

    deferred = threading.Event()

    def _defer(self, *args: Any, **kwargs: Any) -> Any:
        type(self).deferred.set()
        return super()._defer(*args, **kwargs)

    def execute_complete(self, context: Any, event: Any = None, **kwargs: Any) -> Any:
        context["ti"].xcom_push(key="resumed_with", value=(event or {}).get("status"))
        return super().execute_complete(context, event, **kwargs)


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
@pytest.mark.dify_emulator(indexing_seconds=3600)  # indexing ends only when the test finishes it
def test_wait_for_indexing(dify_emulator: Any, deferrable: bool) -> None:
    dataset = dify_emulator.create_dataset(KB)
    RecordingCreateDocument.deferred.clear()
    if deferrable:
        finisher = complete_indexing_once(dify_emulator, RecordingCreateDocument.deferred.is_set)
    else:
        finisher = complete_indexing_once(dify_emulator, lambda: dify_emulator.count("GET", STATUS_ROUTE) >= 1)
    with make_dag() as dag:
        RecordingCreateDocument(
            task_id="document",
            dataset_id=dataset["id"],
            name="wait.txt",
            text=TEXT,
            wait_for_indexing=True,
            deferrable=deferrable,
            poll_interval=0.2,
        )
    run = run_dag(dag)
    finisher.join()
    assert task_state(run, "document") == "success"
    manifest = xcom_value(run, "document")
    [document] = dify_emulator.documents(dataset["id"])
    assert manifest["action"] == "created" and manifest["document_id"] == document["id"]
    assert manifest["console_url"].endswith(f"/documents/{document['id']}")  # the manifest survived the wait
    assert xcom_value(run, "document", key="resumed_with") == ("success" if deferrable else None)
    [result] = manifest["indexing"]
    assert result["id"] == document["id"] and result["indexing_status"] == "completed" == document["indexing_status"]
    # It polled while the document was still indexing, then again once it was done.
    assert dify_emulator.count("GET", STATUS_ROUTE) >= 2


@pytest.mark.dify_emulator(indexing_seconds=3600)
def test_add_segments_waits_for_the_document_in_the_triggerer(dify_emulator: Any) -> None:
    dataset = dify_emulator.create_dataset(KB)
    RecordingAddSegments.deferred.clear()
    finisher = complete_indexing_once(dify_emulator, RecordingAddSegments.deferred.is_set)
    with make_dag() as dag:
        document = DifyCreateDocumentOperator(task_id="document", dataset_id=dataset["id"], name="w.txt", text=TEXT)
        chunks = RecordingAddSegments(
            task_id="chunks",
            dataset_id=dataset["id"],
            document_id="{{ ti.xcom_pull('document')['document_id'] }}",
            segments=CHUNKS,
            deferrable=True,
            poll_interval=0.2,
        )
        document >> chunks
    run = run_dag(dag)
    finisher.join()
    assert task_state(run, "chunks") == "success"
    [document_state] = dify_emulator.documents(dataset["id"])
    contents = [segment["content"] for segment in dify_emulator.segments(dataset["id"], document_state["id"])]
    assert all(contents.count(chunk["content"]) == 1 for chunk in CHUNKS)
    # Dify answers 404 "Document is not completed." to early chunks: none were sent before the document was ready.
    assert dify_emulator.count("POST", SEGMENTS_ROUTE, status=404) == 0
    assert xcom_value(run, "chunks")["added"] == len(CHUNKS)
    assert xcom_value(run, "chunks", key="resumed_with") == "success"


def _fail_second_add_segments(dify: Any, monkeypatch: pytest.MonkeyPatch, then_fail_reads: int = 0) -> None:
    """Make the emulator answer 500 to the 2nd add-segments request AFTER adding its chunks (a lost answer)."""
    from airflow_provider_dify.hooks.dify import DifyHook

    original = DifyHook.add_segments
    calls: list[int] = []

    def add_segments(self: DifyHook, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            dify.fail_next(1, 500, method="POST", route=SEGMENTS_ROUTE, after_processing=True)
            if then_fail_reads:
                dify.fail_next(then_fail_reads, 500, method="GET", route=SEGMENTS_ROUTE)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DifyHook, "add_segments", add_segments)


def _chunks_dag(dataset_id: str, document_id: str, chunks: list[dict[str, Any]]) -> Any:
    with make_dag() as dag:
        DifyAddSegmentsOperator(
            task_id="chunks",
            dataset_id=dataset_id,
            document_id=document_id,
            segments=chunks,
            batch_size=2,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )
    return dag


def test_lost_answer_half_way_is_completed_within_the_same_try(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = dify_emulator.create_dataset(KB)
    document = dify_emulator.create_document(dataset["id"], "chunks.txt", TEXT)
    chunks = [{"content": f"Chunk number {i} of the set."} for i in range(7)]
    _fail_second_add_segments(dify_emulator, monkeypatch)

    run = run_dag(_chunks_dag(dataset["id"], document["id"], chunks))

    assert task_state(run, "chunks") == "success" and try_number(run, "chunks") == 1
    assert dify_emulator.count("POST", SEGMENTS_ROUTE, status=500) == 1  # the failure did happen
    contents = [segment["content"] for segment in dify_emulator.segments(dataset["id"], document["id"])]
    assert all(contents.count(chunk["content"]) == 1 for chunk in chunks)
    assert xcom_value(run, "chunks")["added"] == len(chunks)


def test_task_retry_after_a_failure_half_way_adds_each_chunk_exactly_once(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hook retries, and the re-read after the lost answer fails too: the first try fails half-way.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DIFY_DEFAULT", json.dumps({**dify_emulator.connection_dict, "extra": {"max_retries": 0}})
    )
    dataset = dify_emulator.create_dataset(KB)
    document = dify_emulator.create_document(dataset["id"], "chunks.txt", TEXT)
    chunks = [{"content": f"Chunk number {i} of the set."} for i in range(7)]
    _fail_second_add_segments(dify_emulator, monkeypatch, then_fail_reads=1)

    run = run_dag(_chunks_dag(dataset["id"], document["id"], chunks))

    assert task_state(run, "chunks") == "success"
    assert try_number(run, "chunks") == 2  # the first try failed, Airflow retried
    assert dify_emulator.count("POST", SEGMENTS_ROUTE, status=500) == 1
    contents = [segment["content"] for segment in dify_emulator.segments(dataset["id"], document["id"])]
    assert all(contents.count(chunk["content"]) == 1 for chunk in chunks), contents
    manifest = xcom_value(run, "chunks")
    assert manifest["already_present"] == 4 and manifest["added"] == 3  # two batches got in before the failure


def test_file_upload_from_a_local_path_and_a_file_url(dify_emulator: Any, tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    local = tmp_path / "handbook.md"
    local.write_text("# Handbook\n\nWelcome to the team.\n\nAsk questions early.", encoding="utf-8")
    remote = tmp_path / "remote" / "faq.md"
    remote.parent.mkdir()
    remote.write_text("# FAQ\n\nWhere is the office? In Lyon.", encoding="utf-8")
    dataset = dify_emulator.create_dataset(KB)
    with make_dag() as dag:
        DifyCreateDocumentOperator(task_id="local", dataset_id=dataset["id"], file=str(local), metadata={"kind": "md"})
        DifyCreateDocumentOperator(
            task_id="storage",
            dataset_id=dataset["id"],
            file=ObjectStoragePath(f"file://{remote}"),
            wait_for_indexing=True,
            deferrable=False,
            poll_interval=0.1,
        )
        DifyCreateDocumentOperator(task_id="url", dataset_id=dataset["id"], name="faq-copy.md", file=f"file://{remote}")
    run = run_dag(dag)
    assert all(task_state(run, task) == "success" for task in ("local", "storage", "url"))

    documents = {doc["name"]: doc for doc in dify_emulator.documents(dataset["id"])}
    assert set(documents) == {"handbook.md", "faq.md", "faq-copy.md"}
    assert documents["handbook.md"]["text"] == local.read_text(encoding="utf-8")
    assert documents["faq.md"]["text"] == remote.read_text(encoding="utf-8")
    assert documents["faq-copy.md"]["text"] == remote.read_text(encoding="utf-8")
    assert xcom_value(run, "storage")["indexing"][0]["indexing_status"] == "completed"
    assert metadata_values(dify_emulator.document(dataset["id"], documents["handbook.md"]["id"]))["kind"] == "md"

    dify_emulator.reset_counters()
    again = run_dag(dag)
    assert {xcom_value(again, task)["action"] for task in ("local", "storage", "url")} == {"unchanged"}
    assert content_writes(dify_emulator) == []

    remote.write_text("# FAQ\n\nWhere is the office? In Paris now.", encoding="utf-8")
    changed = run_dag(dag)
    assert xcom_value(changed, "storage")["action"] == "updated"
    assert xcom_value(changed, "local")["action"] == "unchanged"
    assert dify_emulator.document(dataset["id"], documents["faq.md"]["id"])["text"].endswith("In Paris now.")


def test_update_delete_and_retrieve_by_name(dify_emulator: Any) -> None:
    dataset = dify_emulator.create_dataset(KB)
    kept = dify_emulator.create_document(dataset["id"], "kept.txt", "Parking is free for staff.")
    dify_emulator.create_document(dataset["id"], "gone.txt", "Obsolete travel rules.")
    with make_dag() as dag:
        update = DifyUpdateDocumentOperator(
            task_id="update",
            dataset_name=KB,
            document_name="kept.txt",
            text="Parking is free for staff and visitors.",
            wait_for_indexing=True,
            deferrable=False,
            poll_interval=0.1,
        )
        delete = DifyDeleteDocumentOperator(task_id="delete", dataset_name=KB, document_name="gone.txt")
        delete_again = DifyDeleteDocumentOperator(task_id="delete_again", dataset_name=KB, document_name="gone.txt")
        retrieve = DifyRetrieveOperator(task_id="retrieve", dataset_name=KB, query="visitors")
        update >> delete >> delete_again >> retrieve
    run = run_dag(dag)

    assert xcom_value(run, "update")["action"] == "updated" and xcom_value(run, "update")["document_id"] == kept["id"]
    assert xcom_value(run, "delete")["action"] == "deleted"
    assert xcom_value(run, "delete_again")["action"] == "missing"
    assert [doc["name"] for doc in dify_emulator.documents(dataset["id"])] == ["kept.txt"]
    result = xcom_value(run, "retrieve")
    assert result["search_method"] == "keyword_search"
    assert result["records"] and {record["document_name"] for record in result["records"]} == {"kept.txt"}
    assert "visitors" in result["records"][0]["content"]
    assert HASH_FIELD not in result["records"][0]["metadata"]


HIERARCHICAL_RULE = {
    "mode": "hierarchical",
    "rules": {
        "pre_processing_rules": [],
        "segmentation": {"separator": "\n\n", "max_tokens": 500},
        "parent_mode": "paragraph",
        "subchunk_segmentation": {"separator": "\n", "max_tokens": 50},
    },
}


def test_child_chunks_of_a_parent_child_document(dify_emulator: Any) -> None:
    dataset = dify_emulator.create_dataset(KB)
    chunks = [
        {"content": "Travel rules.\nBook trains.\nKeep receipts.", "child_chunks": ["Book trains.", "Keep receipts."]},
        {"content": "Office rules.\nLock the door.", "child_chunks": ["Lock the door at night."]},
    ]
    with make_dag() as dag:
        document = DifyCreateDocumentOperator(
            task_id="document",
            dataset_id=dataset["id"],
            name="rules.txt",
            text="Intro paragraph.\nWelcome.",
            doc_form="hierarchical_model",
            indexing_technique="economy",
            process_rule=HIERARCHICAL_RULE,
        )
        add = DifyAddSegmentsOperator(
            task_id="chunks", dataset_id=dataset["id"], document_name="rules.txt", segments=chunks, poll_interval=0.1
        )
        document >> add
    run = run_dag(dag)
    assert task_state(run, "chunks") == "success"
    [stored] = dify_emulator.documents(dataset["id"])
    assert stored["doc_form"] == "hierarchical_model"
    by_content = {segment["content"]: segment for segment in dify_emulator.segments(dataset["id"], stored["id"])}
    for chunk in chunks:
        children = [child["content"] for child in by_content[chunk["content"]]["child_chunks"]]
        assert sorted(children) == sorted(chunk["child_chunks"])

    dify_emulator.reset_counters()
    again = run_dag(dag)
    assert xcom_value(again, "chunks")["action"] == "unchanged"
    assert content_writes(dify_emulator) == []


def test_qa_document_chunks_need_an_answer_and_fail_before_sending(dify_emulator: Any) -> None:
    dataset = dify_emulator.create_dataset(KB)
    qa = dify_emulator.create_document(dataset["id"], "qa.txt", "Q: What? A: That.", doc_form="qa_model", wait=True)
    from airflow.providers.common.compat.sdk import AirflowFailException

    from tests.operators.helpers import context

    segments = [{"content": "Where is the office?", "answer": "In Lyon."}, {"content": "When?"}]
    operator = DifyAddSegmentsOperator(
        task_id="chunks", dataset_id=dataset["id"], document_id=qa["id"], segments=segments
    )
    with pytest.raises(AirflowFailException, match=r"segments\[1\]\['answer'\]: the document is a Q&A"):
        operator.execute(context())
    with make_dag() as dag:
        DifyAddSegmentsOperator(task_id="chunks", dataset_id=dataset["id"], document_id=qa["id"], segments=segments)
    run = run_dag(dag)
    assert task_state(run, "chunks") == "failed"
    assert dify_emulator.count("POST", SEGMENTS_ROUTE) == 0
