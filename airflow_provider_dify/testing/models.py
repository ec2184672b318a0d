"""The emulator's records: datasets, documents, chunks, metadata fields, tags and uploaded files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Indexing phases while a document is worked on, in order.
RUNNING_PHASES = ("parsing", "cleaning", "splitting", "indexing")
#: Share of a document's indexing time after which each phase is completed.
PHASE_ENDS = (0.1, 0.2, 0.3, 1.0)

BUILT_IN_FIELDS: tuple[tuple[str, str], ...] = (
    ("document_name", "string"),
    ("uploader", "string"),
    ("upload_date", "time"),
    ("last_update_date", "time"),
    ("source", "string"),
)


def default_retrieval_model() -> dict[str, Any]:
    """Dify's default retrieval settings of a new dataset."""
    return {
        "search_method": "semantic_search",
        "reranking_enable": False,
        "reranking_mode": None,
        "reranking_model": {"reranking_provider_name": "", "reranking_model_name": ""},
        "weights": None,
        "top_k": 2,
        "score_threshold_enabled": False,
        "score_threshold": None,
    }


@dataclass
class UploadFile:
    """
    A stored file (uploaded, or the text of a create-by-text document).

    :param id: file id.
    :param name: file name.
    :param size: size in bytes.
    :param extension: extension, lower case.
    :param mime_type: content type.
    :param created_by: account id of the uploader.
    :param created_at: upload time (float seconds, as Dify answers it).
    :param data: the file's bytes.
    """

    id: str
    name: str
    size: int
    extension: str
    mime_type: str
    created_by: str
    created_at: float
    data: bytes = b""

    def view(self) -> dict[str, Any]:
        """The ``upload_file`` object of document responses."""
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "extension": self.extension,
            "mime_type": self.mime_type,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


@dataclass
class ProcessRule:
    """
    A dataset process rule (chunking settings), referenced by documents.

    :param id: rule id.
    :param dataset_id: owning dataset.
    :param mode: ``automatic``, ``custom`` or ``hierarchical``.
    :param rules: the rules as sent (``None`` for automatic).
    """

    id: str
    dataset_id: str
    mode: str
    rules: dict[str, Any] | None


@dataclass
class ChildChunk:
    """
    A child chunk of a parent chunk (hierarchical documents).

    :param id: child chunk id.
    :param segment_id: parent chunk id.
    :param content: text.
    :param position: 1-based position within the parent.
    :param type: ``automatic`` or ``customized``.
    :param created_at: creation time.
    :param updated_at: last change time.
    """

    id: str
    segment_id: str
    content: str
    position: int
    type: str
    created_at: float
    updated_at: float

    @property
    def word_count(self) -> int:
        """Characters of the content (Dify's ``word_count``)."""
        return len(self.content)


@dataclass
class Segment:
    """
    A chunk of a document.

    :param id: chunk id.
    :param document_id: owning document.
    :param position: 1-based position in the document.
    :param content: text.
    :param answer: answer (qa_model), or ``None``.
    :param keywords: keywords of the economy index.
    :param tokens: token count (0 on economy datasets).
    :param status: ``indexing``, ``completed``, ``error`` or ``re_segment``.
    """

    id: str
    document_id: str
    position: int
    content: str
    answer: str | None
    keywords: list[str]
    tokens: int
    index_node_id: str
    index_node_hash: str
    status: str
    created_at: float
    updated_at: float
    indexing_at: float | None
    completed_at: float | None
    created_by: str
    updated_by: str | None = None
    hit_count: int = 0
    enabled: bool = True
    disabled_at: float | None = None
    disabled_by: str | None = None
    error: str | None = None
    stopped_at: float | None = None
    child_chunks: dict[str, ChildChunk] = field(default_factory=dict)

    @property
    def word_count(self) -> int:
        """Characters of content and answer (Dify's ``word_count``)."""
        return len(self.content) + len(self.answer or "")


