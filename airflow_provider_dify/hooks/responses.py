"""Reading Dify's responses: the one error mapper, shared by the sync hook and the async trigger client.

:func:`read_response` turns (request, status, headers, body) into the decoded JSON of a success or raises the
matching :class:`~airflow_provider_dify.exceptions.DifyError`. Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from airflow_provider_dify.exceptions import (
    DifyAuthenticationError,
    DifyConflictError,
    DifyConnectionError,
    DifyDatasetNotFoundError,
    DifyDocumentNotReadyError,
    DifyError,
    DifyFileRejectedError,
    DifyForbiddenError,
    DifyInvalidResponseError,
    DifyNotFoundError,
    DifyQuotaExceededError,
    DifyRateLimitError,
    DifyResourceBusyError,
    DifyServerError,
    DifyTLSError,
    DifyUnsupportedEndpointError,
    DifyValidationError,
)
from airflow_provider_dify.hooks.operations import ApiRequest

RATE_LIMIT_MESSAGE_MARKER = "request rate limit"
_QUOTA_MARKERS = (
    "capacity of the vector space",
    "number of documents has reached",
    "upgrade to a paid plan",
    "reached the limit of your subscription",
)
_NOT_READY_MARKERS = ("document is not completed", "document is disabled", "document is not available")
_BUSY_MARKERS = (
    "is being indexed",
    "is indexing",
    "metadata operation is running",
    "cannot delete document during indexing",
    "segment is deleting",
)
_FILE_CODES = frozenset({"file_too_large", "unsupported_file_type"})
_LEGACY_NO_CONTENT = 204
_TAG_CALLS_HIT_BY_BUG = frozenset({"create_tag", "list_tags", "update_tag"})
_MAX_SNIPPET = 200


def decode_body(body: bytes) -> Any:
    """Decode a JSON body; an empty body is ``None``. Raises ``ValueError`` for anything else."""
    if not body or not body.strip():
        return None
    return json.loads(body)


def read_response(
    request: ApiRequest, status: int, headers: Mapping[str, str], body: bytes, *, base_url: str | None = None
) -> Any:
    """
    Return the decoded body of a successful response, or raise the exception that maps the error.

    :param request: the request that was sent (for the method and path in errors, and what it expects).
    :param status: HTTP status code.
    :param headers: response headers (case-insensitive mapping).
    :param body: the raw body.
    :param base_url: the API base URL the request went to (named when the server has no such route).
    """
    if 200 <= status < 300:
        if not request.expect_json:
            return body
        try:
            payload = decode_body(body)
        except ValueError:
            raise DifyInvalidResponseError(
                f"expected JSON, got {_snippet(body)!r} ({headers.get('Content-Type', 'no content type')});"
                " the connection's host must be Dify's API base URL (https://api.dify.ai/v1 or"
                " http://<your-dify-host>/v1), not a web page",
                status=status,
                method=request.method,
                path=request.path,
            ) from None
        if isinstance(payload, int) and payload == _LEGACY_NO_CONTENT:
            # Old servers answered deletes and tag bindings with HTTP 200 and a bare "204": no content.
            return None
        return payload
    raise error_from_response(request, status, headers, body, base_url=base_url)


def _wrong_host(base_url: str | None) -> str:
    """The likeliest cause of an HTML 404 on every route: the connection's host, named with its path."""
    if not base_url:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    twice = " (it holds /v1 twice)" if "/v1/v1" in parts.path else ""
    return (
        f"; check the connection's host: requests go to {parts.hostname}, path {parts.path or '/'}{twice}, which"
        " must be Dify's API base URL (https://api.dify.ai/v1 or http://<your-dify-host>/v1)"
    )


