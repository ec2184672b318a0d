"""Chunk-granularity sync: each record is one chunk of a document that stands for the scope.

Dify indexes documents one at a time per workspace (about 31 small documents a minute measured on 1.13.2),
but chunks added to a completed document are indexed within the request (220 chunks/s at 100 a request).
So a large export goes in as chunks of one document per table or partition.

:func:`plan_chunks` is pure: the wanted chunks and the chunks the document holds -> what to add, update,
leave alone and delete. :class:`ChunkSync` carries a plan out: adds in batches (100 chunks a request by
default), updates and deletes one chunk a request, on a thread pool sharing one hook. :func:`reconcile`
plans, writes and reads the chunks again until they verify.

How a chunk is recognised, with no state outside Dify: by its content. A chunk's content is exactly the
record's rendered text (nothing added, so Dify indexes, matches and returns only what the user wrote), and
that text is its identity. A record whose text changed is a delete of the old chunk plus an add of the new
one (adds batched); a record whose answer or keywords changed is an update of its chunk. Records with the
same text share one chunk. Chunks written by earlier versions end with a ``[key: <key>]`` line: a run
rewrites each of them in place without that line (one update, same chunk id).

Copies (two chunks with one content: overlapping runs, an add whose answer was lost) are resolved by one
rule that every run applies alike, so two runs never delete different copies: the enabled copy first, then
the oldest by ``created_at``, then the lower position, then the smaller id survives (``_copies.survivor_key``,
the rule documents follow too). After writing, a run reads the chunks again and
removes what is surplus, so overlapping runs into one holder converge.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyError, DifyNotFoundError, DifyQuotaExceededError
from airflow_provider_dify.operators._copies import survivor_key
from airflow_provider_dify.operators.segments import UNKNOWN_OUTCOME_ERRORS, chunk_key
from airflow_provider_dify.operators.sync._pool import AHEAD_PER_WORKER, completed_in_window

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._records import RenderedRecord

log = logging.getLogger(__name__)

#: Chunks per add request (Dify's measured sweet spot; servers may cap it with DATASET_MAX_SEGMENTS_PER_REQUEST).
DEFAULT_BATCH_SIZE = 100
#: Times a run reads the chunks again after a write pass and still finds adds, updates or deletes of chunks that
#: are not copies (another writer wants other chunks) before it gives up and fails, leaving the rest to a retry.
MAX_VERIFY_PASSES = 3
#: Passes that only remove surplus copies a run makes before it gives up. Such passes converge (copies come
#: only from overlapping runs adding the same records, and every run keeps the same survivor), but a writer
#: that adds in small batches can keep showing new copies for several reads.
MAX_COPY_REMOVAL_PASSES = 12
_KEY_LINE = re.compile(r"(?:\A|\n)\[key: (?P<key>[^\n]*)\]\s*\Z")


#: The metadata field that marks a document as a chunk sync's holder, and the value the sync writes in it.
HOLDER_FIELD = "airflow_chunk_holder"
HOLDER_MARK = "DifySyncChunksOperator"


def upload_file_of(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``upload_file`` a document was made from (list and detail responses place it differently), or ``{}``."""
    for place in ("data_source_detail_dict", "data_source_info"):
        source = document.get(place)
        if isinstance(source, Mapping) and isinstance(source.get("upload_file"), Mapping):
            return source["upload_file"]
    return {}


def is_sync_holder(document: Mapping[str, Any], name: str, header: str = "") -> bool:
    """
    Whether a document is a chunk sync's holder: it carries :data:`HOLDER_FIELD`, or it is a holder made by an
    earlier version of the provider, which wrote no mark: made through the API from a text (an upload file of
    extension ``txt``) holding what those versions wrote, nothing, the header or the document's name (the
    oldest versions' default header), told by the text's size in bytes.
    """
    from airflow_provider_dify.operators._content import metadata_values

    if metadata_values(document).get(HOLDER_FIELD) not in (None, ""):
        return True
    source = upload_file_of(document)
    sizes = {0, len(header.encode()), len(name.encode())}
    return (
        document.get("created_from") == "api"
        and source.get("extension") == "txt"
        and isinstance(source.get("size"), int)
        and source["size"] in sizes
    )


