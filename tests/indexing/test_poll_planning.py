"""Unit tests of how a poll reads many documents: completed ones are kept, the rest come from the paged list."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyIndexingError, DifyNotFoundError
from airflow_provider_dify.hooks.indexing import (
    DOCUMENT_LIST_THRESHOLD,
    RESULT_KEYS,
    PollOutcome,
    acheck_indexing,
    check_indexing,
)

DATASET = "96d82e49-408d-46ea-b2ac-169fd6a21cc3"


def doc_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


class KnowledgeBase:
    """
    A scripted knowledge base behind a hook: answers the document list (newest first, paged) and document details.

    Records each request as ``("list", page)`` or ``("detail", document_id)``.
    """

    def __init__(self, count: int) -> None:
        # Document 0 is the oldest; the list shows the newest first.
        self.documents: dict[str, dict[str, Any]] = {
            doc_id(number): {"id": doc_id(number), "name": f"doc-{number}.txt", "indexing_status": "waiting"}
            for number in range(count)
        }
        self.hidden_from_list: set[str] = set()
        self.sent: list[tuple[str, Any]] = []

    def set_status(self, ids: list[str], status: str, **fields: Any) -> None:
        for one in ids:
            self.documents[one].update(indexing_status=status, **fields)

    def delete(self, one: str) -> None:
        del self.documents[one]

    def _list_item(self, document: dict[str, Any]) -> dict[str, Any]:
        status = document["indexing_status"]
        return {
            "id": document["id"],
            "name": document["name"],
            "indexing_status": status,
            "display_status": document.get("display_status") or ("available" if status == "completed" else "indexing"),
            "error": document.get("error"),
            "enabled": True,
            "archived": document.get("archived", False),
            "word_count": 12,
        }

    def send(self, request: Any) -> Any:
        prefix = f"/datasets/{DATASET}/documents"
        assert request.method == "GET" and request.path.startswith(prefix), request
        if request.path == prefix:
            params = dict(request.params)
            page, limit = int(params["page"]), int(params["limit"])
            self.sent.append(("list", page))
            listed = [doc for doc in reversed(self.documents.values()) if doc["id"] not in self.hidden_from_list]
            data = [self._list_item(doc) for doc in listed[(page - 1) * limit : page * limit]]
            return {"data": data, "has_more": len(data) == limit, "limit": limit, "total": len(listed), "page": page}
        one = request.path.rsplit("/", 1)[1]
        self.sent.append(("detail", one))
        if one not in self.documents:
            raise DifyNotFoundError("Document Not Exists.", status=404, code="not_found")
        document = self.documents[one]
        return {**self._list_item(document), "segment_count": 2, "indexing_latency": 1.5}

    def requests(self) -> list[tuple[str, Any]]:
        sent, self.sent = self.sent, []
        return sent


def poll(kb: KnowledgeBase, ids: list[str], previous: PollOutcome | None = None) -> PollOutcome:
    """One poll; the progress goes through JSON as a trigger's or the task state store's would."""
    progress = json.loads(json.dumps(previous.progress)) if previous else None
    return check_indexing(kb, DATASET, document_ids=ids, progress=progress, now=1.0)


def details(ids: list[str]) -> list[tuple[str, str]]:
    return [("detail", one) for one in ids]


def test_completed_documents_are_not_read_again_until_all_are() -> None:
    kb = KnowledgeBase(3)
    ids = [doc_id(0), doc_id(1), doc_id(2)]
    kb.set_status([doc_id(0)], "completed")
    first = poll(kb, ids)
    assert kb.requests() == details(ids)
    kb.set_status([doc_id(1)], "completed")
    second = poll(kb, ids, first)
    assert kb.requests() == details([doc_id(1), doc_id(2)])
    kb.set_status([doc_id(2)], "completed")
    third = poll(kb, ids, second)
    # All completed: those completed earlier are read once more, for their whole results (the snapshot keeps
    # only that they were completed).
    assert kb.requests() == details([doc_id(2)]) + details([doc_id(0), doc_id(1)])
    assert third.state == "success"
    # The results are whole, in the order of document_ids.
    assert third.documents == [first.documents[0], second.documents[1], third.documents[2]]
    assert [doc["id"] for doc in third.documents] == ids
    assert third.documents[0] == {
        "id": doc_id(0),
        "name": "doc-0.txt",
        "indexing_status": "completed",
        "completed_segments": 2,
        "total_segments": 2,
        "error": None,
        "enabled": True,
        "archived": False,
        "indexing_seconds": 1.5,
    }


def test_up_to_the_threshold_documents_are_read_one_by_one() -> None:
    kb = KnowledgeBase(DOCUMENT_LIST_THRESHOLD)
    ids = list(kb.documents)
    poll(kb, ids)
    assert kb.requests() == details(ids)


def test_above_the_threshold_documents_are_read_from_the_list() -> None:
    kb = KnowledgeBase(DOCUMENT_LIST_THRESHOLD + 1)
    ids = list(kb.documents)
    outcome = poll(kb, ids)
    assert kb.requests() == [("list", 1)]
    assert outcome.state == "running"
    assert [doc["id"] for doc in outcome.documents] == ids
    assert [doc["name"] for doc in outcome.documents] == [f"doc-{n}.txt" for n in range(len(ids))]


def test_the_list_is_paged_until_every_document_was_seen() -> None:
    kb = KnowledgeBase(450)  # pages of 100, newest first: document n is on page (449 - n) // 100 + 1
    ids = [doc_id(n) for n in range(230, 449, 3)]  # on pages 1 to 3
    outcome = poll(kb, ids)
    assert kb.requests() == [("list", 1), ("list", 2), ("list", 3)]
    assert {doc["indexing_status"] for doc in outcome.documents} == {"waiting"}
    assert outcome.progress["document_list_pages"] == 3


def test_documents_the_list_shows_completed_are_read_alone_once_when_all_are() -> None:
    kb = KnowledgeBase(20)
    ids = list(kb.documents)
    kb.set_status(ids[:8], "completed")
    first = poll(kb, ids)
    assert kb.requests() == [("list", 1)]  # 12 still indexing: no document read alone yet
    assert first.state == "running"
    for document in first.documents:
        assert tuple(document) == RESULT_KEYS
        assert document["enabled"] is True and document["archived"] is False
    # From the list: no chunk counts nor indexing time, unknown rather than made up.
    assert all(doc["total_segments"] is None and doc["indexing_seconds"] is None for doc in first.documents)
    kb.set_status(ids, "completed")
    second = poll(kb, ids, first)
    # The 12 not yet seen completed from the list; then, all completed, every document alone, once, in order.
    assert kb.requests() == [("list", 1), *details(ids)]
    assert second.state == "success"
    # Completed: chunk counts and indexing time from the detail, as when every document was read alone.
    assert all(doc["completed_segments"] == doc["total_segments"] == 2 for doc in second.documents)
    assert all(doc["indexing_seconds"] == 1.5 for doc in second.documents)
    assert [doc["name"] for doc in second.documents] == [f"doc-{n}.txt" for n in range(20)]


def test_a_document_absent_from_the_whole_list_is_read_alone_and_404_means_deleted() -> None:
    kb = KnowledgeBase(30)
    ids = list(kb.documents)[:15]
    gone = ids[4]
    kb.delete(gone)
    outcome = poll(kb, ids)
    assert kb.requests() == [("list", 1), ("detail", gone)]  # one page: the list ends at 29 documents
    assert outcome.state == "error"
    assert "deleted" in outcome.message and gone in outcome.message
    assert [doc["indexing_status"] for doc in outcome.documents].count("deleted") == 1


def test_a_document_the_list_did_not_show_is_not_taken_for_deleted() -> None:
    # A deletion elsewhere can shift a document to a page already read: its detail settles it.
    kb = KnowledgeBase(30)
    ids = list(kb.documents)[:15]
    kb.hidden_from_list.add(ids[0])
    outcome = poll(kb, ids)
    assert kb.requests() == [("list", 1), ("detail", ids[0])]
    assert outcome.state == "running"
    assert outcome.documents[0]["indexing_status"] == "waiting"


def test_paused_and_archived_documents_are_seen_in_the_list() -> None:
    kb = KnowledgeBase(12)
    ids = list(kb.documents)
    kb.documents[ids[3]]["display_status"] = "paused"
    outcome = poll(kb, ids)
    assert outcome.state == "error" and "paused" in outcome.message and ids[3] in outcome.message
    kb.documents[ids[3]]["display_status"] = None
    kb.set_status(ids, "completed")
    kb.documents[ids[5]]["archived"] = True
    outcome = poll(kb, ids)
    assert outcome.state == "error" and "archived" in outcome.message and ids[5] in outcome.message


def test_listing_gives_up_after_as_many_pages_as_documents_and_later_polls_read_them_alone() -> None:
    kb = KnowledgeBase(3000)
    ids = [doc_id(n) for n in range(DOCUMENT_LIST_THRESHOLD + 1)]  # the oldest: on the last of 30 pages
    first = poll(kb, ids)
    pages = len(ids)
    assert kb.requests() == [("list", page) for page in range(1, pages + 1)] + details(ids)
    assert first.progress["document_list_pages"] == pages
    poll(kb, ids, first)
    assert kb.requests() == details(ids)  # the list costs more than reading the documents


def test_later_polls_list_only_while_it_costs_fewer_requests() -> None:
    kb = KnowledgeBase(60)
    ids = list(kb.documents)
    outcome = poll(kb, ids)
    assert kb.requests() == [("list", 1)]
    kb.set_status(ids[:-2], "completed")
    outcome = poll(kb, ids, outcome)
    assert kb.requests() == [("list", 1)]  # the newly completed are not read alone while others index
    outcome = poll(kb, ids, outcome)
    assert kb.requests() == [("list", 1)]  # two documents left: one page is cheaper than two reads
    kb.set_status([ids[-2]], "completed")
    outcome = poll(kb, ids, outcome)
    assert kb.requests() == [("list", 1)]  # the previous poll left two documents to read
    outcome = poll(kb, ids, outcome)
    assert kb.requests() == [("detail", ids[-1])]  # one document left: one read either way, the detail says more
    kb.set_status([ids[-1]], "completed")
    outcome = poll(kb, ids, outcome)
    # The last one completed: every other document is read alone once, for its whole result.
    assert kb.requests() == [("detail", ids[-1]), *details(ids[:-1])]
    assert outcome.state == "success"
    assert all(doc["total_segments"] == 2 for doc in outcome.documents)  # read from the detail


class AsyncKnowledgeBase:
    """The async face of a :class:`KnowledgeBase`, as the trigger's hook."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    async def send(self, request: Any) -> Any:
        return self.kb.send(request)


