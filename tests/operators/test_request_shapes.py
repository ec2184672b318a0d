"""What the operators send (requests-mock): bodies, the settings taken from the knowledge base, the hash call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyConflictError, DifyDocumentNotReadyError, DifyError
from airflow_provider_dify.operators._content import HASH_FIELD, text_hash
from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator, DifyDeleteDatasetOperator
from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator, DifyUpdateDocumentOperator
from airflow_provider_dify.operators.metadata import DifyUpdateDocumentMetadataOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator
from tests.operators.helpers import context
from tests.unit.helpers import BASE_URL, BATCH, DATASET_ID, DOCUMENT_ID, set_dify_connection

DS_URL = f"{BASE_URL}/datasets/{DATASET_ID}"
HASH_FIELD_ID = "5f0a3c1e-0000-4000-8000-000000000001"
TEXT = "Refunds are possible within 30 days.\n\nShipping takes 2 days."
AUTOMATIC = {"mode": "automatic"}


@pytest.fixture(autouse=True)
def connection(monkeypatch: pytest.MonkeyPatch) -> str:
    return set_dify_connection(monkeypatch, extra={"max_retries": 0})


def dataset(**fields: Any) -> dict[str, Any]:
    return {"id": DATASET_ID, "name": "handbook", "indexing_technique": "economy", "doc_form": "text_model", **fields}


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"data": list(items), "has_more": False, "limit": 100, "total": len(items), "page": 1}


def document(name: str = "faq.txt", *, content_hash: str | None = None, **fields: Any) -> dict[str, Any]:
    metadata = (
        [{"id": HASH_FIELD_ID, "name": HASH_FIELD, "type": "string", "value": content_hash}] if content_hash else []
    )
    return {
        "id": DOCUMENT_ID,
        "name": name,
        "indexing_status": "completed",
        "display_status": "available",
        "enabled": True,
        "archived": False,
        "doc_form": "text_model",
        "doc_metadata": metadata,
        **fields,
    }


def mock_metadata(requests_mock: Any, *, known: bool) -> None:
    fields = [{"id": HASH_FIELD_ID, "name": HASH_FIELD, "type": "string", "count": 0}] if known else []
    requests_mock.get(f"{DS_URL}/metadata", json={"doc_metadata": fields, "built_in_field_enabled": False})

    def create_field(request: Any, answer: Any) -> dict[str, Any]:
        body = request.json()
        field_id = HASH_FIELD_ID if body["name"] == HASH_FIELD else f"field-{body['name']}"
        return {"id": field_id, "name": body["name"], "type": body["type"]}

    requests_mock.post(f"{DS_URL}/metadata", status_code=201, json=create_field)
    requests_mock.post(f"{DS_URL}/documents/metadata", json={"result": "success"})


def sent(requests_mock: Any, method: str, path_end: str) -> list[Any]:
    return [
        json.loads(request.body) if request.body else None
        for request in requests_mock.request_history
        if request.method == method and request.path.endswith(path_end)
    ]


def writes(requests_mock: Any) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests_mock.request_history if r.method != "GET"]


def test_create_by_text_sends_the_knowledge_base_form_and_technique_then_the_hash(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset(doc_form="qa_model", indexing_technique="high_quality"))
    requests_mock.get(f"{DS_URL}/documents", json=listing())
    requests_mock.post(f"{DS_URL}/document/create-by-text", json={"document": document(), "batch": BATCH})
    mock_metadata(requests_mock, known=False)
    operator = DifyCreateDocumentOperator(
        task_id="create",
        dataset_id=DATASET_ID,
        name="faq.txt",
        text=TEXT,
        doc_language="English",
        metadata={"team": "support", "year": 2025},
    )

    manifest = operator.execute(context())

    [body] = sent(requests_mock, "POST", "/document/create-by-text")
    assert body == {
        "name": "faq.txt",
        "text": TEXT,
        "indexing_technique": "high_quality",
        "doc_form": "qa_model",
        "doc_language": "English",
        "process_rule": AUTOMATIC,
    }
    created_fields = sent(requests_mock, "POST", f"{DATASET_ID}/metadata")
    assert {(field["name"], field["type"]) for field in created_fields} == {
        (HASH_FIELD, "string"),
        ("team", "string"),
        ("year", "number"),
    }
    [metadata_call] = sent(requests_mock, "POST", "/documents/metadata")
    [operation] = metadata_call["operation_data"]
    assert operation["document_id"] == DOCUMENT_ID and operation["partial_update"] is True
    values = {item["name"]: item["value"] for item in operation["metadata_list"]}
    assert values == {
        "team": "support",
        "year": 2025,
        HASH_FIELD: text_hash(TEXT, {"process_rule": AUTOMATIC, "doc_language": "English"}),
    }
    assert manifest["action"] == "created" and manifest["batch"] == BATCH
    assert TEXT not in json.dumps(manifest)


def test_technique_comes_from_the_argument_only_while_the_knowledge_base_has_none(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset(indexing_technique=None, doc_form=None))
    requests_mock.get(f"{DS_URL}/documents", json=listing())
    requests_mock.post(f"{DS_URL}/document/create-by-text", json={"document": document(), "batch": BATCH})
    mock_metadata(requests_mock, known=True)

    DifyCreateDocumentOperator(
        task_id="create", dataset_id=DATASET_ID, name="faq.txt", text=TEXT, indexing_technique="economy"
    ).execute(context())

    [body] = sent(requests_mock, "POST", "/document/create-by-text")
    assert body["indexing_technique"] == "economy"
    assert body["doc_form"] == "text_model"  # Dify's default form, sent explicitly
    assert body["process_rule"] == AUTOMATIC


def test_unknown_technique_fails_before_anything_is_sent(requests_mock: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    requests_mock.get(DS_URL, json=dataset(indexing_technique=None, doc_form=None))
    requests_mock.get(f"{DS_URL}/documents", json=listing())
    operator = DifyCreateDocumentOperator(task_id="create", dataset_id=DATASET_ID, name="faq.txt", text=TEXT)

    with pytest.raises(AirflowFailException, match="indexing_technique"):
        operator.execute(context())
    assert writes(requests_mock) == []


def test_unchanged_document_is_not_written(requests_mock: Any) -> None:
    stored = text_hash(TEXT, {"process_rule": AUTOMATIC})
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents", json=listing(document(content_hash=stored)))

    manifest = DifyCreateDocumentOperator(task_id="create", dataset_id=DATASET_ID, name="faq.txt", text=TEXT).execute(
        context()
    )

    assert manifest["action"] == "unchanged" and manifest["document_id"] == DOCUMENT_ID
    assert writes(requests_mock) == []


def test_changed_document_is_updated_in_place_then_its_hash_set(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset(doc_form="hierarchical_model"))
    requests_mock.get(f"{DS_URL}/documents", json=listing(document(content_hash="sha256:old")))
    requests_mock.post(
        f"{DS_URL}/documents/{DOCUMENT_ID}/update-by-text", json={"document": document(), "batch": BATCH}
    )
    mock_metadata(requests_mock, known=True)
    rule = {
        "mode": "hierarchical",
        "rules": {
            "pre_processing_rules": [],
            "segmentation": {"separator": "\n\n", "max_tokens": 500},
            "parent_mode": "paragraph",
            "subchunk_segmentation": {"separator": "\n", "max_tokens": 100},
        },
    }

    manifest = DifyCreateDocumentOperator(
        task_id="create", dataset_id=DATASET_ID, name="faq.txt", text=TEXT, process_rule=rule
    ).execute(context())

    [body] = sent(requests_mock, "POST", "/update-by-text")
    assert body == {"name": "faq.txt", "text": TEXT, "doc_form": "hierarchical_model", "process_rule": rule}
    [metadata_call] = sent(requests_mock, "POST", "/documents/metadata")
    [item] = metadata_call["operation_data"][0]["metadata_list"]
    assert item == {"id": HASH_FIELD_ID, "name": HASH_FIELD, "value": text_hash(TEXT, {"process_rule": rule})}
    assert manifest["action"] == "updated"
    assert sent(requests_mock, "POST", f"{DATASET_ID}/metadata") == []  # the hash field existed


def test_hierarchical_knowledge_base_needs_a_hierarchical_rule_before_sending(requests_mock: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    requests_mock.get(DS_URL, json=dataset(doc_form="hierarchical_model"))
    requests_mock.get(f"{DS_URL}/documents", json=listing())
    with pytest.raises(AirflowFailException, match="process_rule"):
        DifyCreateDocumentOperator(task_id="c", dataset_id=DATASET_ID, name="a.txt", text=TEXT).execute(context())
    assert writes(requests_mock) == []


@pytest.mark.parametrize("status", ["indexing", "queuing", "disabled", "archived"])
def test_changed_document_that_is_not_available_fails_clearly_without_a_write(requests_mock: Any, status: str) -> None:
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(
        f"{DS_URL}/documents/{DOCUMENT_ID}", json=document(content_hash="sha256:old", display_status=status)
    )
    mock_metadata(requests_mock, known=True)
    operator = DifyUpdateDocumentOperator(task_id="u", dataset_id=DATASET_ID, document_id=DOCUMENT_ID, text="new")

    with pytest.raises(DifyDocumentNotReadyError, match=status):
        operator.execute(context())
    assert writes(requests_mock) == []


def test_on_existing_error_refuses_other_content_without_a_write(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents", json=listing(document(content_hash="sha256:old")))
    operator = DifyCreateDocumentOperator(
        task_id="c", dataset_id=DATASET_ID, name="faq.txt", text=TEXT, on_existing="error"
    )
    with pytest.raises(DifyError, match="on_existing='error'"):
        operator.execute(context())
    assert writes(requests_mock) == []


def test_on_existing_skip_leaves_other_content(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents", json=listing(document(content_hash="sha256:old")))
    manifest = DifyCreateDocumentOperator(
        task_id="c", dataset_id=DATASET_ID, name="faq.txt", text=TEXT, on_existing="skip"
    ).execute(context())
    assert manifest["action"] == "skipped"
    assert writes(requests_mock) == []


def test_several_documents_with_the_name_update_the_oldest(requests_mock: Any, caplog: Any) -> None:
    """The copy rule (as the sync's): the oldest copy is the document; Dify's same-name upsert reuses it too."""
    oldest = document(content_hash="sha256:old", created_at=1_700_000_000, position=1)
    newer = {
        **document(content_hash="sha256:newer", created_at=1_700_000_100, position=2),
        "id": "0f0f0f0f-0000-4000-8000-000000000002",
    }
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents", json=listing(newer, oldest))  # Dify lists newest first
    requests_mock.post(f"{DS_URL}/documents/{DOCUMENT_ID}/update-by-text", json={"document": oldest, "batch": BATCH})
    mock_metadata(requests_mock, known=True)

    with caplog.at_level("WARNING"):
        manifest = DifyCreateDocumentOperator(task_id="c", dataset_id=DATASET_ID, name="faq.txt", text=TEXT).execute(
            context()
        )
    assert manifest["document_id"] == DOCUMENT_ID
    assert "2 documents are named 'faq.txt'" in caplog.text and "using the oldest" in caplog.text


def test_add_segments_batches_and_skips_chunks_already_there(requests_mock: Any) -> None:
    existing = [{"id": f"s{i}", "content": f"chunk {i}", "status": "completed"} for i in range(5)]
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents/{DOCUMENT_ID}", json=document())
    requests_mock.get(
        f"{DS_URL}/documents/{DOCUMENT_ID}/segments",
        json={"data": existing, "total": 5, "has_more": False, "limit": 100, "page": 1},
    )
    requests_mock.post(f"{DS_URL}/documents/{DOCUMENT_ID}/segments", json={"data": [], "doc_form": "text_model"})
    chunks = [{"content": f"chunk {i}", "keywords": ["k"]} for i in range(230)]

    manifest = DifyAddSegmentsOperator(
        task_id="add", dataset_id=DATASET_ID, document_id=DOCUMENT_ID, segments=chunks, batch_size=100
    ).execute(context())

    bodies = sent(requests_mock, "POST", "/segments")
    assert [len(body["segments"]) for body in bodies] == [100, 100, 25]
    contents = [item["content"] for body in bodies for item in body["segments"]]
    assert contents == [f"chunk {i}" for i in range(5, 230)]
    assert bodies[0]["segments"][0] == {"content": "chunk 5", "keywords": ["k"]}
    assert manifest["added"] == 225 and manifest["already_present"] == 5 and manifest["action"] == "added"


def test_add_segments_rereads_after_an_unknown_outcome_and_sends_only_what_is_missing(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents/{DOCUMENT_ID}", json=document())
    first_batch = [{"id": f"s{i}", "content": f"chunk {i}", "status": "completed"} for i in range(2)]
    requests_mock.get(
        f"{DS_URL}/documents/{DOCUMENT_ID}/segments",
        [
            {"json": {"data": [], "total": 0, "has_more": False, "limit": 100, "page": 1}},
            {"json": {"data": first_batch, "total": 2, "has_more": False, "limit": 100, "page": 1}},
        ],
    )
    requests_mock.post(
        f"{DS_URL}/documents/{DOCUMENT_ID}/segments",
        [
            {"status_code": 502, "text": "<html>Bad Gateway</html>", "headers": {"Content-Type": "text/html"}},
            {"json": {"data": [], "doc_form": "text_model"}},
        ],
    )
    chunks = [{"content": f"chunk {i}"} for i in range(4)]

    manifest = DifyAddSegmentsOperator(
        task_id="add", dataset_id=DATASET_ID, document_id=DOCUMENT_ID, segments=chunks, batch_size=2
    ).execute(context())

    bodies = sent(requests_mock, "POST", "/segments")
    assert [[item["content"] for item in body["segments"]] for body in bodies] == [
        ["chunk 0", "chunk 1"],  # answered 502, but the re-read shows Dify added them
        ["chunk 2", "chunk 3"],
    ]
    assert manifest["added"] == 4


def test_retrieve_defaults_to_keyword_search_on_economy_with_the_metadata_filter(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.post(
        f"{DS_URL}/retrieve",
        json={
            "query": {"content": "refund"},
            "records": [
                {
                    "segment": {
                        "id": "seg",
                        "document_id": DOCUMENT_ID,
                        "content": "Refunds are possible",
                        "word_count": 3,
                        "keywords": ["refund"],
                        "document": {
                            "id": DOCUMENT_ID,
                            "name": "faq.txt",
                            "doc_metadata": {"team": "a", HASH_FIELD: "x"},
                        },
                    },
                    "score": 0.0,
                    "child_chunks": None,
                }
            ],
        },
    )
    condition = {"name": "team", "comparison_operator": "is", "value": "a"}

    result = DifyRetrieveOperator(
        task_id="r", dataset_id=DATASET_ID, query="refund", top_k=5, metadata_filter=[condition]
    ).execute(context())

    [body] = sent(requests_mock, "POST", "/retrieve")
    assert body == {
        "query": "refund",
        "retrieval_model": {
            "search_method": "keyword_search",
            "reranking_enable": False,
            "top_k": 5,
            "score_threshold_enabled": False,
            "metadata_filtering_conditions": {"logical_operator": "and", "conditions": [condition]},
        },
    }
    assert result["records"] == [
        {
            "segment_id": "seg",
            "document_id": DOCUMENT_ID,
            "document_name": "faq.txt",
            "content": "Refunds are possible",
            "score": 0.0,
            "metadata": {"team": "a"},
        }
    ]


def test_retrieve_refuses_semantic_search_on_economy_before_sending(requests_mock: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    requests_mock.get(DS_URL, json=dataset())
    operator = DifyRetrieveOperator(
        task_id="r", dataset_id=DATASET_ID, query="q", retrieval_model={"search_method": "semantic_search"}
    )
    with pytest.raises(AirflowFailException, match=r"retrieval_model\['search_method'\]"):
        operator.execute(context())
    assert writes(requests_mock) == []


def test_create_dataset_sends_its_settings_and_reuses_an_existing_one(requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/datasets", [{"json": listing()}, {"json": listing(dataset())}])
    requests_mock.post(f"{BASE_URL}/datasets", json=dataset())
    operator = DifyCreateDatasetOperator(
        task_id="ds", name="handbook", description="FAQ", indexing_technique="economy", permission="only_me"
    )

    assert operator.execute(context())["action"] == "created"
    assert sent(requests_mock, "POST", "/datasets") == [
        {"name": "handbook", "description": "FAQ", "indexing_technique": "economy", "permission": "only_me"}
    ]
    assert operator.execute(context())["action"] == "reused"
    assert len(sent(requests_mock, "POST", "/datasets")) == 1


def test_create_dataset_if_exists_error(requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/datasets", json=listing(dataset()))
    with pytest.raises(DifyConflictError, match="if_exists='error'"):
        DifyCreateDatasetOperator(task_id="ds", name="handbook", if_exists="error").execute(context())
    assert writes(requests_mock) == []


def test_delete_dataset_in_use_is_a_clear_error(requests_mock: Any) -> None:
    requests_mock.get(DS_URL, json=dataset(app_count=2))
    requests_mock.delete(
        DS_URL,
        status_code=409,
        json={"code": "dataset_in_use", "message": "The dataset is being used by some apps.", "status": 409},
    )
    with pytest.raises(DifyConflictError, match="in use by 2 Dify app"):
        DifyDeleteDatasetOperator(task_id="d", dataset_id=DATASET_ID).execute(context())


def test_metadata_operator_writes_only_values_that_differ(requests_mock: Any) -> None:
    team_field = {"id": "f-team", "name": "team", "type": "string", "count": 1}
    stored = {**document(), "doc_metadata": [{"id": "f-team", "name": "team", "type": "string", "value": "a"}]}
    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents/{DOCUMENT_ID}", json=stored)
    requests_mock.get(f"{DS_URL}/metadata", json={"doc_metadata": [team_field], "built_in_field_enabled": False})
    requests_mock.post(f"{DS_URL}/documents/metadata", json={"result": "success"})

    same = DifyUpdateDocumentMetadataOperator(
        task_id="m", dataset_id=DATASET_ID, document_id=DOCUMENT_ID, metadata={"team": "a"}
    ).execute(context())
    assert same["action"] == "unchanged" and writes(requests_mock) == []

    changed = DifyUpdateDocumentMetadataOperator(
        task_id="m", dataset_id=DATASET_ID, document_id=DOCUMENT_ID, metadata={"team": "b"}
    ).execute(context())
    assert changed["action"] == "updated"
    [body] = sent(requests_mock, "POST", "/documents/metadata")
    assert body["operation_data"] == [
        {
            "document_id": DOCUMENT_ID,
            "metadata_list": [{"id": "f-team", "name": "team", "value": "b"}],
            "partial_update": True,
        }
    ]


def test_metadata_value_that_does_not_fit_its_field_fails_before_writing(requests_mock: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    requests_mock.get(DS_URL, json=dataset())
    requests_mock.get(f"{DS_URL}/documents/{DOCUMENT_ID}", json=document())
    requests_mock.get(
        f"{DS_URL}/metadata",
        json={
            "doc_metadata": [{"id": "f-year", "name": "year", "type": "number", "count": 0}],
            "built_in_field_enabled": False,
        },
    )
    with pytest.raises(AirflowFailException, match=r"metadata\['year'\]"):
        DifyUpdateDocumentMetadataOperator(
            task_id="m", dataset_id=DATASET_ID, document_id=DOCUMENT_ID, metadata={"year": "last year"}
        ).execute(context())
    assert writes(requests_mock) == []
