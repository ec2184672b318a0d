"""Knowledge API operations as request descriptions, free of any I/O.

Each Knowledge API operation is one function below that returns an :class:`ApiRequest`: method, path, query,
JSON body or multipart parts, whether the route is under Dify's knowledge rate limit, whether repeating it
cannot duplicate anything, and the older spelling of the route when one exists. The sync
:class:`~airflow_provider_dify.hooks.dify.DifyHook` sends them with ``requests``; the async client used by the
trigger sends the same descriptions with ``httpx``. Neither builds a request of its own.

Every argument is checked here, before anything is sent, with the checks of
:mod:`airflow_provider_dify.hooks.validation`: each id that goes into a path must be Dify's (a UUID, or the
digit string of a batch), so nothing a caller passes can change which route is called. A bad argument raises
:class:`~airflow_provider_dify.exceptions.DifyArgumentError` naming it.
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from airflow_provider_dify.hooks.validation import (
    check_batch,
    check_document_name,
    check_id,
    check_metadata_name,
    check_metadata_value,
    check_no_control,
    check_node_id,
    refuse,
)

#: The most items Dify returns per page.
MAX_PAGE_SIZE = 100

IndexingTechnique = Literal["high_quality", "economy"]
DocumentAction = Literal["enable", "disable", "archive", "un_archive"]
MetadataMode = Literal["all", "only", "without"]
MetadataType = Literal["string", "number", "time"]
ModelType = Literal["text-embedding", "rerank", "llm", "tts", "speech2text", "moderation"]

DOCUMENT_ACTIONS: tuple[str, ...] = ("enable", "disable", "archive", "un_archive")
METADATA_MODES: tuple[str, ...] = ("all", "only", "without")
METADATA_TYPES: tuple[str, ...] = ("string", "number", "time")
MODEL_TYPES: tuple[str, ...] = ("text-embedding", "rerank", "llm", "tts", "speech2text", "moderation")

_UPLOAD_CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class FileUpload:
    """
    A file to send as the ``file`` part of a multipart request, read from disk while sending.

    :param path: local path of the file.
    :param filename: the name Dify gives the document (defaults to the file's own name).
    :param content_type: the part's content type (guessed from the name by default).
    """

    path: str
    filename: str
    content_type: str

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], filename: str | None = None) -> FileUpload:
        """Describe an upload of ``path``, checking before anything is sent that it can be uploaded."""
        local = Path(path)
        if not local.exists():
            refuse("file", f"{str(local)!r} does not exist; pass the path of a readable file.")
        if not local.is_file():
            refuse("file", f"{str(local)!r} is not a regular file; pass a file, not a directory.")
        name = local.name if filename is None else filename
        if not name or not name.strip():
            refuse("file", "the upload needs a non-empty file name; pass filename='report.txt'.")
        if "/" in name or "\\" in name:
            refuse("file", f"the file name {name!r} must not contain '/' or '\\'.")
        if any(ord(char) < 32 or ord(char) == 127 for char in name):
            refuse("file", f"the file name {name!r} must not contain control characters (line breaks, tabs).")
        check_document_name(name, "file")
        if not os.access(local, os.R_OK):
            refuse("file", f"{str(local)!r} is not readable by this process; check its permissions.")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return cls(path=str(local), filename=name, content_type=content_type)


class MultipartBody:
    """
    A ``multipart/form-data`` body that streams its file part from disk.

    It has a length (so clients send ``Content-Length`` instead of chunked encoding) and yields the body in
    pieces, never holding the file in memory. Iterate it once per attempt: each iteration reopens the file.

    :param fields: plain text parts (``data`` holding a JSON string for Dify).
    :param upload: the file part, if any.
    """

    def __init__(self, fields: Mapping[str, str], upload: FileUpload | None) -> None:
        self.boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._upload = upload
        head = bytearray()
        for name, value in fields.items():
            head += self._part_header(f'form-data; name="{name}"', "text/plain; charset=utf-8")
            head += value.encode("utf-8") + b"\r\n"
        if upload is not None:
            quoted = upload.filename.replace('"', "%22")
            head += self._part_header(f'form-data; name="file"; filename="{quoted}"', upload.content_type)
        self._head = bytes(head)
        self._tail = (b"\r\n" if upload is not None else b"") + f"--{self.boundary}--\r\n".encode()
        self._file_size = os.path.getsize(upload.path) if upload is not None else 0

    def _part_header(self, disposition: str, content_type: str) -> bytes:
        return (
            f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode()

    def __len__(self) -> int:
        return len(self._head) + self._file_size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        if self._upload is not None:
            with open(self._upload.path, "rb") as handle:
                while chunk := handle.read(_UPLOAD_CHUNK_SIZE):
                    yield chunk
        yield self._tail


def _unencodable(value: Any, where: str) -> tuple[str, Any] | None:
    """The first place in a JSON body holding a value JSON cannot hold (NaN, infinity, an object), or ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if value is None or isinstance(value, (str, int, bool)):
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return (f"{where} (key {key!r})", key)
            found = _unencodable(item, f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _unencodable(item, f"{where}[{index}]")
            if found:
                return found
        return None
    return (where, value)


def check_json_body(body: Any, operation: str) -> None:
    """
    Refuse a request body that JSON cannot encode (NaN, infinity, bytes, a ``Decimal``...) when the request is
    described, so that no transport sends it half-encoded or retries it as a network error.

    :raises DifyArgumentError: naming the operation, the place in the body and the value's type.
    """
    found = _unencodable(body, "")
    if found is None:
        return
    where, value = found
    refuse(
        f"{operation} body.{where}" if where else f"{operation} body",
        f"JSON cannot hold the {type(value).__name__} value {value!r}; pass a finite number, a string or None"
        " (nothing was sent).",
    )


def form_json(data: Any, operation: str) -> str:
    """The JSON text of a multipart ``data`` field, checked as a JSON body is (:func:`check_json_body`)."""
    check_json_body(data, operation)
    return json.dumps(data, allow_nan=False)


@dataclass(frozen=True)
class ApiRequest:
    """
    One Knowledge API call, described without sending it.

    :param operation: a short name for logs (``create_document_by_text``).
    :param method: HTTP method.
    :param path: path relative to the API base URL (which ends in ``/v1``).
    :param params: query parameters as pairs (a key may repeat, as ``tag_ids`` does).
    :param json_body: the JSON body, if any.
    :param form_fields: text parts of a multipart body (sent as multipart when ``upload`` or these are set).
    :param upload: the file part of a multipart body.
    :param idempotent: ``True`` when sending the request twice cannot create anything twice, so it may be
        repeated even when the first attempt may have reached the server (reads, deletes, updates, and
        Dify's same-name upserts). Add-chunk calls are not.
    :param rate_limited: ``True`` when Dify counts the route against the knowledge rate limit.
    :param alias: ``(method, path)`` of the older spelling of the route, tried once when the server answers
        404 with a non-JSON page or 405.
    :param expect_json: ``False`` for routes that answer a binary file.
    :param missing_is_success_on_retry: for deletes: a 404 on a repeated attempt means an earlier attempt
        already deleted the resource.
    """

    operation: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json_body: Any = None
    form_fields: Mapping[str, str] | None = None
    upload: FileUpload | None = None
    idempotent: bool = True
    rate_limited: bool = False
    alias: tuple[str, str] | None = None
    expect_json: bool = True
    missing_is_success_on_retry: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.json_body is not None:
            check_json_body(self.json_body, self.operation)

    @property
    def is_multipart(self) -> bool:
        """Whether the body is ``multipart/form-data``."""
        return self.upload is not None or self.form_fields is not None

    def multipart_body(self) -> MultipartBody:
        """A fresh streaming body for one attempt (multipart requests only)."""
        return MultipartBody(self.form_fields or {}, self.upload)

    def with_alias(self) -> ApiRequest:
        """The same request sent to the older spelling of the route."""
        if self.alias is None:
            raise ValueError(f"{self.operation} has no alias route")
        method, path = self.alias
        return replace(self, method=method, path=path, alias=None)


# -- helpers -------------------------------------------------------------------------------------------------


def _query(**values: Any) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            pairs.extend((key, str(item)) for item in value)
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        else:
            pairs.append((key, str(value)))
    return tuple(pairs)


def _body(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _require(value: str | None, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        refuse(name, "a non-empty string is required.")
    return check_no_control(value, name)


def _page_size(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        refuse("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE} (Dify caps pages at 100).")
    return limit


def _page(page: int) -> int:
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        refuse("page", "pages are numbered from 1.")
    return page


def _ids(values: Sequence[str] | None, name: str) -> list[str]:
    """Ids sent in a body or a query (they cannot change the route): non-empty, one line each."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        refuse(name, f"pass a list of ids, e.g. {name}=[...], not {type(values).__name__}.")
    if not values:
        refuse(name, "pass at least one id.")
    for index, value in enumerate(values):
        _require(value, f"{name}[{index}]")
    return list(values)


def _choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        refuse(name, f"{value!r} is not one of {', '.join(allowed)}.")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        refuse(name, f"a string is required, got {type(value).__name__}.")
    return check_no_control(value, name, text=True)


def _segment_texts(segment: Mapping[str, Any], name: str) -> None:
    for text_field in ("content", "answer"):
        if isinstance(segment.get(text_field), str):
            _text(segment[text_field], f"{name}.{text_field}")
    keywords = segment.get("keywords")
    if isinstance(keywords, (list, tuple)):
        for index, keyword in enumerate(keywords):
            if isinstance(keyword, str):
                check_no_control(keyword, f"{name}.keywords[{index}]")


def _ds(dataset_id: str) -> str:
    return f"/datasets/{check_id(dataset_id, 'dataset_id')}"


def _doc(dataset_id: str, document_id: str) -> str:
    return f"{_ds(dataset_id)}/documents/{check_id(document_id, 'document_id')}"


def _seg(dataset_id: str, document_id: str, segment_id: str) -> str:
    return f"{_doc(dataset_id, document_id)}/segments/{check_id(segment_id, 'segment_id')}"


# -- datasets ------------------------------------------------------------------------------------------------


def create_dataset(
    name: str,
    *,
    description: str | None = None,
    indexing_technique: IndexingTechnique | None = None,
    permission: str | None = None,
    embedding_model: str | None = None,
    embedding_model_provider: str | None = None,
    retrieval_model: Mapping[str, Any] | None = None,
    **extra: Any,
) -> ApiRequest:
    """``POST /datasets``. A repeat answers 409 ``dataset_name_duplicate`` rather than a second dataset."""
    _require(name, "name")
    if len(name) > 40:
        refuse("name", f"Dify allows at most 40 characters for a knowledge base name, got {len(name)}.")
    body = _body(
        name=name,
        description=description,
        indexing_technique=indexing_technique,
        permission=permission,
        embedding_model=embedding_model,
        embedding_model_provider=embedding_model_provider,
        retrieval_model=dict(retrieval_model) if retrieval_model else None,
        **extra,
    )
    return ApiRequest("create_dataset", "POST", "/datasets", json_body=body, rate_limited=True)


def list_datasets(
    *,
    page: int = 1,
    limit: int = 20,
    keyword: str | None = None,
    include_all: bool | None = None,
    tag_ids: Sequence[str] | None = None,
) -> ApiRequest:
    """``GET /datasets``."""
    params = _query(
        page=_page(page),
        limit=_page_size(limit),
        keyword=keyword,
        include_all=include_all,
        tag_ids=_ids(tag_ids, "tag_ids") if tag_ids else None,
    )
    return ApiRequest("list_datasets", "GET", "/datasets", params=params)


def get_dataset(dataset_id: str) -> ApiRequest:
    """``GET /datasets/{dataset_id}``."""
    return ApiRequest("get_dataset", "GET", _ds(dataset_id))


def update_dataset(dataset_id: str, **changes: Any) -> ApiRequest:
    """``PATCH /datasets/{dataset_id}``: only the keys given change."""
    if not changes:
        refuse("update_dataset", "pass at least one field to change (name, description...).")
    return ApiRequest("update_dataset", "PATCH", _ds(dataset_id), json_body=changes, rate_limited=True)


def delete_dataset(dataset_id: str) -> ApiRequest:
    """``DELETE /datasets/{dataset_id}``."""
    return ApiRequest("delete_dataset", "DELETE", _ds(dataset_id), rate_limited=True, missing_is_success_on_retry=True)


# -- documents -----------------------------------------------------------------------------------------------


def create_document_by_text(
    dataset_id: str,
    name: str,
    text: str,
    *,
    indexing_technique: IndexingTechnique | None = None,
    doc_form: str | None = None,
    doc_language: str | None = None,
    process_rule: Mapping[str, Any] | None = None,
    retrieval_model: Mapping[str, Any] | None = None,
    embedding_model: str | None = None,
    embedding_model_provider: str | None = None,
) -> ApiRequest:
    """``POST /datasets/{id}/document/create-by-text``.

    Idempotent by Dify's same-name upsert: repeating it updates the same document instead of adding one.
    """
    check_document_name(_require(name, "name"))
    _text(text, "text")
    body = _body(
        name=name,
        text=text,
        indexing_technique=indexing_technique,
        doc_form=doc_form,
        doc_language=doc_language,
        process_rule=dict(process_rule) if process_rule else None,
        retrieval_model=dict(retrieval_model) if retrieval_model else None,
        embedding_model=embedding_model,
        embedding_model_provider=embedding_model_provider,
    )
    base = _ds(dataset_id)
    return ApiRequest(
        "create_document_by_text",
        "POST",
        f"{base}/document/create-by-text",
        json_body=body,
        rate_limited=True,
        alias=("POST", f"{base}/document/create_by_text"),
    )


def create_document_by_file(
    dataset_id: str,
    upload: FileUpload,
    *,
    indexing_technique: IndexingTechnique | None = None,
    doc_form: str | None = None,
    doc_language: str | None = None,
    process_rule: Mapping[str, Any] | None = None,
    retrieval_model: Mapping[str, Any] | None = None,
    embedding_model: str | None = None,
    embedding_model_provider: str | None = None,
    duplicate: bool = True,
) -> ApiRequest:
    """``POST /datasets/{id}/document/create-by-file``.

    Idempotent by Dify's same-filename upsert unless ``duplicate=False``, which asks for a second document
    with the same name and therefore is not repeated after an attempt that may have been delivered.
    """
    data = _body(
        indexing_technique=indexing_technique,
        doc_form=doc_form,
        doc_language=doc_language,
        process_rule=dict(process_rule) if process_rule else None,
        retrieval_model=dict(retrieval_model) if retrieval_model else None,
        embedding_model=embedding_model,
        embedding_model_provider=embedding_model_provider,
    )
    if not duplicate:
        data["duplicate"] = False
    base = _ds(dataset_id)
    return ApiRequest(
        "create_document_by_file",
        "POST",
        f"{base}/document/create-by-file",
        form_fields={"data": form_json(data, "create_document_by_file")},
        upload=upload,
        rate_limited=True,
        idempotent=duplicate,
        alias=("POST", f"{base}/document/create_by_file"),
    )


def update_document_by_text(
    dataset_id: str,
    document_id: str,
    *,
    name: str | None = None,
    text: str | None = None,
    doc_form: str | None = None,
    doc_language: str | None = None,
    process_rule: Mapping[str, Any] | None = None,
    retrieval_model: Mapping[str, Any] | None = None,
) -> ApiRequest:
    """``POST /datasets/{id}/documents/{doc}/update-by-text``. ``name`` is required with ``text``."""
    if text is not None and not name:
        refuse("name", "Dify requires the document name together with text; pass name=...")
    if name is not None:
        check_document_name(_require(name, "name"))
    if text is not None:
        _text(text, "text")
    body = _body(
        name=name,
        text=text,
        doc_form=doc_form,
        doc_language=doc_language,
        process_rule=dict(process_rule) if process_rule else None,
        retrieval_model=dict(retrieval_model) if retrieval_model else None,
    )
    base = _doc(dataset_id, document_id)
    return ApiRequest(
        "update_document_by_text",
        "POST",
        f"{base}/update-by-text",
        json_body=body,
        rate_limited=True,
        alias=("POST", f"{base}/update_by_text"),
    )


def update_document_by_file(
    dataset_id: str,
    document_id: str,
    upload: FileUpload | None,
    *,
    doc_form: str | None = None,
    doc_language: str | None = None,
    process_rule: Mapping[str, Any] | None = None,
    retrieval_model: Mapping[str, Any] | None = None,
) -> ApiRequest:
    """``PATCH /datasets/{id}/documents/{doc}`` (Dify >= 1.15), falling back to ``POST .../update-by-file``."""
    data = _body(
        doc_form=doc_form,
        doc_language=doc_language,
        process_rule=dict(process_rule) if process_rule else None,
        retrieval_model=dict(retrieval_model) if retrieval_model else None,
    )
    base = _doc(dataset_id, document_id)
    return ApiRequest(
        "update_document_by_file",
        "PATCH",
        base,
        form_fields={"data": form_json(data, "update_document_by_file")},
        upload=upload,
        rate_limited=True,
        alias=("POST", f"{base}/update-by-file"),
    )


def list_documents(
    dataset_id: str,
    *,
    page: int = 1,
    limit: int = 20,
    keyword: str | None = None,
    status: str | None = None,
) -> ApiRequest:
    """
    ``GET /datasets/{id}/documents``, newest first. ``has_more`` only means the page is full.

    Dify filters names with ``name LIKE '%<keyword>%'``, the keyword unescaped: ``%`` and ``_`` are wildcards and
    a backslash escapes. Pass :func:`like_literal` of a text to find names that contain exactly that text.
    """
    params = _query(page=_page(page), limit=_page_size(limit), keyword=keyword, status=status)
    return ApiRequest("list_documents", "GET", f"{_ds(dataset_id)}/documents", params=params)


def like_literal(text: str) -> str:
    """
    ``text`` as the document list's ``keyword`` that matches it literally: ``\\``, ``%`` and ``_`` escaped with a
    backslash, the escape character of Dify's ``LIKE`` (PostgreSQL's and MySQL's default). Without it a name
    holding a backslash is never found (``a\\b`` matches ``ab``) and ``_`` or ``%`` match other names too.
    """
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def get_document(dataset_id: str, document_id: str, *, metadata: MetadataMode = "all") -> ApiRequest:
    """``GET /datasets/{id}/documents/{doc}``."""
    params = _query(metadata=_choice(metadata, METADATA_MODES, "metadata"))
    return ApiRequest("get_document", "GET", _doc(dataset_id, document_id), params=params)


def delete_document(dataset_id: str, document_id: str) -> ApiRequest:
    """``DELETE /datasets/{id}/documents/{doc}``."""
    return ApiRequest(
        "delete_document",
        "DELETE",
        _doc(dataset_id, document_id),
        rate_limited=True,
        missing_is_success_on_retry=True,
    )


def get_indexing_status(dataset_id: str, batch: str) -> ApiRequest:
    """``GET /datasets/{id}/documents/{batch}/indexing-status``."""
    path = f"{_ds(dataset_id)}/documents/{check_batch(batch)}/indexing-status"
    return ApiRequest("get_indexing_status", "GET", path)


def update_document_status(dataset_id: str, action: DocumentAction, document_ids: Sequence[str]) -> ApiRequest:
    """``PATCH /datasets/{id}/documents/status/{action}``: enable, disable, archive or un_archive in bulk."""
    _choice(action, DOCUMENT_ACTIONS, "action")
    path = f"{_ds(dataset_id)}/documents/status/{action}"
    body = {"document_ids": _ids(document_ids, "document_ids")}
    return ApiRequest("update_document_status", "PATCH", path, json_body=body)


def get_upload_file(dataset_id: str, document_id: str) -> ApiRequest:
    """``GET /datasets/{id}/documents/{doc}/upload-file`` (legacy; gone from the 1.16 API)."""
    return ApiRequest("get_upload_file", "GET", f"{_doc(dataset_id, document_id)}/upload-file")


def get_document_download_url(dataset_id: str, document_id: str) -> ApiRequest:
    """``GET /datasets/{id}/documents/{doc}/download``: a signed URL to the original file (about 1.13+)."""
    return ApiRequest(
        "get_document_download_url", "GET", f"{_doc(dataset_id, document_id)}/download", rate_limited=True
    )


# -- segments (chunks) ---------------------------------------------------------------------------------------


def add_segments(dataset_id: str, document_id: str, segments: Sequence[Mapping[str, Any]]) -> ApiRequest:
    """``POST .../documents/{doc}/segments``. Not idempotent: a repeat adds the chunks again."""
    if not segments:
        refuse("segments", "pass at least one chunk.")
    items = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, Mapping):
            refuse(f"segments[{index}]", "each chunk is a dict with a 'content' key.")
        content = segment.get("content")
        if not isinstance(content, str) or not content.strip():
            refuse(f"segments[{index}].content", "a non-blank string is required.")
        _segment_texts(segment, f"segments[{index}]")
        items.append(dict(segment))
    return ApiRequest(
        "add_segments",
        "POST",
        f"{_doc(dataset_id, document_id)}/segments",
        json_body={"segments": items},
        rate_limited=True,
        idempotent=False,
    )


def list_segments(
    dataset_id: str,
    document_id: str,
    *,
    page: int = 1,
    limit: int = 20,
    keyword: str | None = None,
    status: str | Sequence[str] | None = None,
) -> ApiRequest:
    """``GET .../documents/{doc}/segments``."""
    statuses = [status] if isinstance(status, str) else (list(status) if status else None)
    params = _query(page=_page(page), limit=_page_size(limit), keyword=keyword, status=statuses)
    return ApiRequest("list_segments", "GET", f"{_doc(dataset_id, document_id)}/segments", params=params)


def get_segment(dataset_id: str, document_id: str, segment_id: str) -> ApiRequest:
    """``GET .../segments/{seg}``."""
    return ApiRequest("get_segment", "GET", _seg(dataset_id, document_id, segment_id))


def update_segment(dataset_id: str, document_id: str, segment_id: str, segment: Mapping[str, Any]) -> ApiRequest:
    """``POST .../segments/{seg}`` (Dify updates chunks with POST, not PATCH)."""
    if not segment:
        refuse("segment", "pass the fields to change (content, answer, keywords, enabled...).")
    _segment_texts(segment, "segment")
    return ApiRequest(
        "update_segment",
        "POST",
        _seg(dataset_id, document_id, segment_id),
        json_body={"segment": dict(segment)},
        rate_limited=True,
    )


def delete_segment(dataset_id: str, document_id: str, segment_id: str) -> ApiRequest:
    """``DELETE .../segments/{seg}``."""
    return ApiRequest(
        "delete_segment",
        "DELETE",
        _seg(dataset_id, document_id, segment_id),
        rate_limited=True,
        missing_is_success_on_retry=True,
    )


# -- child chunks --------------------------------------------------------------------------------------------


def list_child_chunks(
    dataset_id: str,
    document_id: str,
    segment_id: str,
    *,
    page: int = 1,
    limit: int = 20,
    keyword: str | None = None,
) -> ApiRequest:
    """``GET .../segments/{seg}/child_chunks``."""
    params = _query(page=_page(page), limit=_page_size(limit), keyword=keyword)
    path = f"{_seg(dataset_id, document_id, segment_id)}/child_chunks"
    return ApiRequest("list_child_chunks", "GET", path, params=params)


def add_child_chunk(dataset_id: str, document_id: str, segment_id: str, content: str) -> ApiRequest:
    """``POST .../segments/{seg}/child_chunks``. Not idempotent."""
    _require(content.strip() if isinstance(content, str) else content, "content")
    _text(content, "content")
    path = f"{_seg(dataset_id, document_id, segment_id)}/child_chunks"
    return ApiRequest(
        "add_child_chunk", "POST", path, json_body={"content": content}, rate_limited=True, idempotent=False
    )


def update_child_chunk(
    dataset_id: str, document_id: str, segment_id: str, child_chunk_id: str, content: str
) -> ApiRequest:
    """``PATCH .../segments/{seg}/child_chunks/{child}``."""
    _require(content.strip() if isinstance(content, str) else content, "content")
    _text(content, "content")
    path = f"{_seg(dataset_id, document_id, segment_id)}/child_chunks/{check_id(child_chunk_id, 'child_chunk_id')}"
    return ApiRequest("update_child_chunk", "PATCH", path, json_body={"content": content}, rate_limited=True)


def delete_child_chunk(dataset_id: str, document_id: str, segment_id: str, child_chunk_id: str) -> ApiRequest:
    """``DELETE .../segments/{seg}/child_chunks/{child}``."""
    path = f"{_seg(dataset_id, document_id, segment_id)}/child_chunks/{check_id(child_chunk_id, 'child_chunk_id')}"
    return ApiRequest("delete_child_chunk", "DELETE", path, rate_limited=True, missing_is_success_on_retry=True)


# -- retrieval -----------------------------------------------------------------------------------------------


def retrieve(
    dataset_id: str,
    query: str | None = None,
    *,
    retrieval_model: Mapping[str, Any] | None = None,
    external_retrieval_model: Mapping[str, Any] | None = None,
    attachment_ids: Sequence[str] | None = None,
) -> ApiRequest:
    """``POST /datasets/{id}/retrieve``: read-only, so safe to repeat. Queries are at most 250 characters.

    ``query`` may be left out when ``attachment_ids`` (files to search by, on multimodal knowledge bases) are
    given, as Dify then does.
    """
    base = _ds(dataset_id)  # the path first: a bad id is named before any other argument
    if attachment_ids is None or query is not None:
        _require(query.strip() if isinstance(query, str) else query, "query")
    if query is not None:
        _text(query, "query")
        if len(query) > 250:
            refuse("query", f"Dify accepts at most 250 characters, got {len(query)}.")
    body = _body(
        query=query,
        retrieval_model=dict(retrieval_model) if retrieval_model else None,
        external_retrieval_model=dict(external_retrieval_model) if external_retrieval_model else None,
        attachment_ids=_ids(attachment_ids, "attachment_ids") if attachment_ids is not None else None,
    )
    return ApiRequest(
        "retrieve",
        "POST",
        f"{base}/retrieve",
        json_body=body,
        rate_limited=True,
        alias=("POST", f"{base}/hit-testing"),
    )


# -- metadata ------------------------------------------------------------------------------------------------


def create_metadata_field(dataset_id: str, name: str, type: MetadataType = "string") -> ApiRequest:
    """``POST /datasets/{id}/metadata`` (answers 201). A repeat answers 400 "Metadata name already exists."."""
    check_metadata_name(name, "name")
    _choice(type, METADATA_TYPES, "type")
    return ApiRequest(
        "create_metadata_field",
        "POST",
        f"{_ds(dataset_id)}/metadata",
        json_body={"type": type, "name": name},
        rate_limited=True,
    )


def list_metadata_fields(dataset_id: str) -> ApiRequest:
    """``GET /datasets/{id}/metadata``."""
    return ApiRequest("list_metadata_fields", "GET", f"{_ds(dataset_id)}/metadata")


def update_metadata_field(dataset_id: str, metadata_id: str, name: str) -> ApiRequest:
    """``PATCH /datasets/{id}/metadata/{metadata_id}``: rename a field."""
    check_metadata_name(name, "name")
    path = f"{_ds(dataset_id)}/metadata/{check_id(metadata_id, 'metadata_id')}"
    return ApiRequest("update_metadata_field", "PATCH", path, json_body={"name": name}, rate_limited=True)


def delete_metadata_field(dataset_id: str, metadata_id: str) -> ApiRequest:
    """``DELETE /datasets/{id}/metadata/{metadata_id}``."""
    path = f"{_ds(dataset_id)}/metadata/{check_id(metadata_id, 'metadata_id')}"
    return ApiRequest("delete_metadata_field", "DELETE", path, rate_limited=True, missing_is_success_on_retry=True)


def list_built_in_metadata_fields(dataset_id: str) -> ApiRequest:
    """``GET /datasets/{id}/metadata/built-in``."""
    return ApiRequest("list_built_in_metadata_fields", "GET", f"{_ds(dataset_id)}/metadata/built-in")


def set_built_in_metadata(dataset_id: str, enabled: bool) -> ApiRequest:
    """``POST /datasets/{id}/metadata/built-in/{enable|disable}``."""
    action = "enable" if enabled else "disable"
    return ApiRequest(
        "set_built_in_metadata", "POST", f"{_ds(dataset_id)}/metadata/built-in/{action}", rate_limited=True
    )


def update_documents_metadata(dataset_id: str, operation_data: Sequence[Mapping[str, Any]]) -> ApiRequest:
    """``POST /datasets/{id}/documents/metadata``: set metadata values of several documents at once.

    Each item is ``{"document_id", "metadata_list": [{"id", "name", "value"}], "partial_update"?}``.
    """
    if not operation_data:
        refuse("operation_data", "pass at least one document's metadata.")
    for index, item in enumerate(operation_data):
        if not isinstance(item, Mapping) or not isinstance(item.get("metadata_list"), list):
            refuse(f"operation_data[{index}]", "needs 'document_id' and a 'metadata_list' of {id, name, value}.")
        _require(item.get("document_id"), f"operation_data[{index}].document_id")
        for position, entry in enumerate(item["metadata_list"]):
            where = f"operation_data[{index}].metadata_list[{position}]"
            if not isinstance(entry, Mapping):
                refuse(where, "each entry is a dict {id, name, value}.")
            check_metadata_value(entry.get("value"), f"{where}.value")
    return ApiRequest(
        "update_documents_metadata",
        "POST",
        f"{_ds(dataset_id)}/documents/metadata",
        json_body={"operation_data": [dict(item) for item in operation_data]},
        rate_limited=True,
    )


# -- knowledge tags ------------------------------------------------------------------------------------------


def list_tags() -> ApiRequest:
    """``GET /datasets/tags`` (answers a bare list)."""
    return ApiRequest("list_tags", "GET", "/datasets/tags")


def create_tag(name: str) -> ApiRequest:
    """``POST /datasets/tags``. A repeat answers 400 "Tag name already exists"."""
    _require(name, "name")
    return ApiRequest("create_tag", "POST", "/datasets/tags", json_body={"name": name})


def update_tag(tag_id: str, name: str) -> ApiRequest:
    """``PATCH /datasets/tags``: rename a tag."""
    body = {"tag_id": _require(tag_id, "tag_id"), "name": _require(name, "name")}
    return ApiRequest("update_tag", "PATCH", "/datasets/tags", json_body=body)


def delete_tag(tag_id: str) -> ApiRequest:
    """``DELETE /datasets/tags`` with a JSON body."""
    return ApiRequest(
        "delete_tag",
        "DELETE",
        "/datasets/tags",
        json_body={"tag_id": _require(tag_id, "tag_id")},
        missing_is_success_on_retry=True,
    )


def bind_tags(dataset_id: str, tag_ids: Sequence[str]) -> ApiRequest:
    """``POST /datasets/tags/binding``."""
    body = {"tag_ids": _ids(tag_ids, "tag_ids"), "target_id": check_id(dataset_id, "dataset_id")}
    return ApiRequest("bind_tags", "POST", "/datasets/tags/binding", json_body=body)


def unbind_tag(dataset_id: str, tag_id: str) -> ApiRequest:
    """``POST /datasets/tags/unbinding``, in the ``tag_id`` form that every server version accepts."""
    body = {"tag_id": _require(tag_id, "tag_id"), "target_id": check_id(dataset_id, "dataset_id")}
    return ApiRequest("unbind_tag", "POST", "/datasets/tags/unbinding", json_body=body)


def list_dataset_tags(dataset_id: str) -> ApiRequest:
    """``GET /datasets/{id}/tags``."""
    return ApiRequest("list_dataset_tags", "GET", f"{_ds(dataset_id)}/tags")


# -- models --------------------------------------------------------------------------------------------------


def list_models(model_type: ModelType = "text-embedding") -> ApiRequest:
    """``GET /workspaces/current/models/model-types/{model_type}``."""
    _choice(model_type, MODEL_TYPES, "model_type")
    return ApiRequest("list_models", "GET", f"/workspaces/current/models/model-types/{model_type}")


# -- documents: several files at once -----------------------------------------------------------------------

#: The most documents one download-zip request takes.
MAX_ZIP_DOCUMENTS = 100


def download_documents_zip(dataset_id: str, document_ids: Sequence[str]) -> ApiRequest:
    """``POST /datasets/{id}/documents/download-zip`` (about 1.13+): the original files of 1-100 documents as
    one ZIP archive (the answer is the archive's bytes). Read-only, so safe to repeat."""
    base = _ds(dataset_id)  # the path first: a bad id is named before any other argument
    ids = _ids(document_ids, "document_ids")
    if len(ids) > MAX_ZIP_DOCUMENTS:
        refuse("document_ids", f"Dify zips at most {MAX_ZIP_DOCUMENTS} documents a request, got {len(ids)}; split it.")
    return ApiRequest(
        "download_documents_zip",
        "POST",
        f"{base}/documents/download-zip",
        json_body={"document_ids": ids},
        rate_limited=True,
        expect_json=False,
    )


# -- knowledge pipeline (runtime_mode=rag_pipeline knowledge bases, about 1.9+) ------------------------------

PipelineDatasourceType = Literal["local_file", "online_document", "website_crawl", "online_drive"]
PipelineResponseMode = Literal["blocking", "streaming"]

PIPELINE_DATASOURCE_TYPES: tuple[str, ...] = ("local_file", "online_document", "website_crawl", "online_drive")
PIPELINE_RESPONSE_MODES: tuple[str, ...] = ("blocking", "streaming")


def upload_pipeline_file(upload: FileUpload) -> ApiRequest:
    """``POST /datasets/pipeline/file-upload`` (answers 201): a file for a pipeline's ``local_file`` datasource.

    Its ``id`` is the ``reference`` of a ``local_file`` item of :func:`run_pipeline`. Not repeated after an
    attempt that may have been delivered: a repeat stores a second file.
    """
    return ApiRequest(
        "upload_pipeline_file",
        "POST",
        "/datasets/pipeline/file-upload",
        upload=upload,
        idempotent=False,
    )


def list_pipeline_datasource_plugins(dataset_id: str, *, is_published: bool = True) -> ApiRequest:
    """``GET /datasets/{id}/pipeline/datasource-plugins``: the datasource nodes of the knowledge base's pipeline
    (``[{node_id, plugin_id, provider_name, datasource_type, title, user_input_variables, credentials}]``)."""
    params = _query(is_published=bool(is_published))
    return ApiRequest(
        "list_pipeline_datasource_plugins", "GET", f"{_ds(dataset_id)}/pipeline/datasource-plugins", params=params
    )


def run_pipeline_datasource_node(
    dataset_id: str,
    node_id: str,
    *,
    inputs: Mapping[str, Any],
    datasource_type: PipelineDatasourceType,
    is_published: bool = True,
    credential_id: str | None = None,
) -> ApiRequest:
    """``POST /datasets/{id}/pipeline/datasource/nodes/{node_id}/run``: run one datasource node (a preview of
    what it fetches). Dify answers a ``text/event-stream``; read it with :func:`parse_event_stream`."""
    path = f"{_ds(dataset_id)}/pipeline/datasource/nodes/{check_node_id(node_id)}/run"  # the path first
    if not isinstance(inputs, Mapping):
        refuse("inputs", f"pass a dict of the node's input variables, got {type(inputs).__name__}.")
    body = _body(
        inputs=dict(inputs),
        datasource_type=_choice(datasource_type, PIPELINE_DATASOURCE_TYPES, "datasource_type"),
        credential_id=credential_id,
        is_published=bool(is_published),
    )
    return ApiRequest("run_pipeline_datasource_node", "POST", path, json_body=body, expect_json=False)


def _datasource_items(items: Sequence[Mapping[str, Any]], datasource_type: str) -> list[dict[str, Any]]:
    required = {
        "local_file": ("reference",),
        "online_document": ("workspace_id", "page"),
        "website_crawl": ("url",),
        "online_drive": ("id", "bucket"),
    }[datasource_type]
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence) or not items:
        refuse("datasource_info_list", "pass a non-empty list of datasource items (dicts).")
    checked = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            refuse(f"datasource_info_list[{index}]", f"each item is a dict, got {type(item).__name__}.")
        missing = [key for key in required if not item.get(key)]
        if missing:
            refuse(
                f"datasource_info_list[{index}]",
                f"a {datasource_type} item needs {', '.join(map(repr, missing))}"
                + (" (the id of a pipeline file upload)" if datasource_type == "local_file" else "")
                + ".",
            )
        checked.append(dict(item))
    return checked


def run_pipeline(
    dataset_id: str,
    *,
    inputs: Mapping[str, Any],
    datasource_type: PipelineDatasourceType,
    datasource_info_list: Sequence[Mapping[str, Any]],
    start_node_id: str,
    is_published: bool = True,
    response_mode: PipelineResponseMode = "blocking",
) -> ApiRequest:
    """``POST /datasets/{id}/pipeline/run``: run the knowledge pipeline on datasource items.

    A published run (``is_published=True``) creates one document per item at once and answers
    ``{batch, dataset, documents}`` while the pipeline indexes them in the background, so the documents can be
    waited for like any other batch. Not repeated after an attempt that may have been delivered: a repeat
    creates the documents again.
    """
    path = f"{_ds(dataset_id)}/pipeline/run"  # the path first: a bad id is named before any other argument
    if not isinstance(inputs, Mapping):
        refuse("inputs", f"pass a dict of the pipeline's input variables, got {type(inputs).__name__}.")
    kind = _choice(datasource_type, PIPELINE_DATASOURCE_TYPES, "datasource_type")
    body = {
        "inputs": dict(inputs),
        "datasource_type": kind,
        "datasource_info_list": _datasource_items(datasource_info_list, kind),
        "start_node_id": _require(start_node_id, "start_node_id"),
        "is_published": bool(is_published),
        "response_mode": _choice(response_mode, PIPELINE_RESPONSE_MODES, "response_mode"),
    }
    return ApiRequest(
        "run_pipeline",
        "POST",
        path,
        json_body=body,
        idempotent=False,
        expect_json=response_mode == "blocking",
    )


def parse_event_stream(body: bytes) -> list[Any]:
    """The events of a ``text/event-stream`` body: each ``data:`` payload, decoded as JSON when it is JSON.

    Events are separated by a blank line; the ``data:`` lines of one event are joined with newlines; comment
    lines (``:``) and ``ping`` events are skipped.
    """
    events: list[Any] = []
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        data_lines = []
        event_name = None
        for line in block.split("\n"):
            if line.startswith("data:"):
                data_lines.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                event_name = line[6:].strip()
        if not data_lines or event_name == "ping":
            continue
        data = "\n".join(data_lines)
        try:
            events.append(json.loads(data))
        except ValueError:
            events.append(data)
    return events
