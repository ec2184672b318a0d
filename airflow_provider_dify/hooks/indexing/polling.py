"""One poll described as a generator of request descriptions, holding no I/O."""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_dify.exceptions import (
    DifyIndexingError,
    DifyNotFoundError,
)
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.indexing.results import (
    COMPLETED,
    DOCUMENT_LIST_THRESHOLD,
    NEVER_SEEN,
    DocumentResult,
    _as_int,
    deleted_entry,
    document_entry,
    document_problem,
    status_entry,
)
from airflow_provider_dify.hooks.indexing.snapshot import (
    FOLLOWED_DOCUMENT_LIMIT,
    known_document_ids,
    read_snapshot,
    settled_document_ids,
    settled_entry,
)
from airflow_provider_dify.hooks.operations import ApiRequest

log = logging.getLogger(__name__)


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