def error_from_response(
    request: ApiRequest, status: int, headers: Mapping[str, str], body: bytes, *, base_url: str | None = None
) -> DifyError:
    """Map an error response to the matching :class:`DifyError` subclass (does not raise it); ``base_url``: the
    API base URL the request went to."""
    where = {"status": status, "method": request.method, "path": request.path}
    try:
        payload = decode_body(body)
    except ValueError:
        payload = None
        json_ok = False
    else:
        json_ok = isinstance(payload, dict)

    if not json_ok:
        text = _snippet(body)
        if status == 404 or status == 405:
            return DifyUnsupportedEndpointError(
                f"the server has no route {request.method} {(base_url or '') + request.path} (it answered a"
                f" non-JSON {status}){_wrong_host(base_url)}; the Dify server may also be older than this API call,"
                " or an id in the path is not a UUID",
                body=text,
                **where,
            )
        if status in (413, 415) and request.upload is not None:
            # A proxy in front of Dify (nginx client_max_body_size...) refuses the upload with its own page.
            return DifyFileRejectedError(
                f"the file was refused before it reached Dify (HTTP {status} from a proxy): {text!r}",
                body=text,
                **where,
            )
        if status == 429:
            return DifyRateLimitError(text or "too many requests", retry_after=_retry_after(headers), **where)
        if status >= 500:
            return DifyServerError(text or "server error with an empty body", body=text, **where)
        return DifyInvalidResponseError(
            f"the server answered a body that is not Dify's JSON: {text!r}", body=text, **where
        )

    code = payload.get("code")
    message = payload.get("message")
    if message is None and "error" in payload:
        # Chunk validation answers {"error": "..."} with no code or status.
        message = str(payload["error"])
    message = "" if message is None else str(message)
    lowered = message.lower()
    kwargs: dict[str, Any] = {"code": code, "body": payload, **where}

    if status == 401:
        return DifyAuthenticationError(message, **kwargs)
    if status == 429 or (status == 403 and RATE_LIMIT_MESSAGE_MARKER in lowered):
        return DifyRateLimitError(message, retry_after=_retry_after(headers), **kwargs)
    if status == 403:
        if any(marker in lowered for marker in _QUOTA_MARKERS):
            return DifyQuotaExceededError(message, **kwargs)
        return DifyForbiddenError(message, **kwargs)
    if status == 404:
        if any(marker in lowered for marker in _NOT_READY_MARKERS):
            return DifyDocumentNotReadyError(message, **kwargs)
        if lowered.startswith("dataset not found"):
            return DifyDatasetNotFoundError(message, dataset_id=dataset_id_of(request.path), **kwargs)
        return DifyNotFoundError(message, **kwargs)
    if status == 405:
        return DifyUnsupportedEndpointError(message, **kwargs)
    if status == 409:
        return DifyConflictError(message, **kwargs)
    if status in (413, 415) and (code in _FILE_CODES or request.upload is not None):
        return DifyFileRejectedError(message, **kwargs)
    if status >= 500:
        return DifyServerError(message, **kwargs)
    if status == 400:
        if any(marker in lowered for marker in _BUSY_MARKERS):
            return DifyResourceBusyError(message, **kwargs)
        if any(marker in lowered for marker in _NOT_READY_MARKERS):
            return DifyDocumentNotReadyError(message, **kwargs)
        if request.upload is not None and code == "invalid_param" and not message.strip():
            return DifyFileRejectedError(
                "the server refused the file without saying why; Dify does this on create-by-file for a file"
                " that is too large or of a type it does not accept",
                **kwargs,
            )
    if status == 400 and request.operation in _TAG_CALLS_HIT_BY_BUG and "binding_count" in message:
        return DifyValidationError(_tag_bug_message(request, message), **kwargs)
    if 400 <= status < 500:
        return DifyValidationError(message, **kwargs)
    return DifyError(message, **kwargs)


def dataset_id_of(path: str) -> str | None:
    """The knowledge base id of a ``/datasets/{id}/...`` path, or ``None``."""
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "datasets" and parts[2] else None


def _tag_bug_message(request: ApiRequest, message: str) -> str:
    """Dify 1.13.2 fails to serialise tags (``binding_count`` is an int where its model wants a string)."""
    first_line = message.splitlines()[0] if message else ""
    if request.operation == "create_tag":
        done = "the tag may have been created anyway (list the tags in the Dify console before creating it again)"
    elif request.operation == "update_tag":
        done = "the tag may have been renamed anyway"
    else:
        done = "tags cannot be listed through the API on this server"
    return (
        f"the Dify server has a bug in its tag responses (Dify 1.13.2: 'binding_count' fails its own validation:"
        f" {first_line!r}); {done}. Upgrading Dify fixes it."
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _MAX_SNIPPET else text[:_MAX_SNIPPET] + "..."


def connection_error(
    request: ApiRequest, error: Exception, *, maybe_delivered: bool, secret: str | None = None
) -> DifyConnectionError:
    """Wrap a transport failure (no HTTP response) of ``request`` in a :class:`DifyConnectionError`
    (:class:`DifyTLSError` when the TLS handshake failed). ``secret`` (the API key) is removed from the text."""
    from airflow_provider_dify.hooks.validation import without_secret

    text = without_secret(f"{type(error).__name__}: {error}", secret)
    if _is_tls_failure(error):
        if "WRONG_VERSION_NUMBER" in text.upper():
            text += (
                "; the server does not speak TLS: if it is plain HTTP, write the connection's host with http://"
                " (a host without a scheme is taken as https://)"
            )
        return DifyTLSError(text, maybe_delivered=False, method=request.method, path=request.path)
    return DifyConnectionError(
        text,
        maybe_delivered=maybe_delivered,
        method=request.method,
        path=request.path,
    )


def _is_tls_failure(error: BaseException) -> bool:
    """Whether an ``ssl.SSLError`` stands anywhere in the chain of a transport error (requests and httpx wrap it)."""
    import ssl

    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return True
        if isinstance(current, BaseException):
            pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return False
