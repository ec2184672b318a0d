"""Retries, waits and the alias fallback: which calls are repeated and how long the hook waits.

Nothing sleeps for real: the hook's ``sleep`` records the waits.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from airflow_provider_dify import exceptions as exc
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.retries import RetryPolicy
from tests.unit.helpers import (
    BASE_URL,
    DATASET_ID,
    DOCUMENT_ID,
    dify_error_body,
    error_response,
    set_dify_connection,
    success_body,
)

DS = DATASET_ID
DOC = DOCUMENT_ID
SEG = "c42a017a-93b2-44a3-bf35-e67d8bcf8ab7"
CHILD = "5f1c7a2e-0d3b-4c8e-9a61-2b7d4e8f0c13"
FIELD = "8e0f3b6a-7c21-4d59-b0a4-6f3e2d1c9b87"
DATASET_URL = f"{BASE_URL}/datasets/{DS}"
SEGMENTS_URL = f"{DATASET_URL}/documents/{DOC}/segments"
DOCUMENT_URL = f"{DATASET_URL}/documents/{DOC}"
RATE_LIMIT = "Sorry, you have reached the knowledge base request rate limit of your subscription."
BAD_GATEWAY = {"status_code": 502, "text": "<html>502 Bad Gateway</html>", "headers": {"Content-Type": "text/html"}}


def _answer(name: str) -> dict[str, Any]:
    status, headers, body = error_response(name)
    return {"status_code": status, "headers": headers, "content": body}


def _refused() -> requests.ConnectionError:
    """What requests raises when nothing listens on the port: the request never left."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/v1/x", reason))


def _reset() -> requests.ConnectionError:
    """What requests raises when the server drops the connection after the request was sent."""
    return requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))


# -- attempt counts and back-off ---------------------------------------------------------------------------------


