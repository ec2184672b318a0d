"""Every DifyHook method: the request it sends (method, URL, query, body, headers) and how it reads Dify's answer.

Response bodies are the real ones recorded from Dify 1.13.2 (tests/unit/data/transcript_bodies.json); the few
routes the recording could not exercise use the shapes of the API reference, marked "reference shape".
"""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from airflow_provider_dify.hooks.dify import DifyHook, default_retrieval_model
from tests.unit.helpers import BASE_URL, BATCH, DATASET_ID, DOCUMENT_ID, SEGMENT_ID, success_body

DS = DATASET_ID
DOC = DOCUMENT_ID
SEG = SEGMENT_ID
CHILD = "5a6c7e58-2f5e-4f0c-9a77-0c1e0e3d1f11"
DOCS = f"/datasets/{DS}/documents"
SEGS = f"{DOCS}/{DOC}/segments"

# Reference shapes (dify-knowledge-api.md) for answers the 1.13.2 recording has no success body for.
CHILD_CHUNK = {"id": CHILD, "segment_id": SEG, "content": "child text", "position": 1, "word_count": 10}
CHILD_CHUNK_PAGE = {"data": [CHILD_CHUNK], "total": 1, "total_pages": 1, "page": 1, "limit": 20}
TAG = {"id": "0f4c6f57-0b39-4e5e-9d0b-8d6f3e0f8a41", "name": "finance", "type": "knowledge", "binding_count": "0"}
UPLOAD_FILE = {
    "id": "975cb809-1edb-4f7d-a72f-0eff56fbd7f0",
    "name": "intro.txt",
    "size": 337,
    "extension": "txt",
    "url": "/files/975cb809/file-preview",
    "download_url": "/files/975cb809/file-preview?as_attachment=true",
    "mime_type": "text/plain",
    "created_by": "2ff48838-dde8-4e94-81ee-17d99be8a30d",
    "created_at": 1795463043.156303,
}
BUILT_IN_FIELDS = {
    "fields": [
        {"name": "document_name", "type": "string"},
        {"name": "uploader", "type": "string"},
        {"name": "upload_date", "type": "time"},
        {"name": "last_update_date", "type": "time"},
        {"name": "source", "type": "string"},
    ]
}
MODELS = {
    "data": [
        {
            "provider": "langgenius/openai/openai",
            "label": {"en_US": "OpenAI"},
            "status": "active",
            "models": [{"model": "text-embedding-3-small", "model_type": "text-embedding", "status": "active"}],
        }
    ]
}
DATASET_TAGS = {"data": [{"id": TAG["id"], "name": "finance"}], "total": 1}
DOWNLOAD = {"url": "http://dify.test/files/975cb809/file-preview?timestamp=1&nonce=n&sign=s&as_attachment=true"}
SUCCESS = {"result": "success"}
# Reference shapes of the knowledge pipeline routes (P1, P2, P4).
PIPELINE_UPLOAD = {
    "id": "8d1f3c52-6c1e-4a8e-9a51-3f0e2b7c9d10",
    "name": "products.csv",
    "size": 18,
    "extension": "csv",
    "mime_type": "text/csv",
    "created_by": "2ff48838-dde8-4e94-81ee-17d99be8a30d",
    "created_at": "2026-11-20T10:00:00",
}
DATASOURCE_NODE = {
    "node_id": "node-1",
    "plugin_id": "langgenius/file",
    "provider_name": "file",
    "datasource_type": "local_file",
    "title": "File",
    "user_input_variables": [],
    "credentials": [],
}
PIPELINE_RUN = {
    "batch": BATCH,
    "dataset": {"id": DS, "name": "kb", "description": "", "chunk_structure": "text_model"},
    "documents": [{"id": DOC, "position": 1, "name": "products.csv", "indexing_status": "waiting", "enabled": True}],
}


@dataclass
class Case:
    """One hook call, the request it must send and the answer it gets."""

    call: Callable[[DifyHook], Any]
    method: str
    path: str
    response: Any = None  # the decoded body Dify answers; None means 204 with an empty body
    params: list[tuple[str, str]] | None = None
    json_body: Any = None
    status: int = 200
    returns: Callable[[Any], Any] = lambda body: body  # what the call returns, from the answer


