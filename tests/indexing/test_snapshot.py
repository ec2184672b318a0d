"""The progress snapshot of a wait: bounded size, stall detection at scale, snapshots of the previous version."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.indexing import (
    FOLLOWED_DOCUMENT_LIMIT,
    SNAPSHOT_VERSION,
    check_indexing,
    evaluate_poll,
    group_snapshot,
    read_snapshot,
    record_failed_poll,
    settled_document_ids,
)
from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger
from tests.indexing.test_evaluation import BATCH, DATASET, STATUS_PATH, ScriptedHook, doc_path, entry, not_found
from tests.indexing.test_poll_planning import KnowledgeBase, details, doc_id
from tests.indexing.test_trigger import create, run_trigger

TEXT = "First paragraph about snapshots.\n\nSecond paragraph about upgrades."


def entries(count: int, statuses: list[str]) -> list[dict[str, Any]]:
    return [
        entry(doc_id(n), statuses[n], 3 if statuses[n] == "completed" else 0, name=f"doc-{n}.txt")
        for n in range(count)
    ]


def size(progress: dict[str, Any]) -> int:
    return len(json.dumps(progress))


def previous_version(documents: list[dict[str, Any]], moved_at: float, **fields: Any) -> dict[str, Any]:
    """A snapshot as the previous version wrote it: one entry per document, results of the completed ones."""
    snapshot: dict[str, Any] = {}
    for document in documents:
        info: dict[str, Any] = {
            "name": document.get("name"),
            "signature": [document["indexing_status"], document["completed_segments"], document["total_segments"]],
        }
        if document["indexing_status"] == "completed":
            info["result"] = {key: value for key, value in document.items() if key not in ("id", "name")}
        snapshot[document["id"]] = info
    return {
        "documents": snapshot,
        "moved_at": moved_at,
        "batch_missing": False,
        "failed_polls": 0,
        "document_list_pages": None,
        **fields,
    }


# -- size --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["none completed", "oldest half completed", "random half completed"])
def test_the_snapshot_of_10000_documents_is_about_the_size_of_that_of_10(pattern: str) -> None:
    rng = random.Random(14)

    def statuses(count: int) -> list[str]:
        if pattern == "none completed":
            return ["indexing"] * count
        if pattern == "oldest half completed":
            return ["completed"] * (count // 2) + ["indexing"] * (count - count // 2)
        return [rng.choice(["completed", "indexing"]) for _ in range(count)]

    small = evaluate_poll(entries(10, statuses(10)), None, now=1.0).progress
    many = statuses(10_000)
    large = evaluate_poll(entries(10_000, many), None, now=1.0).progress
    assert large["documents"] == 10_000 and small["documents"] == 10
    assert large["completed"] == many.count("completed")
    # No id and no name: counts, a digest, a time and one compressed bit per document.
    assert doc_id(1) not in json.dumps(large) and "doc-1.txt" not in json.dumps(large)
    if pattern == "random half completed":  # the worst case for the bits: 10,000 bits of noise, about 1.7 KB
        assert size(large) <= size(small) + 10_000 // 6 + 100
    else:
        assert size(large) <= size(small) + 100
    assert size(small) < 500


def test_record_failed_poll_keeps_the_snapshot_bounded() -> None:
    outcome = evaluate_poll(entries(10_000, ["indexing"] * 10_000), None, now=1.0)
    failed, fatal = record_failed_poll(outcome.progress, TimeoutError("slow"))
    assert fatal is not None  # not a DifyError: ends the wait
    assert failed["failed_polls"] == 1 and failed["digest"] == outcome.progress["digest"]
    assert size(failed) == size(outcome.progress)


def test_a_groups_snapshot_is_as_small_at_10000_documents_as_at_10_and_keeps_what_holds_for_all() -> None:
    rng = random.Random(15)
    many = [rng.choice(["completed", "indexing"]) for _ in range(10_000)]
    wait = evaluate_poll(entries(10_000, many), None, now=1.0).progress
    wait = {**wait, "batch_missing": True, "failed_polls": 2, "document_list_pages": 100}
    small = group_snapshot(evaluate_poll(entries(10, many[:10]), None, now=1.0).progress)
    group = group_snapshot(wait)
    assert group is not None and small is not None
    assert size(wait) > 1_000 and size(group) <= size(small) + 20 < 300  # no bit per document of the wait
    assert read_snapshot(group)["documents"] == 10_000  # a poll of the wait answered: a 404 is a deletion
    assert group["batch_missing"] is True and group["failed_polls"] == 2 and group["moved_at"] == 1.0
    # The wait's bits are in the order of the whole list, its listing cost is the whole list's: not the group's.
    assert group["settled"] is None and group["document_list_pages"] is None and group["completed"] == 0
    assert group_snapshot(None) is None
    assert read_snapshot(group_snapshot(record_failed_poll(None, TimeoutError("slow"))[0]))["documents"] == 0


# -- stall detection with a digest -------------------------------------------------------------------------------


def test_stall_detection_over_10000_documents_through_json() -> None:
    statuses = ["completed"] * 5_000 + ["indexing"] * 5_000
    first = evaluate_poll(entries(10_000, statuses), None, now=100.0, stall_timeout=30)
    restored = json.loads(json.dumps(first.progress))
    # One chunk of one document among 10,000 moves: the clock restarts.
    moved = entries(10_000, statuses)
    moved[7_777]["completed_segments"] = 1
    second = evaluate_poll(moved, restored, now=125.0, stall_timeout=30)
    assert second.state == "running" and second.progress["moved_at"] == 125.0
    # Nothing moves (documents given in another order): stalled once stall_timeout passed since the last move.
    third = evaluate_poll(list(reversed(moved)), json.loads(json.dumps(second.progress)), now=154.0, stall_timeout=30)
    assert third.state == "running"
    fourth = evaluate_poll(moved, third.progress, now=155.0, stall_timeout=30)
    assert fourth.state == "stalled"
    assert "no document changed status or chunk count for 30 s" in fourth.message
    assert "and 4,990 more" in fourth.message


def test_a_completed_document_read_whole_later_is_not_movement() -> None:
    # During the wait a completed document may come from the list (no chunk counts), at the end from its detail.
    first = evaluate_poll(
        [entry(doc_id(1), "completed", None, None), entry(doc_id(2), "indexing", 0)], None, now=0.0, stall_timeout=10
    )
    whole = [entry(doc_id(1), "completed", 3, 3), entry(doc_id(2), "indexing", 0)]
    second = evaluate_poll(whole, first.progress, now=11.0, stall_timeout=10)
    assert second.state == "stalled"


def test_settled_flags_follow_the_order_of_the_documents() -> None:
    ids = [doc_id(n) for n in range(20)]
    outcome = evaluate_poll(
        [entry(one, "completed" if n % 3 == 0 else "waiting", 3) for n, one in enumerate(ids)], None, now=1.0
    )
    assert settled_document_ids(outcome.progress, ids) == {one for n, one in enumerate(ids) if n % 3 == 0}
    assert outcome.progress["completed"] == 7


def test_a_failed_or_archived_document_is_not_settled() -> None:
    outcome = evaluate_poll(
        [entry(doc_id(1), "completed", 3, archived=True), entry(doc_id(2), "completed", 3)], None, now=1.0
    )
    assert outcome.state == "error"
    assert settled_document_ids(outcome.progress, [doc_id(1), doc_id(2)]) == {doc_id(2)}


def test_a_wait_without_document_ids_follows_at_most_a_bounded_number_of_batch_documents() -> None:
    few = evaluate_poll(entries(3, ["waiting"] * 3), None, now=1.0, follow_documents=True)
    assert few.progress["followed"] == [doc_id(n) for n in range(3)]
    many = FOLLOWED_DOCUMENT_LIMIT + 1
    assert evaluate_poll(entries(many, ["waiting"] * many), None, now=1.0, follow_documents=True).progress[
        "followed"
    ] is None
    assert evaluate_poll(entries(3, ["waiting"] * 3), None, now=1.0).progress["followed"] is None


# -- snapshots of the previous version and unreadable ones -------------------------------------------------------


def test_a_previous_version_snapshot_carries_stall_detection_over() -> None:
    documents = entries(3, ["completed", "indexing", "waiting"])
    old = previous_version(documents, moved_at=100.0)
    assert read_snapshot(old)["version"] == SNAPSHOT_VERSION
    same = evaluate_poll(entries(3, ["completed", "indexing", "waiting"]), old, now=125.0, stall_timeout=30)
    assert same.state == "running" and same.progress["moved_at"] == 100.0  # nothing moved since the old poll
    assert evaluate_poll(same.documents, same.progress, now=130.0, stall_timeout=30).state == "stalled"
    moved = evaluate_poll(entries(3, ["completed", "completed", "waiting"]), old, now=125.0, stall_timeout=30)
    assert moved.progress["moved_at"] == 125.0


def test_a_previous_version_snapshot_is_read_by_a_poll_and_replaced_by_a_bounded_one() -> None:
    kb = KnowledgeBase(12)
    ids = list(kb.documents)
    kb.set_status(ids[:4], "completed")
    documents = [
        {**entry(one, kb.documents[one]["indexing_status"], None, None), "name": kb.documents[one]["name"]}
        for one in ids
    ]
    old = previous_version(documents, moved_at=1.0, document_list_pages=1)
    outcome = check_indexing(kb, DATASET, document_ids=ids, progress=json.loads(json.dumps(old)), now=5.0)
    assert kb.requests() == [("list", 1)]  # the results it kept are not trusted: read again, from the list
    assert outcome.state == "running"
    assert outcome.progress["moved_at"] == 1.0  # the same progress as the old snapshot recorded
    assert outcome.progress["version"] == SNAPSHOT_VERSION and "doc-0.txt" not in json.dumps(outcome.progress)
    kb.set_status(ids, "completed")
    done = check_indexing(kb, DATASET, document_ids=ids, progress=outcome.progress, now=6.0)
    assert done.state == "success" and all(doc["total_segments"] == 2 for doc in done.documents)


def test_a_previous_version_batch_snapshot_still_follows_its_documents_after_a_404() -> None:
    old = previous_version([entry(doc_id(1), "indexing", 1)], moved_at=1.0)
    hook = ScriptedHook(
        {
            STATUS_PATH: not_found("Documents not found."),
            doc_path(doc_id(1)): {"id": doc_id(1), "name": "a.txt", "indexing_status": "completed", "segment_count": 3},
        }
    )
    outcome = check_indexing(hook, DATASET, batch=BATCH, progress=old, now=2.0)
    assert hook.sent == [STATUS_PATH, doc_path(doc_id(1))]
    assert outcome.state == "success" and outcome.documents[0]["name"] == "a.txt"


@pytest.mark.parametrize(
    "snapshot",
    [
        "not a dict",
        ["a", "list"],
        {"version": 99, "documents": 3, "digest": "x"},
        {"version": SNAPSHOT_VERSION, "documents": "many", "digest": 5, "settled": "!!not base64!!"},
        {"version": SNAPSHOT_VERSION, "documents": 2, "digest": "x", "settled": "bm90IHpsaWI=", "followed": [1]},
        {"documents": {"x": "not an entry", "y": {"signature": "nope"}}, "moved_at": "soon"},
        {"documents": [], "failed_polls": -3, "document_list_pages": "2"},
    ],
    ids=["string", "list", "unknown-version", "wrong-types", "bad-bits", "old-broken-entries", "odd-fields"],
)
def test_an_unreadable_snapshot_starts_afresh(snapshot: Any) -> None:
    kb = KnowledgeBase(3)
    ids = list(kb.documents)
    outcome = check_indexing(kb, DATASET, document_ids=ids, progress=snapshot, now=5.0)
    assert kb.requests() == details(ids)  # every document read, none taken for settled
    assert outcome.state == "running" and outcome.progress["moved_at"] == 5.0
    failed, _ = record_failed_poll(snapshot, TimeoutError("slow"))
    assert failed["failed_polls"] == 1 and failed["version"] == SNAPSHOT_VERSION


@pytest.mark.dify_emulator(indexing_seconds=0.2)
async def test_a_deferral_made_by_the_previous_version_resumes_and_keeps_its_stall_clock(
    dify_emulator: Any, dify_dataset: str
) -> None:
    dify_emulator.set_indexing_outcome("old-stall.txt", "stuck")
    stalled = create(dify_dataset, "old-stall.txt")
    seen = check_indexing(DifyHook(), dify_dataset, document_ids=[stalled["id"]])
    assert seen.state == "running"
    # The trigger's kwargs as the previous version serialized them: the stall clock started 100 s ago.
    old = previous_version(seen.documents, moved_at=time.time() - 100)
    event = await run_trigger(
        DifyIndexingTrigger(
            dify_dataset,
            document_ids=[stalled["id"]],
            poll_interval=0.05,
            stall_timeout=60,
            end_time=time.time() + 30,
            progress=old,
        )
    )
    assert event["status"] == "stalled", event
    assert "for 100 s" in event["message"]
    # And a deferral of the previous version on documents that do finish ends in success, results whole.
    done = create(dify_dataset, "old-done.txt")
    first = check_indexing(DifyHook(), dify_dataset, document_ids=[done["id"]])
    event = await run_trigger(
        DifyIndexingTrigger(
            dify_dataset,
            document_ids=[done["id"]],
            poll_interval=0.05,
            end_time=time.time() + 30,
            progress=previous_version(first.documents, moved_at=time.time()),
        )
    )
    assert event["status"] == "success", event
    assert event["documents"][0]["total_segments"] == event["documents"][0]["completed_segments"] > 0


@pytest.fixture
def dify_dataset(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("indexing-snapshot")["id"]
