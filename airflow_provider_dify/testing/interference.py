"""
Other writers of the emulated workspace: what colleagues, other DAGs and old servers do while a task runs.

* :class:`PageWriter`: after the emulator answered a given page of a document or chunk listing, another writer
  creates and/or deletes documents (or chunks), before the client asks for the next page: a page shift, down
  for creates (Dify lists documents newest first), up for deletes.
* :class:`DatasetDeleter`: after a number of requests to a knowledge base, it is deleted, as in the console.
* :func:`page_window`: the slice of a list a page answers, or everything when the emulator plays a server that
  ignores ``page``/``limit`` (knob ``ignore_paging``).

Set them up with :meth:`DifyEmulator.write_between_pages` and :meth:`DifyEmulator.delete_dataset_after`. They
run under the emulator's lock, right after the matching request was handled.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_provider_dify.testing.exchange import Ctx, Request
    from airflow_provider_dify.testing.state import EmulatorState

Item = TypeVar("Item")

DOCUMENTS_ROUTE = "/datasets/{dataset_id}/documents"
SEGMENTS_ROUTE = "/datasets/{dataset_id}/documents/{document_id}/segments"


def page_window(ctx: Ctx, items: Sequence[Item], start: int, per_page: int) -> list[Item]:
    """The items one page answers: ``items[start:start + per_page]``, or all of them with ``ignore_paging``."""
    if getattr(ctx.config, "ignore_paging", False):
        return list(items)
    return list(items[start : start + per_page])


@dataclass
class PageWriter:
    """
    Writes between two pages of a listing.

    :param dataset_id: the knowledge base whose listing triggers it.
    :param document_id: ``None`` for the document list; a document id for its chunk list.
    :param after_page: the page whose answer triggers the writes.
    :param create: documents (or chunks) created each time, named ``name_prefix`` + a counter.
    :param delete: documents (or chunks) deleted each time, picked at random (seeded) among those whose name
        (or content) starts with ``delete_prefix``.
    :param delete_prefix: which documents or chunks may be deleted, or re-indexed (default: ``name_prefix``).
    :param reindex: documents re-queued for indexing each time, picked like deletes (as another run's update
        does: until indexed again, they answer updates with "Document is not available").
    :param times: how many listings it acts on (``None``: every one).
    :param name_prefix: the names (or contents) of what it creates.
    :param seed: the seed of the choice of deletes.
    """

    dataset_id: str
    document_id: str | None = None
    after_page: int = 1
    create: int = 0
    delete: int = 0
    delete_prefix: str | None = None
    reindex: int = 0
    times: int | None = 1
    name_prefix: str = "other-"
    seed: int | None = None
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reindexed: list[str] = field(default_factory=list)
    _counter: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def done(self) -> bool:
        """Whether it has acted as many times as asked."""
        return self.times is not None and self.times <= 0

    def matches(self, route: str | None, request: Request) -> bool:
        """Whether this answered request is the page that triggers the writes."""
        wanted = DOCUMENTS_ROUTE if self.document_id is None else SEGMENTS_ROUTE
        if request.method != "GET" or route != wanted or self.done:
            return False
        if request.params.get("dataset_id") != self.dataset_id:
            return False
        if self.document_id is not None and request.params.get("document_id") != self.document_id:
            return False
        return request.int_arg("page", 1) == self.after_page

    def act(self, state: EmulatorState, now: float) -> None:
        """Create and delete, as another client would between the two pages."""
        if self.times is not None:
            self.times -= 1
        ds = state.datasets.get(self.dataset_id)
        if ds is None:
            return
        prefix = self.name_prefix if self.delete_prefix is None else self.delete_prefix
        if self.document_id is None:
            busy = ("parsing", "cleaning", "splitting", "indexing")
            candidates = sorted(
                doc.id
                for doc in ds.documents.values()
                if doc.name.startswith(prefix) and not doc.archived and doc.phase(now) not in busy
            )
            for doc_id in self._rng.sample(candidates, min(self.delete, len(candidates))):
                state.delete_document(ds, doc_id, now)
                self.deleted.append(doc_id)
                candidates.remove(doc_id)
            for doc_id in self._rng.sample(candidates, min(self.reindex, len(candidates))):
                doc = ds.documents[doc_id]
                state.update_document(ds, doc, name=None, text=None, upload=None, values={}, now=now)
                self.reindexed.append(doc_id)
            for _ in range(self.create):
                self._counter += 1
                values = {
                    "name": f"{self.name_prefix}{self._counter}",
                    "text": f"a document another writer uploaded ({self._counter})",
                    "indexing_technique": ds.indexing_technique or "economy",
                    "process_rule": {"mode": "automatic"},
                }
                doc, _batch = state.create_text_document(ds, values, now)
                self.created.append(doc.id)
        else:
            doc = ds.documents.get(self.document_id)
            if doc is None:
                return
            candidates = sorted(seg.id for seg in doc.segments.values() if seg.content.startswith(prefix))
            for seg_id in self._rng.sample(candidates, min(self.delete, len(candidates))):
                state.delete_segment(ds, doc, doc.segments[seg_id])
                self.deleted.append(seg_id)
            items = []
            for _ in range(self.create):
                self._counter += 1
                items.append({"content": f"{self.name_prefix}{self._counter} a chunk another writer added"})
            if items:
                self.created.extend(seg.id for seg in state.add_segments(ds, doc, items, now))
        state.bump()


@dataclass
class DatasetDeleter:
    """
    Deletes a knowledge base after some requests to it, as someone would in the console while a task runs.

    :param dataset_id: the knowledge base.
    :param after: matching requests answered before it is deleted.
    :param method: only requests with this method count (``None``: any).
    :param route: only requests to this route template count (``None``: any route of the knowledge base).
    """

    dataset_id: str
    after: int = 1
    method: str | None = None
    route: str | None = None
    fired: bool = False

    def matches(self, route: str | None, request: Request) -> bool:
        """Whether this answered request counts (and the deletion is due once ``after`` reaches 0)."""
        if self.fired or request.params.get("dataset_id") != self.dataset_id:
            return False
        if self.method is not None and request.method != self.method.upper():
            return False
        if self.route is not None and route != self.route:
            return False
        self.after -= 1
        return self.after <= 0

    def act(self, state: EmulatorState, now: float) -> None:
        """Delete the knowledge base (with its documents)."""
        self.fired = True
        ds = state.datasets.get(self.dataset_id)
        if ds is not None:
            state.delete_dataset(ds)
            state.bump()


def run_interference(writers: list[Any], route: str | None, request: Request, state: EmulatorState, now: float) -> None:
    """Let each writer whose trigger this answered request is act (called by the emulator under its lock)."""
    for writer in list(writers):
        if writer.matches(route, request):
            writer.act(state, now)