def _cases(tmp_path: Path) -> dict[str, Case]:
    csv = tmp_path / "products.csv"
    csv.write_text("sku,name\n1,chair\n")
    datasets = success_body("list_datasets")
    name = datasets["data"][0]["name"]
    keyword_search = {"search_method": "keyword_search", "reranking_enable": False, "top_k": 3}
    return {
        "create_dataset": Case(
            lambda h: h.create_dataset(
                name, description="created by an acceptance script", indexing_technique="economy"
            ),
            "POST",
            "/datasets",
            success_body("create_dataset"),
            json_body={"name": name, "description": "created by an acceptance script", "indexing_technique": "economy"},
        ),
        "list_datasets": Case(
            lambda h: h.list_datasets(page=2, limit=5, keyword="acc", include_all=True, tag_ids=["t1"]),
            "GET",
            "/datasets",
            datasets,
            params=[("page", "2"), ("limit", "5"), ("keyword", "acc"), ("include_all", "true"), ("tag_ids", "t1")],
        ),
        "iter_datasets": Case(
            lambda h: list(h.iter_datasets(keyword="acc")),
            "GET",
            "/datasets",
            datasets,
            params=[("page", "1"), ("limit", "100"), ("keyword", "acc")],
            returns=lambda body: body["data"],
        ),
        "find_dataset_by_name": Case(
            lambda h: h.find_dataset_by_name(name),
            "GET",
            "/datasets",
            datasets,
            params=[("page", "1"), ("limit", "100"), ("keyword", name), ("include_all", "true")],
            returns=lambda body: body["data"][0],
        ),
        "get_dataset": Case(lambda h: h.get_dataset(DS), "GET", f"/datasets/{DS}", success_body("get_dataset")),
        "update_dataset": Case(
            lambda h: h.update_dataset(DS, name=f"{name}-renamed", description="updated"),
            "PATCH",
            f"/datasets/{DS}",
            success_body("update_dataset"),
            json_body={"name": f"{name}-renamed", "description": "updated"},
        ),
        "delete_dataset": Case(
            lambda h: h.delete_dataset(DS), "DELETE", f"/datasets/{DS}", None, status=204, returns=lambda _: None
        ),
        "create_document_by_text": Case(
            lambda h: h.create_document_by_text(
                DS, "intro.txt", "Dify is an open-source platform.", indexing_technique="economy"
            ),
            "POST",
            f"/datasets/{DS}/document/create-by-text",
            success_body("create_document_by_text"),
            json_body={
                "name": "intro.txt",
                "text": "Dify is an open-source platform.",
                "indexing_technique": "economy",
            },
        ),
        "create_document_by_file": Case(
            lambda h: h.create_document_by_file(
                DS, csv, indexing_technique="economy", process_rule={"mode": "automatic"}
            ),
            "POST",
            f"/datasets/{DS}/document/create-by-file",
            success_body("create_document_by_file"),
            json_body={"indexing_technique": "economy", "process_rule": {"mode": "automatic"}},  # the data part
        ),
        "update_document_by_text": Case(
            lambda h: h.update_document_by_text(
                DS, DOC, name="intro-v2.txt", text="v2", process_rule={"mode": "automatic"}
            ),
            "POST",
            f"{DOCS}/{DOC}/update-by-text",
            success_body("update_document_by_text"),
            json_body={"name": "intro-v2.txt", "text": "v2", "process_rule": {"mode": "automatic"}},
        ),
        "update_document_by_file": Case(
            lambda h: h.update_document_by_file(DS, DOC, csv, process_rule={"mode": "automatic"}),
            "PATCH",
            f"{DOCS}/{DOC}",
            success_body("update_document_by_file"),
            json_body={"process_rule": {"mode": "automatic"}},  # the data part
        ),
        "list_documents": Case(
            lambda h: h.list_documents(DS, page=1, limit=20, keyword="intro", status="available"),
            "GET",
            DOCS,
            success_body("list_documents"),
            params=[("page", "1"), ("limit", "20"), ("keyword", "intro"), ("status", "available")],
        ),
        "iter_documents": Case(
            lambda h: list(h.iter_documents(DS, status="available")),
            "GET",
            DOCS,
            success_body("list_documents"),
            params=[("page", "1"), ("limit", "100"), ("status", "available")],
            returns=lambda body: body["data"],
        ),
        "find_documents_by_name": Case(
            lambda h: h.find_documents_by_name(DS, "intro.txt"),
            "GET",
            DOCS,
            success_body("list_documents"),
            params=[("page", "1"), ("limit", "100"), ("keyword", "intro.txt")],
            returns=lambda body: [body["data"][0]],
        ),
        "get_document": Case(
            lambda h: h.get_document(DS, DOC, metadata="only"),
            "GET",
            f"{DOCS}/{DOC}",
            success_body("get_document_metadata_only"),
            params=[("metadata", "only")],
        ),
        "delete_document": Case(
            lambda h: h.delete_document(DS, DOC), "DELETE", f"{DOCS}/{DOC}", None, status=204, returns=lambda _: None
        ),
        "get_indexing_status": Case(
            lambda h: h.get_indexing_status(DS, BATCH),
            "GET",
            f"{DOCS}/{BATCH}/indexing-status",
            success_body("indexing_status_completed"),
            returns=lambda body: body["data"],
        ),
        "update_document_status": Case(
            lambda h: h.update_document_status(DS, "disable", [DOC]),
            "PATCH",
            f"{DOCS}/status/disable",
            success_body("update_document_status"),
            json_body={"document_ids": [DOC]},
        ),
        "get_upload_file": Case(lambda h: h.get_upload_file(DS, DOC), "GET", f"{DOCS}/{DOC}/upload-file", UPLOAD_FILE),
        "get_document_download_url": Case(
            lambda h: h.get_document_download_url(DS, DOC),
            "GET",
            f"{DOCS}/{DOC}/download",
            DOWNLOAD,
            returns=lambda body: body["url"],
        ),
        "add_segments": Case(
            lambda h: h.add_segments(
                DS, DOC, [{"content": "Segments can be added manually.", "keywords": ["segments", "manual"]}]
            ),
            "POST",
            SEGS,
            success_body("add_segments"),
            json_body={
                "segments": [{"content": "Segments can be added manually.", "keywords": ["segments", "manual"]}]
            },
            returns=lambda body: body["data"],
        ),
        "list_segments": Case(
            lambda h: h.list_segments(DS, DOC, keyword="celery", status="completed"),
            "GET",
            SEGS,
            success_body("list_segments"),
            params=[("page", "1"), ("limit", "20"), ("keyword", "celery"), ("status", "completed")],
        ),
        "iter_segments": Case(
            lambda h: list(h.iter_segments(DS, DOC)),
            "GET",
            SEGS,
            success_body("list_segments"),
            params=[("page", "1"), ("limit", "100")],
            returns=lambda body: body["data"],
        ),
        "get_segment": Case(
            lambda h: h.get_segment(DS, DOC, SEG),
            "GET",
            f"{SEGS}/{SEG}",
            success_body("get_segment"),
            returns=lambda body: body["data"],
        ),
        "update_segment": Case(
            lambda h: h.update_segment(DS, DOC, SEG, content="updated", keywords=["segments"], enabled=True),
            "POST",
            f"{SEGS}/{SEG}",
            success_body("update_segment"),
            json_body={"segment": {"content": "updated", "keywords": ["segments"], "enabled": True}},
            returns=lambda body: body["data"],
        ),
        "delete_segment": Case(
            lambda h: h.delete_segment(DS, DOC, SEG),
            "DELETE",
            f"{SEGS}/{SEG}",
            None,
            status=204,
            returns=lambda _: None,
        ),
        "list_child_chunks": Case(
            lambda h: h.list_child_chunks(DS, DOC, SEG, page=1, limit=20, keyword="child"),
            "GET",
            f"{SEGS}/{SEG}/child_chunks",
            CHILD_CHUNK_PAGE,
            params=[("page", "1"), ("limit", "20"), ("keyword", "child")],
        ),
        "iter_child_chunks": Case(
            lambda h: list(h.iter_child_chunks(DS, DOC, SEG)),
            "GET",
            f"{SEGS}/{SEG}/child_chunks",
            CHILD_CHUNK_PAGE,
            params=[("page", "1"), ("limit", "100")],
            returns=lambda body: body["data"],
        ),
        "add_child_chunk": Case(
            lambda h: h.add_child_chunk(DS, DOC, SEG, "child text"),
            "POST",
            f"{SEGS}/{SEG}/child_chunks",
            {"data": CHILD_CHUNK},
            json_body={"content": "child text"},
            returns=lambda body: body["data"],
        ),
        "update_child_chunk": Case(
            lambda h: h.update_child_chunk(DS, DOC, SEG, CHILD, "child text"),
            "PATCH",
            f"{SEGS}/{SEG}/child_chunks/{CHILD}",
            {"data": CHILD_CHUNK},
            json_body={"content": "child text"},
            returns=lambda body: body["data"],
        ),
        "delete_child_chunk": Case(
            lambda h: h.delete_child_chunk(DS, DOC, SEG, CHILD),
            "DELETE",
            f"{SEGS}/{SEG}/child_chunks/{CHILD}",
            None,
            status=204,
            returns=lambda _: None,
        ),
        "retrieve": Case(
            lambda h: h.retrieve(DS, "keyword index jieba", retrieval_model=keyword_search),
            "POST",
            f"/datasets/{DS}/retrieve",
            success_body("retrieve_keyword_search"),
            json_body={"query": "keyword index jieba", "retrieval_model": keyword_search},
        ),
        "create_metadata_field": Case(
            lambda h: h.create_metadata_field(DS, "source_sha256"),
            "POST",
            f"/datasets/{DS}/metadata",
            success_body("create_metadata_field"),
            json_body={"type": "string", "name": "source_sha256"},
            status=201,
        ),
        "list_metadata_fields": Case(
            lambda h: h.list_metadata_fields(DS),
            "GET",
            f"/datasets/{DS}/metadata",
            success_body("list_metadata_fields"),
        ),
        "update_metadata_field": Case(
            lambda h: h.update_metadata_field(DS, "e38adde5-cee8-44b1-8c60-726043eff610", "unit_price"),
            "PATCH",
            f"/datasets/{DS}/metadata/e38adde5-cee8-44b1-8c60-726043eff610",
            success_body("update_metadata_field"),
            json_body={"name": "unit_price"},
        ),
        "delete_metadata_field": Case(
            lambda h: h.delete_metadata_field(DS, "e38adde5-cee8-44b1-8c60-726043eff610"),
            "DELETE",
            f"/datasets/{DS}/metadata/e38adde5-cee8-44b1-8c60-726043eff610",
            None,
            status=204,
            returns=lambda _: None,
        ),
        "list_built_in_metadata_fields": Case(
            lambda h: h.list_built_in_metadata_fields(DS),
            "GET",
            f"/datasets/{DS}/metadata/built-in",
            BUILT_IN_FIELDS,
            returns=lambda body: body["fields"],
        ),
        "set_built_in_metadata": Case(
            lambda h: h.set_built_in_metadata(DS, True),
            "POST",
            f"/datasets/{DS}/metadata/built-in/enable",
            success_body("set_built_in_metadata"),
            returns=lambda _: None,
        ),
        "update_documents_metadata": Case(
            lambda h: h.update_documents_metadata(
                DS, [{"document_id": DOC, "metadata_list": [{"id": "m1", "name": "source_sha256", "value": "9f2c"}]}]
            ),
            "POST",
            f"{DOCS}/metadata",
            success_body("update_documents_metadata"),
            json_body={
                "operation_data": [
                    {"document_id": DOC, "metadata_list": [{"id": "m1", "name": "source_sha256", "value": "9f2c"}]}
                ]
            },
            returns=lambda _: None,
        ),
        "list_tags": Case(lambda h: h.list_tags(), "GET", "/datasets/tags", [TAG]),
        "create_tag": Case(
            lambda h: h.create_tag("finance"), "POST", "/datasets/tags", TAG, json_body={"name": "finance"}
        ),
        "update_tag": Case(
            lambda h: h.update_tag(TAG["id"], "finance"),
            "PATCH",
            "/datasets/tags",
            TAG,
            json_body={"tag_id": TAG["id"], "name": "finance"},
        ),
        "delete_tag": Case(
            lambda h: h.delete_tag(TAG["id"]),
            "DELETE",
            "/datasets/tags",
            None,
            json_body={"tag_id": TAG["id"]},
            status=204,
            returns=lambda _: None,
        ),
        "bind_tags": Case(
            lambda h: h.bind_tags(DS, [TAG["id"]]),
            "POST",
            "/datasets/tags/binding",
            None,
            json_body={"tag_ids": [TAG["id"]], "target_id": DS},
            status=204,
            returns=lambda _: None,
        ),
        "unbind_tag": Case(
            lambda h: h.unbind_tag(DS, TAG["id"]),
            "POST",
            "/datasets/tags/unbinding",
            None,
            json_body={"tag_id": TAG["id"], "target_id": DS},
            status=204,
            returns=lambda _: None,
        ),
        "list_dataset_tags": Case(
            lambda h: h.list_dataset_tags(DS),
            "GET",
            f"/datasets/{DS}/tags",
            DATASET_TAGS,
            returns=lambda body: body["data"],
        ),
        "download_documents_zip": Case(
            lambda h: h.download_documents_zip(DS, [DOC]),
            "POST",
            f"{DOCS}/download-zip",
            "zip bytes",  # reference shape: an application/zip body, returned as it is
            json_body={"document_ids": [DOC]},
            returns=lambda body: json.dumps(body).encode(),
        ),
        "upload_pipeline_file": Case(
            lambda h: h.upload_pipeline_file(csv),
            "POST",
            "/datasets/pipeline/file-upload",
            PIPELINE_UPLOAD,
            status=201,
        ),
        "list_pipeline_datasource_plugins": Case(
            lambda h: h.list_pipeline_datasource_plugins(DS),
            "GET",
            f"/datasets/{DS}/pipeline/datasource-plugins",
            [DATASOURCE_NODE],
            params=[("is_published", "true")],
        ),
        "run_pipeline_datasource_node": Case(
            lambda h: h.run_pipeline_datasource_node(
                DS, "node-1", inputs={"url": "u"}, datasource_type="website_crawl"
            ),
            "POST",
            f"/datasets/{DS}/pipeline/datasource/nodes/node-1/run",
            "not an event stream",
            json_body={"inputs": {"url": "u"}, "datasource_type": "website_crawl", "is_published": True},
            returns=lambda body: [],  # the stream's events; parsed in tests/operators/test_pipeline.py
        ),
        "run_pipeline": Case(
            lambda h: h.run_pipeline(
                DS,
                inputs={},
                datasource_type="local_file",
                datasource_info_list=[{"reference": PIPELINE_UPLOAD["id"], "name": "products.csv"}],
                start_node_id="node-1",
            ),
            "POST",
            f"/datasets/{DS}/pipeline/run",
            PIPELINE_RUN,
            json_body={
                "inputs": {},
                "datasource_type": "local_file",
                "datasource_info_list": [{"reference": PIPELINE_UPLOAD["id"], "name": "products.csv"}],
                "start_node_id": "node-1",
                "is_published": True,
                "response_mode": "blocking",
            },
        ),
        "list_models": Case(
            lambda h: h.list_models(),
            "GET",
            "/workspaces/current/models/model-types/text-embedding",
            MODELS,
            returns=lambda body: body["data"],
        ),
    }


