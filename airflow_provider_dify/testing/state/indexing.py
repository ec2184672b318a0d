"""The indexing engine: the queue Dify's worker takes documents from one at a time, their phases, set outcomes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from airflow_provider_dify.testing.models import (
    PHASE_ENDS,
    ChildChunk,
    Document,
    Segment,
)
from airflow_provider_dify.testing.state.core import OUTCOMES, StateCore, new_id
from airflow_provider_dify.testing.state.jobs import Job, OutcomeRule
from airflow_provider_dify.testing.text import (
    estimate_tokens,
    extract_keywords,
    split_text,
)


class IndexingEngine(StateCore):
    """The indexing engine: a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

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
            OutcomeRule(match, outcome, error or "Emulated indexing error.", count if count is None else int(count))
        )
