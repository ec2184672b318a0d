"""
The emulator's route table (Flask-style rules, as Dify registers them) and one handler per operation.

Handlers receive a :class:`Ctx` (request, state, the dataset of the path, the time) with the state lock held
and return a :class:`Response`; errors are raised as :class:`~airflow_provider_dify.testing.errors.ApiError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import io
import json
import re
import secrets
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_dify.testing.errors import (
    ApiError,
    F,
    FieldError,
    invalid_param,
    not_found,
    validate,
    validation_errors,
    validation_message,
)
from airflow_provider_dify.testing.exchange import Ctx, Response, no_content, ok
from airflow_provider_dify.testing.interference import page_window
from airflow_provider_dify.testing.models import BUILT_IN_FIELDS, Dataset, Document
from airflow_provider_dify.testing.multipart import Part
from airflow_provider_dify.testing.state import DEFAULT_EMBEDDING_MODEL
from airflow_provider_dify.testing.views import (
    child_chunk_view,
    dataset_view,
    document_detail_view,
    document_view,
    indexing_status_view,
    retrieval_record,
    segment_status,
    segment_view,
)

if TYPE_CHECKING:
    pass

# --------------------------------------------------------------------------------------------------
# payload models
# --------------------------------------------------------------------------------------------------

_NAME = F("name", "str", required=True, nullable=False)
_RETRIEVAL_FIELDS = (
    F(
        "search_method",
        required=True,
        nullable=False,
        choices=("semantic_search", "full_text_search", "hybrid_search", "keyword_search"),
    ),
    F("reranking_enable", "bool", required=True, nullable=False),
    F("reranking_model", "dict"),
    F("reranking_mode", "str"),
    F("top_k", "int", required=True, nullable=False),
    F("score_threshold_enabled", "bool", required=True, nullable=False),
    F("score_threshold", "float"),
    F("weights", "dict"),
    F(
        "metadata_filtering_conditions",
        "model",
        fields=(
            F("logical_operator", choices=("and", "or"), default="and"),
            F(
                "conditions",
                "model_list",
                fields=(
                    F("name", "str", required=True, nullable=False),
                    F("comparison_operator", "str", required=True, nullable=False),
                    F("value", "any"),
                ),
            ),
        ),
    ),
)
_RETRIEVAL = F("retrieval_model", "model", fields=_RETRIEVAL_FIELDS)
_TECHNIQUE = F("indexing_technique", choices=("high_quality", "economy"))
_DOC_FORM = F("doc_form", choices=("text_model", "hierarchical_model", "qa_model"), default="text_model")

DATASET_CREATE = (
    F("name", "str", required=True, nullable=False, min_len=1, max_len=40),
    F("description", "str", max_len=400, default=""),
    _TECHNIQUE,
    F("permission", choices=("only_me", "all_team_members", "partial_members"), default="only_me"),
    F("provider", choices=("vendor", "external"), default="vendor"),
    F("external_knowledge_api_id", "str"),
    F("external_knowledge_id", "str"),
    F("embedding_model", "str"),
    F("embedding_model_provider", "str"),
    _RETRIEVAL,
    F("summary_index_setting", "dict"),
)
DATASET_UPDATE = (
    F("name", "str", min_len=1, max_len=40),
    F("description", "str", max_len=400),
    _TECHNIQUE,
    F("permission", choices=("only_me", "all_team_members", "partial_members")),
    F("embedding_model", "str"),
    F("embedding_model_provider", "str"),
    _RETRIEVAL,
    F("partial_member_list", "list"),
    F("external_retrieval_model", "dict"),
    F("external_knowledge_id", "str"),
    F("external_knowledge_api_id", "str"),
)
DOCUMENT_TEXT_CREATE = (
    _NAME,
    F("text", "str", required=True, nullable=False),
    F("process_rule", "dict"),
    F("original_document_id", "str"),
    _DOC_FORM,
    F("doc_language", "str", default="English"),
    _TECHNIQUE,
    _RETRIEVAL,
    F("embedding_model", "str"),
    F("embedding_model_provider", "str"),
)
DOCUMENT_TEXT_UPDATE = (
    F("name", "str"),
    F("text", "str"),
    F("process_rule", "dict"),
    _DOC_FORM,
    F("doc_language", "str", default="English"),
    _RETRIEVAL,
)
SEGMENT_CREATE = (
    F(
        "segments",
        "model_list",
        fields=(
            F("content", "str", required=True, nullable=False),
            F("answer", "str"),
            F("keywords", "str_list"),
            F("attachment_ids", "str_list"),
        ),
    ),
)
SEGMENT_CREATE_NEWEST = (dataclasses.replace(SEGMENT_CREATE[0], min_len=1),)
SEGMENT_UPDATE = (
    F(
        "segment",
        "model",
        required=True,
        nullable=False,
        fields=(
            F("content", "str"),
            F("answer", "str"),
            F("keywords", "str_list"),
            F("enabled", "bool"),
            F("regenerate_child_chunks", "bool", default=False),
            F("attachment_ids", "str_list"),
            F("summary", "str"),
        ),
    ),
)
CHILD_CHUNK = (F("content", "str", required=True, nullable=False),)
HIT_TESTING = (
    F("query", "str"),
    _RETRIEVAL,
    F("external_retrieval_model", "dict"),
    F("attachment_ids", "str_list"),
)
HIT_TESTING_QUERY = (dataclasses.replace(HIT_TESTING[0], required=True), *HIT_TESTING[1:])
METADATA_CREATE = (
    F("type", required=True, nullable=False, choices=("string", "number", "time")),
    _NAME,
)
METADATA_UPDATE = (_NAME,)
DOCUMENT_METADATA = (
    F(
        "operation_data",
        "model_list",
        required=True,
        nullable=False,
        fields=(
            F("document_id", "str", required=True, nullable=False),
            F(
                "metadata_list",
                "model_list",
                required=True,
                nullable=False,
                fields=(
                    F("id", "str", required=True, nullable=False),
                    F("name", "str", required=True, nullable=False),
                    F("value", "any"),
                ),
            ),
            F("partial_update", "bool", default=False),
        ),
    ),
)
DOCUMENT_IDS = (F("document_ids", "str_list", default=list),)
DOWNLOAD_ZIP = (F("document_ids", "str_list", required=True, nullable=False, min_len=1, max_len=100),)
TAG_CREATE = (F("name", "str", required=True, nullable=False, min_len=1, max_len=50),)
TAG_UPDATE = (
    F("name", "str", required=True, nullable=False, min_len=1, max_len=50),
    F("tag_id", "str", required=True, nullable=False),
)
TAG_DELETE = (F("tag_id", "str", required=True, nullable=False),)
TAG_BINDING = (
    F("tag_ids", "str_list", required=True, nullable=False, min_len=1),
    F("target_id", "str", required=True, nullable=False),
)
TAG_UNBINDING_113 = (
    F("tag_id", "str", required=True, nullable=False),
    F("target_id", "str", required=True, nullable=False),
)
TAG_UNBINDING = (
    F("tag_ids", "str_list"),
    F("tag_id", "str"),
    F("target_id", "str", required=True, nullable=False),
)

# --------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------


def _dataset_body(ctx: Ctx, ds: Dataset, variant: str) -> dict[str, Any]:
    return dataset_view(
        ds,
        variant=variant,
        counts=ctx.state.dataset_counts(ds),
        tags=ctx.state.dataset_tags(ds),
        newest=ctx.newest,
    )


def list_datasets(ctx: Ctx) -> Response:
    """``GET /datasets``: ``has_more`` is page*limit < total; ``limit`` is echoed as sent."""
    req = ctx.req
    page = req.int_arg("page", 1)
    limit = req.int_arg("limit", 20)
    per_page = min(max(limit, 1), 100)
    include_all = (req.arg("include_all") or "false").lower() == "true"
    found = ctx.state.list_datasets(req.arg("keyword"), req.query.get("tag_ids", []), include_all)
    start = (max(page, 1) - 1) * per_page
    data = [_dataset_body(ctx, ds, "list") for ds in found[start : start + per_page]]
    return ok(
        {
            "data": data,
            "has_more": page * limit < len(found),
            "limit": limit,
            "total": len(found),
            "page": page,
        }
    )


def create_dataset(ctx: Ctx) -> Response:
    """``POST /datasets``."""
    values = validate("DatasetCreatePayload", DATASET_CREATE, ctx.req.payload())
    ds = ctx.state.create_dataset(values, ctx.now)
    return ok(_dataset_body(ctx, ds, "create"))


def get_dataset(ctx: Ctx) -> Response:
    """``GET /datasets/{id}`` (economy datasets report ``keyword_search`` here)."""
    return ok(_dataset_body(ctx, ctx.dataset, "get"))


def update_dataset(ctx: Ctx) -> Response:
    """``PATCH /datasets/{id}``: only the keys sent change."""
    payload = ctx.req.payload()
    values = validate("DatasetUpdatePayload", DATASET_UPDATE, payload)
    present = set(payload) if isinstance(payload, dict) else set()
    ds = ctx.state.update_dataset(ctx.dataset, values, present, ctx.now)
    return ok(_dataset_body(ctx, ds, "patch"))


def delete_dataset(ctx: Ctx) -> Response:
    """``DELETE /datasets/{id}``."""
    ctx.state.delete_dataset(ctx.dataset)
    return no_content()


# --------------------------------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------------------------------


def _document_answer(ctx: Ctx, doc: Document, batch: str) -> Response:
    return ok({"document": document_view(ctx.dataset, doc, ctx.now, newest=ctx.newest), "batch": batch})


def create_by_text(ctx: Ctx) -> Response:
    """``POST /document/create-by-text`` (and ``create_by_text``)."""
    values = validate("DocumentTextCreatePayload", DOCUMENT_TEXT_CREATE, ctx.req.payload())
    doc, batch = ctx.state.create_text_document(ctx.dataset, values, ctx.now)
    return _document_answer(ctx, doc, batch)


def _form_data(ctx: Ctx) -> dict[str, Any]:
    for part in ctx.req.parts or []:
        if part.filename is None and part.name == "data":
            try:
                data = json.loads(part.text)
            except ValueError as exc:
                raise invalid_param(str(exc)) from exc
            if not isinstance(data, dict):
                raise invalid_param("data must be a JSON object")
            return data
    return {}


def _file_part(ctx: Ctx, *, required: bool) -> Part | None:
    files = [part for part in ctx.req.parts or [] if part.filename is not None]
    if not any(part.name == "file" for part in files):
        if required or files:
            raise ApiError(400, "no_file_uploaded", "Please upload your file.")
        return None
    if len(files) > 1:
        raise ApiError(400, "too_many_files", "Only one file is allowed.")
    part = files[0]
    if not part.filename:
        raise ApiError(400, "filename_not_exists_error", "The specified filename does not exist.")
    return part


def create_by_file(ctx: Ctx) -> Response:
    """``POST /document/create-by-file`` (and ``create_by_file``): multipart ``file`` + ``data``."""
    values = _form_data(ctx)
    part = _file_part(ctx, required=True)
    assert part is not None and part.filename is not None
    doc, batch = ctx.state.create_file_document(
        ctx.dataset, values, part.filename, part.data, part.size, ctx.now
    )
    return _document_answer(ctx, doc, batch)


def update_by_text(ctx: Ctx) -> Response:
    """``POST /documents/{id}/update-by-text`` (and ``update_by_text``)."""
    values = validate("DocumentTextUpdate", DOCUMENT_TEXT_UPDATE, ctx.req.payload())
    doc, batch = ctx.state.update_text_document(ctx.dataset, ctx.doc(), values, ctx.now)
    return _document_answer(ctx, doc, batch)


def update_by_file(ctx: Ctx) -> Response:
    """``PATCH /documents/{id}`` (1.15+) and ``POST /documents/{id}/update-by-file`` / ``update_by_file``."""
    doc = ctx.doc()
    values = _form_data(ctx)
    part = _file_part(ctx, required=False)
    file = (part.filename or "", part.data, part.size) if part is not None else None
    doc, batch = ctx.state.update_file_document(ctx.dataset, doc, values, file, ctx.now)
    return _document_answer(ctx, doc, batch)


def list_documents(ctx: Ctx) -> Response:
    """``GET /documents``: newest first, ``has_more`` means "this page is full", ``limit`` echoed."""
    req = ctx.req
    page = req.int_arg("page", 1)
    limit = req.int_arg("limit", 20)
    per_page = min(max(limit, 1), 100)
    docs = ctx.state.list_documents(ctx.dataset, req.arg("keyword"), req.arg("status"), ctx.now)
    start = (max(page, 1) - 1) * per_page
    data = [
        document_view(ctx.dataset, doc, ctx.now, newest=ctx.newest) for doc in page_window(ctx, docs, start, per_page)
    ]
    return ok(
        {"data": data, "has_more": len(data) >= limit, "limit": limit, "total": len(docs), "page": page}
    )


def get_document(ctx: Ctx) -> Response:
    """``GET /documents/{id}`` with ``metadata`` = ``all`` | ``only`` | ``without``."""
    metadata = ctx.req.arg("metadata", "all") or "all"
    if metadata not in ("all", "only", "without"):
        raise ApiError(400, "invalid_metadata", f"Invalid metadata value: {metadata}")
    return ok(document_detail_view(ctx.dataset, ctx.doc(), ctx.now, metadata))


def delete_document(ctx: Ctx) -> Response:
    """``DELETE /documents/{id}``."""
    ctx.state.delete_document(ctx.dataset, ctx.req.params["document_id"], ctx.now)
    return no_content()


def indexing_status(ctx: Ctx) -> Response:
    """``GET /documents/{batch}/indexing-status``."""
    docs = ctx.state.batch_documents(ctx.dataset, ctx.req.params["batch"])
    return ok({"data": [indexing_status_view(doc, ctx.now) for doc in docs]})


def document_status(ctx: Ctx) -> Response:
    """``PATCH /documents/status/{action}``."""
    action = ctx.req.params["action"]
    values = validate("DocumentStatusPayload", DOCUMENT_IDS, ctx.req.payload())
    ctx.state.change_status(ctx.dataset, action, values["document_ids"] or [], ctx.now)
    return ok({"result": "success"})


def _file_url(ctx: Ctx, file_id: str, *, attachment: bool) -> str:
    base = ctx.base_url[: -len("/v1")] if ctx.base_url.endswith("/v1") else ctx.base_url
    nonce = secrets.token_hex(16)
    sign = secrets.token_urlsafe(24)
    url = f"{base}/files/{file_id}/file-preview?timestamp={int(ctx.now)}&nonce={nonce}&sign={quote(sign)}"
    return url + ("&as_attachment=true" if attachment else "")


def download_document(ctx: Ctx) -> Response:
    """``GET /documents/{id}/download``: a signed URL of the original file."""
    doc = ctx.doc()
    return ok({"url": _file_url(ctx, doc.upload_file.id, attachment=True)})


def upload_file_info(ctx: Ctx) -> Response:
    """``GET /documents/{id}/upload-file`` (legacy route; absent on the 1.13 emulation)."""
    doc = ctx.doc()
    upload = doc.upload_file
    return ok(
        {
            "id": upload.id,
            "name": upload.name,
            "size": upload.size,
            "extension": upload.extension,
            "url": _file_url(ctx, upload.id, attachment=False),
            "download_url": _file_url(ctx, upload.id, attachment=True),
            "mime_type": upload.mime_type,
            "created_by": upload.created_by,
            "created_at": upload.created_at,
        }
    )


def download_zip(ctx: Ctx) -> Response:
    """``POST /documents/download-zip``: the original files in one ZIP (duplicate names get " (n)")."""
    values = validate("DocumentBatchDownloadZipPayload", DOWNLOAD_ZIP, ctx.req.payload())
    docs = [ctx.state.get_document(ctx.dataset, str(doc_id)) for doc_id in values["document_ids"]]
    buffer = io.BytesIO()
    used: dict[str, int] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for doc in docs:
            name = doc.upload_file.name
            if name in used:
                used[name] += 1
                stem, dot, ext = name.rpartition(".")
                name = f"{stem} ({used[name]}){dot}{ext}" if dot else f"{name} ({used[name]})"
            else:
                used[name] = 0
            archive.writestr(name, doc.upload_file.data)
    headers = {"Content-Disposition": 'attachment; filename="documents.zip"'}
    return Response(200, buffer.getvalue(), content_type="application/zip", headers=headers)


def file_preview(ctx: Ctx) -> Response:
    """``GET /files/{file_id}/file-preview``: the bytes behind a signed download URL."""
    upload = ctx.state.files.get(ctx.req.params["file_id"])
    if upload is None:
        raise not_found("File not found")
    headers = {}
    if (ctx.req.arg("as_attachment") or "").lower() == "true":
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(upload.name)}"
    return Response(200, upload.data, content_type=upload.mime_type, headers=headers)


# --------------------------------------------------------------------------------------------------
# segments and child chunks
# --------------------------------------------------------------------------------------------------


def _ready_document(ctx: Ctx) -> Document:
    doc = ctx.doc()
    if doc.indexing_status != "completed":
        raise not_found("Document is not completed.")
    if not doc.enabled:
        raise not_found("Document is disabled.")
    return doc


def add_segments(ctx: Ctx) -> Response:
    """``POST /documents/{id}/segments``: the ``{"error": ...}`` body for schema failures."""
    doc = _ready_document(ctx)
    data = ctx.req.json(silent=True)
    if not isinstance(data, dict) or data.get("segments") is None:
        raise ApiError(400, "", "", body={"error": "Segments is required"})
    # 1.16.1 refuses an empty list in the payload model (min_length 1); the 1.13 mode keeps its own answer.
    specs = SEGMENT_CREATE_NEWEST if ctx.newest else SEGMENT_CREATE
    values, message = validation_errors("SegmentCreatePayload", specs, data)
    if message:
        raise ApiError(400, "", message, body={"error": message})
    if not values["segments"]:
        raise ApiError(400, "", "", body={"error": "Segments is required"})
    created = ctx.state.add_segments(ctx.dataset, doc, values["segments"], ctx.now)
    return ok({"data": [segment_view(seg, doc, ctx.now) for seg in created], "doc_form": doc.doc_form})


def list_segments(ctx: Ctx) -> Response:
    """``GET /documents/{id}/segments`` with ``keyword``, ``status`` (repeatable), ``page`` and ``limit``."""
    doc = ctx.doc()
    req = ctx.req
    page = req.int_arg("page", 1)
    limit = min(max(req.int_arg("limit", 20), 1), 100)
    segments = sorted(doc.segments.values(), key=lambda s: s.position)
    statuses = [s for value in req.query.get("status", []) for s in value.split(",") if s]
    keyword = req.arg("keyword")
    if statuses:
        segments = [s for s in segments if segment_status(s, doc, ctx.now) in statuses]
    if keyword:
        needle = keyword.lower()
        segments = [s for s in segments if needle in s.content.lower()]
    start = (max(page, 1) - 1) * limit
    data = [segment_view(seg, doc, ctx.now) for seg in page_window(ctx, segments, start, limit)]
    return ok(
        {
            "data": data,
            "doc_form": doc.doc_form,
            "total": len(segments),
            "has_more": len(data) >= limit,
            "limit": limit,
            "page": page,
        }
    )


def get_segment(ctx: Ctx) -> Response:
    """``GET /segments/{id}``."""
    doc = ctx.doc()
    seg = ctx.state.get_segment(doc, ctx.req.params["segment_id"])
    return ok({"data": segment_view(seg, doc, ctx.now), "doc_form": doc.doc_form})


def update_segment(ctx: Ctx) -> Response:
    """``POST /segments/{id}`` (an update, not a create)."""
    doc = ctx.doc()
    seg = ctx.state.get_segment(doc, ctx.req.params["segment_id"])
    values = validate("SegmentUpdatePayload", SEGMENT_UPDATE, ctx.req.payload())
    seg = ctx.state.update_segment(ctx.dataset, doc, seg, values["segment"], ctx.now)
    return ok({"data": segment_view(seg, doc, ctx.now), "doc_form": doc.doc_form})


def delete_segment(ctx: Ctx) -> Response:
    """``DELETE /segments/{id}``."""
    doc = ctx.doc()
    seg = ctx.state.get_segment(doc, ctx.req.params["segment_id"])
    ctx.state.delete_segment(ctx.dataset, doc, seg)
    return no_content()


def _segment(ctx: Ctx) -> Any:
    doc = ctx.doc()
    return ctx.state.get_segment(doc, ctx.req.params["segment_id"])


def list_child_chunks(ctx: Ctx) -> Response:
    """``GET /segments/{id}/child_chunks``."""
    seg = _segment(ctx)
    page = ctx.req.int_arg("page", 1)
    limit = min(max(ctx.req.int_arg("limit", 20), 1), 100)
    chunks = sorted(seg.child_chunks.values(), key=lambda c: c.position)
    keyword = ctx.req.arg("keyword")
    if keyword:
        chunks = [c for c in chunks if keyword.lower() in c.content.lower()]
    start = (max(page, 1) - 1) * limit
    total = len(chunks)
    return ok(
        {
            "data": [child_chunk_view(c) for c in page_window(ctx, chunks, start, limit)],
            "total": total,
            "total_pages": (total + limit - 1) // limit,
            "page": page,
            "limit": limit,
        }
    )


def add_child_chunk(ctx: Ctx) -> Response:
    """``POST /segments/{id}/child_chunks``."""
    seg = _segment(ctx)
    values = validate("ChildChunkCreatePayload", CHILD_CHUNK, ctx.req.payload())
    chunk = ctx.state.add_child_chunk(seg, values["content"], ctx.now)
    return ok({"data": child_chunk_view(chunk)})


def update_child_chunk(ctx: Ctx) -> Response:
    """``PATCH /segments/{id}/child_chunks/{child_chunk_id}``."""
    seg = _segment(ctx)
    chunk = ctx.state.get_child_chunk(seg, ctx.req.params["child_chunk_id"])
    values = validate("ChildChunkUpdatePayload", CHILD_CHUNK, ctx.req.payload())
    if not values["content"].strip():
        raise invalid_param("Content is empty")
    chunk.content = values["content"]
    chunk.type = "customized"
    chunk.updated_at = ctx.now
    return ok({"data": child_chunk_view(chunk)})


def delete_child_chunk(ctx: Ctx) -> Response:
    """``DELETE /segments/{id}/child_chunks/{child_chunk_id}``."""
    seg = _segment(ctx)
    chunk = ctx.state.get_child_chunk(seg, ctx.req.params["child_chunk_id"])
    del seg.child_chunks[chunk.id]
    return no_content()


# --------------------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------------------


def retrieve(ctx: Ctx) -> Response:
    """``POST /retrieve`` and ``POST /hit-testing``."""
    payload = ctx.req.payload()
    # Without attachment_ids a missing query is pydantic's "Field required", as 1.13.2 and 1.16.1 answered.
    specs = HIT_TESTING if isinstance(payload, dict) and payload.get("attachment_ids") else HIT_TESTING_QUERY
    values = validate("HitTestingPayload", specs, payload)
    query = values.get("query") or ""
    if not query and not values.get("attachment_ids"):
        raise invalid_param("Query or attachment_ids is required")
    if len(query) > 250:
        raise invalid_param("Query cannot exceed 250 characters")
    ds = ctx.dataset
    hits = ctx.state.retrieve(ds, query, values.get("retrieval_model"))
    records = []
    for seg, doc, score in hits:
        children = None
        if doc.doc_form == "hierarchical_model":
            children = [
                {"id": c.id, "content": c.content, "position": c.position, "score": score}
                for c in seg.child_chunks.values()
            ]
        records.append(retrieval_record(ds, seg, doc, ctx.now, score, children, newest=ctx.newest))
    return ok({"query": {"content": query}, "records": records})


# --------------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------------


def create_metadata(ctx: Ctx) -> Response:
    """``POST /metadata`` (201)."""
    values = validate("MetadataArgs", METADATA_CREATE, ctx.req.payload())
    meta = ctx.state.create_metadata_field(ctx.dataset, values["type"], values["name"])
    return ok({"id": meta.id, "type": meta.type, "name": meta.name}, 201)


def list_metadata(ctx: Ctx) -> Response:
    """``GET /metadata``."""
    ds = ctx.dataset
    usage = ctx.state.metadata_usage(ds)
    fields = [
        {"id": m.id, "name": m.name, "type": m.type, "count": usage[m.id]} for m in ds.metadata.values()
    ]
    return ok({"doc_metadata": fields, "built_in_field_enabled": ds.built_in_field_enabled})


def update_metadata(ctx: Ctx) -> Response:
    """``PATCH /metadata/{id}``: rename."""
    values = validate("MetadataUpdatePayload", METADATA_UPDATE, ctx.req.payload())
    meta = ctx.state.rename_metadata_field(ctx.dataset, ctx.req.params["metadata_id"], values["name"])
    return ok({"id": meta.id, "type": meta.type, "name": meta.name})


def delete_metadata(ctx: Ctx) -> Response:
    """``DELETE /metadata/{id}``."""
    ctx.state.delete_metadata_field(ctx.dataset, ctx.req.params["metadata_id"])
    return no_content()


def built_in_fields(ctx: Ctx) -> Response:
    """``GET /metadata/built-in``."""
    return ok({"fields": [{"name": name, "type": kind} for name, kind in BUILT_IN_FIELDS]})


def toggle_built_in(ctx: Ctx) -> Response:
    """``POST /metadata/built-in/{action}``."""
    action = ctx.req.params["action"]
    if action not in ("enable", "disable"):
        raise invalid_param(f"Invalid action: {action}")
    ctx.state.toggle_built_in(ctx.dataset, action == "enable", ctx.now)
    return ok({"result": "success"})


def document_metadata(ctx: Ctx) -> Response:
    """``POST /documents/metadata``."""
    values = validate("MetadataOperationData", DOCUMENT_METADATA, ctx.req.payload())
    ctx.state.set_document_metadata(ctx.dataset, values["operation_data"], ctx.now)
    return ok({"result": "success"})


# --------------------------------------------------------------------------------------------------
# tags
# --------------------------------------------------------------------------------------------------


def _tag_body(ctx: Ctx, tag: Any) -> dict[str, Any]:
    count = len(ctx.state.tag_bindings.get(tag.id, ()))
    return {"id": tag.id, "name": tag.name, "type": tag.type, "binding_count": str(count)}


def _binding_count_bug(ctx: Ctx, tags: list[Any], *, as_list: bool) -> ApiError:
    """The 400 a 1.13.2 server answers: its response model wants ``binding_count`` as a string."""
    errors = [
        FieldError(
            f"{index}.binding_count" if as_list else "binding_count",
            "Input should be a valid string",
            "string_type",
            len(ctx.state.tag_bindings.get(tag.id, ())),
        )
        for index, tag in enumerate(tags)
    ]
    return invalid_param(validation_message("list[DataSetTag]" if as_list else "DataSetTag", errors))


def list_tags(ctx: Ctx) -> Response:
    """``GET /datasets/tags``: a bare array."""
    tags = list(ctx.state.tags.values())
    keyword = ctx.req.arg("keyword")
    if keyword:
        tags = [t for t in tags if keyword.lower() in t.name.lower()]
    if ctx.version < (1, 14) and tags:
        raise _binding_count_bug(ctx, tags, as_list=True)
    return ok([_tag_body(ctx, t) for t in tags])


def create_tag(ctx: Ctx) -> Response:
    """``POST /datasets/tags``."""
    values = validate("TagCreatePayload", TAG_CREATE, ctx.req.payload())
    tag = ctx.state.create_tag(values["name"], ctx.now)
    if ctx.version < (1, 14):
        raise _binding_count_bug(ctx, [tag], as_list=False)
    return ok(_tag_body(ctx, tag))


def update_tag(ctx: Ctx) -> Response:
    """``PATCH /datasets/tags``."""
    values = validate("TagUpdatePayload", TAG_UPDATE, ctx.req.payload())
    tag = ctx.state.rename_tag(values["tag_id"], values["name"])
    if ctx.version < (1, 14):
        raise _binding_count_bug(ctx, [tag], as_list=False)
    return ok(_tag_body(ctx, tag))


def delete_tag(ctx: Ctx) -> Response:
    """``DELETE /datasets/tags`` (JSON body)."""
    values = validate("TagDeletePayload", TAG_DELETE, ctx.req.payload())
    ctx.state.delete_tag(values["tag_id"])
    return no_content()


def bind_tags(ctx: Ctx) -> Response:
    """``POST /datasets/tags/binding``."""
    values = validate("TagBindingPayload", TAG_BINDING, ctx.req.payload())
    ctx.state.bind_tags(values["tag_ids"], values["target_id"], True)
    return no_content()


def unbind_tags(ctx: Ctx) -> Response:
    """``POST /datasets/tags/unbinding`` (1.13: ``tag_id`` only; newer: ``tag_ids`` or ``tag_id``)."""
    payload = ctx.req.payload()
    if ctx.version < (1, 14):
        values = validate("TagUnbindingPayload", TAG_UNBINDING_113, payload)
        tag_ids = [values["tag_id"]]
    else:
        values = validate("TagUnbindingPayload", TAG_UNBINDING, payload)
        tag_ids = list(values.get("tag_ids") or []) + ([values["tag_id"]] if values.get("tag_id") else [])
        if not tag_ids:
            raise invalid_param("tag_ids or tag_id is required")
    ctx.state.bind_tags(tag_ids, values["target_id"], False)
    return no_content()


def dataset_tags(ctx: Ctx) -> Response:
    """``GET /datasets/{id}/tags``."""
    tags = ctx.state.dataset_tags(ctx.dataset)
    return ok({"data": [{"id": t.id, "name": t.name} for t in tags], "total": len(tags)})


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------

MODEL_TYPES = ("text-embedding", "rerank", "llm", "tts", "speech2text", "moderation")


def list_models(ctx: Ctx) -> Response:
    """``GET /workspaces/current/models/model-types/{model_type}``."""
    model_type = ctx.req.params["model_type"]
    if model_type not in MODEL_TYPES:
        raise invalid_param(f"invalid model type {model_type}")
    if model_type != "text-embedding" or not ctx.config.embedding_available:
        return ok({"data": []})
    label = {"en_US": "OpenAI", "zh_Hans": "OpenAI"}
    model = {
        "model": DEFAULT_EMBEDDING_MODEL,
        "label": {"en_US": DEFAULT_EMBEDDING_MODEL, "zh_Hans": DEFAULT_EMBEDDING_MODEL},
        "model_type": "text-embedding",
        "features": None,
        "fetch_from": "predefined-model",
        "model_properties": {"context_size": 8191},
        "deprecated": False,
        "status": "active",
        "load_balancing_enabled": False,
    }
    provider = {
        "provider": "langgenius/openai/openai",
        "label": label,
        "icon_small": {"en_US": "", "zh_Hans": ""},
        "status": "active",
        "models": [model],
    }
    return ok({"data": [provider]})


# --------------------------------------------------------------------------------------------------
# route table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """
    One method of one rule.

    :param method: HTTP method.
    :param rule: Flask-style rule, e.g. ``/v1/datasets/<uuid:dataset_id>``.
    :param handler: the handler.
    :param rate_limited: counted by the knowledge rate limit.
    :param document_quota: checked against ``document_limit``.
    :param sandbox: refused on the Sandbox plan.
    :param min_version: first emulated version that has it.
    :param max_version: last emulated version that has it.
    :param auth: needs the API key.
    """

    method: str
    rule: str
    handler: Callable[[Ctx], Response]
    rate_limited: bool = False
    document_quota: bool = False
    sandbox: bool = False
    min_version: tuple[int, int] | None = None
    max_version: tuple[int, int] | None = None
    auth: bool = True

    def available(self, version: tuple[int, int]) -> bool:
        """Whether the emulated version has this endpoint."""
        if self.min_version is not None and version < self.min_version:
            return False
        return not (self.max_version is not None and version > self.max_version)

    @functools.cached_property
    def template(self) -> str:
        """The rule as a counter template without ``/v1``: ``/datasets/{dataset_id}``."""
        path = self.rule[3:] if self.rule.startswith("/v1/") else self.rule
        return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", path)


_D = "/v1/datasets/<uuid:dataset_id>"
_DOC = _D + "/documents/<uuid:document_id>"
_SEG = _DOC + "/segments/<uuid:segment_id>"
_E = Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    _E("GET", "/v1/datasets", list_datasets),
    _E("POST", "/v1/datasets", create_dataset, rate_limited=True),
    _E("GET", "/v1/datasets/tags", list_tags),
    _E("POST", "/v1/datasets/tags", create_tag),
    _E("PATCH", "/v1/datasets/tags", update_tag),
    _E("DELETE", "/v1/datasets/tags", delete_tag),
    _E("POST", "/v1/datasets/tags/binding", bind_tags),
    _E("POST", "/v1/datasets/tags/unbinding", unbind_tags),
    _E("GET", _D, get_dataset),
    _E("PATCH", _D, update_dataset, rate_limited=True),
    _E("DELETE", _D, delete_dataset, rate_limited=True),
    _E("GET", _D + "/tags", dataset_tags),
    _E("POST", _D + "/document/create-by-text", create_by_text, rate_limited=True, document_quota=True),
    _E("POST", _D + "/document/create_by_text", create_by_text, rate_limited=True, document_quota=True),
    _E("POST", _D + "/document/create-by-file", create_by_file, rate_limited=True, document_quota=True),
    _E("POST", _D + "/document/create_by_file", create_by_file, rate_limited=True, document_quota=True),
    _E("GET", _D + "/documents", list_documents),
    _E("POST", _D + "/documents/metadata", document_metadata, rate_limited=True),
    _E("POST", _D + "/documents/download-zip", download_zip, rate_limited=True),
    _E("PATCH", _D + "/documents/status/<string:action>", document_status),
    _E("GET", _D + "/documents/<string:batch>/indexing-status", indexing_status),
    _E("GET", _DOC, get_document),
    _E("DELETE", _DOC, delete_document, rate_limited=True),
    _E("PATCH", _DOC, update_by_file, rate_limited=True, min_version=(1, 15)),
    _E("POST", _DOC + "/update-by-text", update_by_text, rate_limited=True),
    _E("POST", _DOC + "/update_by_text", update_by_text, rate_limited=True),
    _E("POST", _DOC + "/update-by-file", update_by_file, rate_limited=True),
    _E("POST", _DOC + "/update_by_file", update_by_file, rate_limited=True),
    _E("GET", _DOC + "/download", download_document, rate_limited=True),
    _E("GET", _DOC + "/upload-file", upload_file_info, min_version=(1, 14)),
    _E("GET", _DOC + "/segments", list_segments),
    _E("POST", _DOC + "/segments", add_segments, rate_limited=True, sandbox=True),
    _E("GET", _SEG, get_segment),
    _E("POST", _SEG, update_segment, rate_limited=True, sandbox=True),
    _E("DELETE", _SEG, delete_segment, rate_limited=True, sandbox=True),
    _E("GET", _SEG + "/child_chunks", list_child_chunks),
    _E("POST", _SEG + "/child_chunks", add_child_chunk, rate_limited=True, sandbox=True),
    _E(
        "PATCH",
        _SEG + "/child_chunks/<uuid:child_chunk_id>",
        update_child_chunk,
        rate_limited=True,
        sandbox=True,
    ),
    _E(
        "DELETE",
        _SEG + "/child_chunks/<uuid:child_chunk_id>",
        delete_child_chunk,
        rate_limited=True,
        sandbox=True,
    ),
    _E("POST", _D + "/retrieve", retrieve, rate_limited=True),
    _E("POST", _D + "/hit-testing", retrieve, rate_limited=True),
    _E("GET", _D + "/metadata", list_metadata),
    _E("POST", _D + "/metadata", create_metadata, rate_limited=True),
    _E("GET", _D + "/metadata/built-in", built_in_fields),
    _E("POST", _D + "/metadata/built-in/<string:action>", toggle_built_in, rate_limited=True),
    _E("PATCH", _D + "/metadata/<uuid:metadata_id>", update_metadata, rate_limited=True),
    _E("DELETE", _D + "/metadata/<uuid:metadata_id>", delete_metadata, rate_limited=True),
    _E("GET", "/v1/workspaces/current/models/model-types/<string:model_type>", list_models),
    _E("GET", "/files/<uuid:file_id>/file-preview", file_preview, auth=False),
)

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _compile(rule: str) -> re.Pattern[str]:
    pattern = ""
    position = 0
    for match in re.finditer(r"<(?:([a-z]+):)?([a-z_]+)>", rule):
        pattern += re.escape(rule[position : match.start()])
        converter, name = match.group(1) or "string", match.group(2)
        pattern += f"(?P<{name}>{_UUID if converter == 'uuid' else '[^/]+'})"
        position = match.end()
    pattern += re.escape(rule[position:])
    return re.compile(pattern)


@dataclass
class Match:
    """
    The result of routing a path.

    :param endpoint: the endpoint for the method, or ``None`` when the path exists with other methods only.
    :param params: path parameters (UUIDs lower-cased).
    :param allowed: the methods the path allows (for 405 and OPTIONS answers).
    """

    endpoint: Endpoint | None
    params: dict[str, str]
    allowed: list[str]


class Router:
    """
    Matches paths against the rule table like werkzeug: 404 without a rule, 405 without the method.

    :param endpoints: the route table.
    """

    def __init__(self, endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> None:
        self._rules: dict[str, list[Endpoint]] = {}
        for endpoint in endpoints:
            self._rules.setdefault(endpoint.rule, []).append(endpoint)
        self._compiled = [(_compile(rule), rule) for rule in self._rules]
        self._help_cache: dict[tuple[int, int], dict[str, str]] = {}

    def match(self, method: str, path: str, version: tuple[int, int]) -> Match | None:
        """Route a request; ``None`` when no rule matches the path (an HTML 404)."""
        allowed: list[str] = []
        for pattern, rule in self._compiled:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            endpoints = [e for e in self._rules[rule] if e.available(version)]
            if not endpoints:
                continue
            params = {k: (v.lower() if re.fullmatch(_UUID, v) else v) for k, v in found.groupdict().items()}
            for endpoint in endpoints:
                if endpoint.method == method or (method == "HEAD" and endpoint.method == "GET"):
                    return Match(endpoint, params, [])
            allowed.extend(e.method for e in endpoints)
        if allowed:
            return Match(None, {}, sorted({*allowed, "OPTIONS", *(["HEAD"] if "GET" in allowed else [])}))
        return None

    def help_on_404(self, message: str, path: str, version: tuple[int, int]) -> str:
        """flask-restx's "did you mean" tail for 404 messages (close matches among the rules)."""
        rules = self._help_cache.get(version)
        if rules is None:
            rules = {}
            for rule, endpoints in self._rules.items():
                if rule.startswith("/v1") and any(e.available(version) for e in endpoints):
                    rules[re.sub(r"(<.*>)", "", rule)] = rule
            self._help_cache[version] = rules
        close = difflib.get_close_matches(path, list(rules))
        if not close:
            return message
        prefix = message.rstrip(".") + ". " if message else ""
        return (
            prefix
            + f"You have requested this URI [{path}] but did you mean "
            + " or ".join(rules[c] for c in close)
            + " ?"
        )
