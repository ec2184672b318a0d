"""Unit tests of the pure waiting logic: mapping Dify's answers, judging a poll, planning a poll, events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_dify.exceptions import (
    DifyAuthenticationError,
    DifyConnectionError,
    DifyIndexingError,
    DifyIndexingTimeout,
    DifyNotFoundError,
    DifyServerError,
)
from airflow_provider_dify.hooks.indexing import (
    MAX_CONSECUTIVE_FAILED_POLLS,
    check_indexing,
    deleted_entry,
    document_entry,
    evaluate_poll,
    indexing_event,
    indexing_results_from_event,
    record_failed_poll,
    status_entry,
)

DOC_A = "bc33cd8c-dab8-459d-8b62-36a9f08ecc72"
DOC_B = "e36b1607-5d0d-4d86-afb1-98f624607fa5"
DATASET = "96d82e49-408d-46ea-b2ac-169fd6a21cc3"
BATCH = "20261123194403568155"


def entry(doc_id: str, status: str, done: int | None = 0, total: int | None = 3, **extra: Any) -> dict[str, Any]:
    return {
        "id": doc_id,
        "name": extra.pop("name", None),
        "indexing_status": status,
        "completed_segments": done,
        "total_segments": total,
        "error": extra.pop("error", None),
        "enabled": None,
        "archived": extra.pop("archived", None),
        "indexing_seconds": None,
    }


# -- mapping Dify's answers (shapes taken from the Dify 1.13.2 transcripts) ------------------------------------


def test_status_entry_reads_counts_and_time_taken() -> None:
    result = status_entry(
        {
            "id": DOC_A,
            "indexing_status": "completed",
            "processing_started_at": 1795463043,
            "parsing_completed_at": 1795463043,
            "completed_at": 1795463045,
            "paused_at": None,
            "error": None,
            "stopped_at": None,
            "completed_segments": 1,
            "total_segments": 1,
        }
    )
    assert result["id"] == DOC_A
    assert result["indexing_status"] == "completed"
    assert (result["completed_segments"], result["total_segments"]) == (1, 1)
    assert result["indexing_seconds"] == 2.0
    assert result["error"] is None


def test_status_entry_without_completion_has_no_time_taken() -> None:
    result = status_entry(
        {"id": DOC_A, "indexing_status": "indexing", "processing_started_at": 5, "completed_at": None}
    )
    assert result["indexing_seconds"] is None
    assert result["completed_segments"] is None


def test_document_entry_maps_a_completed_document_detail() -> None:
    detail = {
        "id": DOC_A,
        "name": "intro.txt",
        "indexing_status": "completed",
        "completed_at": 1795463045,
        "indexing_latency": 2.103206160999889,
        "error": None,
        "enabled": True,
        "archived": False,
        "segment_count": 4,
        "display_status": "available",
    }
    result = document_entry(detail)
    assert result["name"] == "intro.txt"
    assert (result["completed_segments"], result["total_segments"]) == (4, 4)
    assert result["indexing_seconds"] == pytest.approx(2.103206160999889)
    assert result["enabled"] is True
    assert result["archived"] is False


def test_document_entry_reads_paused_from_display_status() -> None:
    detail = {"id": DOC_A, "name": "n", "indexing_status": "indexing", "display_status": "paused", "segment_count": 2}
    result = document_entry(detail)
    assert result["indexing_status"] == "paused"
    assert result["completed_segments"] is None
    assert result["total_segments"] == 2


# -- judging one poll -----------------------------------------------------------------------------------------


def test_all_completed_is_success_with_results() -> None:
    outcome = evaluate_poll([entry(DOC_A, "completed", 3), entry(DOC_B, "completed", 1, 1)], None, now=10.0)
    assert outcome.state == "success"
    assert [doc["id"] for doc in outcome.documents] == [DOC_A, DOC_B]
    assert outcome.raise_for_state() == outcome.documents


def test_unfinished_document_keeps_the_wait_running() -> None:
    outcome = evaluate_poll([entry(DOC_A, "completed", 3), entry(DOC_B, "indexing", 1)], None, now=10.0)
    assert outcome.state == "running"
    assert DOC_B in outcome.message and DOC_A not in outcome.message


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("error", "Embedding model quota exceeded", "Embedding model quota exceeded"),
        ("paused", None, "paused"),
        ("stopped", "stopped by user", "stopped by user"),
        ("error", None, "no error text"),
    ],
)
def test_failed_status_fails_fast_naming_document_and_dify_error(status: str, error: str | None, expected: str) -> None:
    entries = [entry(DOC_A, "indexing", 1), entry(DOC_B, status, error=error, name="report.txt")]
    outcome = evaluate_poll(entries, None, now=0.0)
    assert outcome.state == "error"
    assert DOC_B in outcome.message and "'report.txt'" in outcome.message
    assert expected in outcome.message
    with pytest.raises(DifyIndexingError) as caught:
        outcome.raise_for_state()
    assert caught.value.document_id == DOC_B
    assert caught.value.indexing_status == status
    assert not isinstance(caught.value, DifyIndexingTimeout)


def test_deleted_document_fails_the_wait() -> None:
    outcome = evaluate_poll([entry(DOC_A, "completed", 3), deleted_entry(DOC_B, "gone.txt")], None, now=0.0)
    assert outcome.state == "error"
    assert "deleted" in outcome.message and DOC_B in outcome.message and "gone.txt" in outcome.message


def test_archived_document_fails_even_when_completed() -> None:
    outcome = evaluate_poll([entry(DOC_A, "completed", 3, archived=True)], None, now=0.0)
    assert outcome.state == "error"
    assert "archived" in outcome.message


def test_stall_detected_when_nothing_moves_for_stall_timeout() -> None:
    first = evaluate_poll([entry(DOC_A, "indexing", 1)], None, now=100.0, stall_timeout=30)
    assert first.state == "running"
    still = evaluate_poll([entry(DOC_A, "indexing", 1)], first.progress, now=129.0, stall_timeout=30)
    assert still.state == "running"
    stalled = evaluate_poll([entry(DOC_A, "indexing", 1)], still.progress, now=130.0, stall_timeout=30)
    assert stalled.state == "stalled"
    assert "stalled" in stalled.message and DOC_A in stalled.message and "1/3 chunks" in stalled.message


def test_chunk_progress_resets_the_stall_clock() -> None:
    first = evaluate_poll([entry(DOC_A, "indexing", 1)], None, now=100.0, stall_timeout=30)
    moved = evaluate_poll([entry(DOC_A, "indexing", 2)], first.progress, now=125.0, stall_timeout=30)
    later = evaluate_poll([entry(DOC_A, "indexing", 2)], moved.progress, now=150.0, stall_timeout=30)
    assert later.state == "running"
    assert evaluate_poll([entry(DOC_A, "indexing", 2)], later.progress, now=155.0, stall_timeout=30).state == "stalled"


def test_status_change_resets_the_stall_clock() -> None:
    first = evaluate_poll([entry(DOC_A, "waiting", 0)], None, now=0.0, stall_timeout=10)
    moved = evaluate_poll([entry(DOC_A, "parsing", 0)], first.progress, now=9.0, stall_timeout=10)
    assert evaluate_poll([entry(DOC_A, "parsing", 0)], moved.progress, now=18.0, stall_timeout=10).state == "running"


def test_any_document_moving_keeps_the_batch_alive() -> None:
    first = evaluate_poll([entry(DOC_A, "waiting", 0), entry(DOC_B, "indexing", 0)], None, now=0.0, stall_timeout=10)
    moved = evaluate_poll(
        [entry(DOC_A, "waiting", 0), entry(DOC_B, "indexing", 2)], first.progress, now=8, stall_timeout=10
    )
    assert evaluate_poll(moved.documents, moved.progress, now=15.0, stall_timeout=10).state == "running"


def test_no_stall_timeout_never_stalls() -> None:
    first = evaluate_poll([entry(DOC_A, "indexing", 1)], None, now=0.0)
    assert evaluate_poll([entry(DOC_A, "indexing", 1)], first.progress, now=1e9).state == "running"


def test_progress_is_plain_json_and_survives_a_round_trip() -> None:
    first = evaluate_poll([entry(DOC_A, "indexing", 1, name="a.txt")], None, now=100.0, stall_timeout=30)
    restored = json.loads(json.dumps(first.progress))
    again = evaluate_poll([entry(DOC_A, "indexing", 1)], restored, now=140.0, stall_timeout=30)
    assert again.state == "stalled"
    assert "a.txt" not in json.dumps(first.progress)  # no per-document entry: names come with each read


# -- planning one poll (driven by check_indexing with a scripted hook) --------------------------------------------


class ScriptedHook:
    """Answers requests from a table of (method, path) -> answer or exception; records what was sent."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str]] = []

    def send(self, request: Any) -> Any:
        key = (request.method, request.path)
        self.sent.append(key)
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        return answer