#: Public DifyHook members that are not Knowledge API calls.
NOT_API_CALLS = {
    "close",
    "dataset_gone",
    "get_conn",
    "get_connection_form_widgets",
    "get_ui_field_behaviour",
    "rate_limit_part",
    "send",
    "session",
    "settings",
    "test_connection",
}


def _api_methods() -> set[str]:
    return {
        name
        for name, member in vars(DifyHook).items()
        if not name.startswith("_") and name not in NOT_API_CALLS and inspect.isfunction(member)
    }


def test_every_hook_method_is_exercised_here(tmp_path: Path) -> None:
    assert set(_cases(tmp_path)) == _api_methods()


def _multipart_parts(request: Any) -> dict[str, Any]:
    raw = b"".join(request.body)  # the streaming body, re-read from disk
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode() + raw
    )
    assert int(request.headers["Content-Length"]) == len(raw)
    return {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}


@pytest.mark.parametrize("method_name", sorted(_api_methods()))
def test_hook_method(method_name: str, hook: DifyHook, dify_api_key: str, requests_mock: Any, tmp_path: Path) -> None:
    case = _cases(tmp_path)[method_name]
    url = BASE_URL + case.path
    if case.response is None:
        requests_mock.register_uri(
            case.method, url, status_code=case.status, content=b"", headers={"Content-Type": "application/json"}
        )
    else:
        requests_mock.register_uri(case.method, url, status_code=case.status, json=case.response)

    result = case.call(hook)

    assert requests_mock.call_count == 1
    sent = requests_mock.last_request
    assert sent.method == case.method
    assert urlsplit(sent.url).path == urlsplit(url).path
    assert parse_qsl(urlsplit(sent.url).query) == (case.params or [])
    assert sent.headers["Authorization"] == f"Bearer {dify_api_key}"
    assert sent.headers["User-Agent"].startswith("airflow-provider-dify/")
    if sent.headers.get("Content-Type", "").startswith("multipart/form-data"):
        parts = _multipart_parts(sent)
        if "data" in parts:
            assert json.loads(parts["data"].get_payload(decode=True)) == case.json_body
        else:  # the pipeline file upload has only the file part
            assert case.json_body is None
        assert parts["file"].get_filename() == "products.csv"
        assert parts["file"].get_payload(decode=True) == b"sku,name\n1,chair\n"
    elif case.json_body is None:
        assert not sent.body
    else:
        assert sent.headers["Content-Type"] == "application/json"
        assert sent.json() == case.json_body
    assert result == case.returns(case.response)


