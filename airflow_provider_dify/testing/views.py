"""JSON shapes of the emulator's answers, key for key as a Dify 1.13.2 server sends them."""

from __future__ import annotations

import copy
from typing import Any

from airflow_provider_dify.testing.models import (
    BUILT_IN_FIELDS,
    Dataset,
    Document,
    Segment,
    Tag,
)
from airflow_provider_dify.testing.text import rules_for

AUTHOR_NAME = "admin"


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _seen(value: float | None, now: float) -> int | None:
    """A planned timestamp, shown only once it has passed."""
    return None if value is None or value > now else int(value)


def dataset_view(
    ds: Dataset,
    *,
    variant: str,
    counts: tuple[int, int, int],
    tags: list[Tag],
    newest: bool = True,
) -> dict[str, Any]:
    """
    A dataset.

    :param variant: ``create``, ``get``, ``list`` or ``patch``: the real server differs in
        ``embedding_available``, ``retrieval_model_dict.search_method`` and ``partial_member_list``.
    :param counts: ``(document_count, word_count, available_documents)``.
    :param tags: the tags bound to the dataset.
    :param newest: answer as Dify 1.16.1 does (with ``maintainer``); ``False``: as 1.13.2 does.
    """
    document_count, word_count, available = counts
    retrieval = {k: dict(v) if isinstance(v, dict) else v for k, v in ds.retrieval_model.items()}
    if variant == "get" and ds.indexing_technique == "economy":
        retrieval["search_method"] = "keyword_search"
    doc_metadata = [{"id": f.id, "name": f.name, "type": f.type} for f in ds.metadata.values()]
    if ds.built_in_field_enabled:
        doc_metadata.extend({"id": "built-in", "name": name, "type": kind} for name, kind in BUILT_IN_FIELDS)
    summary = ds.summary_index_setting or {}
    body: dict[str, Any] = {
        "id": ds.id,
        "name": ds.name,
        "description": ds.description,
        "provider": "vendor",
        "permission": ds.permission,
        "data_source_type": ds.data_source_type,
        "indexing_technique": ds.indexing_technique,
        "app_count": 0,
        "document_count": document_count,
        "word_count": word_count,
        "created_by": ds.created_by,
        "author_name": AUTHOR_NAME,
        "created_at": int(ds.created_at),
        "updated_by": ds.created_by,
        "updated_at": int(ds.updated_at),
        "embedding_model": ds.embedding_model,
        "embedding_model_provider": ds.embedding_model_provider,
        "embedding_available": None if variant in ("create", "patch") else True,
        "retrieval_model_dict": retrieval,
        "summary_index_setting": {
            "enable": summary.get("enable"),
            "model_name": summary.get("model_name"),
            "model_provider_name": summary.get("model_provider_name"),
            "summary_prompt": summary.get("summary_prompt"),
        },
        "tags": [{"id": t.id, "name": t.name, "type": t.type} for t in tags],
        "doc_form": ds.doc_form,
        "external_knowledge_info": {
            "external_knowledge_id": None,
            "external_knowledge_api_id": None,
            "external_knowledge_api_name": None,
            "external_knowledge_api_endpoint": None,
        },
        "external_retrieval_model": {"top_k": 2, "score_threshold": 0.0, "score_threshold_enabled": None},
        "doc_metadata": doc_metadata,
        "built_in_field_enabled": ds.built_in_field_enabled,
        "pipeline_id": ds.pipeline.id if ds.pipeline is not None else None,
        "runtime_mode": "rag_pipeline" if ds.pipeline is not None else "general",
        "chunk_structure": ds.pipeline.chunk_structure if ds.pipeline is not None else None,
        "icon_info": {"icon_type": None, "icon": None, "icon_background": None, "icon_url": None},
        "is_published": ds.pipeline is not None,
        "total_documents": document_count,
        "total_available_documents": available,
        "enable_api": ds.enable_api,
        "is_multimodal": False,
    }
    if newest:  # new in 1.16 (the recording shows a string; the creator's account id is a guess)
        body["maintainer"] = ds.created_by
    if variant == "patch" or (variant == "get" and ds.permission == "partial_members"):
        body["partial_member_list"] = list(ds.partial_member_list)
    return body


def builtin_values(doc: Document) -> dict[str, Any]:
    """Values of the built-in metadata fields of a document (strings, as Dify stores them)."""
    return {
        "document_name": doc.name,
        "uploader": AUTHOR_NAME,
        "upload_date": str(float(int(doc.created_at))),
        "last_update_date": str(doc.updated_at),
        "source": "file_upload",
    }


