"""DifyIndexingTrigger: waits in the triggerer for Dify to index documents, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_dify.hooks.connection import DEFAULT_CONN_ID

#: The deadline of a trigger created without ``end_time``: one hour from its creation.
DEFAULT_WAIT_SECONDS = 3600.0


class DifyIndexingTrigger(BaseTrigger):
    """
    Poll the indexing of documents until they are all ``completed``, one fails, the indexing stalls or time is up.

    Every poll is a read (the batch's indexing status, or the documents one by one once the batch answers
    404), so a triggerer restart that runs the trigger again is harmless. The polling logic is
    :mod:`airflow_provider_dify.hooks.indexing`'s, shared with the sensor's poke mode and the operators'
    blocking wait. A poll that still fails after the hook's retries (network, 5xx, rate limit) does not end
    the wait; :data:`~airflow_provider_dify.hooks.indexing.MAX_CONSECUTIVE_FAILED_POLLS` failed polls in a row
    do, with an ``error`` event.

    It fires exactly one event: ``{"status": "success" | "error" | "stalled" | "timeout", "message": str,
    "dataset_id": str, "batch": str | None, "documents": [per-document results]}``. Read it with
    :func:`~airflow_provider_dify.hooks.indexing.indexing_results_from_event`.

    :param dataset_id: the knowledge base.
    :param batch: the batch id of a create or update call.
    :param document_ids: the documents to wait for (with ``batch``: only these of the batch).
    :param dify_conn_id: the ``dify`` connection.
    :param poll_interval: seconds between polls.
    :param stall_timeout: seconds without any change of status or chunk count before a ``stalled`` event;
        ``None`` disables stall detection.
    :param end_time: the deadline as epoch seconds (``time.time()``); a poll after it that finds documents
        still indexing fires ``timeout``. Defaults to one hour after the trigger was created.
    :param progress: the snapshot of an earlier poll of the same wait, so that stall detection and the
        documents already seen carry over.
    """

    def __init__(
        self,
        dataset_id: str,
        batch: str | None = None,
        document_ids: list[str] | None = None,
        dify_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 5.0,
        stall_timeout: float | None = None,
        end_time: float | None = None,
        progress: dict | None = None,
    ) -> None:
        from airflow_provider_dify.hooks.indexing import validate_wait_arguments

        super().__init__()
        document_ids = list(document_ids) if document_ids is not None else None
        validate_wait_arguments(
            dataset_id, batch, document_ids, poll_interval=poll_interval, stall_timeout=stall_timeout
        )
        self.dataset_id = dataset_id
        self.batch = batch
        self.document_ids = document_ids
        self.dify_conn_id = dify_conn_id
        self.poll_interval = float(poll_interval)
        self.stall_timeout = float(stall_timeout) if stall_timeout is not None else None
        self.end_time = float(end_time) if end_time is not None else time.time() + DEFAULT_WAIT_SECONDS
        self.progress = dict(progress) if progress else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dataset_id={self.dataset_id!r}, batch={self.batch!r},"
            f" document_ids={self.document_ids!r}, dify_conn_id={self.dify_conn_id!r})"
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the plain-JSON keyword arguments that recreate this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dataset_id": self.dataset_id,
                "batch": self.batch,
                "document_ids": list(self.document_ids) if self.document_ids is not None else None,
                "dify_conn_id": self.dify_conn_id,
                "poll_interval": self.poll_interval,
                "stall_timeout": self.stall_timeout,
                "end_time": self.end_time,
                "progress": self.progress,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until an outcome; yield exactly one event."""
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        from airflow_provider_dify.exceptions import DifyError
        from airflow_provider_dify.hooks.dify_async import DifyAsyncHook
        from airflow_provider_dify.hooks.indexing import (
            acheck_indexing,
            indexing_event,
            record_failed_poll,
            timeout_message,
        )

        documents: list[dict[str, Any]] = []
        progress = self.progress

        def event(status: str, message: str) -> dict[str, Any]:
            return indexing_event(status, message, dataset_id=self.dataset_id, batch=self.batch, documents=documents)

        try:
            async with DifyAsyncHook(self.dify_conn_id) as hook:
                interval = (await hook.get_settings()).poll_wait(self.poll_interval)
                while True:
                    try:
                        outcome = await acheck_indexing(
                            hook,
                            self.dataset_id,
                            batch=self.batch,
                            document_ids=self.document_ids,
                            progress=progress,
                            stall_timeout=self.stall_timeout,
                        )
                    except DifyError as error:
                        progress, fatal = record_failed_poll(progress, error)
                        if fatal is not None:
                            return event("error", str(fatal))
                        self.log.warning(
                            "Polling the indexing status failed (%d in a row): %s", progress["failed_polls"], error
                        )
                    else:
                        progress, documents = outcome.progress, outcome.documents
                        if outcome.state != "running":
                            return event(outcome.state, outcome.message)
                        self.log.info("%s", outcome.message)
                    remaining = self.end_time - time.time()
                    if remaining <= 0:
                        return event("timeout", timeout_message(None, documents))
                    await asyncio.sleep(min(interval, remaining))
        except Exception as error:  # the connection cannot be read, the client cannot start...
            self.log.exception("Waiting for indexing failed")
            return event("error", f"Waiting for indexing failed: {type(error).__name__}: {error}")
