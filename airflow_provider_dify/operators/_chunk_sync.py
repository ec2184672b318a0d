"""Chunk-granularity sync: each record is one chunk of a document that stands for the scope.

Dify indexes documents one at a time per workspace (about 31 small documents a minute measured on 1.13.2),
but chunks added to a completed document are indexed within the request (220 chunks/s at 100 a request).
So a large export goes in as chunks of one document per table or partition.

:func:`plan_chunks` is pure: the wanted chunks and the chunks the document holds -> what to add, update,
leave alone and delete. :class:`ChunkSync` carries the plan out: adds in batches (100 chunks a request by
default), updates and deletes one chunk a request, on a thread pool sharing one hook.

How a chunk is recognised, with no state outside Dify:

* With a key (``key_field``), the chunk content ends with a short key line, ``[key: <key>]``. A record whose
  text changed becomes one chunk update (same chunk id) instead of a delete plus an add. The line is part of
  what is indexed: a query for the key finds the chunk, and the line adds a word or two to the chunk. Keeping
  the key in the chunk's ``keywords`` instead would replace the keywords Dify extracts (keyword search would
  then only match the key), so it is not used.
* Without a key, the content itself is the identity: a changed record is a delete plus an add.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyError, DifyQuotaExceededError
from airflow_provider_dify.operators.segments import UNKNOWN_OUTCOME_ERRORS, chunk_key

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators._records import RenderedRecord

log = logging.getLogger(__name__)

#: Chunks per add request (Dify's measured sweet spot; servers may cap it with DATASET_MAX_SEGMENTS_PER_REQUEST).
DEFAULT_BATCH_SIZE = 100
_KEY_LINE = re.compile(r"(?:\A|\n)\[key: (?P<key>[^\n]*)\]\s*\Z")


def key_line(key: str) -> str:
    """The line that carries a record's key at the end of its chunk."""
    return f"[key: {key}]"


def chunk_content(record: RenderedRecord, *, keyed: bool) -> str:
    """The content of a record's chunk: its text, plus the key line when the sync is keyed."""
    text = chunk_key(record.text or "")
    if keyed and record.key is not None:
        return f"{text}\n\n{key_line(record.key)}"
    return text


def key_of_chunk(content: str) -> str | None:
    """The key a chunk's content carries in its last line, or ``None``."""
    match = _KEY_LINE.search(content or "")
    return match.group("key") if match else None


def _squeeze(text: str) -> str:
    return " ".join((text or "").split())


