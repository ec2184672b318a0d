"""Finding a run's documents by what it changes: exact-name lookups when they read less than the listing.

Dify's document list filters names with ``keyword`` (``LIKE '%keyword%'``); a name is looked up that way, escaped
(:func:`~airflow_provider_dify.hooks.operations.like_literal`), and matched exactly afterwards. The first list
page's ``total`` tells how many pages the listing would read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.hooks.operations import like_literal

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook

log = logging.getLogger(__name__)

#: Items per page of Dify's document list (the most it returns).
PAGE_SIZE = 100


def find_documents(
    hook: DifyHook, dataset_id: str, names: Sequence[str], *, keyword: str | None, listing: bool
) -> tuple[list[dict[str, Any]], str]:
    """
    The documents of the knowledge base that the run needs: ``(documents, how)``, ``how`` being ``listing``,
    ``lookups`` or ``empty``.

    ``listing`` (a snapshot that deletes what is missing) lists every document (``keyword``-filtered). Otherwise
    one item of the first page tells how many pages the listing would read (its ``total``); while the run's
    ``names`` are fewer, each name is looked up with the list's ``keyword`` (Dify's ``LIKE '%name%'``) and
    matched exactly. A name inside many others (``note-1`` in ``note-10``...) needs a page per 100 of them; when
    the lookups would read more than the listing, the listing is read instead, so a run never reads much more
    than the listing's pages.
    """
    if listing:
        return list(hook.iter_documents(dataset_id, keyword=keyword)), "listing"
    unique = sorted(set(names))
    probe = hook.list_documents(dataset_id, page=1, limit=1, keyword=keyword) or {}
    total = int(probe.get("total") or 0)
    if total == 0:
        return [], "empty"
    pages = math.ceil(total / PAGE_SIZE)
    if len(unique) >= pages:
        return list(hook.iter_documents(dataset_id, keyword=keyword)), "listing"
    found: list[dict[str, Any]] = []
    spent = 0
    for index, name in enumerate(unique):
        first = hook.list_documents(dataset_id, page=1, limit=PAGE_SIZE, keyword=like_literal(name)) or {}
        spent += 1
        matches = int(first.get("total") or 0)
        if matches <= PAGE_SIZE:
            found.extend(document for document in first.get("data") or [] if document.get("name") == name)
            continue
        more = math.ceil(matches / PAGE_SIZE)
        if spent + more + (len(unique) - index - 1) > pages:
            log.info("Looking names up would read more than the listing (%d pages); listing instead", pages)
            return list(hook.iter_documents(dataset_id, keyword=keyword)), "listing"
        found.extend(hook.find_documents_by_name(dataset_id, name))
        spent += more
    return found, "lookups"