def doc_metadata_details(ds: Dataset, doc: Document, *, stringify: bool) -> list[dict[str, Any]] | None:
    """
    The ``doc_metadata`` list of a document: bound custom fields, then the built-in fields.

    ``None`` while the document has no metadata at all. Document lists send values as strings.
    """
    if not doc.metadata_values and not doc.builtin_values:
        return None
    items: list[dict[str, Any]] = []
    for field_id, value in doc.metadata_values.items():
        meta = ds.metadata.get(field_id)
        if meta is None:
            continue
        shown = value if not stringify or value is None else _string_value(value)
        items.append({"id": meta.id, "name": meta.name, "type": meta.type, "value": shown})
    builtins = builtin_values(doc)
    kinds = dict(BUILT_IN_FIELDS)
    for name, value in builtins.items():
        items.append({"id": "built-in", "name": name, "type": kinds[name], "value": value})
    return items


def _string_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def doc_metadata_raw(ds: Dataset, doc: Document) -> dict[str, Any] | None:
    """The raw ``{name: value}`` metadata dict of a document (retrieval records), ``None`` when empty."""
    if not doc.metadata_values and not doc.builtin_values:
        return None
    raw: dict[str, Any] = {}
    for field_id, value in doc.metadata_values.items():
        meta = ds.metadata.get(field_id)
        if meta is not None:
            raw[meta.name] = value
    raw.update(doc.builtin_values)
    return raw


def document_view(ds: Dataset, doc: Document, now: float, *, newest: bool = True) -> dict[str, Any]:
    """A document as create, update and list answer it."""
    return {
        "id": doc.id,
        "position": doc.position,
        "data_source_type": "upload_file",
        "data_source_info": {"upload_file_id": doc.upload_file.id},
        "data_source_detail_dict": {"upload_file": doc.upload_file.view()},
        "dataset_process_rule_id": doc.process_rule.id,
        "name": doc.name,
        "created_from": doc.created_from,
        "created_by": doc.created_by,
        "created_at": int(doc.created_at),
        "tokens": doc.tokens,
        "indexing_status": doc.phase(now),
        "error": doc.error,
        "enabled": doc.enabled,
        "disabled_at": _int(doc.disabled_at),
        "disabled_by": doc.disabled_by,
        "archived": doc.archived,
        "display_status": doc.display_status(now),
        "word_count": doc.word_count,
        "hit_count": doc.hit_count,
        "doc_form": doc.doc_form,
        # 1.16.1 answers [] for a document without metadata, 1.13.2 null.
        "doc_metadata": doc_metadata_details(ds, doc, stringify=True) or ([] if newest else None),
        "summary_index_status": None,
        "need_summary": False,
    }


def _rule_body(mode: str, rules: dict[str, Any] | None) -> dict[str, Any]:
    return {"mode": mode, "rules": copy.deepcopy(rules_for(mode, rules))}


def document_detail_view(ds: Dataset, doc: Document, now: float, metadata: str = "all") -> dict[str, Any]:
    """A document as ``GET /documents/{id}`` answers it (``metadata`` = ``all``, ``only`` or ``without``)."""
    details = doc_metadata_details(ds, doc, stringify=False)
    if metadata == "only":
        return {"id": doc.id, "doc_type": None, "doc_metadata": details}
    live = [s for s in doc.segments.values() if s.status != "re_segment"]
    word_count = doc.word_count or 0
    latest = ds.latest_rule or doc.process_rule
    body: dict[str, Any] = {
        "id": doc.id,
        "position": doc.position,
        "data_source_type": "upload_file",
        "data_source_info": {"upload_file": doc.upload_file.view()},
        "dataset_process_rule_id": doc.process_rule.id,
        "dataset_process_rule": _rule_body(latest.mode, latest.rules),
        "document_process_rule": {
            "id": doc.process_rule.id,
            "dataset_id": ds.id,
            **_rule_body(doc.process_rule.mode, doc.process_rule.rules),
        },
        "name": doc.name,
        "created_from": doc.created_from,
        "created_by": doc.created_by,
        "created_at": int(doc.created_at),
        "tokens": doc.tokens,
        "indexing_status": doc.phase(now),
        "completed_at": _seen(doc.completed_at, now),
        "updated_at": int(doc.updated_at),
        "indexing_latency": doc.indexing_latency,
        "error": doc.error,
        "enabled": doc.enabled,
        "disabled_at": _int(doc.disabled_at),
        "disabled_by": doc.disabled_by,
        "archived": doc.archived,
        "doc_type": None,
        "doc_metadata": details,
        "segment_count": len(live),
        "average_segment_length": word_count // len(live) if live else 0,
        "hit_count": doc.hit_count,
        "display_status": doc.display_status(now),
        "doc_form": doc.doc_form,
        "doc_language": doc.doc_language,
        "summary_index_status": None,
        "need_summary": False,
    }
    if metadata == "without":
        del body["doc_type"]
        del body["doc_metadata"]
    return body


