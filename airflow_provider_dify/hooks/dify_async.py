"""DifyAsyncHook: sends the same request descriptions as :class:`~.dify.DifyHook` from an event loop.

Used by triggers. It reads the connection with Airflow's async API, sends with ``httpx.AsyncClient``, and
shares the request descriptions, the error mapper and the retry policy with the sync hook. It offers only the
reads that waiting needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.connection import CONN_TYPE, DEFAULT_CONN_ID, DifyConnectionSettings
from airflow_provider_dify.hooks.dify import JsonDict, user_agent
from airflow_provider_dify.hooks.operations import ApiRequest
from airflow_provider_dify.hooks.responses import connection_error, read_response

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

#: Response bodies above this size are decoded in a thread, off the event loop (a page of 100 documents is
#: well below it; the indexing status of a batch of thousands of documents is above).
LARGE_BODY_BYTES = 256 * 1024


class DifyAsyncHook(BaseHook):
    """
    Asynchronous, read-only access to the Knowledge API for triggers.

    Use it as an async context manager so that one HTTP client serves a whole polling loop::

        async with DifyAsyncHook("dify_default") as hook:
            entries = await hook.get_indexing_status(dataset_id, batch)

    :param dify_conn_id: the Airflow connection id (type ``dify``).
    """

    conn_name_attr = "dify_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Dify (async)"

    def __init__(self, dify_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.dify_conn_id = dify_conn_id
        self._settings: DifyConnectionSettings | None = None
        self._client: httpx.AsyncClient | None = None
        #: Coroutine function used to sleep between retries (tests replace it).
        self.sleep = asyncio.sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dify_conn_id={self.dify_conn_id!r})"

    async def get_settings(self) -> DifyConnectionSettings:
        """The parsed connection, looked up without blocking the event loop."""
        if self._settings is None:
            if hasattr(BaseHook, "aget_connection"):
                conn = await BaseHook.aget_connection(self.dify_conn_id)  # Airflow 3
            else:  # Airflow 2.11
                from asgiref.sync import sync_to_async

                conn = await sync_to_async(BaseHook.get_connection)(self.dify_conn_id)
            settings = DifyConnectionSettings.from_connection(conn)
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(settings.api_key)
            self._settings = settings
        return self._settings

    async def __aenter__(self) -> DifyAsyncHook:
        import httpx

        settings = await self.get_settings()
        connect, read = settings.timeout
        # Building the client loads the CA bundle (tens of milliseconds): not on the triggerer's event loop.
        self._client = await asyncio.to_thread(
            httpx.AsyncClient,
            base_url=settings.base_url,
            headers={
                "Authorization": f"Bearer {settings.api_key}",
                "User-Agent": user_agent(),
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(read, connect=connect),
            verify=_ssl_verify(settings.verify),
        )
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, request: ApiRequest) -> Any:
        """Send a request description with the shared retry policy; return the decoded JSON body."""
        import tenacity

        if request.is_multipart:
            raise ValueError(f"{request.operation}: the async hook sends no uploads; use DifyHook.")
        if self._client is None:
            async with self:
                return await self.send(request)
        settings = await self.get_settings()
        retrying = tenacity.AsyncRetrying(
            **settings.retry.tenacity_arguments(request, sleep=self.sleep, before_sleep=self._log_retry)
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(request)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    async def _send_once(self, request: ApiRequest) -> Any:
        import httpx

        assert self._client is not None
        key = self._settings.api_key if self._settings is not None else None
        try:
            response = await self._client.request(
                request.method,
                request.path,
                params=list(request.params) or None,
                json=request.json_body,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise connection_error(request, error, maybe_delivered=False, secret=key) from None
        except httpx.TransportError as error:
            raise connection_error(request, error, maybe_delivered=True, secret=key) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, UnicodeError) as error:
            # Anything else httpx raises is refused before sending; its text may quote a header.
            raise connection_error(request, error, maybe_delivered=False, secret=key) from None
        base_url = self._settings.base_url if self._settings is not None else None
        if len(response.content) > LARGE_BODY_BYTES:
            # Decoding megabytes of JSON (a batch of thousands of documents) takes milliseconds: not on the loop.
            return await asyncio.to_thread(
                partial(read_response, base_url=base_url),
                request,
                response.status_code,
                response.headers,
                response.content,
            )
        return read_response(request, response.status_code, response.headers, response.content, base_url=base_url)

    def _log_retry(self, state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("Attempt %d failed (%s); retrying", state.attempt_number, error)

    # -- the reads that waiting needs -------------------------------------------------------------------------

    async def get_indexing_status(self, dataset_id: str, batch: str) -> list[JsonDict]:
        """The indexing status of every document of a batch."""
        return (await self.send(ops.get_indexing_status(dataset_id, batch)) or {}).get("data", [])

    async def get_document(
        self, dataset_id: str, document_id: str, *, metadata: ops.MetadataMode = "without"
    ) -> JsonDict:
        """One document in detail (without metadata by default: waiting does not need it)."""
        return await self.send(ops.get_document(dataset_id, document_id, metadata=metadata))


def _ssl_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx's ``verify``: a CA bundle path (file or directory) becomes an SSL context (httpx deprecates paths)."""
    if isinstance(verify, bool):
        return verify
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)
