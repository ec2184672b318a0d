"""The indexing queue's entries and the outcome rules tests set for documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_dify.testing.models import (
    Document,
)


@dataclass
class Job:
    """
    A document waiting in (or taken from) the indexing queue.

    :param doc: the document.
    :param gen: the document's generation when queued (a re-queue makes older jobs stale).
    :param enqueued_at: when it was queued.
    """

    doc: Document
    gen: int
    enqueued_at: float


@dataclass
class OutcomeRule:
    """
    A rule that decides how the indexing of matching documents ends (see ``set_indexing_outcome``).

    :param match: a document name or a predicate.
    :param outcome: ``error``, ``stall``, ``stuck`` or ``paused``.
    :param error: the error text of ``error``.
    :param remaining: documents left to apply it to (``None``: unlimited).
    """

    match: str | Callable[[dict[str, Any]], bool]
    outcome: str
    error: str
    remaining: int | None
