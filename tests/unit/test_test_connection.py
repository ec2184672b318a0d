"""``test_connection``: what the connection form's Test button reports, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import (
    LocalHttpServer,
    ReceivedRequest,
    closed_port,
    error_response,
    json_answer,
    set_dify_connection,
    success_body,
)


def test_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalHttpServer(lambda _: json_answer(200, success_body("list_datasets"))) as server:
        key = set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0})
        ok, message = DifyHook().test_connection()
        sent = server.received
    assert ok, message
    assert message == f"Connected to {server.url}: 1 knowledge base(s) visible."
    assert len(sent) == 1
    assert sent[0].path == "/v1/datasets?page=1&limit=1"
    assert sent[0].headers["Authorization"] == f"Bearer {key}"


@pytest.mark.parametrize("answer", ["unauthorized_bad_token", "unauthorized_no_header", "unauthorized_wrong_scheme"])
def test_refused_key(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    status, headers, body = error_response(answer)

    def refuse(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        return status, headers, body

    with LocalHttpServer(refuse) as server:
        set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0})
        ok, message = DifyHook().test_connection()
    assert not ok
    assert message.startswith("Dify refused the API key (HTTP 401: ")
    assert json.loads(body)["message"] in message


def test_unreachable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"http://127.0.0.1:{closed_port()}/v1"
    set_dify_connection(monkeypatch, host=host, extra={"max_retries": 0})
    ok, message = DifyHook().test_connection()
    assert not ok
    assert message.startswith(f"Cannot reach Dify at {host}: ")
    assert "refused" in message.lower()


def test_not_a_dify_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without /v1 routing, or a web page: the 404 page of an unknown route."""
    with LocalHttpServer(lambda _: error_response("unknown_route_html")) as server:
        set_dify_connection(monkeypatch, host=server.url, extra={"max_retries": 0})
        ok, message = DifyHook().test_connection()
    assert not ok
    assert "does not answer like a Dify API" in message
    assert "API base URL" in message


def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    set_dify_connection(monkeypatch, password="")
    ok, message = DifyHook().test_connection()
    assert not ok
    assert "Password field must hold the Dify knowledge API key" in message


def test_bad_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    set_dify_connection(monkeypatch, extra={"timeout": "long"})
    ok, message = DifyHook().test_connection()
    assert not ok
    assert "extra 'timeout' must be a number" in message


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_through_airflows_connection_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The way Airflow's Test button runs it: the connection as a URI in AIRFLOW_CONN_<ID>, then test_connection."""
    from airflow.models.connection import Connection

    with LocalHttpServer(lambda _: json_answer(200, success_body("list_datasets_empty"))) as server:
        conn = Connection(
            conn_id="dify_ui_test",
            conn_type="dify",
            host=server.url,
            password=set_dify_connection(monkeypatch, "unused"),
            extra='{"max_retries": 0}',
        )
        monkeypatch.setenv("AIRFLOW_CONN_DIFY_UI_TEST", conn.get_uri())
        ok, message = conn.test_connection()
    assert ok, message
    assert message == f"Connected to {server.url}: 0 knowledge base(s) visible."
