"""The one rule that picks which of several copies survives: the same answer in every run, however many overlap.

Two documents of one name, or two chunks of one record, are copies. Every run that finds copies keeps the one
with the smallest :func:`survivor_key` (the oldest by ``created_at``, then the lower ``position``, then the
smaller id) and removes the others, so two runs never remove different copies and lose both. Dify's times are
whole seconds, so copies made together tie on ``created_at``; ``position`` (Dify numbers documents, and the
chunks of a document, in the order they were added) then still names the oldest, which is also the copy
Dify's same-name upsert reuses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

Item = TypeVar("Item", bound=Mapping[str, Any])


def survivor_key(item: Mapping[str, Any]) -> tuple[float, float, str]:
    """
    The sort key of the copy rule: ``(created_at, position, id)``; the smallest key survives.

    A missing or unreadable ``created_at`` or ``position`` sorts last (a copy whose age is unknown never wins
    over a known one).
    """
    return _number(item.get("created_at")), _number(item.get("position")), str(item.get("id") or "")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(number) else number


def pick_survivor(copies: Iterable[Item]) -> tuple[Item | None, list[Item]]:
    """``(the survivor, the other copies)`` by :func:`survivor_key`; ``(None, [])`` for no copies."""
    ordered = sorted(copies, key=survivor_key)
    if not ordered:
        return None, []
    return ordered[0], ordered[1:]


def usable_document(document: Mapping[str, Any]) -> bool:
    """Whether a document can be written: enabled and not archived (Dify's upsert reuses only enabled ones)."""
    return bool(document.get("enabled", True)) and not document.get("archived")


def document_survivor(documents: Iterable[Item]) -> tuple[Item | None, list[Item]]:
    """
    The survivor among documents of one name: by :func:`survivor_key` among the usable ones (enabled, not
    archived), or among all of them when none is usable; the others are the extra copies.
    """
    documents = list(documents)
    usable = [document for document in documents if usable_document(document)]
    survivor, _ = pick_survivor(usable or documents)
    return survivor, [document for document in documents if document is not survivor]
