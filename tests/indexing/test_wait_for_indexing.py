"""The blocking wait_for_indexing loop against the Dify emulator over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyIndexingError, DifyIndexingTimeout
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.indexing import MAX_CONSECUTIVE_FAILED_POLLS, wait_for_indexing

TEXT = "One paragraph to index.\n\nAnother paragraph to index."
STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"


class FakeTime:
    """A clock that moves only when the wait sleeps, and moves the emulator's clock with it."""

    def __init__(self, dify: Any) -> None:
        self.dify = dify
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.dify.advance_time(seconds)


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("indexing-wait")["id"]


@pytest.fixture
def hook() -> DifyHook:
    return DifyHook()


def create(hook: DifyHook, dataset_id: str, name: str) -> dict[str, Any]:
    answer = hook.create_document_by_text(
        dataset_id, name, TEXT, indexing_technique="economy", process_rule={"mode": "automatic"}
    )
    return {"id": answer["document"]["id"], "batch": answer["batch"]}


@pytest.mark.dify_emulator(indexing_seconds=20.0, poll_interval_max=None)
def test_waits_until_completed_and_returns_results(dify_emulator: Any, dataset_id: str, hook: DifyHook) -> None:
    doc = create(hook, dataset_id, "a.txt")
    fake = FakeTime(dify_emulator)
    results = wait_for_indexing(
        hook, dataset_id, batch=doc["batch"], poll_interval=5, sleep=fake.sleep, clock=fake.clock
    )
    assert [result["id"] for result in results] == [doc["id"]]
    assert results[0]["indexing_status"] == "completed"
    assert results[0]["completed_segments"] == results[0]["total_segments"] > 0
    assert len(fake.sleeps) >= 4  # 20 s of indexing seen through 5 s polls
    assert all(seconds == 5 for seconds in fake.sleeps)


@pytest.mark.dify_emulator(indexing_seconds=1.0)
def test_the_fixtures_connection_caps_the_poll_interval(dify_emulator: Any, dataset_id: str, hook: DifyHook) -> None:
    """The dify_emulator fixture's connection (``poll_interval_max``) makes a DAG's 30 s polls 0.05 s ones."""
    from airflow_provider_dify.testing.pytest_plugin import TEST_POLL_INTERVAL_MAX

    assert hook.settings.poll_interval_max == TEST_POLL_INTERVAL_MAX
    doc = create(hook, dataset_id, "a.txt")
    fake = FakeTime(dify_emulator)
    results = wait_for_indexing(
        hook, dataset_id, batch=doc["batch"], poll_interval=30, sleep=fake.sleep, clock=fake.clock
    )
    assert results[0]["indexing_status"] == "completed"
    assert len(fake.sleeps) >= 10  # 1 s of indexing seen through 0.05 s polls
    assert set(fake.sleeps) == {TEST_POLL_INTERVAL_MAX}


def test_indexing_error_raises_naming_the_document(dify_emulator: Any, dataset_id: str, hook: DifyHook) -> None:
    dify_emulator.set_indexing_outcome("bad.txt", "error", error="Unsupported encoding")
    doc = create(hook, dataset_id, "bad.txt")
    fake = FakeTime(dify_emulator)
    with pytest.raises(DifyIndexingError, match="Unsupported encoding") as caught:
        wait_for_indexing(hook, dataset_id, document_ids=[doc["id"]], sleep=fake.sleep, clock=fake.clock)
    assert caught.value.document_id == doc["id"]
    assert caught.value.indexing_status == "error"
    assert not isinstance(caught.value, DifyIndexingTimeout)


def test_stall_raises_before_the_timeout(dify_emulator: Any, dataset_id: str, hook: DifyHook) -> None:
    dify_emulator.set_indexing_outcome("stall.txt", "stall")
    doc = create(hook, dataset_id, "stall.txt")
    fake = FakeTime(dify_emulator)
    with pytest.raises(DifyIndexingError, match="stalled") as caught:
        wait_for_indexing(
            hook,
            dataset_id,
            batch=doc["batch"],
            timeout=3600,
            poll_interval=10,
            stall_timeout=60,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert not isinstance(caught.value, DifyIndexingTimeout)
    assert 60 <= fake.now - 1000.0 < 3600


def test_deadline_raises_indexing_timeout(dify_emulator: Any, dataset_id: str, hook: DifyHook) -> None:
    dify_emulator.set_indexing_outcome("stuck.txt", "stuck")
    doc = create(hook, dataset_id, "stuck.txt")
    fake = FakeTime(dify_emulator)
    with pytest.raises(DifyIndexingTimeout, match="did not finish within 30 s") as caught:
        wait_for_indexing(
            hook, dataset_id, batch=doc["batch"], timeout=30, poll_interval=7, sleep=fake.sleep, clock=fake.clock
        )
    assert caught.value.document_id == doc["id"]
    assert caught.value.indexing_status == "waiting"
    assert fake.now == pytest.approx(1030.0)  # the last sleep is shortened to the deadline


def test_superseded_batch_is_followed_through_document_ids(dify_emulator: Any, dataset_id: str, hook: DifyHook) -> None:
    first = create(hook, dataset_id, "same.txt")
    create(hook, dataset_id, "same.txt")
    fake = FakeTime(dify_emulator)
    results = wait_for_indexing(
        hook, dataset_id, batch=first["batch"], document_ids=[first["id"]], sleep=fake.sleep, clock=fake.clock
    )
    assert [result["id"] for result in results] == [first["id"]]
    assert dify_emulator.count("GET", STATUS_ROUTE, status=404) == 1


@pytest.fixture
def no_hook_retries(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> DifyHook:
    connection = {**dify_emulator.connection_dict, "extra": {"max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
    return DifyHook()


def test_failed_polls_are_tolerated_then_give_up(
    dify_emulator: Any, dataset_id: str, no_hook_retries: DifyHook
) -> None:
    doc = create(no_hook_retries, dataset_id, "flaky.txt")
    fake = FakeTime(dify_emulator)
    dify_emulator.fail_next(MAX_CONSECUTIVE_FAILED_POLLS - 1, 502, method="GET", route=STATUS_ROUTE)
    results = wait_for_indexing(no_hook_retries, dataset_id, batch=doc["batch"], sleep=fake.sleep, clock=fake.clock)
    assert results[0]["indexing_status"] == "completed"

    dify_emulator.fail_next(MAX_CONSECUTIVE_FAILED_POLLS, 502, method="GET", route=STATUS_ROUTE)
    with pytest.raises(DifyIndexingError, match="failed polls in a row"):
        wait_for_indexing(no_hook_retries, dataset_id, batch=doc["batch"], sleep=fake.sleep, clock=fake.clock)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({}, "batch or document_ids"),
        ({"batch": ""}, "batch"),
        ({"document_ids": "one-id"}, "document_ids"),
        ({"document_ids": ["a", ""]}, "document_ids"),
        ({"batch": "20261123194403568155", "timeout": -1}, "timeout"),
        ({"batch": "20261123194403568155", "stall_timeout": "60"}, "stall_timeout"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    dify_emulator: Any, dataset_id: str, hook: DifyHook, kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        wait_for_indexing(hook, dataset_id, **kwargs)
    assert dify_emulator.calls == []
