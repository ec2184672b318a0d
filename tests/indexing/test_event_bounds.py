"""Waiting that scales: events, messages and log lines stay the same size for 10 or 10,000 documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyIndexingError
from airflow_provider_dify.hooks.indexing import (
    EVENT_DOCUMENT_LIMIT,
    MESSAGE_DOCUMENT_LIMIT,
    evaluate_poll,
    indexing_event,
    indexing_results_from_event,
)


def _documents(count: int, *, failed: int = 0, indexing: int = 0) -> list[dict[str, Any]]:
    documents = []
    for number in range(count):
        status = "error" if number < failed else "indexing" if number < failed + indexing else "completed"
        documents.append(
            {
                "id": f"00000000-0000-4000-8000-{number:012d}",
                "name": f"warehouse-record-{number:06d}",
                "indexing_status": status,
                "completed_segments": 0 if status != "completed" else 3,
                "total_segments": 3,
                "error": "Emulated indexing error." if status == "error" else None,
            }
        )
    return documents


def _event_size(documents: list[dict[str, Any]], status: str = "success") -> int:
    outcome = evaluate_poll(documents, None, now=0.0)
    event = indexing_event(status, outcome.message, dataset_id="ds", batch=None, documents=outcome.documents)
    return len(json.dumps(event))


@pytest.mark.parametrize(("failed", "indexing"), [(0, 0), (0, 10_000), (3, 5_000), (10_000, 0)])
def test_an_event_about_10000_documents_is_as_small_as_one_about_a_few(failed: int, indexing: int) -> None:
    status = "error" if failed else "timeout" if indexing else "success"
    many = _event_size(_documents(10_000, failed=failed, indexing=indexing), status)
    few_failed = min(failed, EVENT_DOCUMENT_LIMIT)
    few_indexing = min(indexing, EVENT_DOCUMENT_LIMIT - few_failed)
    few = _event_size(_documents(EVENT_DOCUMENT_LIMIT, failed=few_failed, indexing=few_indexing), status)
    assert many <= few + 200  # the same named documents, and longer counts
    assert many < 10_000  # bytes, for 10,000 documents


def test_a_large_event_counts_everything_and_names_the_failed_documents_first() -> None:
    documents = _documents(10_000, failed=2, indexing=100)
    event = indexing_event("error", "failed", dataset_id="ds", batch="b", documents=documents)
    counts = {"documents": 10_000, "completed": 9_898, "failed": 2, "unfinished": 100, "chunks": 30_000}
    assert event["counts"] == counts
    assert len(event["documents"]) == EVENT_DOCUMENT_LIMIT and event["truncated"] is True
    assert [doc["indexing_status"] for doc in event["documents"][:3]] == ["error", "error", "indexing"]
    with pytest.raises(DifyIndexingError) as raised:
        indexing_results_from_event(event)
    assert raised.value.document_id == documents[0]["id"]


def test_a_small_event_lists_every_document() -> None:
    documents = _documents(EVENT_DOCUMENT_LIMIT)
    event = indexing_event("success", "ok", dataset_id="ds", batch=None, documents=documents)
    assert indexing_results_from_event(event) == documents and event["truncated"] is False


def test_poll_messages_name_a_bounded_number_of_documents() -> None:
    outcome = evaluate_poll(_documents(10_000, indexing=10_000), None, now=0.0)
    assert outcome.state == "running"
    assert outcome.message.count("warehouse-record-") == MESSAGE_DOCUMENT_LIMIT
    assert "and 9,990 more" in outcome.message and len(outcome.message) < 2_000
    failed = evaluate_poll(_documents(10_000, failed=10_000), None, now=0.0)
    assert failed.state == "error" and failed.message.count("failed") == MESSAGE_DOCUMENT_LIMIT