async def test_sync_and_async_checks_send_the_same_requests_and_judge_alike() -> None:
    outcomes = {}
    sent = {}
    for mode in ("sync", "async"):
        kb = KnowledgeBase(150)
        ids = list(kb.documents)
        kb.set_status(ids[:40], "completed")
        kb.delete(ids[7])
        if mode == "sync":
            outcomes[mode] = check_indexing(kb, DATASET, document_ids=ids, now=1.0)
        else:
            outcomes[mode] = await acheck_indexing(AsyncKnowledgeBase(kb), DATASET, document_ids=ids, now=1.0)
        sent[mode] = kb.requests()
    # Pages 1 and 2 (150 documents), then the deleted one, which the list did not show.
    assert sent["sync"] == sent["async"] == [("list", 1), ("list", 2), ("detail", ids[7])]
    assert outcomes["sync"] == outcomes["async"]
    assert outcomes["sync"].state == "error" and doc_id(7) in outcomes["sync"].message


@pytest.mark.parametrize("answer", [None, {"data": "nope"}, ["a list"]])
def test_a_malformed_list_page_fails_clearly(answer: Any) -> None:
    class Broken(KnowledgeBase):
        def send(self, request: Any) -> Any:
            return answer if request.path.endswith("/documents") else super().send(request)

    kb = Broken(12)
    with pytest.raises(DifyIndexingError, match="has no 'data' list"):
        poll(kb, list(kb.documents))