STATUS_PATH = ("GET", f"/datasets/{DATASET}/documents/{BATCH}/indexing-status")


def doc_path(doc_id: str) -> tuple[str, str]:
    return ("GET", f"/datasets/{DATASET}/documents/{doc_id}")


def not_found(message: str) -> DifyNotFoundError:
    return DifyNotFoundError(message, status=404, code="not_found")


def status_answer(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": [
            {
                "id": e["id"],
                "indexing_status": e["indexing_status"],
                "completed_segments": e["completed_segments"],
                "total_segments": e["total_segments"],
                "error": e["error"],
            }
            for e in entries
        ]
    }


def test_batch_poll_reads_only_the_batch_and_remembers_its_documents() -> None:
    hook = ScriptedHook({STATUS_PATH: status_answer(entry(DOC_A, "indexing", 1), entry(DOC_B, "waiting"))})
    outcome = check_indexing(hook, DATASET, batch=BATCH, now=1.0)
    assert hook.sent == [STATUS_PATH]
    assert outcome.state == "running"
    assert outcome.progress["followed"] == [DOC_A, DOC_B]  # no document_ids: to follow if the batch answers 404


def test_batch_404_falls_back_to_documents_seen_earlier() -> None:
    hook = ScriptedHook({STATUS_PATH: status_answer(entry(DOC_A, "indexing", 1))})
    first = check_indexing(hook, DATASET, batch=BATCH, now=1.0)
    hook.answers[STATUS_PATH] = not_found("Documents not found.")
    hook.answers[doc_path(DOC_A)] = {"id": DOC_A, "name": "a.txt", "indexing_status": "completed", "segment_count": 3}
    second = check_indexing(hook, DATASET, batch=BATCH, progress=first.progress, now=2.0)
    assert second.state == "success"
    assert second.documents[0]["name"] == "a.txt"
    assert second.progress["batch_missing"] is True
    hook.sent.clear()
    third = check_indexing(hook, DATASET, batch=BATCH, progress=second.progress, now=3.0)
    # The superseded batch is not asked again; the completed document is read once more, for its whole result.
    assert hook.sent == [doc_path(DOC_A)]
    assert third.state == "success"
    assert third.documents == second.documents


