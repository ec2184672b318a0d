"""The API key stays secret: not in logs, printed output, exception text or reprs, and masked by Airflow."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import redact

from airflow_provider_dify.exceptions import DifyError
from airflow_provider_dify.hooks.connection import DifyConnectionSettings
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.dify_async import DifyAsyncHook
from tests.unit.helpers import (
    LocalHttpServer,
    ReceivedRequest,
    closed_port,
    error_response,
    json_answer,
    make_api_key,
    set_dify_connection,
    success_body,
)


def _dify_like(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
    """Answers like Dify 1.13.2 for the few routes the test uses (status and bodies from the transcripts)."""
    if request.path.startswith("/v1/datasets?"):
        return json_answer(200, success_body("list_datasets"))
    if request.path.endswith("/flaky"):
        return 502, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
    status, headers, body = error_response("dataset_not_found")
    return status, headers, body


def _exercise(hook: DifyHook) -> list[BaseException]:
    """Successes, retries and failures; returns the exceptions raised."""
    errors: list[BaseException] = []
    hook.list_datasets()
    for call in (
        lambda: hook.get_dataset("e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"),
        lambda: hook.send(hook_request("/datasets/flaky")),
    ):
        try:
            call()
        except DifyError as error:
            errors.append(error)
    return errors


def hook_request(path: str) -> Any:
    from airflow_provider_dify.hooks.operations import ApiRequest

    return ApiRequest("probe", "GET", path)


def _assert_no_key(key: str, *texts: str) -> None:
    for text in texts:
        assert key not in text
        assert key[len("dataset-") :] not in text


def test_key_is_not_logged_printed_or_in_errors(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalHttpServer(_dify_like) as server, caplog.at_level(logging.DEBUG):
        key = set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 2})
        hook = DifyHook()
        hook.sleep = lambda _: None
        errors = _exercise(hook)
        hook.close()
        assert all(request.headers["Authorization"] == f"Bearer {key}" for request in server.received)
    assert len(errors) == 2
    assert len(server.received) == 1 + 1 + 3  # the flaky route was retried, so there was something to log
    assert "Attempt 1 failed" in caplog.text
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err]
    texts += [record.getMessage() for record in caplog.records]
    for error in errors:
        texts += [str(error), repr(error), repr(error.__dict__), repr(pickle.dumps(error))]
    _assert_no_key(key, *texts)


def test_key_is_not_in_a_connection_error(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    key = set_dify_connection(
        monkeypatch, host=f"http://127.0.0.1:{closed_port()}", extra={"max_retries": 1, "connect_timeout": 2}
    )
    hook = DifyHook()
    hook.sleep = lambda _: None
    with caplog.at_level(logging.DEBUG), pytest.raises(DifyError) as raised:
        hook.list_datasets()
    _assert_no_key(key, str(raised.value), repr(raised.value.__dict__), caplog.text)


def test_test_connection_message_has_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        return error_response("unauthorized_bad_token")

    with LocalHttpServer(refuse) as server:
        key = set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0})
        ok, message = DifyHook().test_connection()
    assert not ok
    _assert_no_key(key, message)


def test_reprs_hide_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = set_dify_connection(monkeypatch)
    hook = DifyHook()
    settings = hook.settings
    assert settings.api_key == key  # the settings do hold it
    _assert_no_key(key, repr(hook), str(hook), repr(settings), str(settings), repr(settings.retry))
    _assert_no_key(key, repr(DifyAsyncHook()))


def test_settings_repr_built_directly_hides_the_key() -> None:
    key = make_api_key()
    settings = DifyConnectionSettings.from_fields(host="api.dify.ai", password=key, extra={})
    _assert_no_key(key, repr(settings))


def test_hook_registers_the_key_with_airflows_secret_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    key = set_dify_connection(monkeypatch)
    line = f"Authorization: Bearer {key}"
    assert redact(line) == line  # a fresh key is not masked yet...
    assert DifyHook().settings.api_key == key
    assert redact(line) == "Authorization: Bearer ***"  # ...and is once the hook has read the connection


async def test_async_hook_registers_the_key_with_airflows_secret_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    key = set_dify_connection(monkeypatch)
    assert key in redact(key)
    settings = await DifyAsyncHook().get_settings()
    assert settings.api_key == key
    assert redact(f"key={key}") == "key=***"
