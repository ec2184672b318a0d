"""Waiting for Dify to index documents: the one implementation behind the sensor, the trigger and the operators.

Three layers, each written once:

* :func:`plan_poll` describes one poll as a generator of request descriptions. It asks for the batch's
  indexing status and, for the documents the batch does not list (or all of them once the batch answers 404,
  which Dify does after a same-name upsert moved the document to a new batch), for the documents themselves:
  one by one up to :data:`DOCUMENT_LIST_THRESHOLD`, from the paged document list above it, not again once
  an earlier poll saw them ``completed`` until all are (then once, for their whole results). It holds no I/O:
  :func:`check_indexing` sends its requests with :class:`~.dify.DifyHook`, :func:`acheck_indexing` with
  :class:`~.dify_async.DifyAsyncHook`.
* :func:`evaluate_poll` is pure: status entries + the previous progress snapshot + the time -> running,
  success, error or stalled, with per-document results and the next snapshot (plain JSON of bounded size, so a
  deferral or the task state store can carry it: counts, a digest of the documents' progress, when it last
  moved, one bit per document for those completed; see :func:`read_snapshot`).
* :func:`record_failed_poll` decides whether a poll that failed even after the hook's retries ends the wait:
  only :data:`MAX_CONSECUTIVE_FAILED_POLLS` transient failures in a row do.

:func:`wait_for_indexing` is the blocking loop built on these; the trigger's loop is the asynchronous twin and
the sensor calls :func:`check_indexing` once per poke. :func:`indexing_results_from_event` turns the
trigger's event back into results or the matching exception.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_dify.exceptions import (
    DifyConnectionError,
    DifyDocumentNotFoundError,
    DifyError,
    DifyIndexingError,
    DifyIndexingTimeout,
    DifyInvalidResponseError,
    DifyNotFoundError,
    DifyRateLimitError,
    DifyResourceBusyError,
    DifyServerError,
)
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.operations import ApiRequest

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.hooks.dify_async import DifyAsyncHook

log = logging.getLogger(__name__)

PollState = Literal["running", "success", "error", "stalled"]

#: Dify's indexing status once a document is searchable.
COMPLETED = "completed"
#: Statuses that end a wait with an error: nothing will move without a person acting in Dify.
FAILED_STATUSES: tuple[str, ...] = ("error", "paused", "stopped")
#: The status this module gives a document that answers 404 while waited on.
DELETED = "deleted"
#: The ``error`` of a :data:`DELETED` result whose document no poll of the wait ever saw: the id never existed.
NEVER_SEEN = "not found, never seen by this wait"
#: Event statuses a trigger may send.
EVENT_STATUSES: tuple[str, ...] = ("success", "error", "stalled", "timeout")

#: Polls that fail in a row (after the hook's own retries) before the wait gives up. A poll fails only after
#: the hook has retried its request (5 attempts with back-off up to 30 s by default), so five failed polls
#: mean several minutes of an unreachable or failing server, not a blip.
MAX_CONSECUTIVE_FAILED_POLLS = 5

#: Errors after which polling again may succeed: the network, a 5xx, the rate limit, a busy resource, a
#: proxy's HTML page. Anything else (401, 403, a wrong knowledge base id...) ends the wait at once.
TRANSIENT_POLL_ERRORS: tuple[type[DifyError], ...] = (
    DifyConnectionError,
    DifyServerError,
    DifyRateLimitError,
    DifyResourceBusyError,
    DifyInvalidResponseError,
)

#: Above this many documents to read in one poll (and until a poll has measured what the list costs), a poll
#: reads their status from the paged document list (100 a page) instead of one request per document.
DOCUMENT_LIST_THRESHOLD = 10

#: Documents named at most in a trigger event (failed ones first, then unfinished ones); the event carries
#: counts for all of them, so that waiting on 10,000 documents costs the event size of waiting on a few.
EVENT_DOCUMENT_LIMIT = 10
#: Documents named at most in one log line or message; the others are counted.
MESSAGE_DOCUMENT_LIMIT = 10

#: A document's result: id, name (when known), indexing_status, completed_segments, total_segments, error,
#: enabled (when known), indexing_seconds (when Dify's timestamps allow).
DocumentResult = dict[str, Any]
#: The keys of a :data:`DocumentResult`, in order.
RESULT_KEYS: tuple[str, ...] = (
    "id",
    "name",
    "indexing_status",
    "completed_segments",
    "total_segments",
    "error",
    "enabled",
    "archived",
    "indexing_seconds",
)


# -- reading Dify's answers ------------------------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def status_entry(entry: Mapping[str, Any]) -> DocumentResult:
    """
    One entry of ``GET .../documents/{batch}/indexing-status`` as a document result.

    ``indexing_seconds`` is ``completed_at - processing_started_at`` once both are set.
    """
    started = _as_number(entry.get("processing_started_at"))
    completed = _as_number(entry.get("completed_at"))
    seconds = completed - started if started is not None and completed is not None else None
    return {
        "id": str(entry.get("id") or ""),
        "name": None,
        "indexing_status": entry.get("indexing_status"),
        "completed_segments": _as_int(entry.get("completed_segments")),
        "total_segments": _as_int(entry.get("total_segments")),
        "error": entry.get("error") or None,
        "enabled": None,
        "archived": None,
        "indexing_seconds": seconds,
    }


def document_entry(detail: Mapping[str, Any]) -> DocumentResult:
    """
    A document's detail (``GET .../documents/{id}``) as a document result, for when the batch is gone.

    The detail has no ``completed_segments`` on Dify 1.13: a completed document counts all of its
    ``segment_count`` chunks, an unfinished one none known. A paused document (``is_paused`` or
    ``display_status: paused``) reads ``paused`` as it does on indexing-status. ``indexing_seconds`` is Dify's
    ``indexing_latency``.
    """
    status = detail.get("indexing_status")
    if status not in (COMPLETED, "error") and (detail.get("is_paused") or detail.get("display_status") == "paused"):
        status = "paused"
    total = _as_int(detail.get("total_segments"))
    if total is None:
        total = _as_int(detail.get("segment_count"))
    completed = _as_int(detail.get("completed_segments"))
    if completed is None and status == COMPLETED:
        completed = total
    enabled = detail.get("enabled")
    archived = detail.get("archived")
    return {
        "id": str(detail.get("id") or ""),
        "name": detail.get("name"),
        "indexing_status": status,
        "completed_segments": completed,
        "total_segments": total,
        "error": detail.get("error") or None,
        "enabled": enabled if isinstance(enabled, bool) else None,
        "archived": archived if isinstance(archived, bool) else None,
        "indexing_seconds": _as_number(detail.get("indexing_latency")),
    }


def deleted_entry(document_id: str, name: str | None = None) -> DocumentResult:
    """The result of a document that answered 404 while it was waited on."""
    return {
        "id": document_id,
        "name": name,
        "indexing_status": DELETED,
        "completed_segments": None,
        "total_segments": None,
        "error": None,
        "enabled": None,
        "archived": None,
        "indexing_seconds": None,
    }


# -- the progress snapshot ---------------------------------------------------------------------------------------

#: The shape of the snapshot :func:`evaluate_poll` writes. Earlier versions kept one entry per document (with
#: the results of the completed ones); :func:`read_snapshot` still reads them.
SNAPSHOT_VERSION = 2
#: Documents of a batch a wait without ``document_ids`` remembers, so that it can follow them once the batch
#: answers 404 (after a same-name upsert). Above it, such a wait asks for ``document_ids``.
FOLLOWED_DOCUMENT_LIMIT = 100


def _progress_key(entry: Mapping[str, Any]) -> str:
    """What counts as a document's progress: its status and chunk counts, just ``completed`` once completed."""
    status = entry.get("indexing_status")
    if status == COMPLETED:
        return COMPLETED
    return f"{status}/{entry.get('completed_segments')}/{entry.get('total_segments')}"


