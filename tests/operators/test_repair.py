"""The create and update operators rewrite a document whose indexing ended in error, paused or stopped."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator, DifyUpdateDocumentOperator
from bench.environment import minimal_context

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0.0)

TEXT = "Refund policy. Customers may return items within thirty days."


def _create(dataset_id: str, **kwargs: Any) -> dict[str, Any]:
    operator = DifyCreateDocumentOperator(
        task_id="create", dataset_id=dataset_id, name="policy.txt", text=TEXT, indexing_technique="economy", **kwargs
    )
    return operator.execute(minimal_context())


@pytest.mark.parametrize("outcome", ["error", "paused"])
def test_a_failed_document_is_rewritten_by_the_create_operator(dify_emulator: Any, outcome: str) -> None:
    dify = dify_emulator
    dataset_id = dify.create_dataset("repair")["id"]
    dify.set_indexing_outcome("policy.txt", outcome, error="the worker crashed", count=1)
    first = _create(dataset_id)
    assert first["action"] == "created" and "repaired" not in first
    assert dify.wait_for_indexing()
    assert dify.document(dataset_id, first["document_id"])["indexing_status"] == outcome
    dify.reset_counters()
    second = _create(dataset_id, wait_for_indexing=True, deferrable=False, poll_interval=0.05)
    assert second["action"] == "updated" and second["repaired"] == outcome
    assert second["document_id"] == first["document_id"]  # the same document, rewritten (Dify's upsert)
    assert second["batch"] != first["batch"]
    assert dify.count("POST", "/datasets/{dataset_id}/document/create-by-text") == 1
    [stored] = dify.documents(dataset_id)
    assert stored["indexing_status"] == "completed" and stored["text"] == TEXT
    third = _create(dataset_id)  # healthy and unchanged now: no write at all
    assert third["action"] == "unchanged" and "repaired" not in third


def test_a_failed_document_is_rewritten_by_the_update_operator(dify_emulator: Any) -> None:
    dify = dify_emulator
    dataset_id = dify.create_dataset("repair-update")["id"]
    dify.set_indexing_outcome("policy.txt", "error", count=1)
    first = _create(dataset_id)
    assert dify.wait_for_indexing()
    operator = DifyUpdateDocumentOperator(
        task_id="update", dataset_id=dataset_id, document_name="policy.txt", text=TEXT
    )
    result = operator.execute(minimal_context())
    assert result["action"] == "updated" and result["repaired"] == "error"
    assert result["document_id"] == first["document_id"]
    assert dify.wait_for_indexing()
    assert dify.document(dataset_id, first["document_id"])["indexing_status"] == "completed"
    assert TEXT not in str(result)
