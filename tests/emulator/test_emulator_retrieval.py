"""Retrieval (keyword search, filters, top_k), metadata fields and knowledge tags."""

from __future__ import annotations

import pytest

from airflow_provider_dify.testing import DifyEmulator

KEYWORD = {
    "search_method": "keyword_search",
    "reranking_enable": False,
    "top_k": 5,
    "score_threshold_enabled": False,
}


@pytest.fixture
def kb(client, emu: DifyEmulator) -> dict:
    """A dataset with three completed documents; metadata author (string), price (number), day (time)."""
    dataset_id = client.dataset()
    docs = {}
    for name, text in [
        ("apples.txt", "Apples grow on trees. Orchards sell apples."),
        ("pears.txt", "Pears grow on trees too. Orchards love pears."),
        ("cars.txt", "Cars drive on roads."),
    ]:
        docs[name] = client.text_document(dataset_id, name, text)["document"]["id"]
    emu.complete_indexing()
    fields = {}
    for kind, name in [("string", "author"), ("number", "price"), ("time", "day")]:
        response = client.post(f"/datasets/{dataset_id}/metadata", json={"type": kind, "name": name})
        assert response.status_code == 201
        fields[name] = response.json()["id"]
    values = {
        "apples.txt": {"author": "ann", "price": 10, "day": 1_700_000_000},
        "pears.txt": {"author": "bob", "price": 20, "day": 1_800_000_000},
        "cars.txt": {"author": "carl", "price": 30},
    }
    operations = [
        {
            "document_id": docs[name],
            "metadata_list": [{"id": fields[k], "name": k, "value": v} for k, v in items.items()],
        }
        for name, items in values.items()
    ]
    response = client.post(f"/datasets/{dataset_id}/documents/metadata", json={"operation_data": operations})
    assert response.json() == {"result": "success"}
    return {"id": dataset_id, "docs": docs, "fields": fields}


def _search(client, dataset_id: str, query: str, conditions=None, logical="and", top_k=5, route="retrieve"):
    model = {**KEYWORD, "top_k": top_k}
    if conditions is not None:
        model["metadata_filtering_conditions"] = {"logical_operator": logical, "conditions": conditions}
    response = client.post(f"/datasets/{dataset_id}/{route}", json={"query": query, "retrieval_model": model})
    assert response.status_code == 200, response.text
    return [record["segment"]["document"]["name"] for record in response.json()["records"]]


def test_keyword_search_records(client, kb) -> None:
    response = client.post(
        f"/datasets/{kb['id']}/retrieve", json={"query": "Orchards apples", "retrieval_model": KEYWORD}
    )
    body = response.json()
    assert body["query"] == {"content": "Orchards apples"}
    names = [r["segment"]["document"]["name"] for r in body["records"]]
    assert names == ["apples.txt", "pears.txt"]  # two keywords beat one
    record = body["records"][0]
    assert set(record) == {"segment", "child_chunks", "score", "tsne_position", "files", "summary"}
    # As Dify 1.16.1 answers (the default mode): empty lists, no sign_content (1.13.2: nulls and the text).
    assert record["score"] == 0.0 and record["child_chunks"] == [] and record["files"] == []
    assert record["segment"]["sign_content"] is None
    assert set(record["segment"]["document"]) == {
        "id",
        "data_source_type",
        "name",
        "doc_type",
        "doc_metadata",
    }
    assert record["segment"]["document"]["doc_metadata"]["author"] == "ann"
    assert _search(client, kb["id"], "Orchards", top_k=1) == ["apples.txt"]
    assert _search(client, kb["id"], "orchards") == []  # the economy index is case-sensitive
    assert _search(client, kb["id"], "zzz") == []
    assert _search(client, kb["id"], "Cars", route="hit-testing") == ["cars.txt"]


def test_retrieve_errors(client, kb) -> None:
    url = f"/datasets/{kb['id']}/retrieve"
    response = client.post(url, json={"query": "Apples"})
    assert (
        response.status_code == 400
        and response.json()["message"] == "Default model not found for text-embedding"
    )
    semantic = {**KEYWORD, "search_method": "semantic_search"}
    assert client.post(url, json={"query": "Apples", "retrieval_model": semantic}).status_code == 400
    response = client.post(url, json={"query": "", "retrieval_model": KEYWORD})
    assert response.json()["message"] == "Query or attachment_ids is required"
    response = client.post(url, json={"query": "x" * 251, "retrieval_model": KEYWORD})
    assert response.json()["message"] == "Query cannot exceed 250 characters"
    response = client.post(url, json={"query": "x", "retrieval_model": {"search_method": "keyword_search"}})
    assert response.json()["message"].startswith("3 validation errors for HitTestingPayload")


