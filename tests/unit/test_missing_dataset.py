"""A knowledge base that answered 404 "Dataset not found." is not asked again by the same hook."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyDatasetNotFoundError, DifyNotFoundError
from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import BASE_URL, DATASET_ID

OTHER_ID = "0a9b5c6d-1111-4222-8333-444455556666"
DOCUMENT_ID = "d0c1d0c1-0000-4000-8000-000000000001"


def test_later_requests_to_a_deleted_knowledge_base_are_not_sent(hook: DifyHook, requests_mock: Any) -> None:
    gone = {"code": "not_found", "message": "Dataset not found.", "status": 404}
    requests_mock.get(f"{BASE_URL}/datasets/{DATASET_ID}/documents", status_code=404, json=gone)
    requests_mock.get(f"{BASE_URL}/datasets/{OTHER_ID}", json={"id": OTHER_ID, "name": "other"})
    with pytest.raises(DifyDatasetNotFoundError) as first:
        hook.list_documents(DATASET_ID)
    assert first.value.dataset_id == DATASET_ID and isinstance(first.value, DifyNotFoundError)
    assert hook.dataset_gone(DATASET_ID) and not hook.dataset_gone(OTHER_ID)
    with pytest.raises(DifyDatasetNotFoundError, match="request not sent") as second:
        hook.delete_document(DATASET_ID, DOCUMENT_ID)
    assert second.value.method == "DELETE" and second.value.path == f"/datasets/{DATASET_ID}/documents/{DOCUMENT_ID}"
    assert requests_mock.call_count == 1
    assert hook.get_dataset(OTHER_ID)["name"] == "other"  # other knowledge bases are asked as usual


def test_a_document_not_found_does_not_mark_the_knowledge_base(hook: DifyHook, requests_mock: Any) -> None:
    missing = {"code": "not_found", "message": "Document not found.", "status": 404}
    requests_mock.get(f"{BASE_URL}/datasets/{DATASET_ID}/documents/{DOCUMENT_ID}", status_code=404, json=missing)
    with pytest.raises(DifyNotFoundError) as raised:
        hook.get_document(DATASET_ID, DOCUMENT_ID)
    assert not isinstance(raised.value, DifyDatasetNotFoundError)
    assert not hook.dataset_gone(DATASET_ID)
