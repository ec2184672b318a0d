"""Bad input that only the first answer reveals: a host without a scheme, a host that is a web page, a sensor on
an id that never existed, Dify 1.13.2's tag bug, and a key that a trigger cannot use. Each error says what
is wrong and how to fix it, with no piece of the key."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_dify.exceptions import (
    DifyDocumentNotFoundError,
    DifyIndexingError,
    DifyInvalidResponseError,
    DifyTLSError,
    DifyValidationError,
)
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.sensors.indexing import DifyIndexingSensor
from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger
from tests.input.conftest import World
from tests.operators.helpers import context
from tests.unit.helpers import LocalHttpServer, ReceivedRequest, assert_no_key_piece


def _use(monkeypatch: pytest.MonkeyPatch, dify: Any, **fields: Any) -> None:
    connection = {**json.loads(dify.connection_json), "extra": json.dumps({"max_retries": 0}), **fields}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))


def test_a_host_without_a_scheme_says_to_write_http(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, world.dify, host=f"127.0.0.1:{world.dify.port}/v1")  # taken as https://
    hook = DifyHook()
    with pytest.raises(DifyTLSError) as raised:
        hook.get_dataset(world.a)
    assert "http://" in str(raised.value) and "scheme" in str(raised.value)
    assert raised.value.path == f"/datasets/{world.a}"
    ok, message = DifyHook().test_connection()
    assert not ok
    assert world.dify.calls == []  # the TLS handshake failed before any request
    assert_no_key_piece(world.key, str(raised.value), message)


def _web_page(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/html"}, b"<!doctype html><html><body>Welcome to our site</body></html>"


def test_a_host_that_is_a_web_page_says_to_use_the_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalHttpServer(_web_page) as server:
        key = "dataset-" + uuid.uuid4().hex[:24]
        connection = {"conn_type": "dify", "host": server.url, "password": key, "extra": {"max_retries": 0}}
        monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
        with pytest.raises(DifyInvalidResponseError) as raised:
            DifyHook().list_datasets()
        ok, message = DifyHook().test_connection()
    assert "API base URL" in str(raised.value) and "not a web page" in str(raised.value)
    assert not ok and "API base URL" in message
    assert_no_key_piece(key, str(raised.value), message)


def test_a_sensor_on_an_id_that_never_existed_says_so(world: World) -> None:
    never = str(uuid.uuid4())
    sensor = DifyIndexingSensor(task_id="wait", dataset_id=world.a, document_ids=[never], poke_interval=5)
    with pytest.raises(DifyDocumentNotFoundError) as raised:
        sensor.poke(context())
    assert isinstance(raised.value, AirflowFailException)  # the same id cannot do better on a retry
    message = str(raised.value)
    assert never in message and "is not in the knowledge base" in message and "check document_ids" in message
    assert "while waiting" not in message


def test_a_document_deleted_during_the_wait_is_still_called_deleted(world: World) -> None:
    world.dify.set_indexing_outcome("brief.txt", "stuck")  # waiting until deleted, however fast the indexing
    doc = world.dify.create_document(world.a, "brief.txt", "Short.", wait=False)
    sensor = DifyIndexingSensor(task_id="wait", dataset_id=world.a, document_ids=[doc["id"]], poke_interval=5)
    assert sensor.poke(context()) is False  # seen indexing
    DifyHook().delete_document(world.a, doc["id"])
    with pytest.raises(DifyIndexingError, match="was deleted while waiting"):
        sensor.poke(context())


@pytest.mark.dify_emulator(server_version="1.13")
def test_the_tag_bug_of_dify_1_13_2_is_explained(world: World) -> None:
    hook = DifyHook()
    with pytest.raises(DifyValidationError) as created:
        hook.create_tag("finance")
    assert "may have been created" in str(created.value) and "bug" in str(created.value)
    assert [tag["name"] for tag in world.dify.tags()] == ["finance"]  # it was, indeed
    with pytest.raises(DifyValidationError) as listed:
        hook.list_tags()
    assert "bug" in str(listed.value) and "cannot be listed" in str(listed.value)


def test_a_trigger_with_an_unusable_key_fires_an_error_without_the_key(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = world.key[:16] + "\n" + world.key[16:]
    _use(monkeypatch, world.dify, password=broken)
    trigger = DifyIndexingTrigger(world.a, document_ids=[world.doc], end_time=time.time() + 10)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "error"
    assert "password" in payload["message"] and "line break" in payload["message"]
    assert world.dify.calls == []
    assert_no_key_piece(world.key, json.dumps(payload))