def progress_digest(keys: Iterable[tuple[str, str]]) -> str:
    """A digest of ``(document id, progress key)`` pairs, whatever their order: equal digests mean nothing moved."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for doc_id, key in sorted(keys):
        digest.update(f"{doc_id}\t{key}\n".encode())
    return digest.hexdigest()


def _pack_flags(flags: Sequence[bool]) -> str | None:
    """One bit a document, compressed, as ASCII (``None`` when no flag is set)."""
    if not any(flags):
        return None
    import base64
    import zlib

    bits = bytearray((len(flags) + 7) // 8)
    for index, flag in enumerate(flags):
        if flag:
            bits[index >> 3] |= 1 << (index & 7)
    return base64.b64encode(zlib.compress(bytes(bits), 9)).decode("ascii")


def _unpack_flags(packed: Any, count: int) -> list[bool]:
    """The first ``count`` flags of :func:`_pack_flags`'s text; all unset when it is missing or unreadable."""
    if not isinstance(packed, str) or not packed:
        return [False] * count
    import base64
    import binascii
    import zlib

    try:
        bits = zlib.decompress(base64.b64decode(packed, validate=True))
    except (ValueError, binascii.Error, zlib.error):
        return [False] * count
    return [index >> 3 < len(bits) and bool(bits[index >> 3] >> (index & 7) & 1) for index in range(count)]


def _id_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return value
    return None


