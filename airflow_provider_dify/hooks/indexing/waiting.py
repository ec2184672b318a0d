"""Sending a poll with the sync or async hook, and the blocking wait built on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyError
from airflow_provider_dify.hooks.indexing.judging import PollOutcome, evaluate_poll, record_failed_poll, timeout_message
from airflow_provider_dify.hooks.indexing.polling import PollReading, _advance, plan_poll
from airflow_provider_dify.hooks.indexing.results import DOCUMENT_LIST_THRESHOLD, DocumentResult, indexing_error

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.hooks.dify_async import DifyAsyncHook


log = logging.getLogger(__name__)


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
    :param poll_interval: seconds between polls (at most the connection's ``poll_interval_max``).
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
    interval = hook.settings.poll_wait(poll_interval)  # the connection may cap it (tests against the emulator)
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
        sleep(min(interval, remaining))