@dataclass
class Document:
    """
    A document of a dataset, with its indexing state.

    :param id: document id.
    :param dataset_id: owning dataset.
    :param position: 1-based position (max + 1 at creation).
    :param name: name (the identity used by same-name upserts).
    :param text: the text that is split into chunks.
    :param upload_file: the stored file behind the document.
    :param process_rule: the chunking rule.
    :param batch: the batch id that serves indexing-status polling.
    :param indexing_status: ``waiting``, ``running`` (phase computed from the clock), ``stalled``,
        ``completed``, ``error`` or ``paused``.
    """

    id: str
    dataset_id: str
    position: int
    name: str
    text: str
    upload_file: UploadFile
    process_rule: ProcessRule
    created_from: str
    created_by: str
    created_at: float
    updated_at: float
    batch: str
    doc_form: str
    doc_language: str
    indexing_status: str = "waiting"
    processing_started_at: float | None = None
    parsing_completed_at: float | None = None
    cleaning_completed_at: float | None = None
    splitting_completed_at: float | None = None
    completed_at: float | None = None
    paused_at: float | None = None
    error: str | None = None
    stopped_at: float | None = None
    indexing_latency: float | None = None
    enabled: bool = True
    disabled_at: float | None = None
    disabled_by: str | None = None
    archived: bool = False
    word_count: int | None = None
    tokens: int | None = None
    hit_count: int = 0
    segments: dict[str, Segment] = field(default_factory=dict)
    metadata_values: dict[str, Any] = field(default_factory=dict)
    builtin_values: dict[str, Any] = field(default_factory=dict)
    gen: int = 0
    job_duration: float = 0.0
    outcome: str | None = None
    outcome_error: str | None = None
    status_lock_until: float = 0.0
    deleted: bool = False

    def phase(self, now: float) -> str:
        """The ``indexing_status`` a client sees at ``now``."""
        status = self.indexing_status
        if status == "running":
            start = self.processing_started_at or now
            fraction = (now - start) / self.job_duration if self.job_duration > 0 else 1.0
            for name, end in zip(RUNNING_PHASES, PHASE_ENDS, strict=True):
                if fraction < end:
                    return name
            return "indexing"
        if status == "stalled":
            return "indexing"
        return status

    def display_status(self, now: float) -> str | None:
        """Dify's ``display_status`` at ``now``."""
        phase = self.phase(now)
        if phase == "paused":
            return "paused"
        if phase == "waiting":
            return "queuing"
        if phase in RUNNING_PHASES:
            return "indexing"
        if phase == "error":
            return "error"
        if phase == "completed":
            if self.archived:
                return "archived"
            return "available" if self.enabled else "disabled"
        return None

    @property
    def available(self) -> bool:
        """Completed, enabled and not archived: searchable and counted as available."""
        return self.indexing_status == "completed" and self.enabled and not self.archived

    def segment_counts(self, now: float) -> tuple[int, int]:
        """``(completed_segments, total_segments)`` of the indexing-status answer."""
        live = [s for s in self.segments.values() if s.status != "re_segment"]
        total = len(live)
        if self.indexing_status == "running":
            start = self.processing_started_at or now
            fraction = (now - start) / self.job_duration if self.job_duration > 0 else 1.0
            progress = min(1.0, max(0.0, (fraction - PHASE_ENDS[2]) / (1.0 - PHASE_ENDS[2])))
            return int(total * progress), total
        if self.indexing_status == "stalled":
            return 0, total
        return sum(1 for s in live if s.completed_at is not None), total


@dataclass
class MetadataField:
    """
    A custom metadata field of a dataset.

    :param id: field id.
    :param name: field name.
    :param type: ``string``, ``number`` or ``time``.
    """

    id: str
    name: str
    type: str


@dataclass
class Dataset:
    """
    A knowledge base with its documents, process rules, metadata fields and batches.

    :param id: dataset id.
    :param name: name, unique in the workspace.
    :param indexing_technique: ``economy``, ``high_quality`` or ``None`` until the first document.
    :param retrieval_model: stored retrieval settings.
    :param documents: documents by id, in creation order.
    :param docs_by_name: document ids by name (same-name upserts look here).
    :param batches: document ids by batch.
    :param metadata: custom metadata fields by id.
    :param keyword_number: keywords the economy index extracts per chunk (Dify's per-dataset setting).
    """

    id: str
    name: str
    description: str
    permission: str
    indexing_technique: str | None
    embedding_model: str | None
    embedding_model_provider: str | None
    retrieval_model: dict[str, Any]
    created_by: str
    created_at: float
    updated_at: float
    doc_form: str | None = None
    data_source_type: str | None = None
    enable_api: bool = True
    built_in_field_enabled: bool = False
    latest_rule: ProcessRule | None = None
    summary_index_setting: dict[str, Any] | None = None
    partial_member_list: list[Any] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)
    docs_by_name: dict[str, list[str]] = field(default_factory=dict)
    batches: dict[str, set[str]] = field(default_factory=dict)
    metadata: dict[str, MetadataField] = field(default_factory=dict)
    next_position: int = 1
    keyword_number: int = 10
    #: The published knowledge pipeline of a ``rag_pipeline`` knowledge base (``testing.pipeline.Pipeline``).
    pipeline: Any = None


@dataclass
class Tag:
    """
    A workspace knowledge tag.

    :param id: tag id.
    :param name: tag name.
    :param created_at: creation time.
    """

    id: str
    name: str
    created_at: float
    type: str = "knowledge"