def chunk_content(record: RenderedRecord) -> str:
    """The content of a record's chunk: exactly its rendered text (stripped, as Dify stores it)."""
    return chunk_key(record.text or "")


def key_of_chunk(content: str) -> str | None:
    """The key that a chunk written by an earlier version carries in its last line (``[key: ...]``), or ``None``."""
    match = _KEY_LINE.search(content or "")
    return match.group("key") if match else None


def text_of_legacy_chunk(content: str) -> str:
    """A chunk's content without the key line of earlier versions."""
    match = _KEY_LINE.search(content or "")
    return chunk_key(content[: match.start()] if match else content or "")


def survivor_order(chunk: Mapping[str, Any]) -> tuple[bool, float, float, str]:
    """The order in which copies survive: enabled first, then the provider's one copy rule
    (:func:`~airflow_provider_dify.operators._copies.survivor_key`: oldest, lower position, smaller id)."""
    return (chunk.get("enabled") is False, *survivor_key(chunk))


#: What a sync reads of a listed chunk (planning, writing, the manifest); the rest of Dify's answer (counts,
#: index ids, times, Dify's own keywords unless the records give keywords) is dropped as each page arrives.
LISTED_CHUNK_FIELDS = ("id", "position", "created_at", "enabled", "status", "content", "answer", "keywords")
_STATUSES: dict[str, str] = {}


