"""The one error mapper: which Dify answer becomes which exception (table-driven from the real 1.13.2 answers)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify import exceptions as exc
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.operations import ApiRequest, FileUpload
from airflow_provider_dify.hooks.responses import connection_error, error_from_response, read_response
from tests.unit.helpers import BASE_URL, dify_error_body, error_names, error_response, set_dify_connection

DS = "e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"
DOC = "8b75b0e0-a79e-49b7-8ed5-566e6696d245"
JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> FileUpload:
    path = tmp_path_factory.mktemp("upload") / "tool.exe"
    path.write_bytes(b"MZ")
    return FileUpload.from_path(path)


def _request(kind: str, upload: FileUpload) -> ApiRequest:
    return {
        "read": ops.list_datasets(),
        "create_text": ops.create_document_by_text(DS, "x", "y"),
        "create_file": ops.create_document_by_file(DS, upload),
        "update_file": ops.update_document_by_file(DS, DOC, upload),
        "segments": ops.add_segments(DS, DOC, [{"content": "c"}]),
        "delete": ops.delete_document(DS, DOC),
    }[kind]


#: Every error answer recorded from Dify 1.13.2: (the request kind that got it, the class it maps to).
TRANSCRIPT_ERRORS: dict[str, tuple[str, type[exc.DifyError]]] = {
    "unauthorized_no_header": ("read", exc.DifyAuthenticationError),
    "unauthorized_bad_token": ("read", exc.DifyAuthenticationError),
    "unauthorized_wrong_scheme": ("read", exc.DifyAuthenticationError),
    "dataset_not_found": ("read", exc.DifyDatasetNotFoundError),
    "dataset_not_found_did_you_mean": ("create_text", exc.DifyDatasetNotFoundError),
    "invalid_param_pydantic": ("read", exc.DifyValidationError),
    "dataset_name_duplicate": ("read", exc.DifyConflictError),
    "retrieve_default_model_missing": ("read", exc.DifyValidationError),
    "retrieve_empty_query": ("read", exc.DifyValidationError),
    "segment_not_found": ("delete", exc.DifyNotFoundError),
    "batch_not_found": ("read", exc.DifyNotFoundError),
    "document_being_indexed": ("read", exc.DifyResourceBusyError),
    "unknown_status_action": ("read", exc.DifyValidationError),
    "document_not_found": ("read", exc.DifyNotFoundError),
    "document_not_exists": ("delete", exc.DifyNotFoundError),
    "method_not_allowed": ("read", exc.DifyUnsupportedEndpointError),
    "unknown_route_html": ("read", exc.DifyUnsupportedEndpointError),
    "internal_server_error": ("create_text", exc.DifyServerError),
    "segment_content_empty": ("segments", exc.DifyValidationError),
    "segments_error_body": ("segments", exc.DifyValidationError),
    "no_file_uploaded": ("create_file", exc.DifyValidationError),
    "upload_rejected_empty_message": ("create_file", exc.DifyFileRejectedError),
    "metadata_name_exists": ("read", exc.DifyValidationError),
    "invalid_metadata": ("read", exc.DifyValidationError),
    "archived_document_immutable": ("delete", exc.DifyForbiddenError),
    "document_not_available": ("read", exc.DifyDocumentNotReadyError),
    "upload_file_route_html": ("read", exc.DifyUnsupportedEndpointError),
    "patch_document_method_not_allowed": ("update_file", exc.DifyUnsupportedEndpointError),
    "tag_response_model_bug": ("read", exc.DifyValidationError),
}


def test_every_recorded_error_is_in_the_table() -> None:
    assert set(TRANSCRIPT_ERRORS) == set(error_names())


@pytest.mark.parametrize("name", sorted(TRANSCRIPT_ERRORS))
def test_recorded_error(name: str, upload: FileUpload) -> None:
    kind, expected = TRANSCRIPT_ERRORS[name]
    request = _request(kind, upload)
    status, headers, body = error_response(name)
    with pytest.raises(exc.DifyError) as raised:
        read_response(request, status, headers, body)
    error = raised.value
    assert type(error) is expected
    assert (error.status, error.method, error.path) == (status, request.method, request.path)
    assert isinstance(error, exc.AirflowException)
    assert f"{request.method} {request.path} failed: HTTP {status}" in str(error)


def test_recorded_error_keeps_dify_code_and_message(upload: FileUpload) -> None:
    status, headers, body = error_response("archived_document_immutable")
    error = error_from_response(_request("delete", upload), status, headers, body)
    assert error.code == "archived_document_immutable"
    assert error.message == "The archived document is not editable."
    assert error.body == {"code": "archived_document_immutable", "message": error.message, "status": 403}
    assert str(error) == (
        f"DELETE /datasets/{DS}/documents/{DOC} failed: HTTP 403 [archived_document_immutable]: "
        "The archived document is not editable."
    )


def test_segments_error_body_without_code_keeps_its_text(upload: FileUpload) -> None:
    status, headers, body = error_response("segments_error_body")
    error = error_from_response(_request("segments", upload), status, headers, body)
    assert error.code is None
    assert error.message == "Segments is required"


def test_empty_message_on_a_json_route_is_plain_validation(upload: FileUpload) -> None:
    status, headers, body = error_response("upload_rejected_empty_message")
    error = error_from_response(_request("create_text", upload), status, headers, body)
    assert type(error) is exc.DifyValidationError
    assert "(empty message)" in str(error)


def test_file_rejected_explains_the_empty_message(upload: FileUpload) -> None:
    status, headers, body = error_response("upload_rejected_empty_message")
    error = error_from_response(_request("create_file", upload), status, headers, body)
    assert "too large or of a type" in error.message
    assert error.code == "invalid_param"


def test_unknown_route_says_the_server_may_be_older(upload: FileUpload) -> None:
    status, headers, body = error_response("unknown_route_html")
    error = error_from_response(_request("read", upload), status, headers, body)
    assert "older than this API call" in error.message
    assert error.body.startswith("<!doctype html>")


# -- answers documented in the API reference (Cloud / billing / proxies) that the recording could not produce -----

RATE_LIMIT = "Sorry, you have reached the knowledge base request rate limit of your subscription."
REFERENCE_ERRORS: list[tuple[str, str, int, dict[str, str], bytes, type[exc.DifyError]]] = [
    ("rate limit 403", "segments", 403, JSON, dify_error_body(403, "forbidden", RATE_LIMIT), exc.DifyRateLimitError),
    (
        "vector space quota",
        "create_text",
        403,
        JSON,
        dify_error_body(
            403, "forbidden", "The capacity of the vector space has reached the limit of your subscription."
        ),
        exc.DifyQuotaExceededError,
    ),
    (
        "document quota",
        "create_file",
        403,
        JSON,
        dify_error_body(403, "forbidden", "The number of documents has reached the limit of your subscription."),
        exc.DifyQuotaExceededError,
    ),
    (
        "sandbox plan",
        "segments",
        403,
        JSON,
        dify_error_body(
            403,
            "forbidden",
            "To unlock this feature and elevate your Dify experience, please upgrade to a paid plan.",
        ),
        exc.DifyQuotaExceededError,
    ),
    (
        "api access disabled",
        "read",
        403,
        JSON,
        dify_error_body(403, "forbidden", "Dataset api access is not enabled."),
        exc.DifyForbiddenError,
    ),
    ("no permission", "read", 403, JSON, dify_error_body(403, "forbidden", "No permission."), exc.DifyForbiddenError),
    (
        "chunks too early",
        "segments",
        404,
        JSON,
        dify_error_body(404, "not_found", "Document is not completed."),
        exc.DifyDocumentNotReadyError,
    ),
    (
        "chunks on a disabled document",
        "segments",
        404,
        JSON,
        dify_error_body(404, "not_found", "Document is disabled."),
        exc.DifyDocumentNotReadyError,
    ),
    (
        "file too large",
        "update_file",
        413,
        JSON,
        dify_error_body(413, "file_too_large", "File size exceeded. 20 MB > 15 MB"),
        exc.DifyFileRejectedError,
    ),
    (
        "file type",
        "update_file",
        415,
        JSON,
        dify_error_body(415, "unsupported_file_type", "File type not allowed."),
        exc.DifyFileRejectedError,
    ),
    (
        "413 page of nginx in front of Dify",
        "create_file",
        413,
        HTML,
        b"<html><head><title>413 Request Entity Too Large</title></head><body><center>nginx</center></body></html>",
        exc.DifyFileRejectedError,
    ),
    (
        "JSON route without a JSON content type",
        "create_text",
        415,
        JSON,
        dify_error_body(415, "unsupported_media_type", "Did not attempt to load JSON data."),
        exc.DifyValidationError,
    ),
    (
        "dataset in use",
        "delete",
        409,
        JSON,
        dify_error_body(409, "dataset_in_use", "The dataset is being used by some apps."),
        exc.DifyConflictError,
    ),
    (
        "broken JSON",
        "create_text",
        400,
        JSON,
        dify_error_body(400, "bad_request", "Failed to decode JSON object"),
        exc.DifyValidationError,
    ),
    (
        "metadata lock",
        "read",
        400,
        JSON,
        dify_error_body(400, "invalid_param", "Another document metadata operation is running, please wait a moment."),
        exc.DifyResourceBusyError,
    ),
    (
        "chunk indexing",
        "read",
        400,
        JSON,
        dify_error_body(400, "invalid_param", "Segment is indexing, please try again later"),
        exc.DifyResourceBusyError,
    ),
    (
        "delete during indexing",
        "delete",
        400,
        JSON,
        dify_error_body(400, "document_indexing", "Cannot delete document during indexing."),
        exc.DifyResourceBusyError,
    ),
    (
        "502 page of a proxy",
        "read",
        502,
        HTML,
        b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        exc.DifyServerError,
    ),
    ("503 with an empty body", "read", 503, {}, b"", exc.DifyServerError),
    (
        "429 from a gateway",
        "segments",
        429,
        {"Content-Type": "text/plain"},
        b"Too Many Requests",
        exc.DifyRateLimitError,
    ),
    ("403 page of a WAF", "read", 403, HTML, b"<html>Forbidden</html>", exc.DifyInvalidResponseError),
    ("JSON that is not an object", "read", 400, JSON, b'["a", "b"]', exc.DifyInvalidResponseError),
]


@pytest.mark.parametrize(
    ("kind", "status", "headers", "body", "expected"),
    [case[1:] for case in REFERENCE_ERRORS],
    ids=[case[0] for case in REFERENCE_ERRORS],
)
def test_documented_error(
    kind: str, status: int, headers: dict[str, str], body: bytes, expected: type[exc.DifyError], upload: FileUpload
) -> None:
    request = _request(kind, upload)
    with pytest.raises(exc.DifyError) as raised:
        read_response(request, status, headers, body)
    assert type(raised.value) is expected
    assert raised.value.status == status


def test_rate_limit_without_retry_after(upload: FileUpload) -> None:
    error = error_from_response(_request("read", upload), 403, JSON, dify_error_body(403, "forbidden", RATE_LIMIT))
    assert isinstance(error, exc.DifyRateLimitError)
    assert error.retry_after is None


@pytest.mark.parametrize("value", ["7", "7.5", "0"])
def test_retry_after_in_seconds(value: str, upload: FileUpload) -> None:
    error = error_from_response(_request("read", upload), 429, {"Retry-After": value}, b"")
    assert error.retry_after == float(value)


def test_retry_after_as_a_date(upload: FileUpload) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    error = error_from_response(_request("read", upload), 429, {"Retry-After": later}, b"{}")
    assert 100 < error.retry_after <= 120


def test_retry_after_unreadable_is_ignored(upload: FileUpload) -> None:
    error = error_from_response(_request("read", upload), 429, {"Retry-After": "soon"}, b"")
    assert error.retry_after is None


# -- successes -----------------------------------------------------------------------------------------------------


def test_204_with_an_empty_body_is_none(upload: FileUpload) -> None:
    assert read_response(_request("delete", upload), 204, JSON, b"") is None


def test_200_with_a_bare_204_from_old_servers_is_none(upload: FileUpload) -> None:
    assert read_response(_request("delete", upload), 200, JSON, b"204") is None


def test_201_json_is_decoded(upload: FileUpload) -> None:
    body = b'{"id": "40ad7229-b220-4ba1-80c3-99983b1146a5", "type": "string", "name": "source_sha256"}'
    assert read_response(_request("read", upload), 201, JSON, body)["name"] == "source_sha256"


def test_bare_list_is_decoded(upload: FileUpload) -> None:
    assert read_response(_request("read", upload), 200, JSON, b"[]") == []


def test_200_that_is_not_json_is_an_invalid_response(upload: FileUpload) -> None:
    with pytest.raises(exc.DifyInvalidResponseError) as raised:
        read_response(_request("read", upload), 200, HTML, b"<html>Welcome to the captive portal</html>")
    assert "captive portal" in raised.value.message
    assert "text/html" in raised.value.message


def test_binary_routes_return_the_raw_body(upload: FileUpload) -> None:
    request = ApiRequest("download", "GET", "/x", expect_json=False)
    assert read_response(request, 200, {"Content-Type": "application/zip"}, b"PK\x03\x04") == b"PK\x03\x04"


def test_long_non_json_bodies_are_cut(upload: FileUpload) -> None:
    error = error_from_response(_request("read", upload), 502, HTML, b"x" * 10_000)
    assert len(error.message) < 300


# -- transport failures and pickling ---------------------------------------------------------------------------------


def test_connection_error_names_the_request(upload: FileUpload) -> None:
    request = _request("segments", upload)
    error = connection_error(request, TimeoutError("read timed out"), maybe_delivered=True)
    assert isinstance(error, exc.DifyConnectionError)
    assert error.maybe_delivered is True
    assert error.status is None
    assert str(error) == f"POST {request.path} failed: no response: TimeoutError: read timed out"


@pytest.mark.parametrize(
    "error",
    [
        exc.DifyNotFoundError("Dataset not found.", status=404, code="not_found", method="GET", path="/datasets/x"),
        exc.DifyRateLimitError(RATE_LIMIT, retry_after=3.0, status=403, code="forbidden", method="POST", path="/p"),
        exc.DifyConnectionError("reset", maybe_delivered=True, method="POST", path="/p"),
        exc.DifyIndexingError("indexing of a.txt ended with error", document_id="d", indexing_status="error"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling(error: exc.DifyError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)


def test_every_exception_is_a_dify_error() -> None:
    classes = [value for value in vars(exc).values() if isinstance(value, type) and issubclass(value, Exception)]
    own = [cls for cls in classes if cls.__module__ == exc.__name__]
    assert len(own) >= 16
    assert all(issubclass(cls, exc.DifyError) for cls in own)


# -- through the hook: the same mapping on real HTTP responses -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRANSCRIPT_ERRORS))
def test_hook_raises_the_mapped_error(
    name: str, monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path
) -> None:
    set_dify_connection(monkeypatch, extra={"max_retries": 0})
    status, headers, body = error_response(name)
    requests_mock.register_uri("GET", f"{BASE_URL}/datasets/{DS}", status_code=status, headers=headers, content=body)
    hook = DifyHook()
    with pytest.raises(exc.DifyError) as raised:
        hook.get_dataset(DS)
    # get_dataset is a plain read: only the upload-specific mapping differs from the table
    expected = TRANSCRIPT_ERRORS[name][1]
    if expected is exc.DifyFileRejectedError:
        expected = exc.DifyValidationError
    assert type(raised.value) is expected
    assert raised.value.path == f"/datasets/{DS}"
    assert requests_mock.call_count == 1
