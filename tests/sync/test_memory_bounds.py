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


def test_a_plan_s_deletes_and_survivors_do_not_depend_on_the_listing_order() -> None:
    rows = [{"id": n, "t": f"text {n}"} for n in range(6)]
    items, _ = render_all(RecordRenderer(key_field="id", text_template="{{ t }}", names=False), rows)
    listing = [
        *(_listed(f"text {n}", 10 + n, id=f"a{n}", created_at=50) for n in range(6)),
        *(_listed(f"text {n}", 20 + n, id=f"b{n}", created_at=40 + n) for n in range(0, 6, 2)),  # older copies
        _listed("text 1", 30, id="d1", created_at=10, enabled=False),  # oldest, but disabled: never preferred
        _listed("stale", 31, id="s1"),
        _listed("old\n\n[key: 9]", 32, id="k9"),
    ]
    plans = [
        plan_chunks(items, order, keyed=True, header="")
        for order in (listing, listing[::-1], listing[3:] + listing[:3])
    ]
    survivors = [sorted((wanted.key, chunk["id"]) for wanted, chunk in plan.update) for plan in plans]
    unchanged = [sorted(wanted.key for wanted in plan.unchanged) for plan in plans]
    deletes = [[chunk["id"] for chunk in plan.delete] for plan in plans]
    assert deletes[0] == ["a0", "a2", "a4", "s1", "d1", "k9"]  # survivor order (enabled, oldest), old forms last
    assert deletes[1] == deletes[2] == deletes[0]
    assert unchanged[0] == unchanged[1] == unchanged[2] == ["0", "1", "2", "3", "4", "5"]
    assert survivors == [[], [], []] and {plan.copies for plan in plans} == {4}


def test_written_chunks_are_key_id_pairs_shown_as_dicts_and_a_verifying_read_shares_their_ids(
    dify_emulator: Any,
) -> None:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._chunk_sync import ChunkSync, manifest_entries, reconcile

    dataset_id = dify_emulator.create_dataset("compact results")["id"]
    document_id = dify_emulator.create_document(dataset_id, "holder", "")["id"]
    rows = [{"id": f"k{n}", "t": f"chunk number {n}"} for n in range(5)]
    items, _ = render_all(RecordRenderer(key_field="id", text_template="{{ t }}", names=False), rows)
    sync = ChunkSync(DifyHook(), dataset_id, document_id, batch_size=2, texts={item.text: item.text for item in items})
    counts, result = reconcile(sync, lambda chunks: plan_chunks(items, chunks, keyed=True, header=""))
    assert (counts.add, counts.unchanged, result.passes, result.verified) == (5, 0, 2, True)
    assert all(type(entry) is tuple and len(entry) == 2 for entry in result.added)
    assert sorted(key for key, _ in result.added) == ["k0", "k1", "k2", "k3", "k4"]
    stored = {chunk["content"]: chunk["id"] for chunk in dify_emulator.segments(dataset_id, document_id)}
    assert manifest_entries(result.added) == [
        {"key": key, "id": stored[f"chunk number {key[1:]}"]} for key, _ in result.added
    ]
    listed = {chunk["id"]: chunk for chunk in sync.list_chunks()}  # a verifying read, as reconcile's second pass
    for _key, chunk_id in result.added:
        assert listed[chunk_id]["id"] is chunk_id  # the result's id string, not Dify's second copy of it