def indexing_status_view(doc: Document, now: float) -> dict[str, Any]:
    """One entry of ``GET /documents/{batch}/indexing-status``."""
    completed, total = doc.segment_counts(now)
    return {
        "id": doc.id,
        "indexing_status": doc.phase(now),
        "processing_started_at": _seen(doc.processing_started_at, now),
        "parsing_completed_at": _seen(doc.parsing_completed_at, now),
        "cleaning_completed_at": _seen(doc.cleaning_completed_at, now),
        "splitting_completed_at": _seen(doc.splitting_completed_at, now),
        "completed_at": _seen(doc.completed_at, now),
        "paused_at": _int(doc.paused_at),
        "error": doc.error,
        "stopped_at": _int(doc.stopped_at),
        "completed_segments": completed,
        "total_segments": total,
    }


def child_chunk_view(chunk: Any) -> dict[str, Any]:
    """A child chunk."""
    return {
        "id": chunk.id,
        "segment_id": chunk.segment_id,
        "content": chunk.content,
        "position": chunk.position,
        "word_count": chunk.word_count,
        "type": chunk.type,
        "created_at": int(chunk.created_at),
        "updated_at": int(chunk.updated_at),
    }


def segment_status(seg: Segment, doc: Document, now: float) -> str:
    """A chunk's status at ``now`` (chunks of the document being indexed complete one by one)."""
    if doc.indexing_status == "running" and seg.status == "indexing":
        done, _total = doc.segment_counts(now)
        if seg.position <= done:
            return "completed"
    return seg.status


def _segment_core(seg: Segment, doc: Document, now: float) -> dict[str, Any]:
    status = segment_status(seg, doc, now)
    completed_at = now if status == "completed" and seg.completed_at is None else seg.completed_at
    return {
        "id": seg.id,
        "position": seg.position,
        "document_id": seg.document_id,
        "content": seg.content,
        "sign_content": seg.content,
        "answer": seg.answer,
        "word_count": seg.word_count,
        "tokens": seg.tokens,
        "keywords": list(seg.keywords),
        "index_node_id": seg.index_node_id,
        "index_node_hash": seg.index_node_hash,
        "hit_count": seg.hit_count,
        "enabled": seg.enabled,
        "disabled_at": _int(seg.disabled_at),
        "disabled_by": seg.disabled_by,
        "status": status,
        "created_by": seg.created_by,
        "created_at": int(seg.created_at),
        "updated_at": int(seg.updated_at),
        "updated_by": seg.updated_by,
        "indexing_at": _seen(seg.indexing_at, now),
        "completed_at": _int(completed_at),
        "error": seg.error,
        "stopped_at": _int(seg.stopped_at),
    }


def segment_view(seg: Segment, doc: Document, now: float) -> dict[str, Any]:
    """A chunk as the segment routes answer it."""
    body = _segment_core(seg, doc, now)
    body["child_chunks"] = [child_chunk_view(c) for c in seg.child_chunks.values()]
    body["attachments"] = []
    body["summary"] = None
    return body


def retrieval_record(
    ds: Dataset,
    seg: Segment,
    doc: Document,
    now: float,
    score: float,
    child_scores: list[dict[str, Any]] | None,
    *,
    newest: bool = True,
) -> dict[str, Any]:
    """One record of a retrieve answer (``newest``: as 1.16.1 answers it, with ``[]`` for no child chunks or
    files and a null ``sign_content``; otherwise as 1.13.2, with nulls and the text)."""
    segment = _segment_core(seg, doc, now)
    if newest:
        segment["sign_content"] = None
    del segment["updated_at"]
    del segment["updated_by"]
    segment["document"] = {
        "id": doc.id,
        "data_source_type": "upload_file",
        "name": doc.name,
        "doc_type": None,
        "doc_metadata": doc_metadata_raw(ds, doc),
    }
    return {
        "segment": segment,
        "child_chunks": child_scores if child_scores is not None or not newest else [],
        "score": score,
        "tsne_position": None,
        "files": [] if newest else None,
        "summary": None,
    }
