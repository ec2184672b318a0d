"""
What passes between the emulator's server and its route handlers: the parsed :class:`Request`, the
:class:`Response` a handler returns, and the :class:`Ctx` it is called with.

Kept apart from :mod:`~airflow_provider_dify.testing.routes` so that the modules the handlers use
(:mod:`~airflow_provider_dify.testing.interference`, :mod:`~airflow_provider_dify.testing.pipeline`) need not
import the route table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.testing.errors import ApiError

if TYPE_CHECKING:
    from airflow_provider_dify.testing.config import EmulatorConfig
    from airflow_provider_dify.testing.models import Dataset, Document
    from airflow_provider_dify.testing.multipart import Part
    from airflow_provider_dify.testing.state import EmulatorState

JSON = "application/json"

@dataclass
class Request:
    """
    A parsed HTTP request.

    :param method: HTTP method.
    :param path: URL path (without the query string).
    :param query: query parameters (every value of repeated keys).
    :param headers: request headers (case-insensitive mapping).
    :param body: the raw body (empty for multipart requests).
    :param parts: multipart parts, when the body was ``multipart/form-data``.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    parts: list[Part] | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def int_arg(self, name: str, default: int) -> int:
        """A query parameter as an integer; the default when absent or not a number."""
        try:
            return int(self.arg(name) or default)
        except ValueError:
            return default

    def json(self, *, silent: bool = False) -> Any:
        """The JSON body, with Flask's answers to a wrong content type (415) or broken JSON (400)."""
        ctype = self.content_type
        if not (ctype == JSON or (ctype.startswith("application/") and ctype.endswith("+json"))):
            if silent:
                return None
            raise ApiError(
                415,
                "unsupported_media_type",
                "Did not attempt to load JSON data because the request Content-Type was not "
                "'application/json'.",
            )
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            if silent:
                return None
            message = f"Failed to decode JSON object: {exc}"
            if message == "Failed to decode JSON object: Expecting value: line 1 column 1 (char 0)":
                message = "Invalid JSON payload received or JSON payload is empty."
            raise ApiError(400, "bad_request", message) from exc

    def payload(self) -> dict[str, Any]:
        """The JSON body as a dict (``{}`` for ``null``)."""
        data = self.json()
        return data if data is not None else {}


@dataclass
class Response:
    """
    An answer: status, JSON body (or raw bytes/str) and headers.

    :param status: HTTP status.
    :param body: a JSON-able value; ``bytes``/``str`` are sent as they are; ``None`` sends an empty body.
    :param content_type: the Content-Type header.
    :param headers: extra headers.
    """

    status: int
    body: Any = None
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The body's bytes."""
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str) and self.content_type != JSON:
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def ok(body: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(status, body)


def no_content() -> Response:
    """204 with an empty body but a JSON content type, as Dify answers deletes."""
    return Response(204, None)


@dataclass
class Ctx:
    """
    Everything a handler needs.

    :param req: the request.
    :param state: the emulator's state (its lock is held).
    :param config: the emulator's knobs.
    :param now: the time of the request (emulator clock).
    :param base_url: the API base URL (``.../v1``), for signed file URLs.
    :param ds: the dataset named by the path, if any.
    """

    req: Request
    state: EmulatorState
    config: EmulatorConfig
    now: float
    base_url: str
    ds: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        """The dataset named by the path (checked by the dispatcher)."""
        assert self.ds is not None
        return self.ds

    def doc(self, message: str = "Document not found.") -> Document:
        """The document named by the path."""
        return self.state.get_document(self.dataset, self.req.params["document_id"], message)

    @property
    def version(self) -> tuple[int, int]:
        """The emulated server version."""
        return self.config.version_tuple

    @property
    def newest(self) -> bool:
        """Answer in the shapes of Dify 1.16.1 (``server_version`` 1.16 and later)."""
        return self.version >= (1, 16)
