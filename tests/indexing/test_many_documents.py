"""Waiting on many documents against the Dify emulator over HTTP: requests per poll, counted by the emulator."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyIndexingError
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.indexing import DOCUMENT_LIST_THRESHOLD, RESULT_KEYS, check_indexing, wait_for_indexing
from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger
from tests.indexing.test_trigger import run_trigger

LIST_ROUTE = "/datasets/{dataset_id}/documents"
DOCUMENT_ROUTE = "/datasets/{dataset_id}/documents/{document_id}"
TEXT = "A paragraph to index.\n\nAnother paragraph to index."


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("indexing-many")["id"]


def create_documents(dify: Any, dataset_id: str, count: int) -> list[str]:
    """Queue ``count`` documents for indexing (the oldest is indexed first); return their ids."""
    return [dify.create_document(dataset_id, f"doc-{n}.txt", TEXT, wait=False)["id"] for n in range(count)]


class RecordingHook(DifyHook):
    """The sync hook, noting which documents each answer showed ``completed``."""

    def __init__(self) -> None:
        super().__init__()
        self.completed: set[str] = set()

    def send(self, request: Any) -> Any:
        answer = super().send(request)
        items = answer.get("data") if request.operation == "list_documents" else [answer]
        self.completed.update(item["id"] for item in items if item.get("indexing_status") == "completed")
        return answer


class PollRecorder:
    """
    A fake clock for wait_for_indexing that moves the emulator's clock and, at each sleep, records the poll.

    Per poll: the documents read alone and the list pages read (the emulator's counters), and the documents
    the poll's answers showed ``completed`` (the hook's notes, so what the poll saw, whatever the clock did since).
    """

    def __init__(self, dify: Any) -> None:
        self.dify = dify
        self.hook = RecordingHook()
        self.now = 0.0
        self.seen = 0
        self.polls: list[dict[str, Any]] = []
        dify.reset_counters()

    def clock(self) -> float:
        return self.now

    def record(self) -> None:
        calls = self.dify.calls[self.seen :]
        self.seen += len(calls)
        self.polls.append(
            {
                "details": [call.path.rsplit("/", 1)[1] for call in calls if call.route == DOCUMENT_ROUTE],
                "lists": sum(1 for call in calls if call.route == LIST_ROUTE),
                "others": [call for call in calls if call.route not in (DOCUMENT_ROUTE, LIST_ROUTE)],
                "completed": set(self.hook.completed),
            }
        )
        self.hook.completed.clear()

    def sleep(self, seconds: float) -> None:
        self.record()
        self.now += seconds
        self.dify.advance_time(seconds)

    def wait(self, dataset_id: str, ids: list[str]) -> list[dict[str, Any]]:
        results = wait_for_indexing(
            self.hook, dataset_id, document_ids=ids, poll_interval=1, sleep=self.sleep, clock=self.clock
        )
        self.record()
        return results


@pytest.mark.dify_emulator(indexing_seconds=2.0)
def test_completed_documents_are_not_read_again_until_all_are(dify_emulator: Any, dataset_id: str) -> None:
    ids = create_documents(dify_emulator, dataset_id, 5)
    recorder = PollRecorder(dify_emulator)
    results = recorder.wait(dataset_id, ids)
    polls = recorder.polls
    assert len(polls) >= 10  # 5 documents, 2 s each, polled every second
    seen_completed: set[str] = set()
    for poll in polls[:-1]:
        # Each poll reads alone exactly the documents no earlier poll saw completed, in document_ids order.
        assert poll["details"] == [one for one in ids if one not in seen_completed]
        assert poll["lists"] == 0 and poll["others"] == []
        seen_completed |= poll["completed"]
    # The last poll: the documents not yet seen completed, then, all completed, the others once more for their
    # whole results (the snapshot between polls keeps only which were completed).
    last = polls[-1]
    unseen = [one for one in ids if one not in seen_completed]
    assert unseen and last["details"] == unseen + [one for one in ids if one in seen_completed]
    assert seen_completed | last["completed"] == set(ids)
    assert dify_emulator.count("GET", DOCUMENT_ROUTE) == sum(len(poll["details"]) for poll in polls)
    assert dify_emulator.count("GET", DOCUMENT_ROUTE) < len(polls) * len(ids)
    assert [result["id"] for result in results] == ids
    for result in results:
        assert tuple(result) == RESULT_KEYS
        assert result["indexing_status"] == "completed"
        assert result["completed_segments"] == result["total_segments"] > 0  # read from the detail
    assert [result["name"] for result in results] == [f"doc-{n}.txt" for n in range(5)]


@pytest.mark.dify_emulator(indexing_seconds=2.0)
def test_many_documents_are_read_from_the_paged_list(dify_emulator: Any, dataset_id: str) -> None:
    # 30 indexed documents the wait is not about, listed after the 150 newer ones.
    older = [dify_emulator.create_document(dataset_id, f"old-{n}.txt", TEXT)["id"] for n in range(30)]
    ids = create_documents(dify_emulator, dataset_id, 150)
    recorder = PollRecorder(dify_emulator)
    results = recorder.wait(dataset_id, ids)
    polls = recorder.polls
    assert len(polls) >= 150  # 150 documents, 2 s each, polled every second
    # 150 documents to read of 180 in the knowledge base: the first two pages of 100, no document alone.
    assert polls[0]["lists"] == 2 and polls[0]["details"] == []
    seen_completed: set[str] = set()
    detail_reads: Counter[str] = Counter()
    for poll in polls[:-1]:
        assert poll["others"] == []
        assert poll["lists"] <= 2  # never more pages than the list has
        assert not set(poll["details"]) & seen_completed  # a document seen completed is not read again
        if len(set(ids) - seen_completed) > DOCUMENT_LIST_THRESHOLD:
            # Many to read: the list, and no document alone while some are still indexing.
            assert poll["lists"] >= 1 and poll["details"] == []
        seen_completed |= poll["completed"]
        detail_reads.update(poll["details"])
    # The last poll, all completed: each document is read alone once for its chunk counts and indexing time.
    assert set(polls[-1]["details"]) == set(ids) and polls[-1]["others"] == []
    detail_reads.update(polls[-1]["details"])
    assert set(detail_reads) == set(ids)
    reads = dify_emulator.count("GET")
    old_reads = len(ids) * len(polls)  # every document waited on read alone at every poll, as before
    assert reads <= 2 * len(polls) + len(ids) < old_reads / 10
    assert [result["id"] for result in results] == ids
    assert all(tuple(result) == RESULT_KEYS for result in results)
    assert {result["indexing_status"] for result in results} == {"completed"}
    assert all(result["completed_segments"] == result["total_segments"] > 0 for result in results)
    assert [result["name"] for result in results] == [f"doc-{n}.txt" for n in range(150)]
    assert not set(older) & {result["id"] for result in results}


@pytest.mark.dify_emulator(indexing_seconds=2.0)
def test_a_document_deleted_while_waited_on_is_detected_on_the_list_path(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.set_indexing_outcome(lambda doc: doc["name"].startswith("doc-"), "stuck")
    ids = create_documents(dify_emulator, dataset_id, DOCUMENT_LIST_THRESHOLD + 2)
    hook = DifyHook()
    dify_emulator.reset_counters()
    first = check_indexing(hook, dataset_id, document_ids=ids)
    assert first.state == "running"
    assert dify_emulator.count("GET", LIST_ROUTE) == 1 and dify_emulator.count("GET", DOCUMENT_ROUTE) == 0
    gone = ids[3]
    hook.delete_document(dataset_id, gone)
    dify_emulator.reset_counters()
    second = check_indexing(hook, dataset_id, document_ids=ids, progress=first.progress)
    assert second.state == "error"
    assert "deleted" in second.message and gone in second.message
    # The list ended without it; its own read answered 404.
    assert dify_emulator.count("GET", LIST_ROUTE) == 1
    assert dify_emulator.count("GET", DOCUMENT_ROUTE, status=404) == dify_emulator.count("GET", DOCUMENT_ROUTE) == 1
    with pytest.raises(DifyIndexingError, match="deleted") as caught:
        second.raise_for_state()
    assert caught.value.document_id == gone


@pytest.mark.dify_emulator(indexing_seconds=0.05)
async def test_the_trigger_reads_many_documents_from_the_list(dify_emulator: Any, dataset_id: str) -> None:
    ids = create_documents(dify_emulator, dataset_id, 3 * DOCUMENT_LIST_THRESHOLD)
    dify_emulator.reset_counters()
    event = await run_trigger(
        DifyIndexingTrigger(dataset_id, document_ids=ids, poll_interval=0.05, end_time=time.time() + 30)
    )
    assert event["status"] == "success", event
    # More documents than an event names: the counts cover them all, none is worth naming.
    assert event["counts"]["documents"] == event["counts"]["completed"] == len(ids)
    assert event["counts"]["chunks"] > 0 and event["counts"]["failed"] == event["counts"]["unfinished"] == 0
    assert event["documents"] == [] and event["truncated"] is True
    first = dify_emulator.calls[0]
    assert (first.method, first.route) == ("GET", LIST_ROUTE)  # 30 unfinished documents: the list, not 30 reads
    # Each document is read alone once all completed (for its chunk counts); not 30 reads a poll.
    assert len(ids) <= dify_emulator.count("GET", DOCUMENT_ROUTE) < 2 * len(ids)
    assert dify_emulator.write_count() == 0
