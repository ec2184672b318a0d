"""Chunks (segments) and child chunks: add, update, delete."""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_provider_dify.testing.errors import invalid_param, not_found
from airflow_provider_dify.testing.models import (
    ChildChunk,
    Dataset,
    Document,
    Segment,
)
from airflow_provider_dify.testing.state.core import StateCore, new_id
from airflow_provider_dify.testing.text import (
    estimate_tokens,
    extract_keywords,
    split_children,
)


class SegmentStore(StateCore):
    """Chunks (segments) and child chunks: a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

    def _segment_target(self, ds: Dataset, document_id: str) -> Document:
        return self.get_document(ds, document_id)

    def get_segment(self, doc: Document, segment_id: str) -> Segment:
        """A chunk of the document, or 404 "Segment not found."."""
        seg = doc.segments.get(segment_id)
        if seg is None or seg.status == "re_segment":
            raise not_found("Segment not found.")
        return seg

    def add_segments(self, ds: Dataset, doc: Document, items: list[dict[str, Any]], now: float) -> list[Segment]:
        """Add chunks to a completed, enabled document; they are indexed at once."""
        limit = self.config.max_segments_per_request
        if limit and len(items) > limit:
            raise invalid_param(f"Exceeded maximum segments limit of {limit}.")
        for item in items:
            if not (item.get("content") or "").strip():
                raise invalid_param("Content is empty")
            if doc.doc_form == "qa_model" and not (item.get("answer") or "").strip():
                raise invalid_param("Answer is required")
        economy = ds.indexing_technique != "high_quality"
        position = max((s.position for s in doc.segments.values()), default=0)
        created = []
        for item in items:
            position += 1
            seg = self._new_segment(
                doc,
                position,
                item["content"],
                item.get("answer"),
                item.get("keywords"),
                now,
                economy,
                status="completed",
            )
            if doc.doc_form == "hierarchical_model":
                for child_position, child in enumerate(split_children(seg.content, doc.process_rule.rules), 1):
                    chunk = ChildChunk(new_id(), seg.id, child, child_position, "automatic", now, now)
                    seg.child_chunks[chunk.id] = chunk
            doc.segments[seg.id] = seg
            created.append(seg)
        self._recount_words(doc, economy)
        return created

    def _recount_words(self, doc: Document, economy: bool) -> None:
        live = [s for s in doc.segments.values() if s.status != "re_segment"]
        doc.word_count = sum(s.word_count for s in live)
        doc.tokens = 0 if economy else sum(s.tokens for s in live)

    def update_segment(self, ds: Dataset, doc: Document, seg: Segment, values: dict[str, Any], now: float) -> Segment:
        """``POST /segments/{id}``: change content, answer, keywords or the enabled flag."""
        enabled = values.get("enabled")
        if enabled is False:
            if seg.enabled:
                seg.enabled = False
                seg.disabled_at = now
                seg.disabled_by = self.account_id
                seg.updated_at = now
                seg.updated_by = self.account_id
            return seg
        if not seg.enabled and enabled is not True:
            raise invalid_param("Can't update disabled segment")
        if seg.status == "indexing":
            raise invalid_param("Segment is indexing, please try again later")
        economy = ds.indexing_technique != "high_quality"
        content = values.get("content")
        if content is not None and not content.strip():
            raise invalid_param("Content is empty")
        if doc.doc_form == "qa_model" and values.get("answer") is not None and not values["answer"].strip():
            raise invalid_param("Answer is required")
        changed = content is not None and content != seg.content
        if content is not None:
            seg.content = content
        if values.get("answer") is not None:
            seg.answer = values["answer"] or None
        if values.get("keywords"):
            seg.keywords = list(values["keywords"])
        elif changed:
            seg.keywords = extract_keywords(seg.content, ds.keyword_number)
        if changed:
            seg.index_node_hash = hashlib.sha256(seg.content.encode("utf-8")).hexdigest()
            seg.tokens = 0 if economy else estimate_tokens(seg.content + (seg.answer or ""))
            if values.get("regenerate_child_chunks") and doc.doc_form == "hierarchical_model":
                seg.child_chunks = {}
                for child_position, child in enumerate(split_children(seg.content, doc.process_rule.rules), 1):
                    chunk = ChildChunk(new_id(), seg.id, child, child_position, "automatic", now, now)
                    seg.child_chunks[chunk.id] = chunk
        seg.enabled = True
        seg.disabled_at = None
        seg.disabled_by = None
        seg.updated_at = now
        seg.updated_by = self.account_id
        seg.indexing_at = now
        seg.completed_at = now
        seg.status = "completed"
        self._recount_words(doc, economy)
        return seg

    def delete_segment(self, ds: Dataset, doc: Document, seg: Segment) -> None:
        """Delete a chunk."""
        del doc.segments[seg.id]
        self._recount_words(doc, ds.indexing_technique != "high_quality")

    def get_child_chunk(self, seg: Segment, child_id: str) -> ChildChunk:
        """A child chunk of the chunk, or 404."""
        chunk = seg.child_chunks.get(child_id)
        if chunk is None:
            raise not_found("Child chunk not found.")
        return chunk

    def add_child_chunk(self, seg: Segment, content: str, now: float) -> ChildChunk:
        """Create a child chunk (type ``customized``)."""
        if not content.strip():
            raise invalid_param("Content is empty")
        position = max((c.position for c in seg.child_chunks.values()), default=0) + 1
        chunk = ChildChunk(new_id(), seg.id, content, position, "customized", now, now)
        seg.child_chunks[chunk.id] = chunk
        seg.updated_at = now
        return chunk