def read_snapshot(progress: Mapping[str, Any] | None) -> dict[str, Any]:
    """
    The progress snapshot of a wait in the current shape, from what an earlier poll (of any version) returned.

    The snapshot holds no per-document entry, so its size does not grow with the number of documents:

    * ``documents``, ``completed``: how many documents the last poll that answered judged, and how many of
      them were completed (``0`` before any poll answered);
    * ``digest``: :func:`progress_digest` of every document's status and chunk counts; ``moved_at``: when it
      last changed (stall detection needs only these two);
    * ``settled``: one bit per document in the order of the poll's documents (``document_ids`` first), set for
      those completed, compressed: later polls do not read them again until all are completed, when their
      results are read once;
    * ``followed``: without ``document_ids``, the ids of the batch's documents (at most
      :data:`FOLLOWED_DOCUMENT_LIMIT`), to follow once the batch answers 404;
    * ``batch_missing``, ``failed_polls``, ``document_list_pages``.

    A snapshot of the previous version (``documents`` was a mapping of per-document entries, written by a
    running deferral or reschedule before an upgrade) keeps its ``moved_at`` and progress digest, so that stall
    detection carries over; the results it kept are read again at the end. Anything else starts afresh.
    """
    progress = progress if isinstance(progress, Mapping) else {}
    moved_at = _as_number(progress.get("moved_at"))
    pages = _as_int(progress.get("document_list_pages"))
    snapshot: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "documents": 0,
        "completed": 0,
        "digest": None,
        "moved_at": moved_at,
        "settled": None,
        "followed": None,
        "batch_missing": progress.get("batch_missing") is True,
        "failed_polls": max(_as_int(progress.get("failed_polls")) or 0, 0),
        "document_list_pages": pages if pages is not None and pages > 0 else None,
    }
    documents = progress.get("documents")
    if isinstance(documents, Mapping):  # the previous version: one entry per document
        keys = []
        for doc_id, info in documents.items():
            signature = info.get("signature") if isinstance(info, Mapping) else None
            if isinstance(doc_id, str) and isinstance(signature, list) and len(signature) == 3:
                status, done, total = signature
                key = _progress_key({"indexing_status": status, "completed_segments": done, "total_segments": total})
                keys.append((doc_id, key))
        snapshot["documents"] = len(keys)
        snapshot["completed"] = sum(1 for _, key in keys if key == COMPLETED)
        snapshot["digest"] = progress_digest(keys) if keys else None
        if len(keys) <= FOLLOWED_DOCUMENT_LIMIT:
            snapshot["followed"] = [doc_id for doc_id, _ in keys] or None
        return snapshot
    if progress.get("version") != SNAPSHOT_VERSION:
        return snapshot
    count = _as_int(documents)
    digest = progress.get("digest")
    if count is not None and count > 0 and isinstance(digest, str):
        snapshot["documents"] = count
        snapshot["completed"] = min(max(_as_int(progress.get("completed")) or 0, 0), count)
        snapshot["digest"] = digest
        snapshot["settled"] = progress.get("settled") if isinstance(progress.get("settled"), str) else None
        followed = _id_list(progress.get("followed"))
        snapshot["followed"] = followed[:FOLLOWED_DOCUMENT_LIMIT] if followed else None
    return snapshot


def known_document_ids(progress: Mapping[str, Any] | None) -> list[str]:
    """The ids of the batch's documents a wait without ``document_ids`` follows (see :func:`read_snapshot`)."""
    return list(read_snapshot(progress)["followed"] or [])


def settled_document_ids(progress: Mapping[str, Any] | None, document_ids: Sequence[str]) -> set[str]:
    """
    Those of ``document_ids`` (the wait's documents, in the order of its polls) an earlier poll saw ``completed``.

    :func:`plan_poll` does not read them again until every document is completed.
    """
    snapshot = read_snapshot(progress)
    flags = _unpack_flags(snapshot["settled"], len(document_ids))
    return {doc_id for doc_id, flag in zip(document_ids, flags, strict=True) if flag}


def group_snapshot(progress: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """
    The snapshot a trigger waiting on one group of a wait's documents starts from, made from the whole wait's.

    What holds for every document of the wait is kept: that a poll of the wait has answered (``documents``;
    such a poll read every document, so a document of the group that answers 404 later was deleted while
    waited on, as a single trigger judges it, not an id that never existed), ``batch_missing`` and
    ``failed_polls``. What describes the whole list is left out: ``settled`` (one bit per document of the
    wait, in its order), ``followed``, ``document_list_pages``; the wait's ``digest`` stays, so the group's
    first poll counts as movement and its stall clock starts there. Of bounded size (a few hundred bytes
    however many documents the wait has), fit for a trigger's stored arguments. ``None`` without a snapshot.
    """
    if not progress:
        return None
    return {
        **read_snapshot(progress),
        "completed": 0,
        "settled": None,
        "followed": None,
        "document_list_pages": None,
    }


def settled_entry(document_id: str) -> DocumentResult:
    """The result of a document an earlier poll saw completed, until its full result is read again."""
    return {**dict.fromkeys(RESULT_KEYS), "id": document_id, "indexing_status": COMPLETED}


# -- one poll, as requests to send -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollReading:
    """
    What one poll read.

    :param entries: one document result per document waited on, in a stable order.
    :param batch_missing: ``True`` once the batch answered 404 (later polls read the documents themselves).
    :param document_list_pages: pages of the document list this poll read, ``None`` when it read none.
    :param follow_documents: the wait has no ``document_ids``: the snapshot remembers the batch's documents.
    """

    entries: list[DocumentResult]
    batch_missing: bool
    document_list_pages: int | None = None
    follow_documents: bool = False


def _is_missing_dataset(error: DifyNotFoundError) -> bool:
    # The batch answers "Documents not found."; a wrong knowledge base answers "Dataset not found.".
    return "dataset" in (error.message or "").lower()


def reads_document_list(count: int, progress: Mapping[str, Any] | None) -> bool:
    """
    Whether a poll reads ``count`` documents from the paged document list rather than one by one.

    The list costs the pages an earlier poll of the wait needed to find its documents, or, before any poll
    listed, is assumed worth it above :data:`DOCUMENT_LIST_THRESHOLD` documents.
    """
    pages = read_snapshot(progress)["document_list_pages"]
    return count > (pages if pages is not None else DOCUMENT_LIST_THRESHOLD)


def _read_document_list(
    dataset_id: str, document_ids: Sequence[str]
) -> Generator[ApiRequest, Any, tuple[dict[str, DocumentResult], int]]:
    """
    Page through the knowledge base's documents (newest first) until every one of ``document_ids`` was seen.

    Stops at the end of the list, and after as many pages as there are documents to find (reading them one by
    one would cost no more). Returns the results found and the number of pages read; the documents not found
    are left to the caller.
    """
    unseen = set(document_ids)
    found: dict[str, DocumentResult] = {}
    page = 0
    while unseen and page < len(document_ids):
        page += 1
        answer = yield ops.list_documents(dataset_id, page=page, limit=ops.MAX_PAGE_SIZE)
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, list):
            raise DifyIndexingError(
                f"Page {page} of the documents of knowledge base {dataset_id} has no 'data' list:"
                f" {str(answer)[:200]!r}."
            )
        for item in data:
            doc_id = str(item.get("id") or "") if isinstance(item, Mapping) else ""
            if doc_id in unseen:
                unseen.discard(doc_id)
                found[doc_id] = document_entry(item)
        total = _as_int(answer.get("total"))
        if len(data) < ops.MAX_PAGE_SIZE or (total is not None and page * ops.MAX_PAGE_SIZE >= total):
            break
    return found, page


