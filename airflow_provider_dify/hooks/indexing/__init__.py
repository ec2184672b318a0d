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

The modules, in the order they build on one another: :mod:`.results` (a document's result and what ends a
wait), :mod:`.snapshot`, :mod:`.polling`, :mod:`.judging`, :mod:`.waiting` and :mod:`.events`. Import from
this package: its names below are the public ones.
"""

from __future__ import annotations

from airflow_provider_dify.hooks.indexing.events import (
    indexing_event,
    indexing_results_from_event,
)
from airflow_provider_dify.hooks.indexing.judging import (
    PollOutcome,
    evaluate_poll,
    record_failed_poll,
    timeout_message,
    unfinished_summary,
)
from airflow_provider_dify.hooks.indexing.polling import (
    PollReading,
    plan_poll,
    reads_document_list,
)
from airflow_provider_dify.hooks.indexing.results import (
    COMPLETED,
    DELETED,
    DOCUMENT_LIST_THRESHOLD,
    EVENT_DOCUMENT_LIMIT,
    EVENT_STATUSES,
    FAILED_STATUSES,
    MAX_CONSECUTIVE_FAILED_POLLS,
    MESSAGE_DOCUMENT_LIMIT,
    NEVER_SEEN,
    RESULT_KEYS,
    TRANSIENT_POLL_ERRORS,
    DocumentResult,
    PollState,
    deleted_entry,
    document_entry,
    document_problem,
    indexing_error,
    status_entry,
)
from airflow_provider_dify.hooks.indexing.snapshot import (
    FOLLOWED_DOCUMENT_LIMIT,
    SNAPSHOT_VERSION,
    group_snapshot,
    known_document_ids,
    progress_digest,
    read_snapshot,
    settled_document_ids,
    settled_entry,
)
from airflow_provider_dify.hooks.indexing.waiting import (
    acheck_indexing,
    check_indexing,
    validate_wait_arguments,
    wait_for_indexing,
)

__all__ = [
    "COMPLETED",
    "DELETED",
    "DOCUMENT_LIST_THRESHOLD",
    "EVENT_DOCUMENT_LIMIT",
    "EVENT_STATUSES",
    "FAILED_STATUSES",
    "FOLLOWED_DOCUMENT_LIMIT",
    "MAX_CONSECUTIVE_FAILED_POLLS",
    "MESSAGE_DOCUMENT_LIMIT",
    "NEVER_SEEN",
    "RESULT_KEYS",
    "SNAPSHOT_VERSION",
    "TRANSIENT_POLL_ERRORS",
    "DocumentResult",
    "PollOutcome",
    "PollReading",
    "PollState",
    "acheck_indexing",
    "check_indexing",
    "deleted_entry",
    "document_entry",
    "document_problem",
    "evaluate_poll",
    "group_snapshot",
    "indexing_error",
    "indexing_event",
    "indexing_results_from_event",
    "known_document_ids",
    "plan_poll",
    "progress_digest",
    "read_snapshot",
    "reads_document_list",
    "record_failed_poll",
    "settled_document_ids",
    "settled_entry",
    "status_entry",
    "timeout_message",
    "unfinished_summary",
    "validate_wait_arguments",
    "wait_for_indexing",
]