def test_a_read_is_attempted_five_times_by_default(hook: DifyHook, sleeps: list[float], requests_mock: Any) -> None:
    requests_mock.get(DATASET_URL, **BAD_GATEWAY)
    with pytest.raises(exc.DifyServerError):
        hook.get_dataset(DS)
    assert requests_mock.call_count == 5
    assert len(sleeps) == 4
    # exponential back-off with jitter: in [ceiling / 2, ceiling] for ceilings 1, 2, 4, 8
    for wait, ceiling in zip(sleeps, (1, 2, 4, 8), strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_max_retries_and_retry_wait_max_come_from_the_connection(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any
) -> None:
    set_dify_connection(monkeypatch, extra={"max_retries": 6, "retry_wait_max": 3})
    hook = DifyHook()
    hook.sleep = (sleeps := []).append
    requests_mock.get(DATASET_URL, **BAD_GATEWAY)
    with pytest.raises(exc.DifyServerError):
        hook.get_dataset(DS)
    assert requests_mock.call_count == 7
    assert max(sleeps) <= 3
    assert sleeps[-1] >= 1.5  # the ceiling stays at retry_wait_max


def test_max_retries_zero_means_one_attempt(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    set_dify_connection(monkeypatch, extra={"max_retries": 0})
    requests_mock.get(DATASET_URL, **BAD_GATEWAY)
    with pytest.raises(exc.DifyServerError):
        DifyHook().get_dataset(DS)
    assert requests_mock.call_count == 1


def test_success_after_failures_returns_the_answer(hook: DifyHook, sleeps: list[float], requests_mock: Any) -> None:
    requests_mock.get(DATASET_URL, [BAD_GATEWAY, {"exc": requests.exceptions.ReadTimeout}, {"json": {"id": DS}}])
    assert hook.get_dataset(DS) == {"id": DS}
    assert requests_mock.call_count == 3
    assert len(sleeps) == 2


def test_retries_are_logged_without_the_key(
    hook: DifyHook, dify_api_key: str, requests_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    requests_mock.get(DATASET_URL, [BAD_GATEWAY, {"json": {"id": DS}}])
    with caplog.at_level(logging.INFO):
        hook.get_dataset(DS)
    assert "Attempt 1 failed" in caplog.text
    assert f"GET /datasets/{DS} failed: HTTP 502" in caplog.text
    assert dify_api_key not in caplog.text


# -- which answers are repeated ------------------------------------------------------------------------------------

REPEATED = [
    ("502 page", BAD_GATEWAY),
    ("500 unknown", _answer("internal_server_error")),
    ("busy document", _answer("document_being_indexed")),
    ("rate limit 403", {"status_code": 403, "content": dify_error_body(403, "forbidden", RATE_LIMIT)}),
    ("429", {"status_code": 429, "text": "slow down"}),
    ("read timeout", {"exc": requests.exceptions.ReadTimeout}),
    ("connect timeout", {"exc": requests.exceptions.ConnectTimeout}),
    ("refused", {"exc": _refused()}),
    ("reset", {"exc": _reset()}),
    ("cut-off body", {"exc": requests.exceptions.ChunkedEncodingError}),
]
NOT_REPEATED = [
    ("401", _answer("unauthorized_bad_token"), exc.DifyAuthenticationError),
    ("404", _answer("dataset_not_found"), exc.DifyNotFoundError),
    ("400 invalid_param", _answer("invalid_param_pydantic"), exc.DifyValidationError),
    ("409", _answer("dataset_name_duplicate"), exc.DifyConflictError),
    ("403 archived", _answer("archived_document_immutable"), exc.DifyForbiddenError),
    (
        "403 quota",
        {
            "status_code": 403,
            "content": dify_error_body(
                403, "forbidden", "The number of documents has reached the limit of your subscription."
            ),
        },
        exc.DifyQuotaExceededError,
    ),
    ("405", _answer("method_not_allowed"), exc.DifyUnsupportedEndpointError),
    ("200 not JSON", {"status_code": 200, "text": "<html>login</html>"}, exc.DifyInvalidResponseError),
    ("document not available", _answer("document_not_available"), exc.DifyDocumentNotReadyError),
]


@pytest.mark.parametrize("answer", [case[1] for case in REPEATED], ids=[case[0] for case in REPEATED])
def test_transient_failures_of_a_read_are_repeated(hook: DifyHook, requests_mock: Any, answer: dict) -> None:
    requests_mock.get(DATASET_URL, [answer, {"json": {"id": DS}}])
    assert hook.get_dataset(DS) == {"id": DS}
    assert requests_mock.call_count == 2


@pytest.mark.parametrize(
    ("answer", "error"), [case[1:] for case in NOT_REPEATED], ids=[case[0] for case in NOT_REPEATED]
)
def test_definite_refusals_are_not_repeated(hook: DifyHook, requests_mock: Any, answer: dict, error: type) -> None:
    requests_mock.get(DATASET_URL, [answer, {"json": {"id": DS}}])
    with pytest.raises(error):
        hook.get_dataset(DS)
    assert requests_mock.call_count == 1


# -- writes whose outcome is unknown ---------------------------------------------------------------------------------

SEGMENTS = [{"content": "Segments can be added manually through the service API."}]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"exc": requests.exceptions.ReadTimeout}, exc.DifyConnectionError),
        ({"exc": _reset()}, exc.DifyConnectionError),
        ({"exc": requests.exceptions.ChunkedEncodingError}, exc.DifyConnectionError),
        (BAD_GATEWAY, exc.DifyServerError),
        (_answer("internal_server_error"), exc.DifyServerError),
    ],
    ids=["read timeout", "reset after sending", "cut-off answer", "502", "500"],
)
def test_add_segments_is_not_repeated_when_it_may_have_been_applied(
    hook: DifyHook, requests_mock: Any, answer: dict, error: type
) -> None:
    requests_mock.post(SEGMENTS_URL, [answer, {"json": success_body("add_segments")}])
    with pytest.raises(error) as raised:
        hook.add_segments(DS, DOC, SEGMENTS)
    assert requests_mock.call_count == 1
    if isinstance(raised.value, exc.DifyConnectionError):
        assert raised.value.maybe_delivered is True


@pytest.mark.parametrize(
    "answer",
    [
        {"exc": requests.exceptions.ConnectTimeout},
        {"exc": _refused()},
        {"status_code": 403, "content": dify_error_body(403, "forbidden", RATE_LIMIT)},
        _answer("document_being_indexed"),
    ],
    ids=["connect timeout", "refused", "rate limit", "busy"],
)
def test_add_segments_is_repeated_when_it_surely_was_not_applied(
    hook: DifyHook, requests_mock: Any, answer: dict
) -> None:
    requests_mock.post(SEGMENTS_URL, [answer, {"json": success_body("add_segments")}])
    assert hook.add_segments(DS, DOC, SEGMENTS) == success_body("add_segments")["data"]
    assert requests_mock.call_count == 2


def test_add_child_chunk_is_not_repeated_after_a_read_timeout(hook: DifyHook, requests_mock: Any) -> None:
    url = f"{SEGMENTS_URL}/{SEG}/child_chunks"
    requests_mock.post(url, [{"exc": requests.exceptions.ReadTimeout}, {"json": {"data": {}}}])
    with pytest.raises(exc.DifyConnectionError):
        hook.add_child_chunk(DS, DOC, SEG, "child")
    assert requests_mock.call_count == 1