def test_batch_404_without_known_ids_asks_for_document_ids() -> None:
    hook = ScriptedHook({STATUS_PATH: not_found("Documents not found.")})
    with pytest.raises(DifyIndexingError, match="document_ids"):
        check_indexing(hook, DATASET, batch=BATCH, now=1.0)


def test_missing_dataset_is_not_mistaken_for_a_superseded_batch() -> None:
    hook = ScriptedHook({STATUS_PATH: not_found("Dataset not found.")})
    with pytest.raises(DifyNotFoundError, match="Dataset not found"):
        check_indexing(hook, DATASET, batch=BATCH, document_ids=[DOC_A], now=1.0)


def test_document_missing_from_batch_is_read_alone_and_404_means_deleted() -> None:
    hook = ScriptedHook(
        {
            STATUS_PATH: status_answer(entry(DOC_A, "completed", 3, 3)),
            doc_path(DOC_B): not_found("Document Not Exists."),
        }
    )
    outcome = check_indexing(hook, DATASET, batch=BATCH, document_ids=[DOC_A, DOC_B], now=1.0)
    assert hook.sent == [STATUS_PATH, doc_path(DOC_B)]
    assert outcome.state == "error"
    assert "deleted" in outcome.message and DOC_B in outcome.message


def test_document_ids_limit_a_batch_wait() -> None:
    hook = ScriptedHook({STATUS_PATH: status_answer(entry(DOC_A, "completed", 3, 3), entry(DOC_B, "waiting"))})
    outcome = check_indexing(hook, DATASET, batch=BATCH, document_ids=[DOC_A], now=1.0)
    assert outcome.state == "success"
    assert [doc["id"] for doc in outcome.documents] == [DOC_A]