def test_find_dataset_by_name_wants_the_exact_name(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/datasets", json=success_body("list_datasets"))
    assert hook.find_dataset_by_name("acceptance") is None  # the keyword filter is a substring match


def test_find_documents_by_name_wants_the_exact_name(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}{DOCS}", json=success_body("list_documents"))
    assert hook.find_documents_by_name(DS, "intro") == []


def test_empty_answers_give_empty_results(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/datasets/tags", json=[])
    requests_mock.get(
        f"{BASE_URL}/workspaces/current/models/model-types/text-embedding", json=success_body("list_models")
    )
    requests_mock.get(f"{BASE_URL}/datasets/{DS}/tags", json=success_body("list_dataset_tags"))
    assert hook.list_tags() == []
    assert hook.list_models() == []
    assert hook.list_dataset_tags(DS) == []


def test_an_upload_refused_locally_sends_nothing(hook: DifyHook, requests_mock: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^file: "):
        hook.create_document_by_file(DS, tmp_path / "missing.pdf")
    with pytest.raises(ValueError, match=r"^file: "):
        hook.update_document_by_file(DS, DOC, tmp_path)
    assert requests_mock.call_count == 0


def test_default_retrieval_model_follows_the_indexing_technique() -> None:
    economy = default_retrieval_model(success_body("get_dataset"), top_k=5)
    assert economy == {
        "search_method": "keyword_search",
        "reranking_enable": False,
        "top_k": 5,
        "score_threshold_enabled": False,
    }
    assert default_retrieval_model({"indexing_technique": "high_quality"})["search_method"] == "semantic_search"


def test_connection_form(hook: DifyHook) -> None:
    behaviour = DifyHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "API base URL", "password": "API key"}
    assert "login" in behaviour["hidden_fields"]
    widgets = DifyHook.get_connection_form_widgets()
    assert isinstance(widgets, dict)  # empty on Airflow 3 (no Flask form stack), one per extra on Airflow 2
    assert not widgets or "requests_per_minute" in widgets


def test_session_is_configured_once_and_closed(hook: DifyHook, requests_mock: Any) -> None:
    session = hook.get_conn()
    assert hook.session is session
    assert session.headers["Accept"] == "application/json"
    hook.close()
    assert hook.get_conn() is not session
