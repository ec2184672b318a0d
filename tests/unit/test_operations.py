"""Request descriptions: every Knowledge API operation's method, path, query, body and flags, and its validation."""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.operations import ApiRequest, FileUpload, MultipartBody

DS = "0b3a2d4c-1111-4a5b-8c6d-000000000001"
DOC = "0b3a2d4c-2222-4a5b-8c6d-000000000001"
SEG = "0b3a2d4c-3333-4a5b-8c6d-000000000001"
CHILD = "0b3a2d4c-4444-4a5b-8c6d-000000000001"
FIELD = "0b3a2d4c-5555-4a5b-8c6d-000000000001"


@dataclass
class Expected:
    """What one operation must describe."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json_body: Any = None
    idempotent: bool = True
    rate_limited: bool = False
    alias: tuple[str, str] | None = None
    missing_is_success_on_retry: bool = False
    form_data: dict[str, Any] | None = None
    expect_json: bool = True
    extra_checks: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> FileUpload:
    path = tmp_path_factory.mktemp("upload") / "products.csv"
    path.write_text("sku,name\n1,chair\n")
    return FileUpload.from_path(path)


def _cases(upload: FileUpload) -> dict[str, tuple[ApiRequest, Expected]]:
    """Each operation once, with non-default arguments where it has any."""
    retrieval_model = {"search_method": "keyword_search", "top_k": 2}
    return {
        "create_dataset": (
            ops.create_dataset("kb", description="d", indexing_technique="economy", permission="only_me"),
            Expected(
                "POST",
                "/datasets",
                json_body={"name": "kb", "description": "d", "indexing_technique": "economy", "permission": "only_me"},
                rate_limited=True,
            ),
        ),
        "list_datasets": (
            ops.list_datasets(page=2, limit=50, keyword="kb", include_all=True, tag_ids=["t1", "t2"]),
            Expected(
                "GET",
                "/datasets",
                params=(
                    ("page", "2"),
                    ("limit", "50"),
                    ("keyword", "kb"),
                    ("include_all", "true"),
                    ("tag_ids", "t1"),
                    ("tag_ids", "t2"),
                ),
            ),
        ),
        "get_dataset": (ops.get_dataset(DS), Expected("GET", f"/datasets/{DS}")),
        "update_dataset": (
            ops.update_dataset(DS, name="new", description="x"),
            Expected("PATCH", f"/datasets/{DS}", json_body={"name": "new", "description": "x"}, rate_limited=True),
        ),
        "delete_dataset": (
            ops.delete_dataset(DS),
            Expected("DELETE", f"/datasets/{DS}", rate_limited=True, missing_is_success_on_retry=True),
        ),
        "create_document_by_text": (
            ops.create_document_by_text(
                DS, "intro.txt", "hello", indexing_technique="economy", process_rule={"mode": "automatic"}
            ),
            Expected(
                "POST",
                f"/datasets/{DS}/document/create-by-text",
                json_body={
                    "name": "intro.txt",
                    "text": "hello",
                    "indexing_technique": "economy",
                    "process_rule": {"mode": "automatic"},
                },
                rate_limited=True,
                alias=("POST", f"/datasets/{DS}/document/create_by_text"),
            ),
        ),
        "create_document_by_file": (
            ops.create_document_by_file(DS, upload, indexing_technique="economy", doc_form="text_model"),
            Expected(
                "POST",
                f"/datasets/{DS}/document/create-by-file",
                rate_limited=True,
                alias=("POST", f"/datasets/{DS}/document/create_by_file"),
                form_data={"indexing_technique": "economy", "doc_form": "text_model"},
            ),
        ),
        "update_document_by_text": (
            ops.update_document_by_text(DS, DOC, name="intro.txt", text="new text"),
            Expected(
                "POST",
                f"/datasets/{DS}/documents/{DOC}/update-by-text",
                json_body={"name": "intro.txt", "text": "new text"},
                rate_limited=True,
                alias=("POST", f"/datasets/{DS}/documents/{DOC}/update_by_text"),
            ),
        ),
        "update_document_by_file": (
            ops.update_document_by_file(DS, DOC, upload, process_rule={"mode": "automatic"}),
            Expected(
                "PATCH",
                f"/datasets/{DS}/documents/{DOC}",
                rate_limited=True,
                alias=("POST", f"/datasets/{DS}/documents/{DOC}/update-by-file"),
                form_data={"process_rule": {"mode": "automatic"}},
            ),
        ),
        "list_documents": (
            ops.list_documents(DS, page=3, limit=100, keyword="faq", status="available"),
            Expected(
                "GET",
                f"/datasets/{DS}/documents",
                params=(("page", "3"), ("limit", "100"), ("keyword", "faq"), ("status", "available")),
            ),
        ),
        "get_document": (
            ops.get_document(DS, DOC, metadata="only"),
            Expected("GET", f"/datasets/{DS}/documents/{DOC}", params=(("metadata", "only"),)),
        ),
        "delete_document": (
            ops.delete_document(DS, DOC),
            Expected("DELETE", f"/datasets/{DS}/documents/{DOC}", rate_limited=True, missing_is_success_on_retry=True),
        ),
        "get_indexing_status": (
            ops.get_indexing_status(DS, "20261123194403568155"),
            Expected("GET", f"/datasets/{DS}/documents/20261123194403568155/indexing-status"),
        ),
        "update_document_status": (
            ops.update_document_status(DS, "disable", [DOC, "doc-2"]),
            Expected("PATCH", f"/datasets/{DS}/documents/status/disable", json_body={"document_ids": [DOC, "doc-2"]}),
        ),
        "get_upload_file": (
            ops.get_upload_file(DS, DOC),
            Expected("GET", f"/datasets/{DS}/documents/{DOC}/upload-file"),
        ),
        "get_document_download_url": (
            ops.get_document_download_url(DS, DOC),
            Expected("GET", f"/datasets/{DS}/documents/{DOC}/download", rate_limited=True),
        ),
        "add_segments": (
            ops.add_segments(DS, DOC, [{"content": "a", "keywords": ["k"]}, {"content": "b", "answer": "c"}]),
            Expected(
                "POST",
                f"/datasets/{DS}/documents/{DOC}/segments",
                json_body={"segments": [{"content": "a", "keywords": ["k"]}, {"content": "b", "answer": "c"}]},
                rate_limited=True,
                idempotent=False,
            ),
        ),
        "list_segments": (
            ops.list_segments(DS, DOC, page=1, limit=100, keyword="celery", status=["completed", "error"]),
            Expected(
                "GET",
                f"/datasets/{DS}/documents/{DOC}/segments",
                params=(
                    ("page", "1"),
                    ("limit", "100"),
                    ("keyword", "celery"),
                    ("status", "completed"),
                    ("status", "error"),
                ),
            ),
        ),
        "get_segment": (
            ops.get_segment(DS, DOC, SEG),
            Expected("GET", f"/datasets/{DS}/documents/{DOC}/segments/{SEG}"),
        ),
        "update_segment": (
            ops.update_segment(DS, DOC, SEG, {"content": "x", "enabled": True}),
            Expected(
                "POST",
                f"/datasets/{DS}/documents/{DOC}/segments/{SEG}",
                json_body={"segment": {"content": "x", "enabled": True}},
                rate_limited=True,
            ),
        ),
        "delete_segment": (
            ops.delete_segment(DS, DOC, SEG),
            Expected(
                "DELETE",
                f"/datasets/{DS}/documents/{DOC}/segments/{SEG}",
                rate_limited=True,
                missing_is_success_on_retry=True,
            ),
        ),
        "list_child_chunks": (
            ops.list_child_chunks(DS, DOC, SEG, page=2, limit=10, keyword="k"),
            Expected(
                "GET",
                f"/datasets/{DS}/documents/{DOC}/segments/{SEG}/child_chunks",
                params=(("page", "2"), ("limit", "10"), ("keyword", "k")),
            ),
        ),
        "add_child_chunk": (
            ops.add_child_chunk(DS, DOC, SEG, "child text"),
            Expected(
                "POST",
                f"/datasets/{DS}/documents/{DOC}/segments/{SEG}/child_chunks",
                json_body={"content": "child text"},
                rate_limited=True,
                idempotent=False,
            ),
        ),
        "update_child_chunk": (
            ops.update_child_chunk(DS, DOC, SEG, CHILD, "new"),
            Expected(
                "PATCH",
                f"/datasets/{DS}/documents/{DOC}/segments/{SEG}/child_chunks/{CHILD}",
                json_body={"content": "new"},
                rate_limited=True,
            ),
        ),
        "delete_child_chunk": (
            ops.delete_child_chunk(DS, DOC, SEG, CHILD),
            Expected(
                "DELETE",
                f"/datasets/{DS}/documents/{DOC}/segments/{SEG}/child_chunks/{CHILD}",
                rate_limited=True,
                missing_is_success_on_retry=True,
            ),
        ),
        "retrieve": (
            ops.retrieve(DS, "keyword index", retrieval_model=retrieval_model),
            Expected(
                "POST",
                f"/datasets/{DS}/retrieve",
                json_body={"query": "keyword index", "retrieval_model": retrieval_model},
                rate_limited=True,
                alias=("POST", f"/datasets/{DS}/hit-testing"),
            ),
        ),
        "download_documents_zip": (
            ops.download_documents_zip(DS, [DOC, "doc-2"]),
            Expected(
                "POST",
                f"/datasets/{DS}/documents/download-zip",
                json_body={"document_ids": [DOC, "doc-2"]},
                rate_limited=True,
                expect_json=False,
            ),
        ),
        "upload_pipeline_file": (
            ops.upload_pipeline_file(upload),
            Expected("POST", "/datasets/pipeline/file-upload", idempotent=False, form_data={}),
        ),
        "list_pipeline_datasource_plugins": (
            ops.list_pipeline_datasource_plugins(DS, is_published=False),
            Expected("GET", f"/datasets/{DS}/pipeline/datasource-plugins", params=(("is_published", "false"),)),
        ),
        "run_pipeline_datasource_node": (
            ops.run_pipeline_datasource_node(
                DS, "node-1", inputs={"q": 1}, datasource_type="online_document", credential_id="cred"
            ),
            Expected(
                "POST",
                f"/datasets/{DS}/pipeline/datasource/nodes/node-1/run",
                json_body={
                    "inputs": {"q": 1},
                    "datasource_type": "online_document",
                    "credential_id": "cred",
                    "is_published": True,
                },
                expect_json=False,
            ),
        ),
        "run_pipeline": (
            ops.run_pipeline(
                DS,
                inputs={"lang": "en"},
                datasource_type="website_crawl",
                datasource_info_list=[{"url": "https://example.com", "title": "Example"}],
                start_node_id="node-1",
            ),
            Expected(
                "POST",
                f"/datasets/{DS}/pipeline/run",
                json_body={
                    "inputs": {"lang": "en"},
                    "datasource_type": "website_crawl",
                    "datasource_info_list": [{"url": "https://example.com", "title": "Example"}],
                    "start_node_id": "node-1",
                    "is_published": True,
                    "response_mode": "blocking",
                },
                idempotent=False,
            ),
        ),
        "create_metadata_field": (
            ops.create_metadata_field(DS, "price", "number"),
            Expected(
                "POST", f"/datasets/{DS}/metadata", json_body={"type": "number", "name": "price"}, rate_limited=True
            ),
        ),
        "list_metadata_fields": (ops.list_metadata_fields(DS), Expected("GET", f"/datasets/{DS}/metadata")),
        "update_metadata_field": (
            ops.update_metadata_field(DS, FIELD, "unit_price"),
            Expected("PATCH", f"/datasets/{DS}/metadata/{FIELD}", json_body={"name": "unit_price"}, rate_limited=True),
        ),
        "delete_metadata_field": (
            ops.delete_metadata_field(DS, FIELD),
            Expected("DELETE", f"/datasets/{DS}/metadata/{FIELD}", rate_limited=True, missing_is_success_on_retry=True),
        ),
        "list_built_in_metadata_fields": (
            ops.list_built_in_metadata_fields(DS),
            Expected("GET", f"/datasets/{DS}/metadata/built-in"),
        ),
        "set_built_in_metadata": (
            ops.set_built_in_metadata(DS, False),
            Expected("POST", f"/datasets/{DS}/metadata/built-in/disable", rate_limited=True),
        ),
        "update_documents_metadata": (
            ops.update_documents_metadata(
                DS, [{"document_id": DOC, "metadata_list": [{"id": "m-1", "name": "price", "value": 12.5}]}]
            ),
            Expected(
                "POST",
                f"/datasets/{DS}/documents/metadata",
                json_body={
                    "operation_data": [
                        {"document_id": DOC, "metadata_list": [{"id": "m-1", "name": "price", "value": 12.5}]}
                    ]
                },
                rate_limited=True,
            ),
        ),
        "list_tags": (ops.list_tags(), Expected("GET", "/datasets/tags")),
        "create_tag": (ops.create_tag("finance"), Expected("POST", "/datasets/tags", json_body={"name": "finance"})),
        "update_tag": (
            ops.update_tag("t-1", "fin"),
            Expected("PATCH", "/datasets/tags", json_body={"tag_id": "t-1", "name": "fin"}),
        ),
        "delete_tag": (
            ops.delete_tag("t-1"),
            Expected("DELETE", "/datasets/tags", json_body={"tag_id": "t-1"}, missing_is_success_on_retry=True),
        ),
        "bind_tags": (
            ops.bind_tags(DS, ["t-1", "t-2"]),
            Expected("POST", "/datasets/tags/binding", json_body={"tag_ids": ["t-1", "t-2"], "target_id": DS}),
        ),
        "unbind_tag": (
            ops.unbind_tag(DS, "t-1"),
            Expected("POST", "/datasets/tags/unbinding", json_body={"tag_id": "t-1", "target_id": DS}),
        ),
        "list_dataset_tags": (ops.list_dataset_tags(DS), Expected("GET", f"/datasets/{DS}/tags")),
        "list_models": (
            ops.list_models("rerank"),
            Expected("GET", "/workspaces/current/models/model-types/rerank"),
        ),
    }


def _operation_functions() -> set[str]:
    return {
        name
        for name, function in inspect.getmembers(ops, inspect.isfunction)
        if function.__module__ == ops.__name__
        and not name.startswith("_")
        and inspect.signature(function).return_annotation in ("ApiRequest", ApiRequest)
    }


def test_every_operation_is_described_here(upload: FileUpload) -> None:
    assert set(_cases(upload)) == _operation_functions()


@pytest.mark.parametrize("operation", sorted(_operation_functions()))
def test_request_description(operation: str, upload: FileUpload) -> None:
    request, expected = _cases(upload)[operation]
    assert request.operation == operation
    assert request.method == expected.method
    assert request.path == expected.path
    assert request.params == expected.params
    assert request.idempotent is expected.idempotent
    assert request.rate_limited is expected.rate_limited
    assert request.alias == expected.alias
    assert request.missing_is_success_on_retry is expected.missing_is_success_on_retry
    assert request.expect_json is expected.expect_json
    if expected.form_data is None:
        assert not request.is_multipart
        assert request.json_body == expected.json_body
    else:
        assert request.is_multipart
        assert request.json_body is None
        if expected.form_data:
            assert json.loads(request.form_fields["data"]) == expected.form_data
        else:  # a file part only
            assert not request.form_fields
        assert request.upload == upload


def test_with_alias_swaps_the_route_and_keeps_everything_else() -> None:
    request = ops.create_document_by_text(DS, "a.txt", "text", indexing_technique="economy")
    older = request.with_alias()
    assert (older.method, older.path) == ("POST", f"/datasets/{DS}/document/create_by_text")
    assert older.alias is None
    assert older.json_body == request.json_body
    assert older.rate_limited and older.idempotent
    with pytest.raises(ValueError, match="no alias"):
        ops.get_dataset(DS).with_alias()


def test_create_by_file_without_duplicates_is_not_repeatable(upload: FileUpload) -> None:
    request = ops.create_document_by_file(DS, upload, duplicate=False)
    assert request.idempotent is False
    assert json.loads(request.form_fields["data"]) == {"duplicate": False}


def test_update_by_file_without_a_file_sends_only_settings() -> None:
    request = ops.update_document_by_file(DS, DOC, None, doc_language="English")
    assert request.upload is None
    assert request.is_multipart
    assert json.loads(request.form_fields["data"]) == {"doc_language": "English"}


def test_list_segments_accepts_one_status_as_a_string() -> None:
    assert ("status", "completed") in ops.list_segments(DS, DOC, status="completed").params


def test_defaults_of_paged_lists() -> None:
    assert ops.list_datasets().params == (("page", "1"), ("limit", "20"))
    assert ops.list_documents(DS).params == (("page", "1"), ("limit", "20"))


# -- validation: bad input is refused before anything is sent, naming the argument --------------------------------


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: ops.create_dataset(""), "name"),
        (lambda: ops.create_dataset("x" * 41), "name"),
        (lambda: ops.list_datasets(limit=101), "limit"),
        (lambda: ops.list_datasets(limit=0), "limit"),
        (lambda: ops.list_datasets(limit=True), "limit"),
        (lambda: ops.list_datasets(page=0), "page"),
        (lambda: ops.list_datasets(tag_ids="t-1"), "tag_ids"),
        (lambda: ops.list_documents(DS, limit=500), "limit"),
        (lambda: ops.list_segments(DS, DOC, limit=101), "limit"),
        (lambda: ops.list_child_chunks(DS, DOC, SEG, page=-1), "page"),
        (lambda: ops.get_dataset(""), "dataset_id"),
        (lambda: ops.get_dataset(None), "dataset_id"),
        (lambda: ops.get_document(DS, " "), "document_id"),
        (lambda: ops.get_document(DS, DOC, metadata="bogus"), "metadata"),
        (lambda: ops.get_segment(DS, DOC, ""), "segment_id"),
        (lambda: ops.get_indexing_status(DS, ""), "batch"),
        (lambda: ops.update_dataset(DS), "update_dataset"),
        (lambda: ops.create_document_by_text(DS, "", "text"), "name"),
        (lambda: ops.create_document_by_text(DS, "a.txt", None), "text"),
        (lambda: ops.update_document_by_text(DS, DOC, text="new"), "name"),
        (lambda: ops.update_document_status(DS, "explode", [DOC]), "action"),
        (lambda: ops.update_document_status(DS, "enable", DOC), "document_ids"),
        (lambda: ops.update_document_status(DS, "enable", []), "document_ids"),
        (lambda: ops.update_document_status(DS, "enable", [DOC, ""]), "document_ids[1]"),
        (lambda: ops.add_segments(DS, DOC, []), "segments"),
        (lambda: ops.add_segments(DS, DOC, ["text"]), "segments[0]"),
        (lambda: ops.add_segments(DS, DOC, [{"content": "a"}, {"content": "  "}]), "segments[1].content"),
        (lambda: ops.add_segments(DS, DOC, [{"answer": "a"}]), "segments[0].content"),
        (lambda: ops.update_segment(DS, DOC, SEG, {}), "segment"),
        (lambda: ops.add_child_chunk(DS, DOC, SEG, ""), "content"),
        (lambda: ops.update_child_chunk(DS, DOC, SEG, "", "x"), "child_chunk_id"),
        (lambda: ops.retrieve(DS, ""), "query"),
        (lambda: ops.retrieve(DS, "q" * 251), "query"),
        (lambda: ops.create_metadata_field(DS, "flag", "boolean"), "type"),
        (lambda: ops.create_metadata_field(DS, ""), "name"),
        (lambda: ops.update_metadata_field(DS, "", "x"), "metadata_id"),
        (lambda: ops.update_documents_metadata(DS, []), "operation_data"),
        (lambda: ops.update_documents_metadata(DS, [{"document_id": DOC}]), "operation_data[0]"),
        (lambda: ops.create_tag(""), "name"),
        (lambda: ops.update_tag("", "x"), "tag_id"),
        (lambda: ops.bind_tags(DS, "t-1"), "tag_ids"),
        (lambda: ops.bind_tags(DS, []), "tag_ids"),
        (lambda: ops.unbind_tag("", "t-1"), "dataset_id"),
        (lambda: ops.list_models("embeddings"), "model_type"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(call: Any, argument: str) -> None:
    with pytest.raises(ValueError) as raised:
        call()
    assert str(raised.value).startswith(f"{argument}:"), str(raised.value)


def test_upload_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^file: .*does not exist"):
        FileUpload.from_path(tmp_path / "nope.txt")


def test_upload_of_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^file: .*not a regular file"):
        FileUpload.from_path(tmp_path)


@pytest.mark.parametrize("filename", ["", "   ", "dir/report.txt", "dir\\report.txt", "two\r\nlines.txt"])
def test_upload_with_a_bad_file_name_is_refused(tmp_path: Path, filename: str) -> None:
    path = tmp_path / "report.txt"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"^file: "):
        FileUpload.from_path(path, filename)


def test_upload_of_an_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("x")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the permission check answer as it would for a user
        monkeypatch.setattr(ops.os, "access", lambda *_: False)
    with pytest.raises(ValueError, match=r"^file: .*not readable"):
        FileUpload.from_path(path)


def test_upload_names_and_content_types(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text("a,b\n")
    assert FileUpload.from_path(path) == FileUpload(str(path), "products.csv", "text/csv")
    renamed = FileUpload.from_path(path, "report.pdf")
    assert (renamed.filename, renamed.content_type) == ("report.pdf", "application/pdf")
    assert FileUpload.from_path(path, "data.unknownext").content_type == "application/octet-stream"


# -- the streaming multipart body --------------------------------------------------------------------------------


def _parse_multipart(body: MultipartBody) -> tuple[bytes, list[Any]]:
    raw = b"".join(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + body.content_type.encode() + b"\r\n\r\n" + raw
    )
    return raw, list(message.iter_parts())


def test_multipart_body_holds_the_data_field_and_the_file(tmp_path: Path) -> None:
    content = b"sku,name\n1,chair\n" * 1000 + bytes(range(256))
    path = tmp_path / "products.csv"
    path.write_bytes(content)
    request = ops.create_document_by_file(DS, FileUpload.from_path(path, 'quote"d.csv'), indexing_technique="economy")
    body = request.multipart_body()
    raw, parts = _parse_multipart(body)

    assert len(raw) == len(body)
    assert body.content_type == f"multipart/form-data; boundary={body.boundary}"
    data, file_part = parts
    assert data.get_param("name", header="content-disposition") == "data"
    assert json.loads(data.get_payload(decode=True)) == {"indexing_technique": "economy"}
    assert file_part.get_param("name", header="content-disposition") == "file"
    assert file_part.get_filename() == "quote%22d.csv"
    assert file_part.get_content_type() == "text/csv"
    assert file_part.get_payload(decode=True) == content


def test_multipart_body_can_be_sent_again_for_a_retry(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello" * 100_000)
    body = ops.create_document_by_file(DS, FileUpload.from_path(path)).multipart_body()
    first = b"".join(body)
    assert b"".join(body) == first
    assert all(len(piece) <= 256 * 1024 for piece in body)


def test_multipart_body_without_a_file(tmp_path: Path) -> None:
    body = ops.update_document_by_file(DS, DOC, None, doc_form="text_model").multipart_body()
    raw, parts = _parse_multipart(body)
    assert len(raw) == len(body)
    assert [part.get_param("name", header="content-disposition") for part in parts] == ["data"]


def test_retrieve_by_attachments_needs_no_query() -> None:
    request = ops.retrieve(DS, attachment_ids=["file-1"])
    assert request.json_body == {"attachment_ids": ["file-1"]}
    assert ops.retrieve(DS, "q", attachment_ids=["file-1"]).json_body == {"query": "q", "attachment_ids": ["file-1"]}
    with pytest.raises(ValueError, match=r"^query: "):
        ops.retrieve(DS)
    with pytest.raises(ValueError, match=r"^attachment_ids: "):
        ops.retrieve(DS, attachment_ids=[])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"datasource_type": "ftp"}, "^datasource_type: 'ftp' is not one of"),
        ({"datasource_info_list": []}, "^datasource_info_list: pass a non-empty list"),
        ({"datasource_info_list": [{"name": "a.md"}]}, r"^datasource_info_list\[0\]: a local_file item needs"),
        ({"start_node_id": ""}, "^start_node_id: "),
        ({"inputs": "x=1"}, "^inputs: "),
        ({"response_mode": "async"}, "^response_mode: "),
    ],
)
def test_run_pipeline_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "inputs": {},
        "datasource_type": "local_file",
        "datasource_info_list": [{"reference": "f-1", "name": "a.md"}],
        "start_node_id": "node-1",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        ops.run_pipeline(DS, **arguments)


def test_download_zip_takes_1_to_100_documents() -> None:
    with pytest.raises(ValueError, match=r"^document_ids: pass at least one id"):
        ops.download_documents_zip(DS, [])
    with pytest.raises(ValueError, match=r"^document_ids: Dify zips at most 100"):
        ops.download_documents_zip(DS, [f"d{i}" for i in range(101)])
    assert len(ops.download_documents_zip(DS, [f"d{i}" for i in range(100)]).json_body["document_ids"]) == 100


def test_event_stream_parsing() -> None:
    body = b'event: ping\n\ndata: {"event": "a", "n": 1}\n\n: comment\ndata: line one\ndata: line two\n\n'
    assert ops.parse_event_stream(body) == [{"event": "a", "n": 1}, "line one\nline two"]
    assert ops.parse_event_stream(b"") == []