def _read_document(dataset_id: str, doc_id: str, *, seen: bool) -> Generator[ApiRequest, Any, DocumentResult]:
    """Read one document's detail; 404 means deleted (``seen``: an earlier answer showed it, else never seen)."""
    try:
        detail = yield ops.get_document(dataset_id, doc_id, metadata="without")
    except DifyNotFoundError as error:
        if _is_missing_dataset(error):
            raise
        entry = deleted_entry(doc_id)
        if not seen:
            entry["error"] = NEVER_SEEN
        return entry
    if not isinstance(detail, Mapping):
        raise DifyIndexingError(f"Document {doc_id} answered an unexpected body: {str(detail)[:200]!r}.")
    entry = document_entry(detail)
    entry["id"] = entry["id"] or doc_id
    return entry


def _is_done(entry: Mapping[str, Any]) -> bool:
    return entry.get("indexing_status") == COMPLETED and not document_problem(entry)


def plan_poll(
    dataset_id: str,
    *,
    batch: str | None,
    document_ids: Sequence[str] | None,
    progress: Mapping[str, Any] | None = None,
) -> Generator[ApiRequest, Any, PollReading]:
    """
    Describe one poll: yield the requests to send, receive each decoded answer (or the error, thrown in).

    With a batch, the batch's indexing status is read (one request, whatever the number of documents).
    Documents waited on that the batch does not list (``document_ids``, or the batch's documents an earlier poll
    saw), or all of them once the batch answered 404 (which Dify does after a same-name upsert gave the
    documents a new batch), are read from Dify, except those an earlier poll saw ``completed`` (the snapshot's
    ``settled`` flags). Up to :data:`DOCUMENT_LIST_THRESHOLD` documents are read one by one; more are looked up
    in the paged document list (100 a page), and those the list did not show are then read one by one. A
    document that answers 404 was deleted.

    Once every document is completed, the poll reads by itself each one whose result lacks what only its
    detail says (chunk counts, indexing time): those completed in earlier polls and those the list showed, so
    that the results of a successful poll are whole. Drive it with :func:`check_indexing` (sync) or
    :func:`acheck_indexing` (async).

    :param dataset_id: the knowledge base.
    :param batch: the batch id of a create or update call, if known.
    :param document_ids: the documents to wait for; with a batch, limits the wait to these documents.
    :param progress: the snapshot of the previous poll of this wait (see :func:`read_snapshot`).
    :return: the :class:`PollReading`.
    """
    snapshot = read_snapshot(progress)
    wanted = list(dict.fromkeys([*(document_ids or []), *known_document_ids(snapshot)]))
    first_answer = snapshot["documents"] == 0
    batch_missing = snapshot["batch_missing"]
    found: dict[str, DocumentResult] = {}
    if batch and not batch_missing:
        try:
            answer = yield ops.get_indexing_status(dataset_id, batch)
        except DifyNotFoundError as error:
            if _is_missing_dataset(error):
                raise
            batch_missing = True
            log.info("Batch %s answers 404 (superseded by a newer upsert); reading the documents themselves", batch)
        else:
            data = (answer or {}).get("data") if isinstance(answer, Mapping) else None
            if not isinstance(data, list):
                raise DifyIndexingError(
                    f"The indexing status of batch {batch!r} has no 'data' list: {str(answer)[:200]!r}."
                )
            limited_to = set(document_ids or ())  # a set: a batch of 10,000 is not 10,000 scans of a list
            for item in data:
                if isinstance(item, Mapping) and item.get("id"):
                    entry = status_entry(item)
                    if not limited_to or entry["id"] in limited_to:
                        found[entry["id"]] = entry
            if not found and not wanted:
                raise DifyIndexingError(
                    f"Batch {batch!r} of knowledge base {dataset_id} lists no documents"
                    + (f" among document_ids {list(document_ids)}" if document_ids else "")
                    + "; check the batch and document ids."
                )
    if batch_missing and not wanted:
        raise DifyIndexingError(
            f"Batch {batch!r} of knowledge base {dataset_id} answers 404 'Documents not found.' and no document"
            " id is known to follow instead: the batch id is wrong, or a later upsert of a same-name document"
            " gave it a new batch (a wait without document_ids follows at most"
            f" {FOLLOWED_DOCUMENT_LIMIT} documents of its batch). Pass document_ids (the 'document_ids' of the"
            " create/update operator's result) to wait on the documents themselves."
        )
    settled = settled_document_ids(snapshot, wanted)
    # Results that lack what only a document's detail says: read them once all documents are completed.
    partial: set[str] = set()
    to_read = []
    for doc_id in wanted:
        if doc_id in found:
            continue
        if doc_id in settled:
            found[doc_id] = settled_entry(doc_id)
            partial.add(doc_id)
        else:
            to_read.append(doc_id)
    list_pages: int | None = None
    if reads_document_list(len(to_read), snapshot):
        listed, list_pages = yield from _read_document_list(dataset_id, to_read)
        for doc_id, entry in listed.items():
            found[doc_id] = entry  # the list has neither chunk counts nor the indexing time
            if _is_done(entry):
                partial.add(doc_id)
    for doc_id in to_read:
        if doc_id not in found:
            found[doc_id] = yield from _read_document(dataset_id, doc_id, seen=not first_answer)
    if partial and all(_is_done(entry) for entry in found.values()):
        for doc_id in [doc_id for doc_id in wanted if doc_id in partial]:
            found[doc_id] = yield from _read_document(dataset_id, doc_id, seen=True)
    order = list(dict.fromkeys([*wanted, *found]))
    entries = [found[doc_id] for doc_id in order if doc_id in found]
    return PollReading(
        entries=entries,
        batch_missing=batch_missing,
        document_list_pages=list_pages,
        follow_documents=not document_ids,
    )