def test_create_by_text_is_repeated_after_a_read_timeout(hook: DifyHook, requests_mock: Any) -> None:
    """Dify upserts by name: a repeat updates the same document instead of adding one."""
    url = f"{DATASET_URL}/document/create-by-text"
    body = success_body("create_document_by_text")
    requests_mock.post(url, [{"exc": requests.exceptions.ReadTimeout}, {"json": body}])
    assert hook.create_document_by_text(DS, "intro.txt", "text", indexing_technique="economy") == body
    assert requests_mock.call_count == 2


@pytest.mark.parametrize(("duplicate", "calls"), [(True, 2), (False, 1)])
def test_create_by_file_is_repeated_only_when_it_upserts(
    hook: DifyHook, requests_mock: Any, tmp_path: Any, duplicate: bool, calls: int
) -> None:
    path = tmp_path / "products.csv"
    path.write_text("a,b\n")
    body = success_body("create_document_by_file")
    requests_mock.post(f"{DATASET_URL}/document/create-by-file", [BAD_GATEWAY, {"json": body}])
    if duplicate:
        assert hook.create_document_by_file(DS, path) == body
    else:
        with pytest.raises(exc.DifyServerError):
            hook.create_document_by_file(DS, path, duplicate=False)
    assert requests_mock.call_count == calls


# -- deletes ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "url"),
    [
        (lambda h: h.delete_document(DS, DOC), DOCUMENT_URL),
        (lambda h: h.delete_dataset(DS), DATASET_URL),
        (lambda h: h.delete_segment(DS, DOC, SEG), f"{SEGMENTS_URL}/{SEG}"),
        (lambda h: h.delete_child_chunk(DS, DOC, SEG, CHILD), f"{SEGMENTS_URL}/{SEG}/child_chunks/{CHILD}"),
        (lambda h: h.delete_metadata_field(DS, FIELD), f"{DATASET_URL}/metadata/{FIELD}"),
        (lambda h: h.delete_tag("t1"), f"{BASE_URL}/datasets/tags"),
    ],
    ids=["document", "dataset", "segment", "child chunk", "metadata field", "tag"],
)
def test_a_delete_answering_404_on_a_repeat_is_done(hook: DifyHook, requests_mock: Any, call: Any, url: str) -> None:
    requests_mock.delete(url, [{"exc": requests.exceptions.ReadTimeout}, _answer("document_not_exists")])
    assert call(hook) is None
    assert requests_mock.call_count == 2


