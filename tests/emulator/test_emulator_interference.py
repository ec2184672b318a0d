"""The emulator's other writers and old-server paging, seen by a plain HTTP client that pages naively."""

from __future__ import annotations

from typing import Any

from airflow_provider_dify.testing import DifyEmulator


def _page(client: Any, dataset_id: str, page: int, limit: int = 100) -> dict[str, Any]:
    answer = client.get(f"/datasets/{dataset_id}/documents", params={"page": page, "limit": limit})
    assert answer.status_code == 200
    return answer.json()


def _seed(emu: DifyEmulator, dataset_id: str, count: int, prefix: str = "doc-") -> None:
    for number in range(count):
        emu.create_document(dataset_id, f"{prefix}{number}", f"text {number}", wait=False)
    emu.complete_indexing()


def test_a_create_between_pages_shows_a_document_twice(emu: DifyEmulator, client: Any) -> None:
    dataset_id = emu.create_dataset("shift-down")["id"]
    _seed(emu, dataset_id, 120)
    writer = emu.write_between_pages(dataset_id, after_page=1, create=1)
    first, second = _page(client, dataset_id, 1), _page(client, dataset_id, 2)
    ids = [doc["id"] for doc in first["data"] + second["data"]]
    assert len(writer.created) == 1 and writer.created[0] not in ids  # newest first: it went to page 1
    assert len(ids) == 121 and len(set(ids)) == 120  # the last of page 1 came again on page 2
    assert (first["total"], second["total"]) == (120, 121)
    third = _page(client, dataset_id, 1)  # the writer acted once (times=1)
    assert third["total"] == 121


def test_a_delete_between_pages_hides_a_document(emu: DifyEmulator, client: Any) -> None:
    dataset_id = emu.create_dataset("shift-up")["id"]
    _seed(emu, dataset_id, 110)
    _seed(emu, dataset_id, 3, prefix="other-")  # newest: page 1
    writer = emu.write_between_pages(dataset_id, after_page=1, delete=2, delete_prefix="other-", seed=1)
    ids = [doc["id"] for page in (1, 2) for doc in _page(client, dataset_id, page)["data"]]
    assert len(writer.deleted) == 2
    stored = {doc["id"] for doc in emu.documents(dataset_id)}
    assert len(stored - set(ids)) == 2  # two documents that exist were never listed


def test_reindex_makes_updates_answer_not_available(emu: DifyEmulator, client: Any) -> None:
    dataset_id = emu.create_dataset("reindex")["id"]
    _seed(emu, dataset_id, 2)
    emu.configure(indexing_seconds=5)
    writer = emu.write_between_pages(dataset_id, reindex=1, delete_prefix="doc-1")
    _page(client, dataset_id, 1)
    [doc_id] = writer.reindexed
    answer = client.post(
        f"/datasets/{dataset_id}/documents/{doc_id}/update-by-text", json={"name": "doc-1", "text": "x"}
    )
    assert answer.status_code == 400 and answer.json()["message"] == "Document is not available"


def test_chunks_written_between_pages_of_the_chunk_list(emu: DifyEmulator, client: Any) -> None:
    dataset_id = emu.create_dataset("chunks")["id"]
    holder = emu.create_document(dataset_id, "holder", "header")
    path = f"/datasets/{dataset_id}/documents/{holder['id']}/segments"
    assert client.post(path, json={"segments": [{"content": f"other-{n}"} for n in range(3)]}).status_code == 200
    writer = emu.write_between_pages(dataset_id, document_id=holder["id"], create=2, delete=1, seed=3)
    client.get(path, params={"page": 1, "limit": 100})
    assert len(writer.created) == 2 and len(writer.deleted) == 1
    contents = [seg["content"] for seg in emu.segments(dataset_id, holder["id"])]
    assert len(contents) == 1 + 3 + 2 - 1


def test_ignore_paging_answers_everything_on_every_page(emu: DifyEmulator, client: Any) -> None:
    dataset_id = emu.create_dataset("old-server")["id"]
    _seed(emu, dataset_id, 30)
    emu.configure(ignore_paging=True)
    first, second = _page(client, dataset_id, 1, limit=10), _page(client, dataset_id, 2, limit=10)
    assert len(first["data"]) == len(second["data"]) == 30 == first["total"]
    assert first["has_more"] is True and first["data"] == second["data"]


def test_delete_dataset_after_some_requests(emu: DifyEmulator, client: Any) -> None:
    dataset_id = emu.create_dataset("doomed")["id"]
    emu.delete_dataset_after(dataset_id, requests=2, method="GET")
    assert client.get(f"/datasets/{dataset_id}").status_code == 200
    assert client.get(f"/datasets/{dataset_id}/documents").status_code == 200  # answered, then deleted
    gone = client.get(f"/datasets/{dataset_id}/documents")
    assert gone.status_code == 404 and gone.json()["message"].startswith("Dataset not found.")
    assert emu.find_dataset("doomed") is None