def _advance(plan: Generator[ApiRequest, Any, PollReading], answer: Any, error: BaseException | None) -> Any:
    """Feed an answer (or an error) into a poll plan: the next request, or ``StopIteration`` with the reading."""
    return plan.throw(error) if error is not None else plan.send(answer)


# -- judging one poll ------------------------------------------------------------------------------------------


def _label(entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return f"{name!r} ({entry.get('id')})" if name else str(entry.get("id"))


def _progress_text(entry: Mapping[str, Any]) -> str:
    done, total = entry.get("completed_segments"), entry.get("total_segments")
    chunks = f", {done if done is not None else '?'}/{total} chunks" if total is not None else ""
    return f"{_label(entry)}: {entry.get('indexing_status')}{chunks}"


def _named(texts: Sequence[str], separator: str = ", ", total: int | None = None) -> str:
    """At most :data:`MESSAGE_DOCUMENT_LIMIT` of ``texts``, then how many more there are (of ``total``)."""
    shown = separator.join(texts[:MESSAGE_DOCUMENT_LIMIT])
    rest = (len(texts) if total is None else total) - MESSAGE_DOCUMENT_LIMIT
    return f"{shown}{separator}and {rest:,} more" if rest > 0 else shown


def _named_progress(entries: Sequence[Mapping[str, Any]]) -> str:
    """The progress of at most :data:`MESSAGE_DOCUMENT_LIMIT` of ``entries`` (only those are formatted)."""
    return _named([_progress_text(entry) for entry in entries[:MESSAGE_DOCUMENT_LIMIT]], total=len(entries))


def document_problem(entry: Mapping[str, Any]) -> str | None:
    """Why a document ends a wait with an error (``None`` when it does not)."""
    status = entry.get("indexing_status")
    label = _label(entry)
    if status == DELETED and entry.get("error") == NEVER_SEEN:
        return (
            f"document {label} is not in the knowledge base (Dify answers 404 and no poll of this wait ever saw"
            " it): the id is wrong or the document was deleted before the wait began; check document_ids and"
            " dataset_id"
        )
    if status == DELETED:
        return f"document {label} was deleted while waiting for its indexing"
    if entry.get("archived"):
        return f"document {label} was archived while waiting for its indexing; un-archive it in Dify to use it"
    if status == "error":
        return f"indexing of document {label} failed: {entry.get('error') or 'Dify gave no error text'}"
    if status == "paused":
        return f"indexing of document {label} is paused; resume it in the Dify console, then run the task again"
    if status == "stopped":
        detail = f": {entry['error']}" if entry.get("error") else ""
        return f"indexing of document {label} was stopped{detail}"
    return None


@dataclass(frozen=True)
class PollOutcome:
    """
    The verdict on one poll.

    :param state: ``running``, ``success``, ``error`` or ``stalled``.
    :param message: a sentence for logs and exceptions, naming the documents concerned.
    :param documents: the per-document results.
    :param progress: the snapshot to pass to the next poll (plain JSON).
    """

    state: PollState
    message: str
    documents: list[DocumentResult]
    progress: dict[str, Any] = field(default_factory=dict)

    def raise_for_state(self) -> list[DocumentResult]:
        """Return the documents on success, raise :class:`DifyIndexingError` for ``error`` and ``stalled``."""
        if self.state == "success":
            return self.documents
        if self.state in ("error", "stalled"):
            raise indexing_error(self.message, self.documents)
        raise DifyIndexingError(f"Indexing is still running: {self.message}")


def evaluate_poll(
    entries: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
    *,
    now: float,
    stall_timeout: float | None = None,
    batch_missing: bool = False,
    document_list_pages: int | None = None,
    follow_documents: bool = False,
) -> PollOutcome:
    """
    Decide what one poll means: still running, all completed, a document failed, or the indexing stalled.

    A document fails the wait when its status is ``error``, ``paused`` or ``stopped``, when it was deleted
    (404) or archived. The wait succeeds when every document is ``completed``. It stalls when neither the
    status nor the chunk counts of any document moved for ``stall_timeout`` seconds (measured with ``now``,
    which must come from the same clock at every poll of a wait): the snapshot keeps a digest of every
    document's progress and the time it last changed, not one entry per document (see :func:`read_snapshot`).

    :param entries: document results of this poll (:func:`status_entry`, :func:`document_entry`,
        :func:`deleted_entry`, :func:`settled_entry`).
    :param previous: the snapshot returned by the previous poll of this wait, ``None`` at the first.
    :param now: the current time on the wait's clock.
    :param stall_timeout: seconds without movement before the wait is called stalled; ``None`` never stalls.
    :param batch_missing: the batch answered 404, so later polls read documents themselves.
    :param document_list_pages: pages of the document list this poll read (``None``: it read none, the
        previous snapshot's figure is kept); later polls use the list only when it costs fewer requests.
    :param follow_documents: the wait has no ``document_ids``: remember the ids of the batch's documents (at
        most :data:`FOLLOWED_DOCUMENT_LIMIT`), to follow them once the batch answers 404.
    """
    before = read_snapshot(previous)
    # Not copied when they are dicts already (nothing here changes them): 10,000 copies a poll are garbage.
    documents = [entry if type(entry) is dict else dict(entry) for entry in entries]
    problems: list[str] = []
    unfinished: list[DocumentResult] = []
    done: list[bool] = []
    for entry in documents:
        problem = document_problem(entry)
        if problem:
            problems.append(problem)
        elif entry.get("indexing_status") != COMPLETED:
            unfinished.append(entry)
        done.append(problem is None and entry.get("indexing_status") == COMPLETED)
    digest = progress_digest((str(entry.get("id")), _progress_key(entry)) for entry in documents)
    moved = before["digest"] != digest or before["moved_at"] is None
    moved_at = now if moved else float(before["moved_at"])
    followed = [entry["id"] for entry in documents] if follow_documents else None
    progress = {
        "version": SNAPSHOT_VERSION,
        "documents": len(documents),
        "completed": sum(done),
        "digest": digest,
        "moved_at": moved_at,
        "settled": _pack_flags(done),
        "followed": followed if followed and len(followed) <= FOLLOWED_DOCUMENT_LIMIT else None,
        "batch_missing": batch_missing,
        "failed_polls": 0,
        "document_list_pages": before["document_list_pages"] if document_list_pages is None else document_list_pages,
    }
    if problems:
        message = _named(problems, "; ")
        return PollOutcome("error", message[:1].upper() + message[1:] + ".", documents, progress)
    if not unfinished:
        return PollOutcome("success", f"{len(documents)} document(s) indexed.", documents, progress)
    waiting = _named_progress(unfinished)
    if stall_timeout is not None and now - moved_at >= stall_timeout:
        message = (
            f"Indexing stalled: no document changed status or chunk count for {now - moved_at:.0f} s"
            f" (stall_timeout={stall_timeout:g} s). Still waiting: {waiting}."
        )
        return PollOutcome("stalled", message, documents, progress)
    return PollOutcome(
        "running", f"{len(unfinished)} of {len(documents)} document(s) indexing: {waiting}.", documents, progress
    )


def record_failed_poll(
    progress: Mapping[str, Any] | None, error: BaseException
) -> tuple[dict[str, Any], DifyError | None]:
    """
    Count a poll that failed after the hook's retries.

    :return: the updated snapshot and ``None`` to keep polling, or the error that ends the wait: ``error``
        itself when it is not transient, a :class:`DifyIndexingError` after
        :data:`MAX_CONSECUTIVE_FAILED_POLLS` transient failures in a row.
    """
    updated = read_snapshot(progress)
    failures = updated["failed_polls"] + 1
    updated["failed_polls"] = failures
    if not isinstance(error, TRANSIENT_POLL_ERRORS):
        if isinstance(error, DifyError):
            return updated, error
        return updated, DifyIndexingError(f"Polling the indexing status failed: {error}")
    if failures >= MAX_CONSECUTIVE_FAILED_POLLS:
        return updated, DifyIndexingError(
            f"Gave up waiting for indexing after {failures} failed polls in a row; the last error: {error}"
        )
    return updated, None


def unfinished_summary(documents: Sequence[Mapping[str, Any]]) -> str:
    """The documents that are not completed, as ``'name' (id): status, n/m chunks`` separated by commas."""
    unfinished = [entry for entry in documents if entry.get("indexing_status") != COMPLETED]
    return _named_progress(unfinished) if unfinished else "no poll answered"


def timeout_message(timeout: float | None, documents: Sequence[Mapping[str, Any]]) -> str:
    """The message of a wait that reached its deadline."""
    within = f" within {timeout:g} s" if timeout is not None else " before its deadline"
    return (
        f"Indexing did not finish{within}. Still waiting: {unfinished_summary(documents)}."
        " Dify keeps indexing; wait longer (timeout) or check its indexing queue."
    )


# -- sending a poll ----------------------------------------------------------------------------------------------


def _judge(
    reading: PollReading, progress: Mapping[str, Any] | None, *, now: float | None, stall_timeout: float | None
) -> PollOutcome:
    return evaluate_poll(
        reading.entries,
        progress,
        now=time.time() if now is None else now,
        stall_timeout=stall_timeout,
        batch_missing=reading.batch_missing,
        document_list_pages=reading.document_list_pages,
        follow_documents=reading.follow_documents,
    )


def check_indexing(
    hook: DifyHook,
    dataset_id: str,
    *,
    batch: str | None = None,
    document_ids: Sequence[str] | None = None,
    progress: Mapping[str, Any] | None = None,
    stall_timeout: float | None = None,
    now: float | None = None,
) -> PollOutcome:
    """
    Check once, with the sync hook: send :func:`plan_poll`'s requests, judge with :func:`evaluate_poll`.

    :param now: the time on the wait's clock after the poll (``time.time()`` by default).
    :raises DifyError: when a request fails after the hook's retries (see :func:`record_failed_poll`).
    """
    plan = plan_poll(dataset_id, batch=batch, document_ids=document_ids, progress=progress)
    try:
        request = next(plan)
        while True:
            try:
                answer, error = hook.send(request), None
            except DifyError as failure:
                answer, error = None, failure
            request = _advance(plan, answer, error)
    except StopIteration as stop:
        reading: PollReading = stop.value
    return _judge(reading, progress, now=now, stall_timeout=stall_timeout)


async def acheck_indexing(
    hook: DifyAsyncHook,
    dataset_id: str,
    *,
    batch: str | None = None,
    document_ids: Sequence[str] | None = None,
    progress: Mapping[str, Any] | None = None,
    stall_timeout: float | None = None,
    now: float | None = None,
) -> PollOutcome:
    """Check once, with the async hook: the same plan and judgement as :func:`check_indexing`."""
    plan = plan_poll(dataset_id, batch=batch, document_ids=document_ids, progress=progress)
    try:
        request = next(plan)
        while True:
            try:
                answer, error = await hook.send(request), None
            except DifyError as failure:
                answer, error = None, failure
            request = _advance(plan, answer, error)
    except StopIteration as stop:
        reading: PollReading = stop.value
    if len(reading.entries) <= DOCUMENT_LIST_THRESHOLD:
        return _judge(reading, progress, now=now, stall_timeout=stall_timeout)
    # Judging thousands of documents takes milliseconds of CPU: not on the triggerer's event loop.
    import asyncio

    return await asyncio.to_thread(_judge, reading, progress, now=now, stall_timeout=stall_timeout)


# -- the blocking wait ---------------------------------------------------------------------------------------


def validate_wait_arguments(
    dataset_id: Any,
    batch: Any,
    document_ids: Any,
    *,
    timeout: Any = None,
    poll_interval: Any = None,
    stall_timeout: Any = None,
) -> None:
    """Check the arguments of a wait, raising a ``DifyArgumentError`` (a ``ValueError``) that names the argument
    and the fix: the ids are Dify's (UUIDs, digit batch ids), ``poll_interval`` is at least
    :data:`~airflow_provider_dify.hooks.validation.MIN_POLL_INTERVAL`."""
    from airflow_provider_dify.hooks.validation import check_batch, check_id, check_poll_interval

    if document_ids is not None and (isinstance(document_ids, str) or not isinstance(document_ids, Sequence)):
        raise ValueError(f"document_ids: must be a list of document ids, got {document_ids!r}.")
    if not batch and not document_ids:
        raise ValueError(
            "batch or document_ids: pass the batch of a create/update call, the ids of the documents to wait"
            " for, or both."
        )
    check_id(dataset_id, "dataset_id")
    if batch is not None:
        check_batch(batch)
    for index, doc_id in enumerate(document_ids or []):
        check_id(doc_id, f"document_ids[{index}]")
    if poll_interval is not None:
        check_poll_interval(poll_interval, "poll_interval")
    for name, value, allow_none in (
        ("timeout", timeout, True),
        ("stall_timeout", stall_timeout, True),
    ):
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name}: must be a number of seconds >= 0, got {value!r}.")


