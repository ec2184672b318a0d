"""
A deferred wait on more documents than one trigger is given, resumed the way a real Airflow resumes it: with the
deferral's kwargs (``dag.test()`` drops them; ``test_sensor_dags`` covers that path through XCom).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

import airflow_provider_dify.sensors.indexing as indexing
from airflow_provider_dify.exceptions import DifyIndexingError, DifyIndexingTimeout
from airflow_provider_dify.sensors.indexing import GROUP_RESUME_METHOD, DifyIndexingSensor, defer_for_indexing

TEXT = "Alpha paragraph of a grouped wait.\n\nBeta paragraph of a grouped wait."

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.05)


class _TaskInstance:
    task_id, map_index = "wait", -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _sensor(dataset_id: str, ids: list[str]) -> DifyIndexingSensor:
    return DifyIndexingSensor(task_id="wait", dataset_id=dataset_id, document_ids=ids, deferrable=True, timeout=60)


def _waiting_sensor(
    dify: Any, count: int, limit: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[DifyIndexingSensor, list[str]]:
    """A deferrable sensor waiting on ``count`` new documents, with triggers given at most ``limit`` ids."""
    monkeypatch.setattr(indexing, "TRIGGER_DOCUMENT_LIMIT", limit)
    dataset_id = dify.create_dataset(f"grouped-{count}-{limit}")["id"]
    ids = [dify.create_document(dataset_id, f"g{n}.txt", TEXT, wait=False)["id"] for n in range(count)]
    return _sensor(dataset_id, ids), ids


def _defer(sensor: DifyIndexingSensor, ids: list[str], monkeypatch: pytest.MonkeyPatch, **extra: Any) -> TaskDeferred:
    ti = _TaskInstance()
    monkeypatch.setattr("airflow.providers.common.compat.sdk.get_current_context", lambda: {"ti": ti})
    with pytest.raises(TaskDeferred) as deferred:
        defer_for_indexing(
            sensor,
            dify_conn_id="dify_default",
            dataset_id=str(sensor.dataset_id),
            batch=None,
            document_ids=ids,
            timeout=60,
            poll_interval=0.1,
            stall_timeout=None,
            method_name="execute_complete",
            **extra,
        )
    return deferred.value


def test_a_trigger_is_given_a_group_and_the_task_its_whole_wait(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor, ids = _waiting_sensor(dify_emulator, 7, 3, monkeypatch)
    deferred = _defer(sensor, ids, monkeypatch)
    assert deferred.method_name == GROUP_RESUME_METHOD
    assert deferred.trigger.document_ids == ids[:3]
    wait = deferred.kwargs["wait"]
    assert wait["document_ids"] == ids and wait["method_name"] == "execute_complete"
    # The group's trigger fired: with every document indexed, the wait ends in its own method, all results.
    assert dify_emulator.wait_for_indexing()
    results = sensor.execute_indexing_group_done({"ti": _TaskInstance()}, {"status": "success"}, wait=wait)
    assert sorted(result["id"] for result in results) == sorted(ids)
    assert {result["indexing_status"] for result in results} == {"completed"}


@pytest.mark.dify_emulator(indexing_seconds=30)
def test_the_next_group_is_the_unfinished_ones_and_the_deadline_holds(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor, ids = _waiting_sensor(dify_emulator, 5, 2, monkeypatch)
    first = _defer(sensor, ids, monkeypatch)
    wait = first.kwargs["wait"]
    assert first.trigger.document_ids == ids[:2]
    # The first group is indexed (Dify's queue takes one document at a time), the rest still waits: the task
    # defers again, on the next two unfinished documents, with the same deadline.
    dify_emulator.advance_time(61)
    assert [dify_emulator.document(sensor.dataset_id, doc_id)["indexing_status"] for doc_id in ids[:2]] == [
        "completed",
        "completed",
    ]
    with pytest.raises(TaskDeferred) as again:
        sensor.execute_indexing_group_done({"ti": _TaskInstance()}, {"status": "success"}, wait=wait)
    assert again.value.trigger.document_ids == ids[2:4]
    assert again.value.trigger.end_time == wait["end_time"]
    # Past the deadline: the wait ends with a timeout, raised by the sensor's own method.
    late = {**wait, "end_time": time.time() - 1}
    with pytest.raises(DifyIndexingTimeout):
        sensor.execute_indexing_group_done({"ti": _TaskInstance()}, {"status": "success"}, wait=late)
    # A group that failed ends the wait with its own event.
    with pytest.raises(DifyIndexingError):
        sensor.execute_indexing_group_done(
            {"ti": _TaskInstance()}, {"status": "error", "message": "parse failed", "documents": []}, wait=wait
        )


def test_an_operator_without_the_mixin_gives_the_trigger_every_id(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import BaseOperator

    monkeypatch.setattr(indexing, "TRIGGER_DOCUMENT_LIMIT", 2)
    ids = [f"0b3a2d4c-2222-4a5b-8c6d-00000000000{n}" for n in range(5)]
    with pytest.raises(TaskDeferred) as deferred:
        defer_for_indexing(
            BaseOperator(task_id="custom"),
            dify_conn_id="dify_default",
            dataset_id="0b3a2d4c-1111-4a5b-8c6d-000000000002",
            batch=None,
            document_ids=ids,
            timeout=60,
            poll_interval=1,
            stall_timeout=None,
            method_name="execute_complete",
        )
    assert deferred.value.trigger.document_ids == ids and deferred.value.method_name == "execute_complete"
