"""A document's result: the statuses a wait knows, how Dify's answers are read into results, and what ends a wait."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from airflow_provider_dify.exceptions import (
    DifyConnectionError,
    DifyDocumentNotFoundError,
    DifyError,
    DifyIndexingError,
    DifyIndexingTimeout,
    DifyInvalidResponseError,
    DifyRateLimitError,
    DifyResourceBusyError,
    DifyServerError,
)

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


def _label(entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return f"{name!r} ({entry.get('id')})" if name else str(entry.get("id"))


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
