"""Bad arguments fail with a message naming the argument: when the DAG is built, or after templating, and
always before any request is sent (requests-mock registers no URL, so any request would fail the test)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator, DifyDeleteDatasetOperator
from airflow_provider_dify.operators.documents import (
    DifyCreateDocumentOperator,
    DifyDeleteDocumentOperator,
    DifyUpdateDocumentOperator,
)
from airflow_provider_dify.operators.metadata import DifyUpdateDocumentMetadataOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator
from tests.operators.helpers import context
from tests.unit.helpers import set_dify_connection

DS = {"dataset_id": "96d82e49-408d-46ea-b2ac-169fd6a21cc3"}
DOC = {**DS, "document_id": "bc33cd8c-dab8-459d-8b62-36a9f08ecc72"}

BAD_ARGUMENTS: list[tuple[type, dict[str, Any], str]] = [
    (DifyCreateDatasetOperator, {"name": ""}, "name"),
    (DifyCreateDatasetOperator, {"name": "x" * 41}, "name"),
    (DifyCreateDatasetOperator, {"name": "kb", "indexing_technique": "fast"}, "indexing_technique"),
    (DifyCreateDatasetOperator, {"name": "kb", "permission": "everyone"}, "permission"),
    (DifyCreateDatasetOperator, {"name": "kb", "if_exists": "replace"}, "if_exists"),
    (DifyCreateDatasetOperator, {"name": "kb", "retrieval_model": {"search_method": "magic"}}, "search_method"),
    (DifyCreateDatasetOperator, {"name": "kb", "embedding_model_provider": "openai"}, "embedding_model"),
    (DifyDeleteDatasetOperator, {}, "dataset_id or dataset_name"),
    (DifyDeleteDatasetOperator, {"dataset_id": "a", "dataset_name": "b"}, "dataset_id or dataset_name"),
    (DifyCreateDocumentOperator, {**DS, "name": "a.txt"}, "text or file"),
    (DifyCreateDocumentOperator, {**DS, "name": "a.txt", "text": "t", "file": "/tmp/a.txt"}, "text or file"),
    (DifyCreateDocumentOperator, {**DS, "name": "a.txt", "text": "   "}, "text"),
    (DifyCreateDocumentOperator, {**DS, "text": "t"}, "name"),
    (DifyCreateDocumentOperator, {**DS, "name": " ", "text": "t"}, "name"),
    (DifyCreateDocumentOperator, {**DS, "name": "a\nb", "text": "t"}, "name"),
    (DifyCreateDocumentOperator, {**DS, "name": "report", "file": "/tmp/report"}, "name"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "on_existing": "replace"}, "on_existing"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "indexing_technique": "x"}, "indexing_technique"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "doc_form": "table"}, "doc_form"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "process_rule": {"mode": "smart"}}, "process_rule"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "process_rule": {"mode": "custom"}}, "rules"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "metadata": ["x"]}, "metadata"),
    (
        DifyCreateDocumentOperator,
        {**DS, "name": "a", "text": "t", "metadata": {"airflow_content_hash": "1"}},
        "metadata",
    ),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "metadata": {"k": [1]}}, "metadata"),
    (DifyCreateDocumentOperator, {**DS, "name": "a", "text": "t", "poll_interval": -1}, "poll_interval"),
    (DifyCreateDocumentOperator, {"name": "a", "text": "t"}, "dataset_id or dataset_name"),
    (DifyUpdateDocumentOperator, {**DS, "text": "t"}, "document_id or document_name"),
    (DifyDeleteDocumentOperator, {**DS, "document_id": "a", "document_name": "b"}, "document_id or document_name"),
    (DifyAddSegmentsOperator, {**DOC, "segments": []}, "segments"),
    (DifyAddSegmentsOperator, {**DOC, "segments": {"content": "a"}}, "segments"),
    (DifyAddSegmentsOperator, {**DOC, "segments": ["a"]}, "segments[0]"),
    (DifyAddSegmentsOperator, {**DOC, "segments": [{"content": "a"}, {"content": " "}]}, "segments[1]['content']"),
    (DifyAddSegmentsOperator, {**DOC, "segments": [{"contents": "a"}]}, "segments[0]"),
    (DifyAddSegmentsOperator, {**DOC, "segments": [{"content": "a", "keywords": "a,b"}]}, "segments[0]['keywords']"),
    (DifyAddSegmentsOperator, {**DOC, "segments": [{"content": "a", "child_chunks": []}]}, "child_chunks"),
    (DifyAddSegmentsOperator, {**DOC, "segments": [{"content": "a"}], "batch_size": 0}, "batch_size"),
    (DifyRetrieveOperator, {**DS, "query": ""}, "query"),
    (DifyRetrieveOperator, {**DS, "query": "q" * 251}, "query"),
    (DifyRetrieveOperator, {**DS, "query": "q", "top_k": 0}, "top_k"),
    (
        DifyRetrieveOperator,
        {**DS, "query": "q", "metadata_filter": [{"name": "a", "comparison_operator": "~"}]},
        "comparison_operator",
    ),
    (
        DifyRetrieveOperator,
        {**DS, "query": "q", "metadata_filter": [{"name": "a", "comparison_operator": "is"}]},
        "value",
    ),
    (DifyUpdateDocumentMetadataOperator, {**DOC, "metadata": {}}, "metadata"),
    (DifyUpdateDocumentMetadataOperator, {**DOC, "metadata": {"": 1}}, "metadata"),
]


@pytest.mark.parametrize(("operator_class", "arguments", "named"), BAD_ARGUMENTS)
def test_bad_argument_fails_when_the_dag_is_built(operator_class: type, arguments: dict, named: str) -> None:
    with pytest.raises(ValueError) as raised:
        operator_class(task_id="t", **arguments)
    argument = str(raised.value).split(": ", 1)[0]  # messages start with the argument at fault
    assert named in argument, str(raised.value)


def test_templated_values_are_checked_only_after_rendering(requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    set_dify_connection(monkeypatch)
    operator = DifyAddSegmentsOperator(task_id="t", **DOC, segments="{{ params.chunks }}", batch_size="{{ params.n }}")
    operator.segments = "[{'content': 'ok'}, {'content': ''}]"  # what Jinja rendered
    operator.batch_size = "10"
    with pytest.raises(AirflowFailException, match=r"segments\[1\]\['content'\]"):
        operator.execute(context())
    assert requests_mock.request_history == []

    create = DifyCreateDocumentOperator(task_id="c", **DS, name="{{ params.name }}", text="t", on_existing="{{ x }}")
    create.on_existing = "overwrite"
    with pytest.raises(AirflowFailException, match="on_existing"):
        create.execute(context())
    assert requests_mock.request_history == []


def test_rendered_lists_are_parsed_back(requests_mock: Any) -> None:
    operator = DifyAddSegmentsOperator(task_id="t", **DOC, segments='[{"content": "a", "keywords": ["x"]}]')
    chunks, batch_size = operator._check(build=False)
    assert chunks == [{"content": "a", "keywords": ["x"]}] and batch_size == 100


def test_missing_local_file_fails_before_any_request(requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    set_dify_connection(monkeypatch)
    requests_mock.get(
        f"http://dify.test/v1/datasets/{DS['dataset_id']}",
        json={"id": DS["dataset_id"], "name": "kb", "indexing_technique": "economy", "doc_form": "text_model"},
    )
    operator = DifyCreateDocumentOperator(task_id="c", **DS, file="/nonexistent/dir/report.md")
    with pytest.raises(AirflowFailException, match=r"file: '/nonexistent/dir/report\.md' does not exist"):
        operator.execute(context())
    assert [request.method for request in requests_mock.request_history] == ["GET"]


def test_all_user_arguments_are_template_fields() -> None:
    expected = {
        DifyCreateDatasetOperator: {"name", "description", "indexing_technique", "permission", "retrieval_model"},
        DifyCreateDocumentOperator: {"dataset_id", "dataset_name", "name", "text", "file", "metadata", "process_rule"},
        DifyUpdateDocumentOperator: {"document_id", "document_name", "text", "file", "metadata"},
        DifyAddSegmentsOperator: {"dataset_id", "document_id", "document_name", "segments", "batch_size"},
        DifyRetrieveOperator: {"query", "retrieval_model", "metadata_filter", "top_k"},
        DifyUpdateDocumentMetadataOperator: {"document_id", "document_name", "metadata"},
        DifyDeleteDocumentOperator: {"dataset_id", "dataset_name", "document_id", "document_name"},
        DifyDeleteDatasetOperator: {"dataset_id", "dataset_name"},
    }
    for operator_class, fields in expected.items():
        assert fields <= set(operator_class.template_fields), operator_class.__name__
