"""Exceptions raised by the Dify provider.

Every error that a Dify server can answer maps to one class below (see
:func:`airflow_provider_dify.hooks.responses.error_from_response`). Each carries the HTTP ``status``, Dify's
``code`` and ``message``, and the request that failed (``method`` and ``path``, never a header, so never the
API key). All of them subclass :class:`~airflow.exceptions.AirflowException` so that Airflow reports them as
task failures.

The errors that cannot succeed on a retry (:class:`DifyAuthenticationError`, :class:`DifyQuotaExceededError`,
:class:`DifyValidationError`, :class:`DifyFileRejectedError`, :class:`DifyArgumentError`,
:class:`DifyDocumentNotFoundError`) also subclass
:class:`~airflow.exceptions.AirflowFailException`: a task that raises one fails at once, without its Airflow
retries (Airflow 3.3 does not consult a task's ``retry_policy`` for them either). The others keep the task's
retries.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class DifyError(AirflowException):
    """
    Base class of every error raised by this provider.

    :param message: Dify's ``message`` (or a description of what went wrong on the client side).
    :param status: the HTTP status code, ``None`` when no response was received.
    :param code: Dify's error ``code`` (``invalid_param``, ``not_found``...), ``None`` when absent.
    :param method: the HTTP method of the failed request.
    :param path: the request path relative to the API base URL, for example ``/datasets/<id>/documents``.
    :param body: the decoded error body, for callers that need more than the message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        path: str | None = None,
        body: Any = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.path = path
        self.body = body
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else "Dify request"
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        code = f" [{self.code}]" if self.code else ""
        message = self.message if self.message else "(empty message)"
        return f"{where} failed: {status}{code}: {message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments need help to survive pickling (Airflow pickles exceptions across processes).
        return (_rebuild_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_error(cls: type[DifyError], message: str, state: dict[str, Any]) -> DifyError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._describe())
    return error


class DifyConnectionError(DifyError):
    """
    The request got no HTTP response: the host is unreachable, the connection was reset or timed out.

    :param maybe_delivered: ``True`` when the request may have reached the server before the failure (a read
        timeout or a reset after sending), so repeating a non-idempotent write could duplicate it.
    """

    def __init__(self, message: str, *, maybe_delivered: bool, **kwargs: Any) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(message, **kwargs)


class DifyTLSError(DifyConnectionError):
    """The TLS handshake failed (an untrusted or expired certificate, a wrong ``ca_bundle``): never retried, since
    repeating it cannot succeed. Fix the connection's ``verify_ssl`` / ``ca_bundle`` extras or the server's
    certificate."""


class DifyAuthenticationError(DifyError, AirflowFailException):
    """HTTP 401: the API key is missing, malformed or unknown (an app key instead of a knowledge key)."""


class DifyNotFoundError(DifyError):
    """HTTP 404 with a Dify JSON body: the knowledge base, document, chunk, batch, tag or file does not exist."""


class DifyUnsupportedEndpointError(DifyError):
    """
    The server does not know this route (404 HTML page or 405): it is older than the feature used.

    The hook falls back once to the older spelling of a route when one exists.
    """


class DifyDocumentNotReadyError(DifyError):
    """
    The document exists but is not in a state that allows the call.

    Dify answers this as 404 "Document is not completed." / "Document is disabled." when chunks are added too
    early, and as 400 "Document is not available" when a document that is indexing, disabled or archived is
    updated. Wait for indexing (or enable / un-archive the document) and try again.
    """


class DifyResourceBusyError(DifyError):
    """
    A transient refusal: the resource is being indexed, deleted or locked by another metadata operation.

    The hook retries these with backoff; they reach the caller only when retries are exhausted.
    """