class ListedChunk(Mapping[str, Any]):
    """
    A listed chunk as a sync keeps it: the fields of :data:`LISTED_CHUNK_FIELDS` in slots, read like the
    dict Dify answered (a field Dify left out, or ``null``, is absent). About 100 bytes instead of Dify's few
    kilobytes a chunk.
    """

    __slots__ = LISTED_CHUNK_FIELDS

    def __init__(self, **fields: Any) -> None:
        for name in LISTED_CHUNK_FIELDS:
            object.__setattr__(self, name, fields.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a listed chunk is read-only")

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name, None) if name in LISTED_CHUNK_FIELDS else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name in LISTED_CHUNK_FIELDS if getattr(self, name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"ListedChunk({dict(self)!r})"


def compact_chunk(
    chunk: Mapping[str, Any],
    texts: Mapping[str, str] | None = None,
    *,
    keywords: bool = True,
    ids: Mapping[str, str] | None = None,
) -> ListedChunk:
    """
    The part of a listed chunk a sync keeps (:class:`ListedChunk`): ``answer`` only when not empty,
    ``keywords`` only when ``keywords``.

    A chunk whose content is one of ``texts`` (``{text: text}``, the records' chunk texts) shares that string
    instead of keeping Dify's copy of it, so a listing of chunks the records already hold costs no text twice;
    likewise a chunk whose id is one of ``ids`` (``{id: id}``, the chunks the sync wrote) shares that id.
    """
    content, status, chunk_id = chunk.get("content"), chunk.get("status"), chunk.get("id")
    if isinstance(content, str) and texts:
        content = texts.get(chunk_key(content)) or content
    if isinstance(status, str):
        status = _STATUSES.setdefault(status, status)
    if isinstance(chunk_id, str) and ids:
        chunk_id = ids.get(chunk_id, chunk_id)
    return ListedChunk(
        id=chunk_id,
        position=chunk.get("position"),
        created_at=chunk.get("created_at"),
        enabled=chunk.get("enabled"),
        status=status,
        content=content,
        answer=chunk.get("answer") or None,
        keywords=chunk.get("keywords") if keywords else None,
    )


def _squeeze(text: str) -> str:
    return " ".join((text or "").split())


@dataclass(slots=True)
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
    :param update: ``(wanted, existing chunk)`` pairs to update in place: a changed answer or keywords, or a
        chunk of an earlier version rewritten without its key line.
    :param unchanged: wanted chunks already present as they are.
    :param delete: chunks no record wants (with ``delete_missing``), and surplus copies of a wanted chunk.
    :param copies: how many of ``delete`` are surplus copies.
    :param kept: chunks left alone that no record wants (the document's header, all of them without
        ``delete_missing``, or while some records failed to render).
    :param duplicates: records whose text is identical to another record's (one chunk stands for both).
    :param listed: the chunks of the document the plan was made from (each once).
    """

    add: list[WantedChunk] = field(default_factory=list)
    update: list[tuple[WantedChunk, Mapping[str, Any]]] = field(default_factory=list)
    unchanged: list[WantedChunk] = field(default_factory=list)
    delete: list[Mapping[str, Any]] = field(default_factory=list)
    copies: int = 0
    kept: int = 0
    duplicates: int = 0
    listed: int = 0

    @property
    def writes(self) -> int:
        """Chunks to add, update or delete."""
        return len(self.add) + len(self.update) + len(self.delete)

    def counts(self) -> PlanCounts:
        """How many chunks each part of the plan holds (what is reported of a plan once it is written)."""
        return PlanCounts(
            add=len(self.add),
            update=len(self.update),
            unchanged=len(self.unchanged),
            delete=len(self.delete),
            copies=self.copies,
            kept=self.kept,
            duplicates=self.duplicates,
        )


@dataclass(frozen=True)
class PlanCounts:
    """The sizes of a :class:`ChunkPlan` (same names), without the chunks it holds."""

    add: int
    update: int
    unchanged: int
    delete: int
    copies: int
    kept: int
    duplicates: int


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
    :param keyed: the records have keys (used to rewrite chunks of earlier versions, which carry them).
    :param header: the document's header text; its chunks are never deleted.
    :param delete_missing: delete chunks that no record wants.
    :param keep_keys: keys of records that failed to render: no chunk that no record claims is deleted then
        (which of them was theirs cannot be told), except old chunks whose key line names another key.
    """
    plan = ChunkPlan()
    wanted: dict[str, WantedChunk] = {}
    for record in records:
        chunk = WantedChunk(record, chunk_content(record))
        if chunk.content in wanted:
            plan.duplicates += 1
            continue
        wanted[chunk.content] = chunk
    keep = set(keep_keys)
    deletes: list[Mapping[str, Any]] = []  # put in survivor order once all are known, as a full sort would

    def unclaimed(chunk: Mapping[str, Any], key: str | None) -> None:
        if is_header_chunk(chunk, header) or not delete_missing or (keep and (key is None or key in keep)):
            plan.kept += 1
        else:
            deletes.append(chunk)

    # One pass over the listing, keeping per wanted text only the copy that survives so far: no sort of
    # every chunk (a key tuple each), nothing but the ids seen besides what the plan holds.
    matched: dict[str, Mapping[str, Any]] = {}
    legacy: list[tuple[Mapping[str, Any], str, str]] = []
    seen: set[str] = set()  # a listing that shifted can show a chunk twice: once it is
    for chunk in chunks:
        if chunk.get("status") == "re_segment":  # an old chunk of a re-split document: Dify drops it
            continue
        chunk_id = str(chunk.get("id"))
        if chunk_id in seen:
            continue
        seen.add(chunk_id)
        content = chunk_key(str(chunk.get("content") or ""))
        if content in wanted:
            current = matched.get(content)
            if current is None:
                matched[content] = chunk
            else:  # a surplus copy: the one that comes first in survivor order stays
                if survivor_order(chunk) < survivor_order(current):
                    matched[content], chunk = chunk, current
                deletes.append(chunk)
                plan.copies += 1
            continue
        key = key_of_chunk(content)
        if key is not None:
            legacy.append((chunk, text_of_legacy_chunk(content), key))
        else:
            unclaimed(chunk, None)
    plan.listed = len(seen)
    del seen
    deletes.sort(key=survivor_order)
    plan.delete = deletes
    for content, chunk in matched.items():
        target = wanted[content]
        if target.differs_from(chunk):
            plan.update.append((target, chunk))
        else:
            plan.unchanged.append(target)
    # Chunks of earlier versions, oldest first (rare: the records' keys are mapped only when there are some).
    by_key: dict[str, str] = {}
    if keyed and legacy:
        by_key = {record.key: chunk_content(record) for record in records if record.key is not None}
    for chunk, text, key in sorted(legacy, key=lambda item: survivor_order(item[0])):
        content = by_key.get(key) if keyed else None
        if content is None and text in wanted:
            content = text
        if content is None:
            unclaimed(chunk, key)
        elif content in matched:
            plan.delete.append(chunk)  # the record already has a chunk of the current form
            plan.copies += 1
        else:
            matched[content] = chunk
            plan.update.append((wanted[content], chunk))  # rewritten in place, without the key line
    plan.add = [chunk for content, chunk in wanted.items() if content not in matched]
    return plan


#: A chunk a sync wrote: ``(key, id)`` (a tuple costs a third of a dict, which matters at 100,000 chunks);
#: the manifest shows each as ``{"key": key, "id": id}`` (:func:`manifest_entries`).
WrittenChunk = tuple[str | None, str | None]


def manifest_entries(written: Iterable[WrittenChunk]) -> list[dict[str, Any]]:
    """Written chunks as the manifest lists them: ``[{"key": key, "id": id}]``."""
    return [{"key": key, "id": chunk_id} for key, chunk_id in written]


@dataclass
class ChunkSyncResult:
    """
    The outcome of carrying out chunk plans.

    :param added: the chunks added, ``(key, id)`` each (``id`` ``None`` when Dify's answer did not name it).
    :param updated: the chunks updated, ``(key, id)``.
    :param deleted: the chunks deleted, ``(key, id)`` (``key`` from the key line of earlier versions, or ``None``).
    :param failed: the failed writes (plain data for the manifest).
    """

    added: list[WrittenChunk] = field(default_factory=list)
    updated: list[WrittenChunk] = field(default_factory=list)
    deleted: list[WrittenChunk] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    add_requests: int = 0
    copies_removed: int = 0
    vanished: int = 0
    passes: int = 0
    verified: bool = False

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
    :param texts: the records' chunk texts ``{text: text}``: a listed chunk holding one of them shares the
        string (see :func:`compact_chunk`).
    :param keywords: keep the listed chunks' keywords (needed only when the records give keywords).
    """

    def __init__(
        self,
        hook: DifyHook,
        dataset_id: str,
        document_id: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_workers: int = 4,
        texts: Mapping[str, str] | None = None,
        keywords: bool = True,
    ) -> None:
        self.hook = hook
        self.dataset_id = dataset_id
        self.document_id = document_id
        self.batch_size = batch_size
        self.max_workers = max_workers
        self.texts = texts
        self.keywords = keywords
        self._written: ChunkSyncResult | None = None

    def list_chunks(self) -> list[ListedChunk]:
        """
        Every chunk of the document (paged, 100 a page), each reduced by :func:`compact_chunk` as it arrives.

        A chunk this writer added or updated (a verifying read) shares the id string its result holds.
        """
        ids: dict[str, str] | None = None
        if self._written is not None:
            written = chain(self._written.added, self._written.updated)
            ids = {chunk_id: chunk_id for _key, chunk_id in written if chunk_id is not None}
        return [
            compact_chunk(chunk, self.texts, keywords=self.keywords, ids=ids)
            for chunk in self.hook.iter_segments(self.dataset_id, self.document_id)
        ]

    def run(self, plan: ChunkPlan, result: ChunkSyncResult | None = None) -> ChunkSyncResult:
        """
        Write the plan: adds and updates first, then, when they all succeeded, the deletes (so a changed
        record's old chunk goes only once its new one is in). Failures are collected, except the plan refusing
        chunk writes (raised at once) and a document that is gone.
        """
        result = result if result is not None else ChunkSyncResult()
        self._written = result
        size = self.batch_size
        batches = (("add", plan.add[start : start + size]) for start in range(0, len(plan.add), size))
        updates = (("update", pair) for pair in plan.update)
        if plan.add or plan.update:  # made as the window of queued writes takes them, not all up front
            self._carry_out(chain(batches, updates), result)
        if result.failed:
            if plan.delete:
                log.warning("%d chunk delete(s) left for the next pass: some adds or updates failed", len(plan.delete))
            return result
        if plan.delete:
            self._carry_out((("delete", chunk) for chunk in plan.delete), result)
        return result

    def _carry_out(self, operations: Iterable[tuple[str, Any]], result: ChunkSyncResult) -> None:
        calls = {"add": self._add, "update": lambda pair: self._update(*pair), "delete": self._delete}
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="dify-chunks") as pool:
            completed = completed_in_window(
                pool,
                lambda operation: calls[operation[0]](operation[1]),
                operations,
                window=self.max_workers * AHEAD_PER_WORKER,
            )
            try:
                for (operation, item), future in completed:
                    if operation == "add":
                        result.add_requests += 1
                    try:
                        answer = future.result()
                    except DifyQuotaExceededError as error:
                        raise sandbox_error(error) from error
                    except DifyNotFoundError as error:
                        if operation == "add":
                            raise  # the document itself is gone
                        result.vanished += 1  # another run (or a person) deleted the chunk meanwhile
                        log.info("%s of chunk %s: it is gone already (%s)", operation, self._chunk_id(item), error)
                        continue
                    except DifyError as error:
                        result.failed.append(self._failure(operation, item, error))
                        log.warning("%s of chunks failed: %s", operation, error)
                        continue
                    self._record(result, operation, item, answer)
            finally:
                completed.close()  # an error stops the loop: the calls not started yet are cancelled

    def _add(self, batch: list[WantedChunk]) -> list[dict[str, Any]]:
        return self.hook.add_segments(self.dataset_id, self.document_id, [chunk.segment() for chunk in batch])

    def _update(self, wanted: WantedChunk, chunk: Mapping[str, Any]) -> dict[str, Any]:
        return self.hook.update_segment(self.dataset_id, self.document_id, str(chunk["id"]), **wanted.changes(chunk))

    def _delete(self, chunk: Mapping[str, Any]) -> None:
        self.hook.delete_segment(self.dataset_id, self.document_id, str(chunk["id"]))

    @staticmethod
    def _chunk_id(item: Any) -> str:
        chunk = item[1] if isinstance(item, tuple) else item
        return str(chunk.get("id")) if isinstance(chunk, Mapping) else "?"

    @staticmethod
    def _record(result: ChunkSyncResult, operation: str, item: Any, answer: Any) -> None:
        if operation == "add":
            created = list(answer or [])
            for index, wanted in enumerate(item):
                chunk_id = (
                    created[index].get("id") if index < len(created) and isinstance(created[index], Mapping) else None
                )
                result.added.append((wanted.key, chunk_id))
        elif operation == "update":
            wanted, chunk = item
            result.updated.append((wanted.key, str(chunk["id"])))
        else:
            result.deleted.append((key_of_chunk(str(item.get("content") or "")), str(item["id"])))

    @staticmethod
    def _failure(operation: str, item: Any, error: DifyError) -> dict[str, Any]:
        hint = ""
        if operation == "add" and "maximum segments limit" in (error.message or "").lower():
            hint = " (the server caps chunks per request: lower batch_size)"
        from airflow_provider_dify.operators.sync._document_sync import is_permanent

        permanent = {"permanent": True} if is_permanent(error) else {}
        if operation == "add":
            keys = [wanted.key for wanted in item]
            return {
                "operation": "add",
                "count": len(item),
                "keys": keys[:10] if any(key is not None for key in keys) else [],
                "error": str(error) + hint,
                "unknown_outcome": isinstance(error, UNKNOWN_OUTCOME_ERRORS),
                **permanent,
            }
        chunk = item[1] if operation == "update" else item
        key = item[0].key if operation == "update" else key_of_chunk(str(chunk.get("content") or ""))
        return {
            "operation": operation,
            "count": 1,
            "keys": [key] if key else [],
            "id": str(chunk["id"]),
            "error": str(error),
            **permanent,
        }


def reconcile(
    sync: ChunkSync,
    make_plan: Callable[[list[ListedChunk]], ChunkPlan],
    *,
    repair_passes: int = 1,
    check_first_plan: Callable[[ChunkPlan], None] | None = None,
    max_verify_passes: int = MAX_VERIFY_PASSES,
    max_copy_removal_passes: int = MAX_COPY_REMOVAL_PASSES,
) -> tuple[PlanCounts, ChunkSyncResult]:
    """
    Plan, write, and read the chunks again until a pass finds nothing to do.

    A pass without writes ends it (an unchanged run reads the chunks once and writes nothing). After a pass
    whose writes all succeeded, the chunks are read again: a copy that an overlapping run added meanwhile is
    removed there by the survivor rule, so when this returns without failures each wanted record was exactly
    one chunk at the last read. A pass with failures ends it (they fail the task, a retry finishes), unless an
    add's outcome is unknown and ``repair_passes`` are left.

    :param sync: the writer of the document's chunks.
    :param make_plan: the plan for a listing of the chunks.
    :param repair_passes: passes allowed after adds whose outcome is unknown.
    :param check_first_plan: called with the first plan before anything is written (may raise).
    :param max_verify_passes: passes after successful writes that find more to do than removing surplus
        copies, allowed before giving up (a failure then).
    :param max_copy_removal_passes: passes after successful writes that only remove surplus copies, allowed
        before giving up.
    :return: the counts of the first plan and the result of every pass.
    """
    result = ChunkSyncResult()
    first: PlanCounts | None = None
    repairs = verifies = copy_removals = 0
    while True:
        result.passes += 1
        chunks = sync.list_chunks()
        listed = len(chunks)
        plan = make_plan(chunks)
        del chunks  # what the plan does not hold of the listing (the unchanged chunks) goes now
        if first is None:
            first = plan.counts()
            if check_first_plan is not None:
                check_first_plan(plan)
        log.info(
            "Pass %d: %d chunk(s) in Dify; %d to add, %d to update, %d unchanged, %d to delete (%d surplus copies)",
            result.passes,
            listed,
            len(plan.add),
            len(plan.update),
            len(plan.unchanged),
            len(plan.delete),
            plan.copies,
        )
        if not plan.writes:
            result.verified = True
            break
        copies_only = result.passes > 1 and plan.writes == plan.copies  # a verifying read found only copies
        spent, allowed = (copy_removals, max_copy_removal_passes) if copies_only else (verifies, max_verify_passes)
        if spent >= allowed:
            result.failed.append(
                {
                    "operation": "verify",
                    "count": plan.writes,
                    "keys": [],
                    "error": f"the chunks were still changing after {result.passes - 1} verifying reads"
                    " (another writer?); a retry reconciles them",
                }
            )
            break
        result.failed = []  # each pass re-reads Dify: only the last pass's failures stand
        result.copies_removed += plan.copies
        sync.run(plan, result)
        del plan  # the next pass reads the chunks again: nothing of this one is kept meanwhile
        if result.failed:
            if result.unknown_outcome and repairs < repair_passes:
                repairs += 1
                log.warning("Some chunk adds may or may not have happened; reading the chunks again")
                continue
            break
        if copies_only:
            copy_removals += 1
        else:
            verifies += 1
    assert first is not None
    return first, result
