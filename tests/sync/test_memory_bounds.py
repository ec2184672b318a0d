"""What a sync keeps per record: a bounded window of queued writes, and listed chunks reduced as they arrive."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_dify.operators.sync._chunk_sync import ListedChunk, compact_chunk, plan_chunks
from airflow_provider_dify.operators.sync._pool import completed_in_window
from airflow_provider_dify.operators.sync._records import RecordRenderer, render_all


class _CountingPool(ThreadPoolExecutor):
    """A pool that remembers how many submitted calls had not been handed back yet, at most."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers)
        self.outstanding = 0
        self.most = 0
        self.lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        return super().submit(fn, *args, **kwargs)


def test_completed_in_window_runs_every_item_with_a_bounded_queue() -> None:
    with _CountingPool(3) as pool:
        seen = []
        for item, future in completed_in_window(pool, lambda n: n * n, range(200), window=6):
            pool.outstanding -= 1
            seen.append((item, future.result()))
    assert sorted(seen) == [(n, n * n) for n in range(200)]
    assert pool.most <= 6  # never more than the window queued, however many items


def test_completed_in_window_reads_items_lazily_and_cancels_on_close() -> None:
    read: list[int] = []

    def items() -> Any:
        for n in range(1000):
            read.append(n)
            yield n

    started = threading.Event()
    release = threading.Event()

    def call(n: int) -> int:
        started.set()
        release.wait(5)
        return n

    with ThreadPoolExecutor(max_workers=1) as pool:
        completed = completed_in_window(pool, call, items(), window=4)
        release.set()
        next(completed)
        completed.close()  # what an exception in the consuming loop does
    assert started.is_set() and len(read) <= 5  # the source was not read ahead beyond the window


def test_completed_in_window_with_nothing_to_do() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert list(completed_in_window(pool, lambda n: n, [], window=4)) == []


def _listed(content: str, position: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"c{position}",
        "position": position,
        "document_id": "doc",
        "content": content,
        "answer": "",
        "word_count": 3,
        "tokens": 0,
        "keywords": ["alpha", "beta"],
        "index_node_id": "node",
        "index_node_hash": "hash",
        "hit_count": 0,
        "enabled": True,
        "status": "completed",
        "created_at": 100 + position,
        "child_chunks": [],
        **fields,
    }


def test_a_listed_chunk_keeps_only_what_the_sync_reads_and_shares_the_record_s_text() -> None:
    text = "Kettle: boils water"
    listed = json.loads(json.dumps(_listed(text, 1)))  # as an answer decodes: Dify's own copy of the text
    assert listed["content"] == text and listed["content"] is not text
    chunk = compact_chunk(listed, {text: text}, keywords=False)
    assert isinstance(chunk, ListedChunk)
    assert chunk["content"] is text  # the record's string, not a second copy
    assert dict(chunk) == {
        "id": "c1",
        "position": 1,
        "created_at": 101,
        "enabled": True,
        "status": "completed",
        "content": text,
    }
    assert chunk.get("answer") is None and chunk.get("keywords") is None and chunk.get("hit_count") is None
    with pytest.raises(KeyError):
        chunk["index_node_id"]
    with pytest.raises(AttributeError):
        chunk.content = "changed"  # type: ignore[misc]
    assert compact_chunk(listed, None, keywords=True)["keywords"] == ["alpha", "beta"]
    assert compact_chunk(_listed("x", 2, enabled=False, answer="A"), None)["enabled"] is False
    assert compact_chunk(_listed("x", 2, answer="A"), None)["answer"] == "A"
    assert compact_chunk(_listed("not a record's", 3), {text: text})["content"] == "not a record's"


def test_plans_from_compact_listings_equal_plans_from_dify_s_answers() -> None:
    rows = [{"id": 1, "t": "one"}, {"id": 2, "t": "two, changed"}, {"id": 3, "t": "three"}, {"id": 4, "t": "four"}]
    items, failures = render_all(RecordRenderer(key_field="id", text_template="{{ t }}", names=False), rows)
    assert failures == []
    listing = [
        _listed("two", 1),
        _listed("three", 2, created_at=500),
        _listed("three", 3, created_at=90),  # an older copy: it survives
        _listed("gone\n\n[key: 9]", 4),
        _listed("four", 5, enabled=False),  # disabled, same text: left as it is
        _listed("Header", 6),
    ]
    texts = {item.text: item.text for item in items}
    full = plan_chunks(items, listing, keyed=True, header="Header")
    compacted = [compact_chunk(chunk, texts, keywords=False) for chunk in listing]
    compact = plan_chunks(items, compacted, keyed=True, header="Header")

    def summary(plan: Any) -> Any:
        return (
            sorted(wanted.content for wanted in plan.add),
            sorted((wanted.content, chunk["id"], sorted(wanted.changes(chunk))) for wanted, chunk in plan.update),
            sorted(wanted.content for wanted in plan.unchanged),
            sorted(chunk["id"] for chunk in plan.delete),
            plan.copies,
            plan.kept,
        )

    assert summary(compact) == summary(full)
    assert summary(full)[3] == ["c1", "c2", "c4"]


def test_an_error_in_the_consuming_loop_cancels_what_was_not_started() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def call(n: int) -> None:
        ran.append(n)
        if n:
            gate.wait(5)  # a call the worker started meanwhile runs on until the loop has failed

    def consume(pool: ThreadPoolExecutor) -> None:
        for item, future in completed_in_window(pool, call, range(1000), window=4):
            future.result()
            raise RuntimeError(f"stop at {item}")

    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(RuntimeError, match="stop at 0"):
            consume(pool)
        gate.set()
    assert ran in ([0], [0, 1])  # the calls queued behind were cancelled (without that: [0, 1, 2, 3])
