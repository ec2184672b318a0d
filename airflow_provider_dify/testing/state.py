"""
The emulator's in-memory workspace and its state machine.

Every method expects the caller to hold the emulator's lock and to pass the current time ``now``; indexing is
simulated by :meth:`EmulatorState.tick`, which the server calls at the start of every request: it starts and
finishes queued documents whose time has come (one document at a time, per workspace, like Dify's worker).
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_dify.testing.config import EmulatorConfig
from airflow_provider_dify.testing.errors import ApiError, forbidden, internal_error, invalid_param, not_found
from airflow_provider_dify.testing.models import (
    BUILT_IN_FIELDS,
    PHASE_ENDS,
    ChildChunk,
    Dataset,
    Document,
    MetadataField,
    ProcessRule,
    Segment,
    Tag,
    UploadFile,
    default_retrieval_model,
)
from airflow_provider_dify.testing.text import (
    estimate_tokens,
    extract_keywords,
    extract_text,
    query_keywords,
    split_children,
    split_text,
    words,
)
from airflow_provider_dify.testing.views import builtin_values, document_view

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_EMBEDDING_PROVIDER = "langgenius/openai/openai"
NO_EMBEDDING_MODEL = "Default model not found for text-embedding"
NO_EMBEDDING_PROVIDER = (
    "No Embedding Model available. Please configure a valid provider in the Settings -> Model Provider."
)
DOCUMENT_LIMIT_MESSAGE = "The number of documents has reached the limit of your subscription."
SANDBOX_MESSAGE = "To unlock this feature and elevate your Dify experience, please upgrade to a paid plan."
RATE_LIMIT_MESSAGE = "Sorry, you have reached the knowledge base request rate limit of your subscription."
STATUS_ACTIONS = ("enable", "disable", "archive", "un_archive")
OUTCOMES = ("error", "stall", "stuck", "paused")


def new_id() -> str:
    """A new lower-case UUID4 string."""
    return str(uuid.uuid4())


@dataclass
class Job:
    """
    A document waiting in (or taken from) the indexing queue.

    :param doc: the document.
    :param gen: the document's generation when queued (a re-queue makes older jobs stale).
    :param enqueued_at: when it was queued.
    """

    doc: Document
    gen: int
    enqueued_at: float


@dataclass
class OutcomeRule:
    """
    A rule that decides how the indexing of matching documents ends (see ``set_indexing_outcome``).

    :param match: a document name or a predicate.
    :param outcome: ``error``, ``stall``, ``stuck`` or ``paused``.
    :param error: the error text of ``error``.
    :param remaining: documents left to apply it to (``None``: unlimited).
    """

    match: str | Callable[[dict[str, Any]], bool]
    outcome: str
    error: str
    remaining: int | None


class EmulatorState:
    """
    The workspace of one emulator: datasets, documents, chunks, metadata, tags, files and the indexing queue.

    :param config: the emulator's knobs (read live, so ``configure`` takes effect at once).
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.account_id = new_id()
        self.clock_offset = 0.0
        self.clear()

    # ------------------------------------------------------------------ housekeeping

    def clear(self) -> None:
        """Forget everything (datasets, tags, files, queue, rate-limit window, outcome rules)."""
        self.datasets: dict[str, Dataset] = {}
        self.dataset_names: dict[str, str] = {}
        self.tags: dict[str, Tag] = {}
        self.tag_bindings: dict[str, set[str]] = {}
        self.files: dict[str, UploadFile] = {}
        self.queue: deque[Job] = deque()
        self.running: Job | None = None
        self.running_end = 0.0
        self.free_at = 0.0
        self.rate_hits: deque[float] = deque()
        self.outcome_rules: list[OutcomeRule] = []
        self.version = 0
        self._counts_cache: dict[str, tuple[int, tuple[int, int, int]]] = {}
        self._batch_rng = random.Random()

    def now(self) -> float:
        """The emulator's clock: wall time plus ``advance_time`` offsets."""
        return time.time() + self.clock_offset

    def bump(self) -> None:
        """Mark the state as changed (invalidates cached dataset counts)."""
        self.version += 1

    def new_batch(self, now: float) -> str:
        """A batch id like Dify's: ``YYYYmmddHHMMSS`` plus 6 random digits."""
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + f"{self._batch_rng.randrange(10**6):06d}"

    # ------------------------------------------------------------------ indexing engine

    def enqueue(self, doc: Document, now: float, *, keep_progress: bool) -> None:
        """Put a document (back) into the indexing queue."""
        doc.gen += 1
        doc.indexing_status = "waiting"
        doc.error = None
        doc.stopped_at = None
        doc.paused_at = None
        doc.outcome = None
        if not keep_progress:
            doc.processing_started_at = None
            doc.parsing_completed_at = None
            doc.cleaning_completed_at = None
            doc.splitting_completed_at = None
            doc.completed_at = None
        self.queue.append(Job(doc, doc.gen, now))

    @staticmethod
    def _job_valid(job: Job) -> bool:
        return not job.doc.deleted and job.doc.gen == job.gen

    def tick(self, now: float) -> None:
        """Advance the indexing queue to ``now``."""
        changed = False
        pickup = self.config.queue_pickup_seconds
        while True:
            if self.running is not None:
                if now < self.running_end:
                    break
                self._finish(self.running, self.running_end)
                self.free_at = self.running_end
                self.running = None
                changed = True
            while self.queue and not self._job_valid(self.queue[0]):
                self.queue.popleft()
            if not self.queue:
                break
            job = self.queue[0]
            start = max(job.enqueued_at + pickup, self.free_at)
            if start > now:
                break
            self.queue.popleft()
            changed = True
            self._start(job, start, self.config.indexing_seconds)
        if changed:
            self.bump()

    def drain(self, now: float) -> None:
        """Finish all queued and running indexing at once (outcome rules still apply)."""
        if self.running is not None:
            self._finish(self.running, now)
            self.running = None
        while self.queue:
            job = self.queue.popleft()
            if not self._job_valid(job):
                continue
            self._start(job, now, 0.0)
            if self.running is not None:
                self._finish(self.running, now)
                self.running = None
        self.free_at = now
        self.bump()

    @property
    def idle(self) -> bool:
        """No document is queued or being indexed."""
        return self.running is None and not any(self._job_valid(job) for job in self.queue)

    def _outcome_for(self, doc: Document) -> OutcomeRule | None:
        if not self.outcome_rules:
            return None
        info = {
            "id": doc.id,
            "name": doc.name,
            "dataset_id": doc.dataset_id,
            "batch": doc.batch,
            "text": doc.text,
        }
        for rule in self.outcome_rules:
            matched = rule.match(info) if callable(rule.match) else rule.match == doc.name
            if not matched:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.outcome_rules.remove(rule)
            return rule
        return None

    def _start(self, job: Job, start: float, duration: float) -> None:
        doc = job.doc
        rule = self._outcome_for(doc)
        outcome = rule.outcome if rule else None
        if outcome == "stuck":
            doc.outcome = "stuck"
            return
        if outcome == "paused":
            doc.indexing_status = "paused"
            doc.paused_at = start
            return
        doc.indexing_status = "running"
        doc.job_duration = duration
        doc.processing_started_at = start
        doc.parsing_completed_at = start + PHASE_ENDS[0] * duration
        doc.cleaning_completed_at = start + PHASE_ENDS[1] * duration
        doc.splitting_completed_at = start + PHASE_ENDS[2] * duration
        doc.completed_at = None
        doc.outcome = outcome
        doc.outcome_error = rule.error if rule else None
        self._materialize(doc, start + PHASE_ENDS[2] * duration)
        self.running = job
        self.running_end = start + (PHASE_ENDS[2] * duration if outcome == "error" else duration)

    def _finish(self, job: Job, when: float) -> None:
        if not self._job_valid(job):
            return
        doc = job.doc
        if doc.outcome == "error":
            doc.indexing_status = "error"
            doc.error = doc.outcome_error or "Indexing failed (emulated error)."
            doc.stopped_at = when
            doc.splitting_completed_at = when
            for seg in doc.segments.values():
                seg.status = "error"
                seg.error = doc.error
        elif doc.outcome == "stall":
            doc.indexing_status = "stalled"
        else:
            doc.indexing_status = "completed"
            doc.completed_at = when
            doc.indexing_latency = when - (doc.processing_started_at or when)
            for seg in doc.segments.values():
                seg.status = "completed"
                seg.completed_at = when
        doc.outcome = None

    def _materialize(self, doc: Document, when: float) -> None:
        """Split the document's text into fresh chunks (hand-added chunks are dropped, as Dify does)."""
        ds = self.datasets[doc.dataset_id]
        splitting = self._splitting(doc)
        pieces = split_text(doc.text, *splitting) if splitting is not None else []
        economy = ds.indexing_technique != "high_quality"
        doc.segments = {}
        for position, (content, children) in enumerate(pieces, start=1):
            seg = self._new_segment(doc, position, content, None, None, when, economy, status="indexing")
            for child_position, child in enumerate(children, start=1):
                chunk = ChildChunk(new_id(), seg.id, child, child_position, "automatic", when, when)
                seg.child_chunks[chunk.id] = chunk
            doc.segments[seg.id] = seg
        doc.word_count = sum(s.word_count for s in doc.segments.values())
        doc.tokens = 0 if economy else sum(s.tokens for s in doc.segments.values())

    def _keyword_number(self, doc: Document) -> int:
        ds = self.datasets.get(doc.dataset_id)
        return ds.keyword_number if ds is not None else 10

    def _splitting(self, doc: Document) -> tuple[str, dict[str, Any] | None] | None:
        """
        The mode and rules Dify's index processor splits a document with (it is chosen by the document form), or
        ``None`` when it makes no chunk at all.

        A parent-child (``hierarchical_model``) document is split by ``parent_mode`` and
        ``subchunk_segmentation`` read directly under ``rules``, whatever the rule's mode. Without
        ``subchunk_segmentation`` it yields no chunk while the API answered 200 (langgenius/dify#22270); without
        ``parent_mode`` neither, up to 1.13 (newer servers default to ``paragraph``, langgenius/dify#34635).
        Any other form ignores the parent-child parts of a hierarchical rule (langgenius/dify#22118).
        """
        mode, rules = doc.process_rule.mode, doc.process_rule.rules
        if doc.doc_form != "hierarchical_model":
            return ("custom" if mode == "hierarchical" else mode), rules
        rules = dict(rules or {})
        if rules.get("parent_mode") not in ("paragraph", "full-doc"):
            if self.config.version_tuple <= (1, 13):
                return None
            rules["parent_mode"] = "paragraph"
        if not isinstance(rules.get("subchunk_segmentation"), dict):
            return None
        return "hierarchical", rules

    def _new_segment(
        self,
        doc: Document,
        position: int,
        content: str,
        answer: str | None,
        keywords: list[str] | None,
        now: float,
        economy: bool,
        *,
        status: str,
    ) -> Segment:
        return Segment(
            id=new_id(),
            document_id=doc.id,
            position=position,
            content=content,
            answer=answer or None,
            keywords=list(keywords) if keywords else extract_keywords(content, self._keyword_number(doc)),
            tokens=0 if economy else estimate_tokens(content + (answer or "")),
            index_node_id=new_id(),
            index_node_hash=hashlib.sha256(content.encode("utf-8")).hexdigest(),
            status=status,
            created_at=now,
            updated_at=now,
            indexing_at=now,
            completed_at=now if status == "completed" else None,
            created_by=self.account_id,
        )

    def set_outcome(
        self,
        match: str | Callable[[dict[str, Any]], bool],
        outcome: str,
        error: str | None,
        count: int | None,
    ) -> None:
        """Add an indexing outcome rule (see ``DifyEmulator.set_indexing_outcome``)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        self.outcome_rules.append(
            OutcomeRule(
                match, outcome, error or "Emulated indexing error.", count if count is None else int(count)
            )
        )

    # ------------------------------------------------------------------ limits

    def check_rate_limit(self, now: float) -> None:
        """Count one rate-limited request; 403 when the window holds more than the limit."""
        limit = self.config.rate_limit_per_minute
        if limit is None:
            return
        window = self.config.rate_limit_window_seconds
        hits = self.rate_hits
        hits.append(now)
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) > limit:
            raise forbidden(RATE_LIMIT_MESSAGE)

    def check_document_quota(self) -> None:
        """403 when the workspace holds ``document_limit`` documents."""
        limit = self.config.document_limit
        if limit is None:
            return
        total = sum(len(ds.documents) for ds in self.datasets.values())
        if 0 <= limit <= total:
            raise forbidden(DOCUMENT_LIMIT_MESSAGE)

    def check_sandbox(self) -> None:
        """403 on chunk writes when the Sandbox plan is emulated."""
        if self.config.sandbox_plan:
            raise forbidden(SANDBOX_MESSAGE)

    # ------------------------------------------------------------------ datasets

    def dataset_counts(self, ds: Dataset) -> tuple[int, int, int]:
        """``(document_count, word_count, available_documents)``, cached until the state changes."""
        cached = self._counts_cache.get(ds.id)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        word_count = 0
        available = 0
        for doc in ds.documents.values():
            word_count += doc.word_count or 0
            available += doc.available
        counts = (len(ds.documents), word_count, available)
        self._counts_cache[ds.id] = (self.version, counts)
        return counts

    def dataset_tags(self, ds: Dataset) -> list[Tag]:
        """Tags bound to a dataset."""
        return [tag for tag_id, tag in self.tags.items() if ds.id in self.tag_bindings.get(tag_id, ())]

    def get_dataset(self, dataset_id: str) -> Dataset:
        """The dataset, or 404 "Dataset not found."."""
        ds = self.datasets.get(dataset_id)
        if ds is None:
            raise not_found("Dataset not found.")
        return ds

    def _check_embedding(self, technique: str | None, message: str = NO_EMBEDDING_MODEL) -> None:
        if technique == "high_quality" and not self.config.embedding_available:
            raise invalid_param(message)

    def create_dataset(self, values: dict[str, Any], now: float) -> Dataset:
        """Create an empty dataset (name unique in the workspace)."""
        name = values["name"]
        if name in self.dataset_names:
            raise ApiError(
                409,
                "dataset_name_duplicate",
                "The dataset name already exists. Please modify your dataset name.",
            )
        if values.get("provider") == "external":
            raise invalid_param("External knowledge bases are not supported by the emulator.")
        technique = values.get("indexing_technique")
        self._check_embedding(technique)
        retrieval = default_retrieval_model()
        if values.get("retrieval_model"):
            retrieval.update(
                {k: v for k, v in values["retrieval_model"].items() if k in retrieval or k == "weights"}
            )
        high_quality = technique == "high_quality"
        ds = Dataset(
            id=new_id(),
            name=name,
            description=values.get("description") or "",
            permission=values.get("permission") or "only_me",
            indexing_technique=technique,
            embedding_model=(values.get("embedding_model") or DEFAULT_EMBEDDING_MODEL)
            if high_quality
            else None,
            embedding_model_provider=(values.get("embedding_model_provider") or DEFAULT_EMBEDDING_PROVIDER)
            if high_quality
            else None,
            retrieval_model=retrieval,
            created_by=self.account_id,
            created_at=now,
            updated_at=now,
            summary_index_setting=values.get("summary_index_setting"),
        )
        self.datasets[ds.id] = ds
        self.dataset_names[name] = ds.id
        return ds

    def list_datasets(self, keyword: str | None, tag_ids: list[str], include_all: bool) -> list[Dataset]:
        """Datasets, newest first, filtered by name keyword and tags (any of them)."""
        result = list(reversed(self.datasets.values()))
        if keyword:
            needle = keyword.lower()
            result = [ds for ds in result if needle in ds.name.lower()]
        if tag_ids:
            targets: set[str] = set()
            for tag_id in tag_ids:
                targets |= self.tag_bindings.get(tag_id, set())
            result = [ds for ds in result if ds.id in targets]
        return result

    def update_dataset(self, ds: Dataset, values: dict[str, Any], present: set[str], now: float) -> Dataset:
        """Change the keys sent in a PATCH."""
        if "name" in present and values.get("name") is not None and values["name"] != ds.name:
            if values["name"] in self.dataset_names:
                raise ApiError(
                    409,
                    "dataset_name_duplicate",
                    "The dataset name already exists. Please modify your dataset name.",
                )
            del self.dataset_names[ds.name]
            ds.name = values["name"]
            self.dataset_names[ds.name] = ds.id
        if "description" in present and values.get("description") is not None:
            ds.description = values["description"]
        if "permission" in present and values.get("permission"):
            ds.permission = values["permission"]
        if "indexing_technique" in present and values.get("indexing_technique"):
            technique = values["indexing_technique"]
            self._check_embedding(technique)
            ds.indexing_technique = technique
            if technique == "high_quality":
                ds.embedding_model = ds.embedding_model or DEFAULT_EMBEDDING_MODEL
                ds.embedding_model_provider = ds.embedding_model_provider or DEFAULT_EMBEDDING_PROVIDER
        for key in ("embedding_model", "embedding_model_provider"):
            if key in present and values.get(key):
                setattr(ds, key, values[key])
        if "retrieval_model" in present and values.get("retrieval_model"):
            ds.retrieval_model.update(values["retrieval_model"])
        if "partial_member_list" in present and values.get("partial_member_list") is not None:
            ds.partial_member_list = list(values["partial_member_list"])
        ds.updated_at = now
        return ds

    def delete_dataset(self, ds: Dataset) -> None:
        """Delete a dataset with its documents and tag bindings."""
        for doc in ds.documents.values():
            doc.deleted = True
            self.files.pop(doc.upload_file.id, None)
        del self.datasets[ds.id]
        self.dataset_names.pop(ds.name, None)
        for bound in self.tag_bindings.values():
            bound.discard(ds.id)
        self._counts_cache.pop(ds.id, None)

    # ------------------------------------------------------------------ documents

    def get_document(self, ds: Dataset, document_id: str, message: str = "Document not found.") -> Document:
        """A document of the dataset, or 404 with ``message``."""
        doc = ds.documents.get(document_id)
        if doc is None:
            raise not_found(message)
        return doc

    def new_rule(self, ds: Dataset, process_rule: dict[str, Any]) -> ProcessRule:
        """Validate a ``process_rule`` like Dify and store it as the dataset's latest rule."""
        mode = process_rule.get("mode")
        if not mode:
            raise invalid_param("Process rule mode is required")
        if mode not in ("automatic", "custom", "hierarchical"):
            raise invalid_param("Process rule mode is invalid")
        rules = process_rule.get("rules")
        if mode == "automatic":
            rules = None
        else:
            if not rules:
                raise invalid_param("Process rule rules is required")
            if not isinstance(rules, dict):
                raise invalid_param("Process rule rules is invalid")
            pre = rules.get("pre_processing_rules")
            if pre is None:
                raise invalid_param("Process rule pre_processing_rules is required")
            if not isinstance(pre, list):
                raise invalid_param("Process rule pre_processing_rules is invalid")
            segmentation = rules.get("segmentation")
            if segmentation is None:
                raise invalid_param("Process rule segmentation is required")
            if not isinstance(segmentation, dict):
                raise invalid_param("Process rule segmentation is invalid")
            full_doc = mode == "hierarchical" and rules.get("parent_mode") == "full-doc"
            if not full_doc:
                if "separator" not in segmentation or not segmentation.get("separator"):
                    raise invalid_param("Process rule segmentation separator is required")
                if not isinstance(segmentation["separator"], str):
                    raise invalid_param("Process rule segmentation separator is invalid")
                if "max_tokens" not in segmentation or segmentation.get("max_tokens") is None:
                    raise invalid_param("Process rule segmentation max_tokens is required")
                if not isinstance(segmentation["max_tokens"], int) or isinstance(
                    segmentation["max_tokens"], bool
                ):
                    raise invalid_param("Process rule segmentation max_tokens is invalid")
        rule = ProcessRule(new_id(), ds.id, mode, rules)
        ds.latest_rule = rule
        return rule

    def _prepare_first_document(
        self, ds: Dataset, technique: str | None, doc_form: str, values: dict[str, Any]
    ) -> None:
        if technique == "high_quality" and not self.config.embedding_available:
            raise ApiError(400, "provider_not_initialize", NO_EMBEDDING_PROVIDER)
        if not ds.indexing_technique:
            ds.indexing_technique = technique
            if technique == "high_quality":
                ds.embedding_model = values.get("embedding_model") or DEFAULT_EMBEDDING_MODEL
                ds.embedding_model_provider = (
                    values.get("embedding_model_provider") or DEFAULT_EMBEDDING_PROVIDER
                )
            if values.get("retrieval_model"):
                ds.retrieval_model.update(values["retrieval_model"])
        if ds.doc_form and ds.doc_form != doc_form:
            raise invalid_param("doc_form is different from the dataset doc_form.")
        if not ds.doc_form:
            ds.doc_form = doc_form
        ds.data_source_type = ds.data_source_type or "upload_file"

    def _store_file(self, name: str, extension: str, mime_type: str, data: bytes, now: float) -> UploadFile:
        upload = UploadFile(new_id(), name, len(data), extension, mime_type, self.account_id, now, data)
        self.files[upload.id] = upload
        return upload

    def _find_same_name(self, ds: Dataset, name: str) -> Document | None:
        for doc_id in ds.docs_by_name.get(name, ()):
            doc = ds.documents.get(doc_id)
            if doc is not None and doc.enabled:
                return doc
        return None

    def _move_batch(self, ds: Dataset, doc: Document, batch: str) -> None:
        old = ds.batches.get(doc.batch)
        if old is not None:
            old.discard(doc.id)
            if not old:
                del ds.batches[doc.batch]
        doc.batch = batch
        ds.batches.setdefault(batch, set()).add(doc.id)

    def _rename(self, ds: Dataset, doc: Document, name: str) -> None:
        if name == doc.name:
            return
        ids = ds.docs_by_name.get(doc.name, [])
        if doc.id in ids:
            ids.remove(doc.id)
            if not ids:
                del ds.docs_by_name[doc.name]
        doc.name = name
        ds.docs_by_name.setdefault(name, []).append(doc.id)

    def create_document(
        self,
        ds: Dataset,
        *,
        name: str,
        text: str,
        upload: UploadFile,
        values: dict[str, Any],
        allow_upsert: bool,
        now: float,
    ) -> tuple[Document, str]:
        """Create a document (or re-use the enabled document of the same name) and queue it for indexing."""
        doc_form = values.get("doc_form") or "text_model"
        technique = ds.indexing_technique or values.get("indexing_technique")
        self._prepare_first_document(ds, technique, doc_form, values)
        if values.get("process_rule"):
            rule = self.new_rule(ds, values["process_rule"])
        elif ds.latest_rule is not None:
            rule = ds.latest_rule
        else:
            raise invalid_param(values.get("_no_rule_message") or "No process rule found.")
        batch = self.new_batch(now)
        existing = self._find_same_name(ds, name) if allow_upsert else None
        if existing is not None:
            doc = existing
            self.files.pop(doc.upload_file.id, None)
            doc.upload_file = upload
            doc.text = text
            doc.process_rule = rule
            doc.updated_at = now
            doc.doc_language = values.get("doc_language") or doc.doc_language
            self._move_batch(ds, doc, batch)
            self.enqueue(doc, now, keep_progress=True)
            return doc, batch
        doc = Document(
            id=new_id(),
            dataset_id=ds.id,
            position=ds.next_position,
            name=name,
            text=text,
            upload_file=upload,
            process_rule=rule,
            created_from="api",
            created_by=self.account_id,
            created_at=now,
            updated_at=now,
            batch=batch,
            doc_form=doc_form,
            doc_language=values.get("doc_language") or "English",
        )
        ds.next_position += 1
        ds.documents[doc.id] = doc
        ds.docs_by_name.setdefault(name, []).append(doc.id)
        ds.batches.setdefault(batch, set()).add(doc.id)
        self.enqueue(doc, now, keep_progress=False)
        return doc, batch

    def create_text_document(self, ds: Dataset, values: dict[str, Any], now: float) -> tuple[Document, str]:
        """``POST /document/create-by-text``."""
        if not ds.indexing_technique and not values.get("indexing_technique"):
            raise internal_error()  # what Dify 1.13.2 answers (a server bug)
        name, text = values["name"], values["text"]
        upload = self._store_file(name, "txt", "text/plain", text.encode("utf-8"), now)
        return self.create_document(
            ds, name=name, text=text, upload=upload, values=values, allow_upsert=True, now=now
        )

    def check_upload(self, filename: str, size: int, *, for_update: bool) -> str:
        """Check an upload's extension and size; return the extension."""
        if "/" in filename or "\\" in filename:
            raise invalid_param("Filename contains invalid characters")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if extension not in self.config.allowed_extensions:
            if for_update:
                raise ApiError(415, "unsupported_file_type", "File type not allowed.")
            raise invalid_param("")
        limit = self.config.upload_limit_bytes
        if size > limit:
            if for_update:
                raise ApiError(413, "file_too_large", f"File size exceeded. {size} > {limit}")
            raise invalid_param("")
        return extension

    def store_upload(
        self, filename: str, data: bytes, *, for_update: bool, now: float
    ) -> tuple[UploadFile, str]:
        """Store an uploaded file (after :meth:`check_upload`); return it with its extracted text."""
        filename = filename[:200]
        extension = self.check_upload(filename, len(data), for_update=for_update)
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        upload = self._store_file(filename, extension, mime, data, now)
        return upload, extract_text(filename, extension, data)

    def create_file_document(
        self, ds: Dataset, values: dict[str, Any], filename: str, data: bytes, size: int, now: float
    ) -> tuple[Document, str]:
        """``POST /document/create-by-file`` (after the multipart checks)."""
        technique = values.get("indexing_technique") or ds.indexing_technique
        if not technique:
            raise invalid_param("indexing_technique is required.")
        values = {**values, "indexing_technique": technique, "_no_rule_message": "process_rule is required."}
        if not values.get("doc_form"):
            values["doc_form"] = ds.doc_form or "text_model"
        self.check_upload(filename[:200], size, for_update=False)
        upload, text = self.store_upload(filename, data, for_update=False, now=now)
        allow_upsert = values.get("duplicate", True) is not False
        return self.create_document(
            ds, name=upload.name, text=text, upload=upload, values=values, allow_upsert=allow_upsert, now=now
        )

    def _require_available(self, doc: Document, now: float) -> None:
        if doc.display_status(now) != "available":
            raise invalid_param("Document is not available")

    def update_document(
        self,
        ds: Dataset,
        doc: Document,
        *,
        name: str | None,
        text: str | None,
        upload: UploadFile | None,
        values: dict[str, Any],
        now: float,
    ) -> tuple[Document, str]:
        """Update a document's content or settings and re-index it (same id, same batch)."""
        doc_form = values.get("doc_form") or ds.doc_form or "text_model"
        if ds.doc_form and doc_form != ds.doc_form:
            raise invalid_param("doc_form is different from the dataset doc_form.")
        if values.get("process_rule"):
            doc.process_rule = self.new_rule(ds, values["process_rule"])
        if upload is not None and text is not None:
            self.files.pop(doc.upload_file.id, None)
            doc.upload_file = upload
            doc.text = text
        if name:
            self._rename(ds, doc, name)
        doc.doc_language = values.get("doc_language") or doc.doc_language
        doc.created_from = "web"
        doc.updated_at = now
        for seg in doc.segments.values():
            seg.status = "re_segment"
        self.enqueue(doc, now, keep_progress=False)
        return doc, doc.batch

    def update_text_document(
        self, ds: Dataset, doc: Document, values: dict[str, Any], now: float
    ) -> tuple[Document, str]:
        """``POST /documents/{id}/update-by-text``."""
        self._require_available(doc, now)
        text = values.get("text")
        name = values.get("name")
        if text is not None and not name:
            raise invalid_param("name is required when text is provided")
        upload = None
        if text is not None:
            upload = self._store_file(name, "txt", "text/plain", text.encode("utf-8"), now)
        return self.update_document(ds, doc, name=name, text=text, upload=upload, values=values, now=now)

    def update_file_document(
        self,
        ds: Dataset,
        doc: Document,
        values: dict[str, Any],
        file: tuple[str, bytes, int] | None,
        now: float,
    ) -> tuple[Document, str]:
        """``PATCH /documents/{id}`` and ``POST /documents/{id}/update-by-file``."""
        self._require_available(doc, now)
        upload = text = name = None
        if file is not None:
            filename, data, size = file
            self.check_upload(filename[:200], size, for_update=True)
            upload, text = self.store_upload(filename, data, for_update=True, now=now)
            name = upload.name
        return self.update_document(ds, doc, name=name, text=text, upload=upload, values=values, now=now)

    def list_documents(
        self, ds: Dataset, keyword: str | None, status: str | None, now: float
    ) -> list[Document]:
        """Documents, newest first, filtered by name keyword and display status.

        Dify filters with ``name LIKE '%<keyword>%'`` (PostgreSQL: case-sensitive) and does not escape the
        keyword, so ``%`` in it matches any run of characters and ``_`` any one character.
        """
        docs: Iterable[Document] = reversed(ds.documents.values())
        if keyword:
            pattern = like_pattern(keyword)
            docs = (d for d in docs if pattern.search(d.name))
        if status:
            docs = (d for d in docs if d.display_status(now) == status)
        return list(docs)

    def delete_document(self, ds: Dataset, document_id: str, now: float) -> None:
        """Delete a document (not while it is being indexed, not when archived)."""
        doc = self.get_document(ds, document_id, "Document Not Exists.")
        if doc.archived:
            raise ApiError(403, "archived_document_immutable", "The archived document is not editable.")
        if doc.phase(now) in ("parsing", "cleaning", "splitting", "indexing"):
            raise ApiError(400, "document_indexing", "Cannot delete document during indexing.")
        doc.deleted = True
        del ds.documents[doc.id]
        if doc.position == ds.next_position - 1:  # Dify numbers a new document max(position) + 1
            ds.next_position = max((d.position for d in ds.documents.values()), default=0) + 1
        ids = ds.docs_by_name.get(doc.name, [])
        if doc.id in ids:
            ids.remove(doc.id)
            if not ids:
                del ds.docs_by_name[doc.name]
        batch = ds.batches.get(doc.batch)
        if batch is not None:
            batch.discard(doc.id)
            if not batch:
                del ds.batches[doc.batch]
        self.files.pop(doc.upload_file.id, None)

    def batch_documents(self, ds: Dataset, batch: str) -> list[Document]:
        """The documents of a batch, or 404 "Documents not found."."""
        ids = ds.batches.get(batch)
        if not ids:
            raise not_found("Documents not found.")
        return sorted((ds.documents[i] for i in ids if i in ds.documents), key=lambda d: d.position)

    def change_status(self, ds: Dataset, action: str, document_ids: list[str], now: float) -> None:
        """``PATCH /documents/status/{action}``."""
        if action not in STATUS_ACTIONS:
            raise ApiError(
                400, "invalid_action", f"Invalid action: {action}. Must be one of {list(STATUS_ACTIONS)}"
            )
        lock_seconds = self.config.status_change_seconds
        for document_id in document_ids:
            doc = ds.documents.get(str(document_id))
            if doc is None:
                continue
            if doc.status_lock_until > now:
                raise ApiError(
                    400, "invalid_action", f"Document:{doc.name} is being indexed, please try again later"
                )
            completed = doc.indexing_status == "completed"
            if action == "enable":
                if doc.enabled:
                    continue
                doc.enabled = True
                doc.disabled_at = None
                doc.disabled_by = None
            elif action == "disable":
                if not doc.enabled:
                    continue
                if not completed:
                    raise ApiError(400, "invalid_action", f"Document: {doc.name} is not completed.")
                doc.enabled = False
                doc.disabled_at = now
                doc.disabled_by = self.account_id
            elif action == "archive":
                if doc.archived:
                    continue
                if not completed:
                    raise ApiError(400, "invalid_action", f"Document: {doc.name} is not completed.")
                doc.archived = True
            else:
                if not doc.archived:
                    continue
                doc.archived = False
            doc.updated_at = now
            if action in ("enable", "disable"):  # the recorded server let un_archive follow archive at once
                doc.status_lock_until = now + lock_seconds

    # ------------------------------------------------------------------ segments

    def _segment_target(self, ds: Dataset, document_id: str) -> Document:
        return self.get_document(ds, document_id)

    def get_segment(self, doc: Document, segment_id: str) -> Segment:
        """A chunk of the document, or 404 "Segment not found."."""
        seg = doc.segments.get(segment_id)
        if seg is None or seg.status == "re_segment":
            raise not_found("Segment not found.")
        return seg

    def add_segments(
        self, ds: Dataset, doc: Document, items: list[dict[str, Any]], now: float
    ) -> list[Segment]:
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
                for child_position, child in enumerate(
                    split_children(seg.content, doc.process_rule.rules), 1
                ):
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

    def update_segment(
        self, ds: Dataset, doc: Document, seg: Segment, values: dict[str, Any], now: float
    ) -> Segment:
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
                for child_position, child in enumerate(
                    split_children(seg.content, doc.process_rule.rules), 1
                ):
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

    # ------------------------------------------------------------------ retrieval

    def _doc_field_value(self, ds: Dataset, doc: Document, name: str) -> Any:
        for field_id, value in doc.metadata_values.items():
            meta = ds.metadata.get(field_id)
            if meta is not None and meta.name == name:
                return value
        if name in dict(BUILT_IN_FIELDS) and (ds.built_in_field_enabled or doc.builtin_values):
            return builtin_values(doc).get(name)
        return None

    def _matches(self, ds: Dataset, doc: Document, conditions: dict[str, Any] | None) -> bool:
        if not conditions or not conditions.get("conditions"):
            return True
        results = [
            self._condition(ds, doc, cond) for cond in conditions["conditions"] if isinstance(cond, dict)
        ]
        if (conditions.get("logical_operator") or "and").lower() == "or":
            return any(results)
        return all(results)

    def _condition(self, ds: Dataset, doc: Document, cond: dict[str, Any]) -> bool:
        actual = self._doc_field_value(ds, doc, str(cond.get("name", "")))
        op = str(cond.get("comparison_operator", "")).strip().lower()
        expected = cond.get("value")
        if op == "empty":
            return actual is None or actual == ""
        if op == "not empty":
            return actual is not None and actual != ""
        if actual is None:
            return False
        if op in ("in", "not in"):
            options = expected if isinstance(expected, list) else str(expected or "").split(",")
            found = str(actual) in {str(o).strip() for o in options}
            return found if op == "in" else not found
        if op in ("=", "≠", "!=", ">", "<", "≥", ">=", "≤", "<=", "before", "after"):
            left, right = _number(actual), _number(expected)
            if left is None or right is None:
                return False
            return {
                "=": left == right,
                "≠": left != right,
                "!=": left != right,
                ">": left > right,
                "after": left > right,
                "<": left < right,
                "before": left < right,
                "≥": left >= right,
                ">=": left >= right,
                "≤": left <= right,
                "<=": left <= right,
            }[op]
        text, value = str(actual), "" if expected is None else str(expected)
        if op == "is":
            return text == value or (_number(actual) is not None and _number(actual) == _number(expected))
        if op == "is not":
            return not (
                text == value or (_number(actual) is not None and _number(actual) == _number(expected))
            )
        if op == "contains":
            return value in text
        if op == "not contains":
            return value not in text
        if op == "start with":
            return text.startswith(value)
        if op == "end with":
            return text.endswith(value)
        return False

    def retrieve(
        self, ds: Dataset, query: str, retrieval_model: dict[str, Any] | None
    ) -> list[tuple[Segment, Document, float]]:
        """Search the dataset; return ``(chunk, document, score)`` best first."""
        embedding = self.config.embedding_available
        if retrieval_model is None:
            if ds.indexing_technique == "economy" and not embedding:
                raise invalid_param(NO_EMBEDDING_MODEL)
            settings = dict(ds.retrieval_model)
        else:
            settings = retrieval_model
        method = settings.get("search_method") or "semantic_search"
        if method != "keyword_search" and not embedding:
            raise invalid_param(NO_EMBEDDING_MODEL)
        if ds.indexing_technique == "economy":
            method = "keyword_search"
        top_k = int(settings.get("top_k") or 2)
        conditions = settings.get("metadata_filtering_conditions")
        docs = [d for d in ds.documents.values() if d.available and self._matches(ds, d, conditions)]
        hits: list[tuple[Segment, Document, float]] = []
        if method == "keyword_search":
            sensitive = self.config.keyword_case_sensitive
            wanted = set(query_keywords(query))
            if not sensitive:
                wanted = {w.lower() for w in wanted}
            ranked: list[tuple[int, str, Segment, Document]] = []
            for doc in docs:
                for seg in doc.segments.values():
                    if not seg.enabled or seg.status != "completed":
                        continue
                    keys = seg.keywords if sensitive else [k.lower() for k in seg.keywords]
                    count = len(wanted.intersection(keys))
                    if count:
                        ranked.append((-count, seg.index_node_hash, seg, doc))
            # Dify orders chunks with as many matching keywords by the iteration order of its keyword table's
            # sets: arbitrary, but the same for the same contents. The content hash models that (and does not
            # depend on the order in which chunks were written).
            ranked.sort(key=lambda item: (item[0], item[1]))
            hits = [(seg, doc, 0.0) for _, _, seg, doc in ranked[:top_k]]
        else:
            wanted_words = words(query)
            scored: list[tuple[float, int, Segment, Document]] = []
            order = 0
            for doc in docs:
                for seg in doc.segments.values():
                    if not seg.enabled or seg.status != "completed" or not wanted_words:
                        continue
                    overlap = len(wanted_words & words(seg.content + " " + " ".join(seg.keywords)))
                    if overlap:
                        score = round(
                            overlap / math.sqrt(len(wanted_words) * max(1, len(words(seg.content)))), 6
                        )
                        scored.append((score, order, seg, doc))
                        order += 1
            scored.sort(key=lambda item: (-item[0], item[1]))
            threshold = settings.get("score_threshold") if settings.get("score_threshold_enabled") else None
            hits = [
                (seg, doc, min(1.0, score))
                for score, _, seg, doc in scored
                if threshold is None or score >= threshold
            ]
            hits = hits[:top_k]
        for seg, _doc, _score in hits:
            seg.hit_count += 1
        return hits

    # ------------------------------------------------------------------ metadata

    def get_metadata_field(self, ds: Dataset, metadata_id: str) -> MetadataField:
        """A metadata field, or 400 "Metadata not found." (a ``ValueError`` in Dify)."""
        meta = ds.metadata.get(metadata_id)
        if meta is None:
            raise invalid_param("Metadata not found.")
        return meta

    def _check_metadata_name(self, ds: Dataset, name: str, exclude: str | None = None) -> None:
        if len(name) > 255:
            raise invalid_param("Metadata name cannot exceed 255 characters.")
        if name in dict(BUILT_IN_FIELDS):
            raise invalid_param("Metadata name already exists in Built-in fields.")
        if any(m.name == name and m.id != exclude for m in ds.metadata.values()):
            raise invalid_param("Metadata name already exists.")

    def create_metadata_field(self, ds: Dataset, kind: str, name: str) -> MetadataField:
        """Create a custom metadata field."""
        self._check_metadata_name(ds, name)
        meta = MetadataField(new_id(), name, kind)
        ds.metadata[meta.id] = meta
        return meta

    def rename_metadata_field(self, ds: Dataset, metadata_id: str, name: str) -> MetadataField:
        """Rename a custom metadata field (document values follow)."""
        meta = self.get_metadata_field(ds, metadata_id)
        self._check_metadata_name(ds, name, exclude=meta.id)
        meta.name = name
        return meta

    def delete_metadata_field(self, ds: Dataset, metadata_id: str) -> None:
        """Delete a custom metadata field and its document values."""
        meta = self.get_metadata_field(ds, metadata_id)
        del ds.metadata[meta.id]
        for doc in ds.documents.values():
            doc.metadata_values.pop(meta.id, None)

    def metadata_usage(self, ds: Dataset) -> dict[str, int]:
        """Documents bound to each custom field."""
        counts = dict.fromkeys(ds.metadata, 0)
        for doc in ds.documents.values():
            for field_id in doc.metadata_values:
                if field_id in counts:
                    counts[field_id] += 1
        return counts

    def toggle_built_in(self, ds: Dataset, enable: bool, now: float) -> None:
        """Enable (stamp values on completed, enabled documents) or disable the built-in fields."""
        ds.built_in_field_enabled = enable
        for doc in ds.documents.values():
            if enable and doc.indexing_status == "completed" and doc.enabled:
                doc.builtin_values = builtin_values(doc)
            elif not enable:
                doc.builtin_values = {}

    def set_document_metadata(self, ds: Dataset, operations: list[dict[str, Any]], now: float) -> None:
        """``POST /documents/metadata``: replace (or partially update) the metadata of documents."""
        for operation in operations:
            doc = ds.documents.get(str(operation["document_id"]))
            if doc is None:
                raise invalid_param("Document not found.")
            values = dict(doc.metadata_values) if operation.get("partial_update") else {}
            for item in operation["metadata_list"]:
                if item["id"] in ds.metadata:
                    values[item["id"]] = item.get("value")
            doc.metadata_values = values
            doc.updated_at = now
            doc.builtin_values = builtin_values(doc)

    # ------------------------------------------------------------------ tags

    def get_tag(self, tag_id: str) -> Tag:
        """A tag, or 404 "Tag not found"."""
        tag = self.tags.get(str(tag_id))
        if tag is None:
            raise not_found("Tag not found")
        return tag

    def create_tag(self, name: str, now: float) -> Tag:
        """Create a knowledge tag (names unique)."""
        if any(t.name == name for t in self.tags.values()):
            raise invalid_param("Tag name already exists")
        tag = Tag(new_id(), name, now)
        self.tags[tag.id] = tag
        self.tag_bindings[tag.id] = set()
        return tag

    def rename_tag(self, tag_id: str, name: str) -> Tag:
        """Rename a tag."""
        tag = self.get_tag(tag_id)
        if any(t.name == name and t.id != tag.id for t in self.tags.values()):
            raise invalid_param("Tag name already exists")
        tag.name = name
        return tag

    def delete_tag(self, tag_id: str) -> None:
        """Delete a tag (datasets are kept)."""
        tag = self.get_tag(tag_id)
        del self.tags[tag.id]
        self.tag_bindings.pop(tag.id, None)

    def bind_tags(self, tag_ids: list[str], target_id: str, bind: bool) -> None:
        """Bind or unbind tags to a dataset (unknown tags are ignored)."""
        if str(target_id) not in self.datasets:
            raise not_found("Dataset not found.")
        for tag_id in tag_ids:
            bound = self.tag_bindings.get(str(tag_id))
            if bound is None:
                continue
            if bind:
                bound.add(str(target_id))
            else:
                bound.discard(str(target_id))

    # ------------------------------------------------------------------ inspection

    def find_document(self, document_id: str) -> tuple[Dataset, Document] | None:
        """The dataset and document of a document id, anywhere in the workspace."""
        for ds in self.datasets.values():
            doc = ds.documents.get(document_id)
            if doc is not None:
                return ds, doc
        return None

    def document_dicts(self, ds: Dataset, now: float) -> list[dict[str, Any]]:
        """Documents of a dataset as list views, oldest first, with their text."""
        return [
            {**document_view(ds, d, now), "text": d.text, "batch": d.batch} for d in ds.documents.values()
        ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def like_pattern(keyword: str) -> re.Pattern[str]:
    """The regular expression of SQL ``LIKE '%<keyword>%'``: ``%`` any run of characters, ``_`` any one."""
    parts = (".*" if char == "%" else "." if char == "_" else re.escape(char) for char in keyword)
    return re.compile("".join(parts), re.DOTALL)
