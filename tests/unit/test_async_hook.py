"""DifyAsyncHook (used by triggers): same requests, same error mapping, same retries, no blocking lookups."""

from __future__ import annotations

import asyncio
import ssl
import threading
import warnings
from pathlib import Path

import certifi
import pytest

from airflow_provider_dify import exceptions as exc
from airflow_provider_dify.hooks import dify_async
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.connection import normalize_base_url
from airflow_provider_dify.hooks.dify_async import DifyAsyncHook
from airflow_provider_dify.hooks.operations import FileUpload
from airflow_provider_dify.hooks.responses import error_from_response
from tests.unit.helpers import (
    BATCH,
    DATASET_ID,
    DOCUMENT_ID,
    LocalHttpServer,
    ReceivedRequest,
    closed_port,
    error_names,
    error_response,
    json_answer,
    set_dify_connection,
    success_body,
)

Answer = tuple[int, dict[str, str], bytes]
BAD_GATEWAY: Answer = (502, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>")


def _recording_sleep() -> tuple[list[float], object]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return waits, sleep


async def test_reads_the_indexing_status(monkeypatch: pytest.MonkeyPatch) -> None:
    body = success_body("indexing_status_completed")
    with LocalHttpServer(lambda _: json_answer(200, body)) as server:
        key = set_dify_connection(monkeypatch, host=server.url)
        async with DifyAsyncHook() as hook:
            entries = await hook.get_indexing_status(DATASET_ID, BATCH)
    assert entries == body["data"]
    (request,) = server.received
    assert (request.method, request.path) == ("GET", f"/v1/datasets/{DATASET_ID}/documents/{BATCH}/indexing-status")
    assert request.headers["Authorization"] == f"Bearer {key}"
    assert request.headers["User-Agent"].startswith("airflow-provider-dify/")


async def test_reads_a_document_without_metadata_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    body = success_body("get_document")
    with LocalHttpServer(lambda _: json_answer(200, body)) as server:
        set_dify_connection(monkeypatch, "dify_async", host=server.url)
        async with DifyAsyncHook("dify_async") as hook:
            assert await hook.get_document(DATASET_ID, DOCUMENT_ID) == body
            assert await hook.get_document(DATASET_ID, DOCUMENT_ID, metadata="only") == body
    assert [request.path for request in server.received] == [
        f"/v1/datasets/{DATASET_ID}/documents/{DOCUMENT_ID}?metadata=without",
        f"/v1/datasets/{DATASET_ID}/documents/{DOCUMENT_ID}?metadata=only",
    ]


async def test_send_outside_a_context_opens_and_closes_its_client(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalHttpServer(lambda _: json_answer(200, success_body("list_datasets_empty"))) as server:
        set_dify_connection(monkeypatch, host=server.url)
        hook = DifyAsyncHook()
        assert await hook.send(ops.list_datasets(limit=1)) == success_body("list_datasets_empty")
    assert hook._client is None
    assert server.received[0].path == "/v1/datasets?page=1&limit=1"


@pytest.mark.parametrize("name", error_names())
async def test_same_error_mapping_as_the_sync_hook(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    status, headers, body = error_response(name)
    with LocalHttpServer(lambda _: (status, headers, body)) as server:
        set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0})
        async with DifyAsyncHook() as hook:
            with pytest.raises(exc.DifyError) as raised:
                await hook.get_indexing_status(DATASET_ID, BATCH)
    base_url = normalize_base_url(server.url)  # the host is named in the error of a route the server lacks
    expected = error_from_response(ops.get_indexing_status(DATASET_ID, BATCH), status, headers, body, base_url=base_url)
    assert type(raised.value) is type(expected)
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        expected.status,
        expected.code,
        expected.message,
    )
    assert len(server.received) == 1


async def test_a_502_is_retried_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    body = success_body("indexing_status_waiting")

    def flaky(request: ReceivedRequest) -> Answer:
        return BAD_GATEWAY if len(server.received) <= 2 else json_answer(200, body)

    with LocalHttpServer(flaky) as server:
        set_dify_connection(monkeypatch, host=server.url)
        waits, sleep = _recording_sleep()
        async with DifyAsyncHook() as hook:
            hook.sleep = sleep
            assert await hook.get_indexing_status(DATASET_ID, BATCH) == body["data"]
    assert len(server.received) == 3
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2


async def test_retries_stop_after_max_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalHttpServer(lambda _: BAD_GATEWAY) as server:
        set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 2})
        waits, sleep = _recording_sleep()
        async with DifyAsyncHook() as hook:
            hook.sleep = sleep
            with pytest.raises(exc.DifyServerError):
                await hook.get_document(DATASET_ID, DOCUMENT_ID)
    assert len(server.received) == 3
    assert len(waits) == 2


async def test_a_definite_refusal_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalHttpServer(lambda _: error_response("batch_not_found")) as server:
        set_dify_connection(monkeypatch, host=server.url)
        async with DifyAsyncHook() as hook:
            with pytest.raises(exc.DifyNotFoundError, match="Documents not found"):
                await hook.get_indexing_status(DATASET_ID, BATCH)
    assert len(server.received) == 1


async def test_unreachable_host_is_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_dify_connection(monkeypatch, host=f"http://127.0.0.1:{closed_port()}/v1", extra={"max_retries": 1})
    waits, sleep = _recording_sleep()
    async with DifyAsyncHook() as hook:
        hook.sleep = sleep
        with pytest.raises(exc.DifyConnectionError) as raised:
            await hook.get_indexing_status(DATASET_ID, BATCH)
    assert raised.value.maybe_delivered is False
    assert len(waits) == 1  # retried once, as max_retries says