def test_disabled_documents_and_chunks_are_not_found(client, kb) -> None:
    client.patch(
        f"/datasets/{kb['id']}/documents/status/disable", json={"document_ids": [kb["docs"]["cars.txt"]]}
    )
    assert _search(client, kb["id"], "Cars") == []
    doc_id = kb["docs"]["pears.txt"]
    segment = client.get(f"/datasets/{kb['id']}/documents/{doc_id}/segments").json()["data"][0]
    url = f"/datasets/{kb['id']}/documents/{doc_id}/segments/{segment['id']}"
    disabled = client.post(url, json={"segment": {"enabled": False}}).json()["data"]
    assert disabled["enabled"] is False
    assert _search(client, kb["id"], "Pears") == []
    response = client.post(url, json={"segment": {"content": "Pears again"}})
    assert response.json()["message"] == "Can't update disabled segment"


@pytest.mark.parametrize(
    ("conditions", "logical", "expected"),
    [
        ([{"name": "author", "comparison_operator": "is", "value": "ann"}], "and", ["apples.txt"]),
        ([{"name": "author", "comparison_operator": "is not", "value": "ann"}], "and", ["pears.txt"]),
        ([{"name": "author", "comparison_operator": "contains", "value": "o"}], "and", ["pears.txt"]),
        ([{"name": "author", "comparison_operator": "not contains", "value": "o"}], "and", ["apples.txt"]),
        ([{"name": "author", "comparison_operator": "start with", "value": "a"}], "and", ["apples.txt"]),
        ([{"name": "author", "comparison_operator": "end with", "value": "b"}], "and", ["pears.txt"]),
        ([{"name": "author", "comparison_operator": "in", "value": ["bob", "x"]}], "and", ["pears.txt"]),
        ([{"name": "author", "comparison_operator": "not in", "value": ["bob"]}], "and", ["apples.txt"]),
        ([{"name": "price", "comparison_operator": "=", "value": 10}], "and", ["apples.txt"]),
        ([{"name": "price", "comparison_operator": "≠", "value": 10}], "and", ["pears.txt"]),
        ([{"name": "price", "comparison_operator": ">", "value": 15}], "and", ["pears.txt"]),
        ([{"name": "price", "comparison_operator": "<", "value": 15}], "and", ["apples.txt"]),
        ([{"name": "price", "comparison_operator": "≥", "value": 20}], "and", ["pears.txt"]),
        ([{"name": "price", "comparison_operator": "≤", "value": 20}], "and", ["apples.txt", "pears.txt"]),
        ([{"name": "day", "comparison_operator": "before", "value": 1_750_000_000}], "and", ["apples.txt"]),
        (
            [{"name": "day", "comparison_operator": "after", "value": "2025-01-01T00:00:00+00:00"}],
            "and",
            ["pears.txt"],
        ),
        ([{"name": "day", "comparison_operator": "empty"}], "and", []),
        ([{"name": "day", "comparison_operator": "not empty"}], "and", ["apples.txt", "pears.txt"]),
        (
            [
                {"name": "author", "comparison_operator": "is", "value": "ann"},
                {"name": "price", "comparison_operator": ">", "value": 15},
            ],
            "and",
            [],
        ),
        (
            [
                {"name": "author", "comparison_operator": "is", "value": "ann"},
                {"name": "price", "comparison_operator": ">", "value": 15},
            ],
            "or",
            ["apples.txt", "pears.txt"],
        ),
    ],
)
def test_metadata_filtering(client, kb, conditions, logical, expected) -> None:
    assert _search(client, kb["id"], "Orchards", conditions, logical) == expected


def test_metadata_empty_matches_documents_without_value(client, kb) -> None:
    conditions = [{"name": "day", "comparison_operator": "empty"}]
    assert _search(client, kb["id"], "Cars", conditions) == ["cars.txt"]


