"""The indexing trigger's events: their bounded payload and how a task turns one back into results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_dify.exceptions import DifyIndexingError
from airflow_provider_dify.hooks.indexing.results import (
    COMPLETED,
    EVENT_DOCUMENT_LIMIT,
    EVENT_STATUSES,
    DocumentResult,
    _as_int,
    document_problem,
    indexing_error,
)


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
