"""Knowledge pipelines: the hook's routes over HTTP, the pipeline operator in real DAGs, and the refusal of the
document and sync operators to bypass a pipeline knowledge base (``dag.test()`` against the emulator)."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.assets import knowledge_base_named, knowledge_base_uri
from airflow_provider_dify.exceptions import DifyServerError, DifyValidationError
from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator
from airflow_provider_dify.operators.pipeline import DifyRunPipelineOperator
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, try_number, xcom_value
from tests.operators.helpers import content_writes, context, dag_id
from tests.sync.test_asset_events import asset_events

DATASET_ID = "5e1f0c3a-6b2d-4f8e-9a1c-7d3b2e4f6a80"  # a well-formed id of no knowledge base

pytestmark = pytest.mark.usefixtures("airflow_db")

NODE = "1750000000000"
RUN_ROUTE = "/datasets/{dataset_id}/pipeline/run"
UPLOAD_ROUTE = "/datasets/pipeline/file-upload"
STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"


def make_dag() -> Any:
    from airflow.providers.common.compat.sdk import DAG

    return DAG(dag_id("dify_pipeline"), schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False)


def write_files(tmp_path: Path) -> list[Path]:
    files = []
    for name, text in (("refunds.md", "Refunds within thirty days."), ("shipping.md", "Orders ship in two days.")):
        path = tmp_path / name
        path.write_text(text)
        files.append(path)
    return files


def hook() -> Any:
    from airflow_provider_dify.hooks.dify import DifyHook

    return DifyHook()


# -- the hook over HTTP --------------------------------------------------------------------------------------------


def test_pipeline_routes_over_http(dify_emulator: Any, tmp_path: Path) -> None:
    dataset = dify_emulator.create_pipeline_dataset("pipeline-kb")
    dify = hook()
    assert dify.get_dataset(dataset["id"])["runtime_mode"] == "rag_pipeline"
    [node] = dify.list_pipeline_datasource_plugins(dataset["id"])
    assert node["node_id"] == NODE and node["datasource_type"] == "local_file"
    upload = dify.upload_pipeline_file(write_files(tmp_path)[0])
    assert upload["name"] == "refunds.md" and isinstance(upload["created_at"], str)  # ISO, unlike other routes
    events = dify.run_pipeline_datasource_node(dataset["id"], NODE, inputs={"x": 1}, datasource_type="local_file")
    assert [event["event"] for event in events] == ["datasource_processing", "datasource_completed"]
    answer = dify.run_pipeline(
        dataset["id"],
        inputs={},
        datasource_type="local_file",
        datasource_info_list=[{"reference": upload["id"], "name": upload["name"]}],
        start_node_id=NODE,
    )
    [document] = answer["documents"]
    assert answer["dataset"]["id"] == dataset["id"] and document["name"] == "refunds.md"
    assert dify_emulator.wait_for_indexing()
    [status] = dify.get_indexing_status(dataset["id"], answer["batch"])
    assert status["id"] == document["id"] and status["indexing_status"] == "completed"
    [stored] = dify_emulator.documents(dataset["id"])
    assert stored["created_from"] == "rag-pipeline" and "thirty days" in stored["text"]


def test_pipeline_errors_are_typed(dify_emulator: Any) -> None:
    general = dify_emulator.create_dataset("general-kb")
    pipeline = dify_emulator.create_pipeline_dataset("pipeline-kb")
    dify = hook()
    with pytest.raises(DifyValidationError, match="Pipeline not found"):
        dify.list_pipeline_datasource_plugins(general["id"])
    with pytest.raises(DifyServerError) as raised:
        dify.run_pipeline(
            pipeline["id"],
            inputs={},
            datasource_type="local_file",
            datasource_info_list=[{"reference": "0" * 32, "name": "x.md"}],
            start_node_id=NODE,
        )
    assert raised.value.code == "pipeline_run_error"
    # A run whose answer may be lost is not repeated: it would create the documents again.
    assert dify_emulator.count("POST", RUN_ROUTE) == 1


@pytest.mark.dify_emulator(server_version="1.13")
def test_download_zip_and_retrieve_by_attachment(dify_emulator: Any) -> None:
    dataset = dify_emulator.create_dataset("kb")
    first = dify_emulator.create_document(dataset["id"], "a.txt", "alpha text")
    second = dify_emulator.create_document(dataset["id"], "b.txt", "beta text")
    dify = hook()
    archive = dify.download_documents_zip(dataset["id"], [first["id"], second["id"]])
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert sorted(opened.namelist()) == ["a.txt", "b.txt"]
        assert opened.read("a.txt") == b"alpha text"
    with pytest.raises(ValueError, match="at most 100"):
        dify.download_documents_zip(dataset["id"], [first["id"]] * 101)
    # With attachment_ids Dify makes the query optional; the hook sends no query then.
    from airflow_provider_dify.hooks.dify import default_retrieval_model

    keyword = default_retrieval_model(dataset)
    answer = dify.retrieve(dataset["id"], attachment_ids=[first["id"]], retrieval_model=keyword)
    assert answer["records"] == []
    assert dify_emulator.calls[-1].method == "POST"
    with pytest.raises(ValueError, match="query"):
        dify.retrieve(dataset["id"])


# -- the pipeline operator in DAGs -----------------------------------------------------------------------------------


class RecordingRunPipeline(DifyRunPipelineOperator):
    """Records that the task deferred, and in XCom that it resumed from the trigger."""

    deferred = threading.Event()

    def _defer(self, *args: Any, **kwargs: Any) -> Any:
        type(self).deferred.set()
        return super()._defer(*args, **kwargs)

    def execute_complete(self, context: Any, event: Any = None, manifest: Any = None) -> Any:
        context["ti"].xcom_push(key="resumed_with", value=(event or {}).get("status"))
        return super().execute_complete(context, event, manifest)


def complete_indexing_once(dify: Any, happened: Callable[[], bool]) -> threading.Thread:
    def finish() -> None:
        deadline = time.monotonic() + 120
        while not happened() and time.monotonic() < deadline:
            time.sleep(0.01)
        dify.complete_indexing()

    thread = threading.Thread(target=finish, name="complete-indexing", daemon=True)
    thread.start()
    return thread


@pytest.mark.dify_emulator(indexing_seconds=3600)  # indexing ends only when the test finishes it
def test_run_pipeline_defers_until_its_documents_are_indexed_and_reruns_write_nothing(
    dify_emulator: Any, tmp_path: Path
) -> None:
    dataset = dify_emulator.create_pipeline_dataset("pipeline-kb")
    files = write_files(tmp_path)
    RecordingRunPipeline.deferred.clear()
    finisher = complete_indexing_once(dify_emulator, RecordingRunPipeline.deferred.is_set)
    with make_dag() as dag:
        RecordingRunPipeline(
            task_id="pipeline",
            dataset_name="pipeline-kb",
            files=[str(path) for path in files],
            deferrable=True,
            poll_interval=0.1,
        )
    run = run_dag(dag)
    finisher.join()
    assert task_state(run, "pipeline") == "success"
    manifest = xcom_value(run, "pipeline")
    stored = dify_emulator.documents(dataset["id"])
    assert sorted(d["name"] for d in stored) == ["refunds.md", "shipping.md"]
    assert sorted(manifest["document_ids"]) == sorted(d["id"] for d in stored)
    assert {result["indexing_status"] for result in manifest["indexing"]} == {"completed"}
    assert xcom_value(run, "pipeline", key="resumed_with") == "success"
    assert dify_emulator.count("POST", RUN_ROUTE) == 1
    # Resumed, it reports the change: an event of the knowledge base the file names (the writers' way).
    [(task, extra)] = asset_events(knowledge_base_named("pipeline-kb").uri)
    assert (task, extra["granularity"], extra["created"], extra["batches"]) == (
        "pipeline",
        "documents",
        2,
        [manifest["batch"]],
    )

    # The same task again: every file is already a document, so nothing is uploaded or run.
    writes_before = len(content_writes(dify_emulator))
    with make_dag() as again:
        DifyRunPipelineOperator(
            task_id="pipeline", dataset_id=dataset["id"], files=[str(path) for path in files], deferrable=False
        )
    rerun = run_dag(again)
    assert task_state(rerun, "pipeline") == "success"
    again_manifest = xcom_value(rerun, "pipeline")
    assert again_manifest["skipped"] == ["refunds.md", "shipping.md"] and again_manifest["document_ids"] == []
    # It still waited for the skipped items' documents (reads only): a retry ends once they are indexed.
    assert sorted(r["id"] for r in again_manifest["indexing"]) == sorted(d["id"] for d in stored)
    assert len(content_writes(dify_emulator)) == writes_before
    assert len(dify_emulator.documents(dataset["id"])) == 2
    assert again_manifest["counts"] == {"created": 0, "unchanged": 2}  # and so no event, by name or by id
    assert len(asset_events(knowledge_base_named("pipeline-kb").uri)) == 1
    assert asset_events(knowledge_base_uri(dify_emulator.url, dataset["id"])) == []


@pytest.mark.dify_emulator(indexing_seconds=0.05)
def test_a_lost_run_answer_then_the_task_retry_leaves_each_document_once(dify_emulator: Any, tmp_path: Path) -> None:
    dataset = dify_emulator.create_pipeline_dataset("pipeline-kb")
    files = write_files(tmp_path)
    # Dify runs the pipeline, but its answer is lost (500 after processing): the hook does not repeat the run.
    dify_emulator.fail_next(1, 500, method="POST", route=RUN_ROUTE, after_processing=True)
    with make_dag() as dag:
        DifyRunPipelineOperator(
            task_id="pipeline",
            dataset_id=dataset["id"],
            files=[str(path) for path in files],
            deferrable=False,
            poll_interval=0.05,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )
    run = run_dag(dag)
    assert task_state(run, "pipeline") == "success" and try_number(run, "pipeline") == 2
    assert dify_emulator.count("POST", RUN_ROUTE) == 1  # the retry found both documents and ran nothing
    stored = dify_emulator.documents(dataset["id"])
    assert sorted(d["name"] for d in stored) == ["refunds.md", "shipping.md"]
    manifest = xcom_value(run, "pipeline")
    assert sorted(r["id"] for r in manifest["indexing"]) == sorted(d["id"] for d in stored)
    assert {r["indexing_status"] for r in manifest["indexing"]} == {"completed"}


@pytest.mark.dify_emulator(indexing_seconds=0.05)
def test_run_pipeline_on_crawled_pages_waits_in_the_worker(dify_emulator: Any) -> None:
    crawler = {"node_id": "crawl", "datasource_type": "website_crawl", "title": "Crawler"}
    dataset = dify_emulator.create_pipeline_dataset("web-kb", datasource_nodes=[crawler])
    with make_dag() as dag:
        DifyRunPipelineOperator(
            task_id="pipeline",
            dataset_id=dataset["id"],
            datasource_type="website_crawl",
            datasource_info_list=[{"url": "https://example.com/faq", "title": "FAQ"}],
            inputs={"depth": 1},
            deferrable=False,
            poll_interval=0.05,
        )
    run = run_dag(dag)
    assert task_state(run, "pipeline") == "success"
    [result] = xcom_value(run, "pipeline")["indexing"]
    assert result["indexing_status"] == "completed"
    [stored] = dify_emulator.documents(dataset["id"])
    assert stored["name"] == "FAQ"


def test_run_pipeline_refuses_a_general_knowledge_base(dify_emulator: Any, tmp_path: Path) -> None:
    dataset = dify_emulator.create_dataset("general-kb")
    with make_dag() as dag:
        DifyRunPipelineOperator(task_id="pipeline", dataset_id=dataset["id"], files=[str(write_files(tmp_path)[0])])
    run = run_dag(dag)
    assert task_state(run, "pipeline") == "failed"
    assert content_writes(dify_emulator) == []


def test_run_pipeline_checks_its_arguments_when_the_dag_is_built() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DifyRunPipelineOperator(task_id="t", dataset_id=DATASET_ID)
    with pytest.raises(ValueError, match="datasource_type"):
        DifyRunPipelineOperator(task_id="t", dataset_id=DATASET_ID, files=["a.md"], datasource_type="website_crawl")
    with pytest.raises(ValueError, match=r"datasource_info_list\[0\]: skip_existing needs"):
        DifyRunPipelineOperator(
            task_id="t", dataset_id=DATASET_ID, datasource_type="website_crawl", datasource_info_list=[{"url": "u"}]
        )


# -- the document and sync operators do not bypass a pipeline --------------------------------------------------------


def test_document_and_sync_operators_refuse_a_pipeline_knowledge_base(dify_emulator: Any) -> None:
    dify_emulator.create_pipeline_dataset("pipeline-kb")
    with make_dag() as dag:
        DifyCreateDocumentOperator(task_id="document", dataset_name="pipeline-kb", name="a.txt", text="hello")
        DifySyncDocumentsOperator(
            task_id="sync",
            dataset_name="pipeline-kb",
            records=[{"id": 1, "text": "hello"}],
            key_field="id",
            text_template="{{ text }}",
        )
    run = run_dag(dag)
    assert task_state(run, "document") == "failed"
    assert task_state(run, "sync") == "failed"
    assert content_writes(dify_emulator) == []


@pytest.mark.parametrize(
    "operator",
    [
        DifyCreateDocumentOperator(task_id="document", dataset_name="pipeline-kb", name="a.txt", text="hello"),
        DifySyncDocumentsOperator(
            task_id="sync", dataset_name="pipeline-kb", records=[{"id": 1}], key_field="id", text_template="x"
        ),
    ],
    ids=["document", "sync"],
)
def test_the_refusal_names_the_pipeline_and_the_operator_to_use(dify_emulator: Any, operator: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    dify_emulator.create_pipeline_dataset("pipeline-kb")
    with pytest.raises(AirflowFailException, match=r"runtime_mode 'rag_pipeline'.*DifyRunPipelineOperator"):
        operator.execute(context())
    assert content_writes(dify_emulator) == []