def test_metadata_fields_lifecycle(client, kb) -> None:
    url = f"/datasets/{kb['id']}/metadata"
    duplicate = client.post(url, json={"type": "string", "name": "author"})
    assert duplicate.status_code == 400 and duplicate.json()["message"] == "Metadata name already exists."
    listing = client.get(url).json()
    assert listing["built_in_field_enabled"] is False
    assert {f["name"]: f["count"] for f in listing["doc_metadata"]} == {"author": 3, "price": 3, "day": 2}
    renamed = client.patch(f"{url}/{kb['fields']['author']}", json={"name": "writer"}).json()
    assert renamed == {"id": kb["fields"]["author"], "type": "string", "name": "writer"}
    conditions = [{"name": "writer", "comparison_operator": "is", "value": "ann"}]
    assert _search(client, kb["id"], "Orchards", conditions) == ["apples.txt"]
    docs = client.get(f"/datasets/{kb['id']}/documents").json()["data"]
    apples = next(d for d in docs if d["name"] == "apples.txt")
    values = {m["name"]: m["value"] for m in apples["doc_metadata"]}
    assert values["writer"] == "ann" and values["price"] == "10" and values["document_name"] == "apples.txt"
    detail = client.get(
        f"/datasets/{kb['id']}/documents/{kb['docs']['apples.txt']}", params={"metadata": "only"}
    )
    assert {m["name"]: m["value"] for m in detail.json()["doc_metadata"]}["price"] == 10
    assert client.get(f"{url}/built-in").json()["fields"][0] == {"name": "document_name", "type": "string"}
    assert client.post(f"{url}/built-in/enable").json() == {"result": "success"}
    dataset = client.get(f"/datasets/{kb['id']}").json()
    assert [m["id"] for m in dataset["doc_metadata"]].count("built-in") == 5
    assert client.delete(f"{url}/{kb['fields']['price']}").status_code == 204
    assert client.get(url).json()["built_in_field_enabled"] is True
    assert len(client.get(url).json()["doc_metadata"]) == 2
    missing = client.delete(f"{url}/{kb['fields']['price']}")
    assert missing.status_code == 400 and missing.json()["message"] == "Metadata not found."


def test_tags(client, kb) -> None:
    created = client.post("/datasets/tags", json={"name": "finance"}).json()
    assert set(created) == {"id", "name", "type", "binding_count"} and created["binding_count"] == "0"
    assert (
        client.post("/datasets/tags", json={"name": "finance"}).json()["message"] == "Tag name already exists"
    )
    other = client.post("/datasets/tags", json={"name": "hr"}).json()
    bind = client.post("/datasets/tags/binding", json={"tag_ids": [created["id"]], "target_id": kb["id"]})
    assert bind.status_code == 204
    assert client.get(f"/datasets/{kb['id']}/tags").json() == {
        "data": [{"id": created["id"], "name": "finance"}],
        "total": 1,
    }
    listing = {t["name"]: t["binding_count"] for t in client.get("/datasets/tags").json()}
    assert listing == {"finance": "1", "hr": "0"}
    assert client.get("/datasets", params={"tag_ids": created["id"]}).json()["total"] == 1
    assert client.get("/datasets", params={"tag_ids": other["id"]}).json()["total"] == 0
    assert client.get(f"/datasets/{kb['id']}").json()["tags"][0]["name"] == "finance"
    renamed = client.patch("/datasets/tags", json={"tag_id": created["id"], "name": "money"}).json()
    assert renamed["name"] == "money"
    unbind = client.post("/datasets/tags/unbinding", json={"tag_ids": [created["id"]], "target_id": kb["id"]})
    assert unbind.status_code == 204
    assert client.get(f"/datasets/{kb['id']}/tags").json()["total"] == 0
    assert client.delete("/datasets/tags", json={"tag_id": other["id"]}).status_code == 204
    missing = client.patch("/datasets/tags", json={"tag_id": other["id"], "name": "x"})
    assert missing.status_code == 404
    invalid = client.post("/datasets/tags/binding", json={"tag_ids": [None], "target_id": kb["id"]})
    assert invalid.json()["message"].startswith("1 validation error for TagBindingPayload\ntag_ids.0\n")


def test_semantic_search_with_an_embedding_model(client, emu: DifyEmulator) -> None:
    emu.configure(embedding_available=True)
    response = client.post("/datasets", json={"name": "hq", "indexing_technique": "high_quality"})
    dataset_id = response.json()["id"]
    client.text_document(
        dataset_id, "a.txt", "Koalas sleep most of the day.", indexing_technique="high_quality"
    )
    client.text_document(
        dataset_id, "b.txt", "Stock markets open at nine.", indexing_technique="high_quality"
    )
    emu.complete_indexing()
    body = {"query": "when do koalas sleep"}
    records = client.post(f"/datasets/{dataset_id}/retrieve", json=body).json()["records"]
    assert [r["segment"]["document"]["name"] for r in records] == ["a.txt"]
    assert 0 < records[0]["score"] <= 1
    assert records[0]["segment"]["tokens"] > 0