class DifyRateLimitError(DifyError):
    """
    The knowledge request rate limit was reached (Dify answers 403 with a rate-limit message, or 429).

    :param retry_after: seconds to wait as told by a ``Retry-After`` header, ``None`` when absent (Dify sends
        none: its window is a sliding 60 seconds).
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class DifyQuotaExceededError(DifyError, AirflowFailException):
    """HTTP 403 from billing: vector space or document count exhausted, or a feature of a paid plan."""


class DifyForbiddenError(DifyError):
    """Any other HTTP 403: API access disabled on the knowledge base, an archived document, no permission."""


class DifyConflictError(DifyError):
    """HTTP 409: a knowledge base with that name exists, or the knowledge base is in use by apps."""


class DifyValidationError(DifyError, AirflowFailException):
    """HTTP 400 (``invalid_param``, ``bad_request``, the ``{"error": ...}`` body of chunk validation...) or 415
    ``unsupported_media_type``: the request itself is wrong and repeating it will not help."""


class DifyFileRejectedError(DifyError, AirflowFailException):
    """The uploaded file was refused: too large (413), of a type the server does not accept (415), or the 400
    with an empty message that create-by-file answers for either."""


class DifyServerError(DifyError):
    """HTTP 5xx: the server (or a proxy in front of it) failed."""


class DifyInvalidResponseError(DifyError):
    """The server answered something that is not a Dify JSON response (an HTML page from a proxy, broken JSON)."""


class DifyIndexingError(DifyError):
    """
    Indexing of a document ended badly: ``error``, ``paused``, ``stopped``, stalled, or the document vanished.

    :param document_id: the id of the document that failed.
    :param indexing_status: the last indexing status seen.
    """

    def __init__(
        self,
        message: str,
        *,
        document_id: str | None = None,
        indexing_status: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.document_id = document_id
        self.indexing_status = indexing_status
        super().__init__(message, **kwargs)

    def _describe(self) -> str:
        return self.message


class DifyDocumentNotFoundError(DifyIndexingError, AirflowFailException):
    """
    A document waited on is not in the knowledge base, and no poll of the wait ever saw it: the id is wrong (or
    the document was deleted before the wait began). Waiting again on the same ids cannot succeed, so the task
    fails without its retries.
    """


class DifyIndexingTimeout(DifyIndexingError):
    """
    Indexing did not finish before the wait's deadline (the ``timeout`` of the sensor or of ``wait_for_indexing``).

    The documents may still complete later: Dify keeps indexing them after the wait gives up.
    """


class DifyDatasetNotFoundError(DifyNotFoundError):
    """
    HTTP 404 "Dataset not found.": the knowledge base named in the path does not exist (or was deleted while a
    task ran). The hook then refuses further requests to that knowledge base at once, without sending them.

    :param dataset_id: the id of the missing knowledge base (from the request path), when known.
    """

    def __init__(self, message: str, *, dataset_id: str | None = None, **kwargs: Any) -> None:
        self.dataset_id = dataset_id
        super().__init__(message, **kwargs)


class DifyPaginationError(DifyInvalidResponseError):
    """
    A paged list did not page: a page longer than the ``limit`` asked for, or one repeating only items already
    seen, without the listing being complete (servers around Dify 1.1-1.2 ignored ``page``/``limit``). Raised
    instead of paging forever; upgrade the server, or read fewer items.
    """


class DifyArgumentError(DifyError, AirflowFailException, ValueError):
    """
    A bad argument (or connection field), refused before any request is sent; repeating cannot help.

    Also a ``ValueError``, as the provider's argument checks always raised.

    :param message: what is wrong and how to fix it; starts with the argument's name.
    :param argument: the name of the argument (``dataset_id``, ``records[3].id``, ``password``...).
    """

    def __init__(self, message: str, *, argument: str, **kwargs: Any) -> None:
        self.argument = argument
        super().__init__(message, **kwargs)

    def _describe(self) -> str:
        return self.message


class DifyUploadRefusedError(DifyArgumentError, DifyFileRejectedError):
    """
    A file the provider refuses before sending it (empty, over the connection's ``upload_max_mb``, of an
    extension outside ``upload_extensions``): both a :class:`DifyFileRejectedError`, as when Dify refuses it,
    and a :class:`DifyArgumentError` naming the argument.

    :param message: what is wrong and how to fix it; starts with the argument's name.
    :param argument: the argument that gave the file.
    """