@dataclass
class WantedChunk:
    """A chunk the document must hold: its record, content, answer and keywords (``None``: not managed)."""

    record: RenderedRecord
    content: str

    @property
    def key(self) -> str | None:
        return self.record.key

    def segment(self) -> dict[str, Any]:
        """The chunk as sent to the add call."""
        body: dict[str, Any] = {"content": self.content}
        if self.record.answer is not None:
            body["answer"] = self.record.answer
        if self.record.keywords is not None:
            body["keywords"] = list(self.record.keywords)
        return body

    def differs_from(self, chunk: Mapping[str, Any]) -> bool:
        """Whether an existing chunk needs an update to become this one."""
        if chunk_key(str(chunk.get("content") or "")) != self.content:
            return True
        if self.record.answer is not None and str(chunk.get("answer") or "").strip() != self.record.answer.strip():
            return True
        return self.record.keywords is not None and set(chunk.get("keywords") or []) != set(self.record.keywords)

    def changes(self, chunk: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of the update call (keywords only when the user gave them: Dify re-extracts otherwise)."""
        fields = self.segment()
        if chunk.get("enabled") is False:
            fields["enabled"] = True  # Dify edits a disabled chunk only together with enabling it
        return fields


@dataclass
class ChunkPlan:
    """
    What a chunk sync has to do.

    :param add: chunks to add.
    :param update: ``(wanted, existing chunk)`` pairs to update in place (keyed syncs).
    :param unchanged: wanted chunks already present as they are.
    :param delete: chunks no record wants (with ``delete_missing``), and extra copies of a wanted chunk.
    :param kept: chunks left alone that no record wants (the document's header, or all of them without
        ``delete_missing``).
    :param duplicates: records whose chunk is identical to another record's (one chunk stands for both).
    """

    add: list[WantedChunk] = field(default_factory=list)
    update: list[tuple[WantedChunk, dict[str, Any]]] = field(default_factory=list)
    unchanged: list[WantedChunk] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0
    duplicates: int = 0

    @property
    def writes(self) -> int:
        """Chunks to add, update or delete."""
        return len(self.add) + len(self.update) + len(self.delete)


def is_header_chunk(chunk: Mapping[str, Any], header: str) -> bool:
    """Whether a chunk is (a piece of) the document's header text, which Dify split when it indexed the document."""
    content = _squeeze(str(chunk.get("content") or ""))
    return bool(content) and content in _squeeze(header)


def plan_chunks(
    records: Sequence[RenderedRecord],
    chunks: Iterable[Mapping[str, Any]],
    *,
    keyed: bool,
    header: str,
    delete_missing: bool = True,
    keep_keys: Iterable[str] = (),
) -> ChunkPlan:
    """
    Compare the wanted chunks with the document's chunks; decide every write (pure, no I/O).

    :param records: the rendered records (unique keys when ``keyed``).
    :param chunks: the document's chunks (list responses).
    :param keyed: chunks are recognised by their key line (else by their content).
    :param header: the document's header text; its chunks are never deleted.
    :param delete_missing: delete chunks that no record wants.
    :param keep_keys: keys never deleted (records that failed to render).
    """
    plan = ChunkPlan()
    wanted: dict[str, WantedChunk] = {}
    for record in records:
        chunk = WantedChunk(record, chunk_content(record, keyed=keyed))
        identity = record.key if keyed and record.key is not None else chunk.content
        if identity in wanted:
            plan.duplicates += 1
            continue
        wanted[identity] = chunk
    keep = set(keep_keys)
    matched: set[str] = set()
    # Visit enabled chunks first so that the copy kept of a duplicated chunk is a live one.
    ordered = sorted(
        (dict(chunk) for chunk in chunks), key=lambda c: (c.get("enabled") is False, c.get("position") or 0)
    )
    for chunk in ordered:
        if chunk.get("status") == "re_segment":
            continue  # an old chunk of a re-split document: Dify drops it
        content = chunk_key(str(chunk.get("content") or ""))
        identity = key_of_chunk(content) if keyed else content
        target = wanted.get(identity) if identity is not None else None
        if target is None or identity in matched:
            if target is not None:
                plan.delete.append(chunk)  # a second copy of a wanted chunk (an add whose answer was lost)
            elif is_header_chunk(chunk, header) or (keyed and identity in keep):
                plan.kept += 1
            elif delete_missing:
                plan.delete.append(chunk)
            else:
                plan.kept += 1
            continue
        matched.add(identity)
        if target.differs_from(chunk):
            plan.update.append((target, chunk))
        else:
            plan.unchanged.append(target)
    plan.add = [chunk for identity, chunk in wanted.items() if identity not in matched]
    return plan


@dataclass
class ChunkSyncResult:
    """The outcome of carrying out chunk plans (plain data for the manifest)."""

    added: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    add_requests: int = 0

    @property
    def unknown_outcome(self) -> bool:
        """Some add may have happened although it failed: the chunks must be read again."""
        return any(failure.get("unknown_outcome") for failure in self.failed)


def sandbox_error(error: DifyQuotaExceededError) -> DifyQuotaExceededError:
    """The Sandbox-plan refusal of chunk writes, with the way out."""
    return DifyQuotaExceededError(
        f"{error.message} Dify refuses chunk writes on this plan (Dify Cloud's Sandbox plan does); sync with"
        " DifySyncDocumentsOperator (one document per record) instead, or upgrade the plan.",
        status=error.status,
        code=error.code,
        method=error.method,
        path=error.path,
    )


class ChunkSync:
    """
    Carry out a :class:`ChunkPlan` on one document: adds ``batch_size`` chunks a request, updates and deletes
    one chunk a request, ``max_workers`` requests at a time on the shared hook.

    An add is never repeated by the hook after a failure whose outcome is unknown (it could add the chunks
    twice); such a failure is marked ``unknown_outcome`` and the caller reads the chunks again and reconciles.

    :param hook: the hook shared by the workers.
    :param dataset_id: the knowledge base.
    :param document_id: the document that holds the chunks.
    :param batch_size: chunks per add request.
    :param max_workers: parallel requests.
    """

    def __init__(
        self,
        hook: DifyHook,
        dataset_id: str,
        document_id: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_workers: int = 4,
    ) -> None:
        self.hook = hook
        self.dataset_id = dataset_id
        self.document_id = document_id
        self.batch_size = batch_size
        self.max_workers = max_workers

    def list_chunks(self) -> list[dict[str, Any]]:
        """Every chunk of the document (paged, 100 a page)."""
        return list(self.hook.iter_segments(self.dataset_id, self.document_id))

    def run(self, plan: ChunkPlan, result: ChunkSyncResult | None = None) -> ChunkSyncResult:
        """Write the plan; failures are collected, except the plan refusing chunk writes (raised at once)."""
        result = result if result is not None else ChunkSyncResult()
        batches = [plan.add[start : start + self.batch_size] for start in range(0, len(plan.add), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="dify-chunks") as pool:
            futures: dict[Any, tuple[str, Any]] = {}
            for batch in batches:
                futures[pool.submit(self._add, batch)] = ("add", batch)
            for wanted, chunk in plan.update:
                futures[pool.submit(self._update, wanted, chunk)] = ("update", (wanted, chunk))
            for chunk in plan.delete:
                futures[pool.submit(self._delete, chunk)] = ("delete", chunk)
            try:
                for future in as_completed(futures):
                    operation, item = futures[future]
                    if operation == "add":
                        result.add_requests += 1
                    try:
                        answer = future.result()
                    except DifyQuotaExceededError as error:
                        raise sandbox_error(error) from error
                    except DifyError as error:
                        result.failed.append(self._failure(operation, item, error))
                        log.warning("%s of chunks failed: %s", operation, error)
                        continue
                    self._record(result, operation, item, answer)
            except DifyQuotaExceededError:
                for future in futures:
                    future.cancel()
                raise
        return result

    def _add(self, batch: list[WantedChunk]) -> list[dict[str, Any]]:
        return self.hook.add_segments(self.dataset_id, self.document_id, [chunk.segment() for chunk in batch])

    def _update(self, wanted: WantedChunk, chunk: Mapping[str, Any]) -> dict[str, Any]:
        return self.hook.update_segment(self.dataset_id, self.document_id, str(chunk["id"]), **wanted.changes(chunk))

    def _delete(self, chunk: Mapping[str, Any]) -> None:
        self.hook.delete_segment(self.dataset_id, self.document_id, str(chunk["id"]))

    @staticmethod
    def _record(result: ChunkSyncResult, operation: str, item: Any, answer: Any) -> None:
        if operation == "add":
            created = list(answer or [])
            for index, wanted in enumerate(item):
                chunk_id = (
                    created[index].get("id") if index < len(created) and isinstance(created[index], Mapping) else None
                )
                result.added.append({"key": wanted.key, "id": chunk_id})
        elif operation == "update":
            wanted, chunk = item
            result.updated.append({"key": wanted.key, "id": str(chunk["id"])})
        else:
            result.deleted.append({"key": key_of_chunk(str(item.get("content") or "")), "id": str(item["id"])})

    @staticmethod
    def _failure(operation: str, item: Any, error: DifyError) -> dict[str, Any]:
        hint = ""
        if operation == "add" and "maximum segments limit" in (error.message or "").lower():
            hint = " (the server caps chunks per request: lower batch_size)"
        if operation == "add":
            keys = [wanted.key for wanted in item]
            return {
                "operation": "add",
                "count": len(item),
                "keys": keys[:10] if any(key is not None for key in keys) else [],
                "error": str(error) + hint,
                "unknown_outcome": isinstance(error, UNKNOWN_OUTCOME_ERRORS),
            }
        chunk = item[1] if operation == "update" else item
        key = item[0].key if operation == "update" else key_of_chunk(str(chunk.get("content") or ""))
        return {
            "operation": operation,
            "count": 1,
            "keys": [key] if key else [],
            "id": str(chunk["id"]),
            "error": str(error),
        }
