"""Judging one poll: status entries, the previous snapshot and the time give running, success, error or stalled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dify.exceptions import (
    DifyError,
    DifyIndexingError,
)
from airflow_provider_dify.hooks.indexing.results import (
    COMPLETED,
    MAX_CONSECUTIVE_FAILED_POLLS,
    MESSAGE_DOCUMENT_LIMIT,
    TRANSIENT_POLL_ERRORS,
    DocumentResult,
    PollState,
    _label,
    document_problem,
    indexing_error,
)
from airflow_provider_dify.hooks.indexing.snapshot import (
    FOLLOWED_DOCUMENT_LIMIT,
    SNAPSHOT_VERSION,
    _pack_flags,
    _progress_key,
    progress_digest,
    read_snapshot,
)


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