def test_a_delete_answering_404_at_once_is_not_found(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.delete(DOCUMENT_URL, **_answer("document_not_exists"))
    with pytest.raises(exc.DifyNotFoundError, match="Document Not Exists"):
        hook.delete_document(DS, DOC)


def test_a_404_on_a_repeated_read_is_still_not_found(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.get(DATASET_URL, [BAD_GATEWAY, _answer("dataset_not_found")])
    with pytest.raises(exc.DifyNotFoundError):
        hook.get_dataset(DS)
    assert requests_mock.call_count == 2


# -- rate limit waits --------------------------------------------------------------------------------------------------


def test_rate_limit_waits_until_the_refused_call_leaves_the_window(
    hook: DifyHook, sleeps: list[float], requests_mock: Any
) -> None:
    # Without a history of its own in the window, the refused call itself is what must leave it: a whole window.
    limited = {"status_code": 403, "content": dify_error_body(403, "forbidden", RATE_LIMIT)}
    requests_mock.post(SEGMENTS_URL, [limited, limited, {"json": success_body("add_segments")}])
    hook.add_segments(DS, DOC, SEGMENTS)
    assert len(sleeps) == 2
    assert all(59 < wait <= 60 for wait in sleeps)


def test_rate_limit_wait_comes_from_the_connection(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    set_dify_connection(monkeypatch, extra={"rate_limit_wait": 20})
    hook = DifyHook()
    hook.sleep = (sleeps := []).append
    requests_mock.get(DATASET_URL, [{"status_code": 429, "text": ""}, {"json": {"id": DS}}])
    hook.get_dataset(DS)
    assert 20 <= sleeps[0] <= 22


def test_retry_after_is_honoured(hook: DifyHook, sleeps: list[float], requests_mock: Any) -> None:
    requests_mock.get(DATASET_URL, [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"json": {"id": DS}}])
    hook.get_dataset(DS)
    assert 7 <= sleeps[0] <= 7.7


def test_rate_limit_gives_up_after_the_attempts(hook: DifyHook, sleeps: list[float], requests_mock: Any) -> None:
    requests_mock.get(DATASET_URL, status_code=403, content=dify_error_body(403, "forbidden", RATE_LIMIT))
    with pytest.raises(exc.DifyRateLimitError):
        hook.get_dataset(DS)
    assert requests_mock.call_count == 5
    assert len(sleeps) == 4


# -- the retry policy on its own --------------------------------------------------------------------------------------


def test_policy_decisions() -> None:
    policy = RetryPolicy()
    read, write = ops.get_dataset(DS), ops.add_segments(DS, DOC, SEGMENTS)
    delivered = exc.DifyConnectionError("timeout", maybe_delivered=True)
    undelivered = exc.DifyConnectionError("refused", maybe_delivered=False)
    server = exc.DifyServerError("boom", status=500)
    assert policy.should_retry(read, delivered) and policy.should_retry(read, server)
    assert not policy.should_retry(write, delivered) and not policy.should_retry(write, server)
    assert policy.should_retry(write, undelivered)
    assert policy.should_retry(write, exc.DifyRateLimitError("limit", status=403))
    assert policy.should_retry(write, exc.DifyResourceBusyError("busy", status=400))
    assert not policy.should_retry(read, exc.DifyValidationError("bad", status=400))
    assert not policy.should_retry(read, ValueError("not a Dify error"))


def test_policy_waits_are_bounded() -> None:
    policy = RetryPolicy(backoff_initial=1, backoff_max=10, rate_limit_wait=60, rng=random.Random(7))
    for attempt in range(1, 12):
        ceiling = min(10, 2 ** (attempt - 1))
        assert ceiling / 2 <= policy.wait_seconds(exc.DifyServerError("x"), attempt) <= ceiling
    assert 60 <= policy.wait_seconds(exc.DifyRateLimitError("x"), 1) <= 65
    assert 2 <= policy.wait_seconds(exc.DifyRateLimitError("x", retry_after=2), 3) <= 2.2


@pytest.mark.parametrize(
    "arguments", [{"max_attempts": 0}, {"backoff_initial": -1}, {"backoff_max": -1}, {"rate_limit_wait": -1}]
)
def test_policy_rejects_nonsense(arguments: dict) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)


# -- alias routes ---------------------------------------------------------------------------------------------------


def test_alias_is_used_once_the_route_is_unknown_and_remembered(hook: DifyHook, requests_mock: Any) -> None:
    hyphen = requests_mock.post(f"{DATASET_URL}/document/create-by-text", **_answer("unknown_route_html"))
    body = success_body("create_document_by_text")
    underscore = requests_mock.post(f"{DATASET_URL}/document/create_by_text", json=body)
    assert hook.create_document_by_text(DS, "a.txt", "one", indexing_technique="economy") == body
    assert hook.create_document_by_text(DS, "b.txt", "two", indexing_technique="economy") == body
    assert hyphen.call_count == 1
    assert underscore.call_count == 2
    assert underscore.last_request.json()["name"] == "b.txt"


def test_patch_update_by_file_falls_back_to_post_on_405(hook: DifyHook, requests_mock: Any, tmp_path: Any) -> None:
    """The 1.13.2 sequence: PATCH /documents/{id} answers 405, POST .../update-by-file works."""
    path = tmp_path / "products.csv"
    path.write_text("sku\n1\n")
    patch = requests_mock.patch(DOCUMENT_URL, **_answer("patch_document_method_not_allowed"))
    body = success_body("update_document_by_file")
    post = requests_mock.post(f"{DOCUMENT_URL}/update-by-file", json=body)
    assert hook.update_document_by_file(DS, DOC, path) == body
    assert (patch.call_count, post.call_count) == (1, 1)
    assert post.last_request.headers["Content-Type"].startswith("multipart/form-data")


def test_a_json_404_is_not_a_missing_route(hook: DifyHook, requests_mock: Any) -> None:
    hyphen = requests_mock.post(f"{DATASET_URL}/document/create-by-text", **_answer("dataset_not_found_did_you_mean"))
    underscore = requests_mock.post(f"{DATASET_URL}/document/create_by_text", json={})
    with pytest.raises(exc.DifyNotFoundError):
        hook.create_document_by_text(DS, "a.txt", "text")
    assert (hyphen.call_count, underscore.call_count) == (1, 0)


def test_when_neither_route_exists_nothing_is_remembered(hook: DifyHook, requests_mock: Any) -> None:
    hyphen = requests_mock.post(f"{DATASET_URL}/document/create-by-text", **_answer("unknown_route_html"))
    underscore = requests_mock.post(f"{DATASET_URL}/document/create_by_text", **_answer("unknown_route_html"))
    for _ in range(2):
        with pytest.raises(exc.DifyUnsupportedEndpointError):
            hook.create_document_by_text(DS, "a.txt", "text")
    assert (hyphen.call_count, underscore.call_count) == (2, 2)


def test_routes_without_an_alias_raise_unsupported(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.get(f"{DOCUMENT_URL}/upload-file", **_answer("upload_file_route_html"))
    with pytest.raises(exc.DifyUnsupportedEndpointError, match="older than this API call"):
        hook.get_upload_file(DS, DOC)
    assert requests_mock.call_count == 1


