"""DifyIndexingTrigger against the Dify emulator over HTTP: every outcome, the 404 fallback, failed polls."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.indexing import MAX_CONSECUTIVE_FAILED_POLLS, check_indexing
from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger

TEXT = "First paragraph about indexing.\n\nSecond paragraph about waiting.\n\nThird paragraph about Airflow."
STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"
DOCUMENT_ROUTE = "/datasets/{dataset_id}/documents/{document_id}"

DS_ID = "0b3a2d4c-1111-4a5b-8c6d-000000000003"
BATCH_ID = "20261123194403568155"
D1 = "0b3a2d4c-2222-4a5b-8c6d-0000000000d1"
D2 = "0b3a2d4c-2222-4a5b-8c6d-0000000000d2"


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("indexing-trigger")["id"]


@pytest.fixture
def no_hook_retries(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection whose hook does not retry, so that every injected failure is one failed poll."""
    connection = {**dify_emulator.connection_dict, "extra": {"max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))


def create(dataset_id: str, name: str) -> dict[str, Any]:
    answer = DifyHook().create_document_by_text(
        dataset_id, name, TEXT, indexing_technique="economy", process_rule={"mode": "automatic"}
    )
    return {"id": answer["document"]["id"], "batch": answer["batch"]}


async def run_trigger(trigger: DifyIndexingTrigger) -> dict[str, Any]:
    """Recreate the trigger from its serialized form (as the triggerer does) and collect its events."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_dify.triggers.indexing.DifyIndexingTrigger"
    restored = DifyIndexingTrigger(**json.loads(json.dumps(kwargs)))
    events = [event async for event in restored.run()]
    assert len(events) == 1, events
    payload = events[0].payload
    assert set(payload) == {"status", "message", "dataset_id", "batch", "counts", "documents", "truncated"}
    return payload


def test_serialize_round_trip_is_plain_json() -> None:
    trigger = DifyIndexingTrigger(
        dataset_id=DS_ID,
        batch=BATCH_ID,
        document_ids=[D1, D2],
        dify_conn_id="my_dify",
        poll_interval=7,
        stall_timeout=120,
        end_time=1_900_000_000.5,
        progress={"documents": {D1: {"name": None, "signature": ["indexing", 1, 3]}}, "moved_at": 12.0},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == f"{DifyIndexingTrigger.__module__}.{DifyIndexingTrigger.__qualname__}"
    restored = DifyIndexingTrigger(**json.loads(json.dumps(kwargs)))
    assert restored.serialize() == (classpath, kwargs)
    assert kwargs["end_time"] == 1_900_000_000.5
    assert kwargs["document_ids"] == [D1, D2]


def test_default_deadline_is_absolute_and_kept_by_serialization() -> None:
    before = time.time()
    trigger = DifyIndexingTrigger(dataset_id=DS_ID, batch=BATCH_ID)
    _, kwargs = trigger.serialize()
    assert before + 3000 < kwargs["end_time"] < time.time() + 4000
    assert DifyIndexingTrigger(**kwargs).end_time == kwargs["end_time"]


def test_trigger_rejects_a_wait_on_nothing() -> None:
    with pytest.raises(ValueError, match="batch or document_ids"):
        DifyIndexingTrigger(dataset_id=DS_ID)


async def test_completed_indexing_fires_success_with_results(dify_emulator: Any, dataset_id: str) -> None:
    doc = create(dataset_id, "guide.txt")
    trigger = DifyIndexingTrigger(dataset_id, batch=doc["batch"], poll_interval=0.05, end_time=time.time() + 30)
    event = await run_trigger(trigger)
    assert event["status"] == "success", event
    assert event["batch"] == doc["batch"] and event["dataset_id"] == dataset_id
    [result] = event["documents"]
    stored = dify_emulator.document(dataset_id, doc["id"])
    assert result["id"] == doc["id"]
    assert result["indexing_status"] == "completed" == stored["indexing_status"]
    assert result["completed_segments"] == result["total_segments"] == stored["segment_count"] > 0
    assert result["indexing_seconds"] is not None and result["indexing_seconds"] >= 0
    assert dify_emulator.write_count() == 1  # only the create: the trigger only reads


@pytest.mark.dify_emulator(indexing_seconds=0.3)
async def test_the_fixtures_connection_caps_the_triggers_poll_interval(
    dify_emulator: Any, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DAG's 30 s poll interval becomes the dify_emulator fixture's cap (its connection's poll_interval_max)."""
    import asyncio

    from airflow_provider_dify.testing.pytest_plugin import TEST_POLL_INTERVAL_MAX

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds: float, *args: Any) -> Any:
        waits.append(seconds)
        return await real_sleep(seconds, *args)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    doc = create(dataset_id, "guide.txt")
    trigger = DifyIndexingTrigger(dataset_id, batch=doc["batch"], poll_interval=30, end_time=time.time() + 300)
    event = await run_trigger(trigger)
    assert event["status"] == "success", event
    assert waits and set(waits) == {TEST_POLL_INTERVAL_MAX}


async def test_indexing_error_fires_error_naming_document_and_dify_text(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.set_indexing_outcome("broken.txt", "error", error="Embedding quota exceeded")
    doc = create(dataset_id, "broken.txt")
    event = await run_trigger(
        DifyIndexingTrigger(dataset_id, batch=doc["batch"], poll_interval=0.05, end_time=time.time() + 30)
    )
    assert event["status"] == "error"
    assert doc["id"] in event["message"] and "Embedding quota exceeded" in event["message"]
    assert event["documents"][0]["indexing_status"] == "error"


async def test_paused_document_fires_error(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.set_indexing_outcome("paused.txt", "paused")
    doc = create(dataset_id, "paused.txt")
    event = await run_trigger(
        DifyIndexingTrigger(dataset_id, document_ids=[doc["id"]], poll_interval=0.05, end_time=time.time() + 30)
    )
    assert event["status"] == "error"
    assert "paused" in event["message"] and "'paused.txt'" in event["message"]


async def test_no_progress_fires_stalled(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.set_indexing_outcome("stalls.txt", "stall")
    doc = create(dataset_id, "stalls.txt")
    event = await run_trigger(
        DifyIndexingTrigger(
            dataset_id, batch=doc["batch"], poll_interval=0.05, stall_timeout=0.6, end_time=time.time() + 30
        )
    )
    assert event["status"] == "stalled", event
    assert "stalled" in event["message"] and doc["id"] in event["message"]
    assert event["documents"][0]["indexing_status"] == "indexing"


async def test_deadline_fires_timeout(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.set_indexing_outcome("queued.txt", "stuck")
    doc = create(dataset_id, "queued.txt")
    event = await run_trigger(
        DifyIndexingTrigger(dataset_id, batch=doc["batch"], poll_interval=0.05, end_time=time.time() + 0.5)
    )
    assert event["status"] == "timeout"
    assert doc["id"] in event["message"] and "waiting" in event["message"]
    assert event["documents"][0]["indexing_status"] == "waiting"


async def test_deadline_already_passed_still_reports_a_finished_wait(dify_emulator: Any, dataset_id: str) -> None:
    doc = create(dataset_id, "done.txt")
    assert dify_emulator.wait_for_indexing(10)
    event = await run_trigger(DifyIndexingTrigger(dataset_id, batch=doc["batch"], end_time=time.time() - 1))
    assert event["status"] == "success"


async def test_deleted_document_fires_error(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.set_indexing_outcome("doomed.txt", "stuck")
    doc = create(dataset_id, "doomed.txt")
    DifyHook().delete_document(dataset_id, doc["id"])
    event = await run_trigger(
        DifyIndexingTrigger(
            dataset_id, batch=doc["batch"], document_ids=[doc["id"]], poll_interval=0.05, end_time=time.time() + 30
        )
    )
    assert event["status"] == "error"
    assert "deleted" in event["message"] and doc["id"] in event["message"]


async def test_superseded_batch_falls_back_to_document_ids(dify_emulator: Any, dataset_id: str) -> None:
    first = create(dataset_id, "upserted.txt")
    second = create(dataset_id, "upserted.txt")  # same name: same document, new batch; the old one answers 404
    assert second["id"] == first["id"] and second["batch"] != first["batch"]
    event = await run_trigger(
        DifyIndexingTrigger(
            dataset_id,
            batch=first["batch"],
            document_ids=[first["id"]],
            poll_interval=0.05,
            end_time=time.time() + 30,
        )
    )
    assert event["status"] == "success", event
    assert event["documents"][0]["id"] == first["id"]
    assert event["documents"][0]["name"] == "upserted.txt"
    assert dify_emulator.count("GET", STATUS_ROUTE, status=404) == 1  # asked once, then followed the document
    assert dify_emulator.count("GET", DOCUMENT_ROUTE) >= 1


async def test_superseded_batch_falls_back_to_documents_seen_before(dify_emulator: Any, dataset_id: str) -> None:
    dify_emulator.configure(indexing_seconds=0.8)
    first = create(dataset_id, "seen.txt")
    # The check made before deferring saw the document in its batch; the snapshot carries its id.
    seen = check_indexing(DifyHook(), dataset_id, batch=first["batch"])
    assert seen.state == "running"
    create(dataset_id, "seen.txt")  # re-upsert: the first batch now answers 404
    event = await run_trigger(
        DifyIndexingTrigger(
            dataset_id, batch=first["batch"], poll_interval=0.05, end_time=time.time() + 30, progress=seen.progress
        )
    )
    assert event["status"] == "success", event
    assert [doc["id"] for doc in event["documents"]] == [first["id"]]
    assert dify_emulator.count("GET", STATUS_ROUTE, status=404) == 1


async def test_superseded_batch_without_any_id_fires_error_asking_for_ids(dify_emulator: Any, dataset_id: str) -> None:
    first = create(dataset_id, "lost.txt")
    create(dataset_id, "lost.txt")
    event = await run_trigger(DifyIndexingTrigger(dataset_id, batch=first["batch"], end_time=time.time() + 30))
    assert event["status"] == "error"
    assert "document_ids" in event["message"]


@pytest.mark.usefixtures("no_hook_retries")
async def test_transient_502s_do_not_end_the_wait(dify_emulator: Any, dataset_id: str) -> None:
    doc = create(dataset_id, "flaky.txt")
    failures = MAX_CONSECUTIVE_FAILED_POLLS - 1
    dify_emulator.fail_next(failures, 502, method="GET", route=STATUS_ROUTE)
    event = await run_trigger(
        DifyIndexingTrigger(dataset_id, batch=doc["batch"], poll_interval=0.05, end_time=time.time() + 30)
    )
    assert event["status"] == "success", event
    assert dify_emulator.count("GET", STATUS_ROUTE, status=502) == failures
    assert dify_emulator.count("GET", STATUS_ROUTE, status=200) >= 1


@pytest.mark.usefixtures("no_hook_retries")
async def test_too_many_failed_polls_in_a_row_fire_error(dify_emulator: Any, dataset_id: str) -> None:
    doc = create(dataset_id, "down.txt")
    dify_emulator.fail_next(MAX_CONSECUTIVE_FAILED_POLLS, 503, method="GET", route=STATUS_ROUTE)
    event = await run_trigger(
        DifyIndexingTrigger(dataset_id, batch=doc["batch"], poll_interval=0.05, end_time=time.time() + 30)
    )
    assert event["status"] == "error"
    assert f"{MAX_CONSECUTIVE_FAILED_POLLS} failed polls in a row" in event["message"]
    assert "503" in event["message"]
    assert dify_emulator.count("GET", STATUS_ROUTE) == MAX_CONSECUTIVE_FAILED_POLLS


async def test_rejected_api_key_fires_error_without_retrying(
    dify_emulator: Any, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = create(dataset_id, "secret.txt")
    wrong_key = "dataset-wrong-key-0000"
    monkeypatch.setenv(
        "AIRFLOW_CONN_DIFY_DEFAULT", json.dumps({**dify_emulator.connection_dict, "password": wrong_key})
    )
    event = await run_trigger(DifyIndexingTrigger(dataset_id, batch=doc["batch"], end_time=time.time() + 30))
    assert event["status"] == "error"
    assert "401" in event["message"]
    assert wrong_key not in json.dumps(event) and dify_emulator.api_key not in json.dumps(event)
    assert dify_emulator.count("GET", status=401) == 1  # a refused key is not retried
