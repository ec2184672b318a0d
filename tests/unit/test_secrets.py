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
    assert_no_key_piece,
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
    """Neither the key nor any 7-character piece of it (an escaped, cut or wrapped key) is in the texts."""
    assert_no_key_piece(key, *texts)


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


@pytest.mark.parametrize("separator", ["\n", "\r\n", " ", "\t", "\x00"])
def test_a_key_with_a_break_inside_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, separator: str
) -> None:
    from airflow_provider_dify.exceptions import DifyArgumentError

    with LocalHttpServer(_dify_like) as server, caplog.at_level(logging.DEBUG):
        key = make_api_key()
        set_dify_connection(monkeypatch, host=server.url, password=key[:14] + separator + key[14:])
        with pytest.raises(DifyArgumentError) as raised:
            DifyHook().list_datasets()
        ok, message = DifyHook().test_connection()
    assert server.received == []  # no HTTP client ever saw the broken header
    assert raised.value.argument == "password" and not ok
    _assert_no_key(key, str(raised.value), repr(raised.value), message, caplog.text)


def _invalid_header(key: str) -> Exception:
    import requests

    return requests.exceptions.InvalidHeader(
        f"Invalid return character or leading space in header: {'Bearer ' + key!r}"
    )


def test_any_requests_exception_is_mapped_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = set_dify_connection(monkeypatch, extra={"max_retries": 0})
    hook = DifyHook()

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise _invalid_header(key + "\n")

    monkeypatch.setattr(hook.session, "request", fail)
    with pytest.raises(DifyError) as raised:
        hook.list_datasets()
    assert type(raised.value).__name__ == "DifyConnectionError"
    assert raised.value.method == "GET" and raised.value.path == "/datasets"
    _assert_no_key(key, str(raised.value), repr(raised.value.__dict__), repr(pickle.dumps(raised.value)))


async def test_any_httpx_exception_is_mapped_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    key = set_dify_connection(monkeypatch, extra={"max_retries": 0})

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise httpx.LocalProtocolError(f"Illegal header value {('Bearer ' + key).encode()!r}")

    async with DifyAsyncHook() as hook:
        assert hook._client is not None
        monkeypatch.setattr(hook._client, "request", fail)
        with pytest.raises(DifyError) as raised:
            await hook.get_document("e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2", "bc33cd8c-dab8-459d-8b62-36a9f08ecc72")
    assert type(raised.value).__name__ == "DifyConnectionError"
    _assert_no_key(key, str(raised.value), repr(raised.value.__dict__))


def test_an_escaped_or_cut_key_is_withheld_from_error_text() -> None:
    from airflow_provider_dify.hooks import operations as ops
    from airflow_provider_dify.hooks.responses import connection_error

    key = make_api_key()
    request = ops.get_dataset("e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2")
    for text in (key, key[:20], key[5:], repr(key + "\n"), key.upper().lower()):
        error = connection_error(request, RuntimeError(f"header: Bearer {text}"), maybe_delivered=False, secret=key)
        _assert_no_key(key, str(error))
        assert error.path == "/datasets/e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"
