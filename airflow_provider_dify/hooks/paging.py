"""Reading Dify's paged lists safely: each item once, whatever other writers do, and never a loop.

Dify lists documents newest first and pages by offset, so a document created by anyone between two pages shifts
the later pages down (one item is seen twice), and a delete shifts them up (one item is not seen at all).
Servers around Dify 1.1-1.2 ignored ``page``/``limit`` on some lists and answered everything on every page.
:class:`PageGuard` is the bookkeeping of one listing; the hook drives it (see ``DifyHook._paginate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyInvalidResponseError, DifyPaginationError

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.operations import ApiRequest

#: Readings of one list at most: the first, and re-reads while other writers keep moving it.
MAX_PASSES = 3


class PageGuard:
    """
    The state of one paged listing: which ids were yielded, and whether the list moved while it was read.

    A pass reads page 1, 2, ... until a short page or ``page * limit >= total``. Items already yielded are not
    yielded again (a page shift by a create). When the list's ``total`` changed between pages, or a pass saw
    fewer distinct items than its last ``total``, another writer moved the list and an item may have been
    shifted out of sight (a delete): the list is read again, up to :data:`MAX_PASSES` passes, and only the items
    not yet yielded are yielded. An unchanged list costs exactly one pass.

    A page longer than the ``limit`` asked for, or a later page holding only items this pass already saw while
    the list did not move, means the server does not page: the listing ends when what was read is complete by
    the server's own ``total``, and raises :class:`~airflow_provider_dify.exceptions.DifyPaginationError`
    otherwise.

    :param page_size: the ``limit`` each request asks for.
    """

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.yielded: set[str] = set()
        self.passes = 0
        self._finished = False
        self._pass_seen: set[str] = set()
        self._pass_totals: list[int | None] = []

    def start_pass(self) -> bool:
        """Whether to read the list (again): always the first time, later only when it moved."""
        if self.passes and (self._finished or not self.moved or self.passes >= MAX_PASSES):
            return False
        self.passes += 1
        self._pass_seen = set()
        self._pass_totals = []
        return True

    @property
    def moved(self) -> bool:
        """Whether the last pass saw the list change under it (its ``total`` moved, or items went missing)."""
        totals = {total for total in self._pass_totals if total is not None}
        if len(totals) > 1:
            return True
        last = self._pass_totals[-1] if self._pass_totals else None
        return last is not None and len(self._pass_seen) < last

    def read(self, page: int, response: Mapping[str, Any], request: ApiRequest) -> tuple[list[dict], bool]:
        """
        Take one page's answer: ``(items not yielded before, whether to read the next page)``.

        :raises DifyPaginationError: the server does not page and what it answered is not the whole list.
        """
        data = response.get("data") if isinstance(response, Mapping) else None
        if data is None:
            data = []
        if not isinstance(data, list):
            raise DifyInvalidResponseError(
                f"page {page} has no 'data' list: {str(response)[:200]!r}", method=request.method, path=request.path
            )
        total = _as_int(response.get("total"))
        ids = [_item_id(item) for item in data]
        new_in_pass = {item_id for item_id in ids if item_id is not None} - self._pass_seen
        self._pass_seen |= new_in_pass
        self._pass_totals.append(total)
        fresh = self._fresh(data, ids)
        if len(data) > self.page_size:
            self._finished = True
            what = f"page {page} holds {len(data)} items, more than the limit of {self.page_size} asked for"
            self._complete_or_raise(total, request, what)
            return fresh, False
        if page > 1 and data and not new_in_pass and any(item_id is not None for item_id in ids):
            moved = len({t for t in self._pass_totals if t is not None}) > 1
            if not moved:
                self._finished = True
                self._complete_or_raise(total, request, f"page {page} repeats only items of earlier pages")
                return fresh, False
        if len(data) < self.page_size or (total is not None and page * self.page_size >= total):
            return fresh, False
        return fresh, True

    def _fresh(self, data: list[Any], ids: list[str | None]) -> list[dict]:
        fresh = []
        for item, item_id in zip(data, ids, strict=True):
            if item_id is None:
                fresh.append(item)
            elif item_id not in self.yielded:
                self.yielded.add(item_id)
                fresh.append(item)
        return fresh

    def _complete_or_raise(self, total: int | None, request: ApiRequest, what: str) -> None:
        if total is not None and len(self._pass_seen) >= total:
            return  # the server answered everything at once: a correct, complete result
        known = f"{len(self._pass_seen)} of {total}" if total is not None else f"{len(self._pass_seen)}"
        raise DifyPaginationError(
            f"the server does not page this list ({what}; {known} items read), so it cannot be read completely."
            " Servers around Dify 1.1-1.2 ignored page/limit on some lists: upgrade Dify.",
            method=request.method,
            path=request.path,
        )


def _item_id(item: Any) -> str | None:
    if isinstance(item, Mapping) and item.get("id") not in (None, ""):
        return str(item["id"])
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