def test_document_ids_without_batch_read_each_document() -> None:
    hook = ScriptedHook(
        {doc_path(DOC_A): {"id": DOC_A, "name": "a", "indexing_status": "splitting", "segment_count": 0}}
    )
    outcome = check_indexing(hook, DATASET, document_ids=[DOC_A], now=1.0)
    assert hook.sent == [doc_path(DOC_A)]
    assert outcome.state == "running"


def test_other_errors_propagate_from_the_poll() -> None:
    hook = ScriptedHook({STATUS_PATH: DifyServerError("bad gateway", status=502)})
    with pytest.raises(DifyServerError):
        check_indexing(hook, DATASET, batch=BATCH, now=1.0)


# -- failed polls ---------------------------------------------------------------------------------------------


def test_transient_failures_are_tolerated_until_the_limit() -> None:
    progress: dict[str, Any] | None = {"documents": {}, "moved_at": 1.0, "failed_polls": 0}
    error = DifyConnectionError("reset", maybe_delivered=True)
    for count in range(1, MAX_CONSECUTIVE_FAILED_POLLS):
        progress, fatal = record_failed_poll(progress, error)
        assert fatal is None
        assert progress["failed_polls"] == count
    progress, fatal = record_failed_poll(progress, error)
    assert isinstance(fatal, DifyIndexingError)
    assert f"{MAX_CONSECUTIVE_FAILED_POLLS} failed polls in a row" in str(fatal)


def test_a_successful_poll_resets_the_failure_count() -> None:
    progress, _ = record_failed_poll(None, DifyServerError("x", status=503))
    outcome = evaluate_poll([entry(DOC_A, "indexing")], progress, now=1.0)
    assert outcome.progress["failed_polls"] == 0


def test_non_transient_failure_ends_the_wait_at_once() -> None:
    error = DifyAuthenticationError("Access token is invalid", status=401)
    _, fatal = record_failed_poll(None, error)
    assert fatal is error


# -- events -----------------------------------------------------------------------------------------------------


def make_event(status: str, documents: list[dict[str, Any]], message: str = "m") -> dict[str, Any]:
    return indexing_event(status, message, dataset_id=DATASET, batch=BATCH, documents=documents)


def test_success_event_returns_the_documents() -> None:
    documents = [entry(DOC_A, "completed", 3, 3)]
    event = json.loads(json.dumps(make_event("success", documents)))
    assert indexing_results_from_event(event) == documents


def test_error_event_raises_naming_the_failed_document() -> None:
    event = make_event("error", [entry(DOC_A, "completed", 3), entry(DOC_B, "error", error="boom")], "B failed: boom")
    with pytest.raises(DifyIndexingError, match="B failed: boom") as caught:
        indexing_results_from_event(event)
    assert caught.value.document_id == DOC_B
    assert caught.value.indexing_status == "error"


def test_stalled_event_raises_indexing_error() -> None:
    with pytest.raises(DifyIndexingError, match="stalled") as caught:
        indexing_results_from_event(make_event("stalled", [entry(DOC_A, "indexing")], "Indexing stalled"))
    assert not isinstance(caught.value, DifyIndexingTimeout)
    assert caught.value.document_id == DOC_A


def test_timeout_event_raises_indexing_timeout() -> None:
    with pytest.raises(DifyIndexingTimeout, match="did not finish"):
        indexing_results_from_event(make_event("timeout", [entry(DOC_A, "waiting")], "did not finish"))


@pytest.mark.parametrize(
    "event",
    [None, {}, "success", [], {"status": "done", "documents": []}, {"status": None}, {"status": "success"}],
    ids=["none", "empty", "string", "list", "unknown-status", "no-status", "no-documents"],
)
def test_malformed_events_fail_clearly(event: Any) -> None:
    with pytest.raises(DifyIndexingError) as caught:
        indexing_results_from_event(event)
    assert "indexing trigger" in str(caught.value)


def test_event_builder_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="status"):
        make_event("finished", [])