def wait_for_indexing(
    hook: DifyHook,
    dataset_id: str,
    *,
    batch: str | None = None,
    document_ids: Sequence[str] | None = None,
    timeout: float = 3600,
    poll_interval: float = 5,
    stall_timeout: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[DocumentResult]:
    """
    Poll until every document is indexed; return the per-document results. Blocks the calling worker.

    :param hook: the sync hook.
    :param dataset_id: the knowledge base.
    :param batch: the batch id returned by a create or update call.
    :param document_ids: the documents to wait for (needed to follow documents whose batch answers 404).
    :param timeout: seconds before :class:`DifyIndexingTimeout`.
    :param poll_interval: seconds between polls.
    :param stall_timeout: seconds without any movement before a "stalled" :class:`DifyIndexingError`;
        ``None`` disables stall detection.
    :param sleep: the sleep function (tests replace it).
    :param clock: a monotonic clock in seconds (tests replace it).
    :raises DifyIndexingError: a document ended in ``error``, ``paused`` or ``stopped``, was deleted or
        archived, the indexing stalled, or polls kept failing.
    :raises DifyIndexingTimeout: the documents were not indexed within ``timeout``.
    """
    validate_wait_arguments(
        dataset_id, batch, document_ids, timeout=timeout, poll_interval=poll_interval, stall_timeout=stall_timeout
    )
    deadline = clock() + timeout
    progress: dict[str, Any] | None = None
    documents: list[DocumentResult] = []
    while True:
        try:
            outcome = check_indexing(
                hook,
                dataset_id,
                batch=batch,
                document_ids=document_ids,
                progress=progress,
                stall_timeout=stall_timeout,
                now=clock(),
            )
        except DifyError as error:
            progress, fatal = record_failed_poll(progress, error)
            if fatal is not None:
                raise fatal from error
            log.warning("Polling the indexing status failed (%s); polling again", error)
        else:
            progress, documents = outcome.progress, outcome.documents
            if outcome.state != "running":
                return outcome.raise_for_state()
            log.info("%s", outcome.message)
        remaining = deadline - clock()
        if remaining <= 0:
            raise indexing_error(timeout_message(timeout, documents), documents, timed_out=True)
        sleep(min(poll_interval, remaining))


# -- trigger events --------------------------------------------------------------------------------------------


def indexing_event(
    status: str, message: str, *, dataset_id: str, batch: str | None, documents: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """
    The payload of the indexing trigger's event (plain JSON), of bounded size.

    ``counts`` covers every document waited on (``documents``, ``completed``, ``failed``, ``unfinished``,
    ``chunks``); ``documents`` lists them all when there are at most :data:`EVENT_DOCUMENT_LIMIT`, otherwise
    only that many worth naming (failed first, then unfinished), with ``truncated`` true.
    """
    if status not in EVENT_STATUSES:
        raise ValueError(f"status: must be one of {EVENT_STATUSES}, got {status!r}.")
    failed = [entry for entry in documents if document_problem(entry)]
    unfinished = [
        entry for entry in documents if entry.get("indexing_status") != COMPLETED and not document_problem(entry)
    ]
    named = list(documents) if len(documents) <= EVENT_DOCUMENT_LIMIT else (failed + unfinished)[:EVENT_DOCUMENT_LIMIT]
    return {
        "status": status,
        "message": message,
        "dataset_id": dataset_id,
        "batch": batch,
        "counts": {
            "documents": len(documents),
            "completed": len(documents) - len(failed) - len(unfinished),
            "failed": len(failed),
            "unfinished": len(unfinished),
            "chunks": sum(_as_int(entry.get("total_segments")) or 0 for entry in documents),
        },
        "documents": [dict(entry) for entry in named],
        "truncated": len(named) < len(documents),
    }


def indexing_error(
    message: str, documents: Sequence[Mapping[str, Any]], *, timed_out: bool = False
) -> DifyIndexingError:
    """The exception for a failed wait, naming the first document at fault (or still unfinished)."""
    culprit = next((entry for entry in documents if document_problem(entry)), None)
    if culprit is None:
        culprit = next((entry for entry in documents if entry.get("indexing_status") != COMPLETED), None)
    cls = DifyIndexingTimeout if timed_out else DifyIndexingError
    never_existed = bool(culprit) and culprit.get("indexing_status") == DELETED and culprit.get("error") == NEVER_SEEN
    if never_existed and not timed_out:  # the same ids cannot do better on a retry
        cls = DifyDocumentNotFoundError
    return cls(
        message,
        document_id=culprit.get("id") if culprit else None,
        indexing_status=culprit.get("indexing_status") if culprit else None,
    )


def indexing_results_from_event(event: Any) -> list[DocumentResult]:
    """
    Validate the indexing trigger's event: the per-document results on success, the matching exception otherwise.

    :raises DifyIndexingError: for ``error`` and ``stalled`` events, and for an empty, unknown or malformed one.
    :raises DifyIndexingTimeout: for a ``timeout`` event.
    """
    if not isinstance(event, Mapping) or not event:
        raise DifyIndexingError(
            f"The indexing trigger resumed the task with {str(event)[:200]!r} instead of an event dict with"
            f" 'status' in {list(EVENT_STATUSES)}; the trigger and the task's code may be of different"
            " provider versions. Clear the task to wait again."
        )
    status = event.get("status")
    documents = event.get("documents")
    message = event.get("message")
    if status not in EVENT_STATUSES:
        raise DifyIndexingError(
            f"The indexing trigger sent an event with unknown status {status!r} (expected one of"
            f" {list(EVENT_STATUSES)}): {str(dict(event))[:200]}"
        )
    if not isinstance(documents, list) or not all(isinstance(entry, Mapping) for entry in documents):
        raise DifyIndexingError(f"The indexing trigger's {status!r} event has no list of documents: {documents!r}")
    if status == "success":
        return [dict(entry) for entry in documents]
    if not isinstance(message, str) or not message:
        message = f"Waiting for indexing ended with {status!r}."
    raise indexing_error(message, documents, timed_out=status == "timeout")
