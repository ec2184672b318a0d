"""Datasets, documents, indexing and chunks: the state machine of the emulator."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
import requests

from airflow_provider_dify.testing import DifyEmulator

TEXT = "First paragraph about apples.\n\nSecond paragraph about pears."


def _wait_status(client, dataset_id: str, batch: str, wanted: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        entry = client.get(f"/datasets/{dataset_id}/documents/{batch}/indexing-status").json()["data"][0]
        if entry["indexing_status"] == wanted or time.monotonic() > deadline:
            return entry
        time.sleep(0.01)


# ------------------------------------------------------------------ datasets


def test_dataset_pagination_and_shapes(client) -> None:
    for index in range(5):
        client.dataset(f"kb-{index}")
    page = client.get("/datasets", params={"page": 1, "limit": 2}).json()
    assert [d["name"] for d in page["data"]] == ["kb-4", "kb-3"]  # newest first
    assert page["has_more"] is True and page["total"] == 5 and page["limit"] == 2
    last = client.get("/datasets", params={"page": 3, "limit": 2}).json()
    assert len(last["data"]) == 1 and last["has_more"] is False
    assert client.get("/datasets", params={"limit": 101}).json()["limit"] == 101
    zero = client.get("/datasets", params={"page": 0}).json()
    assert zero["page"] == 0 and len(zero["data"]) == 5
    assert client.get("/datasets", params={"keyword": "KB-3"}).json()["total"] == 1


def test_dataset_duplicate_name_and_views(client) -> None:
    dataset_id = client.dataset("same")
    response = client.post("/datasets", json={"name": "same"})
    assert response.status_code == 409
    assert response.json()["code"] == "dataset_name_duplicate"
    detail = client.get(f"/datasets/{dataset_id}").json()
    assert detail["retrieval_model_dict"]["search_method"] == "keyword_search"
    assert detail["embedding_available"] is True
    listed = client.get("/datasets").json()["data"][0]
    assert listed["retrieval_model_dict"]["search_method"] == "semantic_search"
    patched = client.patch(f"/datasets/{dataset_id}", json={"description": "new"}).json()
    assert patched["description"] == "new" and patched["name"] == "same"
    assert patched["partial_member_list"] == [] and patched["embedding_available"] is None
    assert "partial_member_list" not in detail


def test_high_quality_needs_an_embedding_model(client, emu: DifyEmulator) -> None:
    response = client.post("/datasets", json={"name": "hq", "indexing_technique": "high_quality"})
    assert response.status_code == 400
    assert response.json()["message"] == "Default model not found for text-embedding"
    assert client.get("/workspaces/current/models/model-types/text-embedding").json() == {"data": []}
    emu.configure(embedding_available=True)
    response = client.post("/datasets", json={"name": "hq", "indexing_technique": "high_quality"})
    assert response.status_code == 200
    assert response.json()["embedding_model"]
    models = client.get("/workspaces/current/models/model-types/text-embedding").json()["data"]
    assert models[0]["models"][0]["model"] == response.json()["embedding_model"]


def test_dataset_api_switch(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    emu.set_dataset_api_enabled(dataset_id, False)
    response = client.get(f"/datasets/{dataset_id}/documents")
    assert response.status_code == 403
    assert response.json()["message"] == "Dataset api access is not enabled."


# ------------------------------------------------------------------ documents and indexing


def test_indexing_goes_through_every_phase(client, emu: DifyEmulator) -> None:
    emu.configure(indexing_seconds=0.6, queue_pickup_seconds=0.0)
    dataset_id = client.dataset()
    text = "\n\n".join(f"Paragraph {i} " + "word " * 450 for i in range(6))
    created = client.text_document(dataset_id, "long.txt", text)
    assert created["document"]["indexing_status"] == "waiting"
    assert created["document"]["display_status"] == "queuing"
    seen = []
    progress = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entry = client.get(f"/datasets/{dataset_id}/documents/{created['batch']}/indexing-status").json()[
            "data"
        ][0]
        if not seen or seen[-1] != entry["indexing_status"]:
            seen.append(entry["indexing_status"])
        if entry["indexing_status"] == "indexing":
            progress.add(entry["completed_segments"])
        if entry["indexing_status"] == "completed":
            break
        time.sleep(0.005)
    assert seen[-1] == "completed"
    order = ["waiting", "parsing", "cleaning", "splitting", "indexing", "completed"]
    assert seen == [s for s in order if s in seen] and "indexing" in seen
    assert entry["total_segments"] == entry["completed_segments"] >= 3
    assert len(progress) >= 2  # segments complete one after the other during "indexing"
    document = client.get(f"/datasets/{dataset_id}/documents/{created['document']['id']}").json()
    assert document["display_status"] == "available" and document["segment_count"] == entry["total_segments"]


def test_indexing_queue_runs_one_document_at_a_time(client, emu: DifyEmulator) -> None:
    emu.configure(indexing_seconds=0.3, queue_pickup_seconds=0.0)
    dataset_id = client.dataset()
    batches = [client.text_document(dataset_id, f"doc-{i}.txt", TEXT)["batch"] for i in range(3)]
    busy_max = 0
    deadline = time.monotonic() + 10
    finished: dict[str, float] = {}
    while len(finished) < 3 and time.monotonic() < deadline:
        snapshot = emu.documents(dataset_id)  # one consistent view of all documents
        statuses = [doc["indexing_status"] for doc in snapshot]
        for doc in snapshot:
            if doc["indexing_status"] == "completed":
                finished.setdefault(doc["batch"], time.monotonic())
        busy_max = max(busy_max, sum(s in ("parsing", "cleaning", "splitting", "indexing") for s in statuses))
        time.sleep(0.01)
    assert len(finished) == 3 and busy_max == 1
    times = [finished[b] for b in batches]
    assert times == sorted(times)
    assert times[2] - times[0] >= 0.45  # two more documents of 0.3 s each after the first


def test_same_name_create_reuses_the_document(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    first = client.text_document(dataset_id, "faq.md", "Refunds take 5 days.")
    second = client.text_document(dataset_id, "faq.md", "Refunds take 7 days.")
    assert second["document"]["id"] == first["document"]["id"]
    assert second["batch"] != first["batch"]
    response = client.get(f"/datasets/{dataset_id}/documents/{first['batch']}/indexing-status")
    assert response.status_code == 404 and response.json()["message"] == "Documents not found."
    assert client.get(f"/datasets/{dataset_id}/documents").json()["total"] == 1
    emu.complete_indexing()
    segments = emu.segments(dataset_id, first["document"]["id"])
    assert [s["content"] for s in segments] == ["Refunds take 7 days."]


def test_same_name_file_upsert_unless_duplicate_false(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    url = f"/datasets/{dataset_id}/document/create-by-file"
    data = {"data": '{"indexing_technique": "economy", "process_rule": {"mode": "automatic"}}'}
    first = client.post(url, data=data, files={"file": ("a.txt", b"one")}).json()
    second = client.post(url, data=data, files={"file": ("a.txt", b"two")}).json()
    assert first["document"]["id"] == second["document"]["id"]
    data = {"data": '{"process_rule": {"mode": "automatic"}, "duplicate": false}'}
    third = client.post(url, data=data, files={"file": ("a.txt", b"three")}).json()
    assert third["document"]["id"] != first["document"]["id"]
    assert third["document"]["position"] == 2


def test_create_without_indexing_technique_is_the_real_500(client) -> None:
    response = client.post("/datasets", json={"name": "bare"})
    dataset_id = response.json()["id"]
    body = {"name": "a.txt", "text": "hello", "process_rule": {"mode": "automatic"}}
    response = client.post(f"/datasets/{dataset_id}/document/create-by-text", json=body)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error", "code": "unknown", "status": 500}


def test_missing_dataset_message_has_the_did_you_mean_tail(client) -> None:
    missing = "e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"
    body = {"name": "x", "text": "y", "indexing_technique": "economy"}
    message = client.post(f"/datasets/{missing}/document/create-by-text", json=body).json()["message"]
    assert message.startswith("Dataset not found. You have requested this URI")
    assert message.endswith("/v1/datasets/<uuid:dataset_id>/document/create-by-file ?")
    assert client.get(f"/datasets/{missing}").json()["message"] == "Dataset not found."


def test_empty_text_completes_without_chunks(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    created = client.text_document(dataset_id, "empty.txt", "")
    entry = _wait_status(client, dataset_id, created["batch"], "completed")
    assert entry["indexing_status"] == "completed" and entry["total_segments"] == 0


def test_custom_rule_splits_on_the_separator(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    rule = {
        "mode": "custom",
        "rules": {"pre_processing_rules": [], "segmentation": {"separator": "###", "max_tokens": 100}},
    }
    created = client.text_document(
        dataset_id, "c.txt", "alpha beta\n###\ngamma delta\n###\nepsilon", process_rule=rule
    )
    emu.complete_indexing()
    segments = client.get(f"/datasets/{dataset_id}/documents/{created['document']['id']}/segments").json()
    assert [s["content"] for s in segments["data"]] == ["alpha beta", "gamma delta", "epsilon"]
    bad = {"mode": "custom", "rules": {"pre_processing_rules": [], "segmentation": {"max_tokens": 10}}}
    response = client.post(
        f"/datasets/{dataset_id}/document/create-by-text",
        json={"name": "d", "text": "x", "process_rule": bad},
    )
    assert response.json()["message"] == "Process rule segmentation separator is required"


def test_update_by_text_keeps_batch_and_drops_hand_added_chunks(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    created = client.text_document(dataset_id, "intro.txt", TEXT)
    doc_id = created["document"]["id"]
    emu.complete_indexing()
    added = client.post(
        f"/datasets/{dataset_id}/documents/{doc_id}/segments", json={"segments": [{"content": "by hand"}]}
    ).json()["data"][0]
    body = {
        "name": "intro-v2.txt",
        "text": TEXT + "\n\nThird paragraph.",
        "process_rule": {"mode": "automatic"},
    }
    response = client.post(f"/datasets/{dataset_id}/documents/{doc_id}/update-by-text", json=body).json()
    assert response["batch"] == created["batch"]
    assert response["document"]["created_from"] == "web"
    assert response["document"]["name"] == "intro-v2.txt"
    entry = _wait_status(client, dataset_id, created["batch"], "completed")
    assert entry["indexing_status"] == "completed"
    gone = client.get(f"/datasets/{dataset_id}/documents/{doc_id}/segments/{added['id']}")
    assert gone.status_code == 404 and gone.json()["message"] == "Segment not found."
    # the underscore alias works too; while the document re-indexes, updates are refused
    alias = client.post(f"/datasets/{dataset_id}/documents/{doc_id}/update_by_text", json={"name": "v3.txt"})
    assert alias.status_code == 200 and alias.json()["document"]["name"] == "v3.txt"
    again = client.post(f"/datasets/{dataset_id}/documents/{doc_id}/update_by_text", json={"name": "v4.txt"})
    assert again.status_code == 400 and again.json()["message"] == "Document is not available"


def test_document_keyword_is_sql_like(client, emu: DifyEmulator) -> None:
    """Dify filters names with ``LIKE '%keyword%'`` unescaped: ``%`` and ``_`` are wildcards, case counts."""
    dataset_id = client.dataset()
    for name in ("note-1", "note-10", "note_1", "Note-1", "note-x1"):
        emu.create_document(dataset_id, name, TEXT)

    def names(keyword: str) -> list[str]:
        found = client.get(f"/datasets/{dataset_id}/documents", params={"keyword": keyword, "limit": 100}).json()
        return sorted(document["name"] for document in found["data"])

    assert names("note-1") == ["note-1", "note-10"]  # a substring, not the exact name
    assert names("note_1") == ["note-1", "note-10", "note_1"]  # _ is any one character
    assert names("note%1") == ["note-1", "note-10", "note-x1", "note_1"]  # % is any run
    assert names("Note") == ["Note-1"]  # case-sensitive, as PostgreSQL's LIKE


def test_document_keyword_escapes_with_a_backslash(client, emu: DifyEmulator) -> None:
    """A backslash is LIKE's escape character in PostgreSQL (Dify passes the keyword unescaped): ``\\_`` is a
    literal ``_``, ``\\\\`` a literal backslash, and a lone ``\\`` takes the next character (a trailing one the
    closing ``%``)."""
    dataset_id = client.dataset()
    for name in ("a\\b", "ab", "note_1", "note-1", "50% off", "sale%"):
        emu.create_document(dataset_id, name, TEXT)

    def names(keyword: str) -> list[str]:
        found = client.get(f"/datasets/{dataset_id}/documents", params={"keyword": keyword, "limit": 100}).json()
        return sorted(document["name"] for document in found["data"])

    assert names("a\\b") == ["ab"]  # the backslash escapes b: a name holding a backslash is not found so
    assert names("a\\\\b") == ["a\\b"]
    assert names("note\\_1") == ["note_1"]
    assert names("50\\%") == ["50% off"]
    assert names("sale\\") == ["sale%"]  # the closing % escaped: names ending in "sale%"


def test_list_documents_filters_and_has_more(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    for index in range(3):
        client.text_document(dataset_id, f"doc-{index}.txt", TEXT)
    page = client.get(f"/datasets/{dataset_id}/documents", params={"limit": 3}).json()
    assert page["has_more"] is True and page["total"] == 3  # "this page is full"
    assert [d["name"] for d in page["data"]] == ["doc-2.txt", "doc-1.txt", "doc-0.txt"]
    assert client.get(f"/datasets/{dataset_id}/documents", params={"limit": 101}).json()["limit"] == 101
    assert client.get(f"/datasets/{dataset_id}/documents", params={"keyword": "doc-1"}).json()["total"] == 1
    queued = client.get(f"/datasets/{dataset_id}/documents", params={"status": "queuing"}).json()["total"]
    assert queued >= 2
    emu.complete_indexing()
    assert (
        client.get(f"/datasets/{dataset_id}/documents", params={"status": "available"}).json()["total"] == 3
    )


def test_document_detail_metadata_variants(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    doc_id = client.text_document(dataset_id, "a.txt", TEXT)["document"]["id"]
    url = f"/datasets/{dataset_id}/documents/{doc_id}"
    assert set(client.get(url, params={"metadata": "only"}).json()) == {"id", "doc_type", "doc_metadata"}
    without = client.get(url, params={"metadata": "without"}).json()
    assert "doc_metadata" not in without and "doc_type" not in without and "segment_count" in without
    response = client.get(url, params={"metadata": "bogus"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_metadata",
        "message": "Invalid metadata value: bogus",
        "status": 400,
    }
    missing = client.get(f"/datasets/{dataset_id}/documents/32114585-3784-459a-9bca-b0f54d0c58d8")
    assert missing.json()["message"] == "Document not found."


def test_delete_rules(client, emu: DifyEmulator) -> None:
    emu.configure(indexing_seconds=5, queue_pickup_seconds=0)
    dataset_id = client.dataset()
    running = client.text_document(dataset_id, "running.txt", TEXT)["document"]["id"]
    waiting = client.text_document(dataset_id, "waiting.txt", TEXT)["document"]["id"]
    time.sleep(0.05)
    response = client.delete(f"/datasets/{dataset_id}/documents/{running}")
    assert response.status_code == 400
    assert response.json() == {
        "code": "document_indexing",
        "message": "Cannot delete document during indexing.",
        "status": 400,
    }
    assert client.delete(f"/datasets/{dataset_id}/documents/{waiting}").status_code == 204
    again = client.delete(f"/datasets/{dataset_id}/documents/{waiting}")
    assert again.status_code == 404 and again.json()["message"] == "Document Not Exists."
    emu.complete_indexing()
    client.patch(f"/datasets/{dataset_id}/documents/status/archive", json={"document_ids": [running]})
    response = client.delete(f"/datasets/{dataset_id}/documents/{running}")
    assert response.status_code == 403 and response.json()["code"] == "archived_document_immutable"
    response = client.post(
        f"/datasets/{dataset_id}/documents/{running}/update-by-text", json={"name": "x", "text": "y"}
    )
    assert response.status_code == 400 and response.json()["message"] == "Document is not available"
    client.patch(f"/datasets/{dataset_id}/documents/status/un_archive", json={"document_ids": [running]})
    assert client.delete(f"/datasets/{dataset_id}/documents/{running}").status_code == 204


def test_disable_then_enable_at_once_is_refused_for_a_while(client, emu: DifyEmulator) -> None:
    emu.configure(status_change_seconds=0.3)
    dataset_id = client.dataset()
    doc_id = client.text_document(dataset_id, "intro.txt", TEXT)["document"]["id"]
    url = f"/datasets/{dataset_id}/documents/status"
    response = client.patch(url + "/disable", json={"document_ids": [doc_id]})
    assert (
        response.status_code == 400 and response.json()["message"] == "Document: intro.txt is not completed."
    )
    emu.complete_indexing()
    assert client.patch(url + "/disable", json={"document_ids": [doc_id]}).json() == {"result": "success"}
    response = client.patch(url + "/enable", json={"document_ids": [doc_id]})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_action",
        "message": "Document:intro.txt is being indexed, please try again later",
        "status": 400,
    }
    time.sleep(0.35)
    assert client.patch(url + "/enable", json={"document_ids": [doc_id]}).status_code == 200
    response = client.patch(url + "/explode", json={"document_ids": [doc_id]})
    assert response.json()["message"].startswith("Invalid action: explode. Must be one of ['enable'")


@pytest.mark.parametrize("version", ["1.13", "1.16"])
def test_version_differences(version: str, dify_emulator_factory) -> None:
    dify = dify_emulator_factory(server_version=version, indexing_seconds=0)
    session = requests.Session()
    session.headers.update(dify.headers)
    dataset_id = session.post(
        dify.url + "/datasets", json={"name": "v", "indexing_technique": "economy"}
    ).json()["id"]
    data = {"data": '{"process_rule": {"mode": "automatic"}}'}
    created = session.post(
        f"{dify.url}/datasets/{dataset_id}/document/create-by-file",
        data=data,
        files={"file": ("p.csv", b"a,b\n1,2\n")},
    ).json()
    doc_id = created["document"]["id"]
    dify.complete_indexing()
    patch = session.patch(
        f"{dify.url}/datasets/{dataset_id}/documents/{doc_id}", files={"file": ("p.csv", b"a\n")}
    )
    upload = session.get(f"{dify.url}/datasets/{dataset_id}/documents/{doc_id}/upload-file")
    tag = session.post(dify.url + "/datasets/tags", json={"name": "t1"})
    if version == "1.13":
        assert patch.status_code == 405
        assert upload.status_code == 404 and upload.headers["Content-Type"].startswith("text/html")
        assert tag.status_code == 400 and "binding_count" in tag.json()["message"]
    else:
        assert patch.status_code == 200 and patch.json()["batch"] == created["batch"]
        assert upload.status_code == 200 and upload.json()["name"] == "p.csv"
        assert tag.status_code == 200 and tag.json()["binding_count"] == "0"
    session.close()


def test_download_and_download_zip(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    first = client.text_document(dataset_id, "same.txt", "one")["document"]["id"]
    url = f"/datasets/{dataset_id}/document/create-by-file"
    data = {"data": '{"duplicate": false}'}
    second = client.post(url, data=data, files={"file": ("same.txt", b"two")}).json()["document"]["id"]
    link = client.get(f"/datasets/{dataset_id}/documents/{first}/download").json()["url"]
    assert requests.get(link, timeout=10).content == b"one"
    response = client.post(
        f"/datasets/{dataset_id}/documents/download-zip", json={"document_ids": [first, second]}
    )
    assert response.headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert names == ["same.txt", "same (1).txt"]


# ------------------------------------------------------------------ chunks


def test_chunks_need_a_completed_enabled_document(client, emu: DifyEmulator) -> None:
    emu.configure(indexing_seconds=5)
    dataset_id = client.dataset()
    doc_id = client.text_document(dataset_id, "a.txt", TEXT)["document"]["id"]
    url = f"/datasets/{dataset_id}/documents/{doc_id}/segments"
    response = client.post(url, json={"segments": [{"content": "x"}]})
    assert response.status_code == 404 and response.json()["message"] == "Document is not completed."
    emu.complete_indexing()
    client.patch(f"/datasets/{dataset_id}/documents/status/disable", json={"document_ids": [doc_id]})
    response = client.post(url, json={"segments": [{"content": "x"}]})
    assert response.status_code == 404 and response.json()["message"] == "Document is disabled."


def test_chunks_are_indexed_at_once(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    doc_id = client.text_document(dataset_id, "a.txt", TEXT)["document"]["id"]
    emu.complete_indexing()
    url = f"/datasets/{dataset_id}/documents/{doc_id}/segments"
    assert client.post(url).json() == {"error": "Segments is required"}
    assert client.post(url, json={"segments": [{"content": ""}]}).json()["message"] == "Content is empty"
    bad = client.post(url, json={"segments": [{"answer": "no content"}]})
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    body = {
        "segments": [
            {
                "content": "Celery workers process the dataset queue for indexing.",
                "answer": "",
                "keywords": [],
            },
            {"content": "Hand written keywords.", "keywords": ["manual", "custom"]},
        ]
    }
    added = client.post(url, json=body).json()
    assert set(added) == {"data", "doc_form"}
    first, second = added["data"]
    assert first["status"] == second["status"] == "completed"
    assert first["answer"] is None
    assert "Celery" in first["keywords"] and "the" not in first["keywords"]
    assert second["keywords"] == ["manual", "custom"]
    assert [first["position"], second["position"]] == [2, 3]
    one = client.get(f"{url}/{first['id']}").json()
    assert set(one) == {"data", "doc_form"}
    update = {"segment": {"content": "Updated content here.", "enabled": True}}
    updated = client.post(f"{url}/{first['id']}", json=update).json()["data"]
    assert updated["content"] == "Updated content here." and updated["keywords"] == ["Updated", "content"]
    assert client.get(url, params={"keyword": "updated"}).json()["total"] == 1
    listing = client.get(url, params={"limit": 2}).json()
    assert listing["has_more"] is True and listing["total"] == 3
    assert client.delete(f"{url}/{first['id']}").status_code == 204
    assert client.delete(f"{url}/{first['id']}").json()["message"] == "Segment not found."


def test_child_chunks(client, emu: DifyEmulator) -> None:
    dataset_id = client.dataset()
    rule = {
        "mode": "hierarchical",
        "rules": {
            "pre_processing_rules": [],
            "parent_mode": "paragraph",
            "segmentation": {"separator": "\n\n", "max_tokens": 500},
            "subchunk_segmentation": {"separator": ".", "max_tokens": 50},
        },
    }
    created = client.text_document(
        dataset_id,
        "h.txt",
        "One. Two. Three.\n\nFour. Five.",
        process_rule=rule,
        doc_form="hierarchical_model",
    )
    emu.complete_indexing()
    doc_id = created["document"]["id"]
    segments = client.get(f"/datasets/{dataset_id}/documents/{doc_id}/segments").json()["data"]
    assert len(segments) == 2 and [c["content"] for c in segments[0]["child_chunks"]] == [
        "One",
        "Two",
        "Three",
    ]
    url = f"/datasets/{dataset_id}/documents/{doc_id}/segments/{segments[0]['id']}/child_chunks"
    chunk = client.post(url, json={"content": "Extra"}).json()["data"]
    assert chunk["type"] == "customized" and chunk["position"] == 4
    listing = client.get(url).json()
    assert listing["total"] == 4 and set(listing) == {"data", "total", "total_pages", "page", "limit"}
    assert (
        client.patch(f"{url}/{chunk['id']}", json={"content": "Changed"}).json()["data"]["content"]
        == "Changed"
    )
    assert client.delete(f"{url}/{chunk['id']}").status_code == 204
    assert client.delete(f"{url}/{chunk['id']}").status_code == 404
    text_doc = client.post(
        f"/datasets/{dataset_id}/document/create-by-text",
        json={"name": "t", "text": "x", "doc_form": "text_model"},
    )
    assert text_doc.json()["message"] == "doc_form is different from the dataset doc_form."