async def test_a_read_timeout_may_have_been_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def never_answers(request: ReceivedRequest) -> Answer:
        release.wait(30)
        return json_answer(200, {})

    try:
        with LocalHttpServer(never_answers) as server:
            set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0, "timeout": 0.2})
            async with DifyAsyncHook() as hook:
                with pytest.raises(exc.DifyConnectionError) as raised:
                    await hook.get_indexing_status(DATASET_ID, BATCH)
            release.set()
    finally:
        release.set()
    assert raised.value.maybe_delivered is True


async def test_uploads_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_dify_connection(monkeypatch)
    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(ValueError, match="the async hook sends no uploads"):
        await DifyAsyncHook().send(ops.create_document_by_file(DATASET_ID, FileUpload.from_path(path)))


async def test_connection_is_looked_up_without_blocking_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    key = set_dify_connection(monkeypatch, "dify_lookup")
    base = dify_async.BaseHook
    loop_thread = threading.get_ident()
    sync_lookups: list[int] = []
    async_lookups: list[str] = []

    original_sync = base.get_connection

    def spy_sync(conn_id: str):  # type: ignore[no-untyped-def]
        sync_lookups.append(threading.get_ident())
        return original_sync(conn_id)

    monkeypatch.setattr(base, "get_connection", spy_sync)
    if hasattr(base, "aget_connection"):  # Airflow 3
        original_async = base.aget_connection

        async def spy_async(conn_id: str):  # type: ignore[no-untyped-def]
            async_lookups.append(conn_id)
            return await original_async(conn_id)

        monkeypatch.setattr(base, "aget_connection", spy_async)

    hook = DifyAsyncHook("dify_lookup")
    settings = await hook.get_settings()
    assert settings.api_key == key
    assert await hook.get_settings() is settings  # looked up once
    assert loop_thread not in sync_lookups
    if hasattr(base, "aget_connection"):
        assert async_lookups == ["dify_lookup"]
    else:  # Airflow 2: the sync lookup runs in a worker thread
        assert len(sync_lookups) == 1


async def test_loop_keeps_running_during_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    set_dify_connection(monkeypatch)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await DifyAsyncHook().get_settings()
    task.cancel()
    assert ticks >= 1


def test_ca_bundle_becomes_an_ssl_context(tmp_path: Path) -> None:
    assert dify_async._ssl_verify(True) is True
    assert dify_async._ssl_verify(False) is False
    assert isinstance(dify_async._ssl_verify(certifi.where()), ssl.SSLContext)
    assert isinstance(dify_async._ssl_verify(str(Path(certifi.where()).parent)), ssl.SSLContext)


async def test_ca_bundle_connection_opens_without_deprecation_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    set_dify_connection(monkeypatch, host="https://dify.example.com", extra={"ca_bundle": certifi.where()})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        async with DifyAsyncHook() as hook:
            assert hook._client is not None


def _record_threads(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Replace ``dify_async.<name>`` by a wrapper noting the thread of each call."""
    threads: list[int] = []
    original = getattr(dify_async, name)

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(dify_async, name, recording)
    return threads


async def test_a_large_answer_is_decoded_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = success_body("indexing_status_completed")["data"][0]
    body = {"data": [{**entry, "id": f"{n:08d}-0000-4000-8000-000000000000"} for n in range(2_000)]}
    assert len(json_answer(200, body)[2]) > dify_async.LARGE_BODY_BYTES
    decoded_in = _record_threads(monkeypatch, "read_response")
    with LocalHttpServer(lambda _: json_answer(200, body)) as server:
        set_dify_connection(monkeypatch, host=server.url)
        async with DifyAsyncHook() as hook:
            entries = await hook.get_indexing_status(DATASET_ID, BATCH)
            small = await hook.send(ops.get_document(DATASET_ID, DOCUMENT_ID))
    assert entries == body["data"] and small == body
    # Both answers are this large one: decoded in a worker thread; errors map there the same way.
    assert decoded_in and threading.get_ident() not in decoded_in


async def test_a_small_answer_is_decoded_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_in = _record_threads(monkeypatch, "read_response")
    body = success_body("indexing_status_completed")
    with LocalHttpServer(lambda _: json_answer(200, body)) as server:
        set_dify_connection(monkeypatch, host=server.url)
        async with DifyAsyncHook() as hook:
            assert await hook.get_indexing_status(DATASET_ID, BATCH) == body["data"]
    assert decoded_in == [threading.get_ident()]


async def test_a_large_html_page_is_refused_as_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    page = b"<html>" + b"x" * (dify_async.LARGE_BODY_BYTES + 1) + b"</html>"
    with LocalHttpServer(lambda _: (200, {"Content-Type": "text/html"}, page)) as server:
        set_dify_connection(monkeypatch, host=server.url)
        async with DifyAsyncHook() as hook:
            with pytest.raises(exc.DifyInvalidResponseError, match="expected JSON"):
                await hook.get_indexing_status(DATASET_ID, BATCH)


async def test_the_http_client_is_built_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    built_in: list[int] = []

    class RecordingClient(httpx.AsyncClient):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            built_in.append(threading.get_ident())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", RecordingClient)
    body = success_body("indexing_status_completed")
    with LocalHttpServer(lambda _: json_answer(200, body)) as server:
        set_dify_connection(monkeypatch, host=server.url)
        async with DifyAsyncHook() as hook:
            assert await hook.get_indexing_status(DATASET_ID, BATCH) == body["data"]
    assert len(built_in) == 1 and built_in[0] != threading.get_ident()
