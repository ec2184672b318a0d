"""Knobs of the Dify emulator."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Extensions Dify accepts with its default ETL (``ETL_TYPE=dify``).
DEFAULT_EXTENSIONS: tuple[str, ...] = (
    "txt",
    "markdown",
    "md",
    "mdx",
    "pdf",
    "html",
    "htm",
    "xlsx",
    "xls",
    "docx",
    "csv",
    "vtt",
    "properties",
)

SERVER_VERSIONS = ("1.13", "1.16")


@dataclass
class EmulatorConfig:
    """
    Knobs of a :class:`~airflow_provider_dify.testing.DifyEmulator`; all of them can be changed at runtime
    with ``DifyEmulator.configure(...)``.

    :param api_key: the dataset API key; ``None`` generates ``dataset-<random hex>`` per instance.
    :param host: interface to listen on.
    :param port: TCP port; 0 picks a free one.
    :param server_version: ``"1.16"`` (default: ``PATCH /documents/{id}``, working tags, the legacy
        ``upload-file`` route) or ``"1.13"`` (405 on that PATCH, 404 page on ``upload-file``, the tag
        ``binding_count`` bug, unbinding by ``tag_id`` only), as the recorded 1.13.2 server does.
    :param indexing_seconds: time one document takes once the indexing queue picks it up.
    :param queue_pickup_seconds: delay between a document's creation and the earliest moment the queue
        picks it.
    :param status_change_seconds: after enable or disable, further status changes of the document answer
        400 ``invalid_action`` "... is being indexed, please try again later" for this long.
    :param rate_limit_per_minute: requests allowed per window on rate-limited routes; ``None``: no limit.
    :param rate_limit_window_seconds: length of the sliding window of the rate limit.
    :param document_limit: documents allowed in the workspace; ``None`` is unlimited.
    :param sandbox_plan: answer the Sandbox-plan 403 to chunk and child-chunk create, update and delete.
    :param upload_limit_bytes: largest accepted upload.
    :param allowed_extensions: accepted file extensions (lower case, no dot).
    :param max_segments_per_request: chunks allowed in one add-segments call; 0 is unlimited.
    :param embedding_available: pretend a default embedding model exists: ``high_quality`` datasets and
        semantic/full-text/hybrid search then work (with a word-overlap score), and the model list shows it.
    :param keyword_case_sensitive: keyword search matches case-sensitively, like Dify's economy index.
    :param fault_rate: share of requests answered with a random status of ``fault_statuses`` (before
        processing).
    :param fault_statuses: statuses used by ``fault_rate``.
    :param reset_rate: share of requests whose connection is reset without an answer (before processing).
    :param latency_seconds: delay added to every request.
    :param seed: seed of the random generator used by ``fault_rate`` and ``reset_rate``.
    :param ignore_paging: answer every item of the document, chunk and child-chunk lists on every page,
        whatever ``page`` and ``limit`` ask, as servers around Dify 1.1-1.2 did (langgenius/dify issues 16588,
        17814); ``has_more`` is then true whenever more items exist than the ``limit`` asked for.
    """

    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    server_version: str = "1.16"
    indexing_seconds: float = 0.3
    queue_pickup_seconds: float = 0.05
    status_change_seconds: float = 0.5
    rate_limit_per_minute: int | None = None
    rate_limit_window_seconds: float = 60.0
    document_limit: int | None = None
    sandbox_plan: bool = False
    upload_limit_bytes: int = 15 * 1024 * 1024
    allowed_extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    max_segments_per_request: int = 0
    embedding_available: bool = False
    keyword_case_sensitive: bool = True
    fault_rate: float = 0.0
    fault_statuses: tuple[int, ...] = (500, 502, 503)
    reset_rate: float = 0.0
    latency_seconds: float = 0.0
    seed: int | None = None
    ignore_paging: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def knob_names(cls) -> list[str]:
        """Names of the public knobs."""
        return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]

    @property
    def version_tuple(self) -> tuple[int, int]:
        """``server_version`` as ``(major, minor)``."""
        parts = str(self.server_version).split(".")
        try:
            return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        except ValueError as exc:
            raise ValueError(
                f"server_version must look like '1.13' or '1.16', not {self.server_version!r}"
            ) from exc

    def validate(self) -> None:
        """Check the knob values; raise ``ValueError`` on a bad one."""
        _ = self.version_tuple
        for name in ("indexing_seconds", "queue_pickup_seconds", "status_change_seconds", "latency_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("fault_rate", "reset_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 0:
            raise ValueError("rate_limit_per_minute must be >= 0 or None")
        if self.rate_limit_window_seconds <= 0:
            raise ValueError("rate_limit_window_seconds must be > 0")
        self.allowed_extensions = tuple(ext.lower().lstrip(".") for ext in self.allowed_extensions)
        self.fault_statuses = tuple(int(status) for status in self.fault_statuses)

    def copy(self, **changes: Any) -> EmulatorConfig:
        """A copy with some knobs changed (validated)."""
        unknown = set(changes) - set(self.knob_names())
        if unknown:
            raise TypeError(f"unknown emulator knob(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)
