"""
A deferred wait on more documents than one trigger is given, resumed the way a real Airflow resumes it: with the
deferral's kwargs (``dag.test()`` drops them; ``test_sensor_dags`` covers that path through XCom).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

import airflow_provider_dify.sensors.indexing as indexing
from airflow_provider_dify.exceptions import DifyIndexingError, DifyIndexingTimeout
from airflow_provider_dify.hooks.indexing import check_indexing
from airflow_provider_dify.sensors.indexing import GROUP_RESUME_METHOD, DifyIndexingSensor, defer_for_indexing
from tests.indexing.test_sensor_dags import RecordingSensor, build_dag, run, task_state, xcom_value

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


def _failure(call: Any) -> DifyIndexingError:
    """The error a resumed wait raised, for comparing one outcome with another."""
    with pytest.raises(DifyIndexingError) as raised:
        call()
    return raised.value


def _outcome(error: DifyIndexingError) -> tuple[str, str, str | None, str | None]:
    return type(error).__name__, str(error), error.document_id, error.indexing_status


@pytest.mark.dify_emulator(indexing_seconds=30)
async def test_a_document_deleted_between_groups_is_reported_deleted_as_by_one_trigger(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document the first group's check saw, deleted before its own group's trigger polls, was deleted while
    waited on: the same outcome as a single trigger on every document gives, not "never seen"."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from tests.indexing.test_trigger import run_trigger

    sensor, ids = _waiting_sensor(dify_emulator, 5, 2, monkeypatch)
    wait = _defer(sensor, ids, monkeypatch).kwargs["wait"]
    dify_emulator.advance_time(61)  # the first group is indexed; the others are still waiting
    with pytest.raises(TaskDeferred) as grouped:
        sensor.execute_indexing_group_done({"ti": _TaskInstance()}, {"status": "success"}, wait=wait)
    doomed = ids[3]
    assert doomed in grouped.value.trigger.document_ids == ids[2:4]
    group_progress = grouped.value.trigger.serialize()[1]["progress"]
    assert group_progress["documents"] == 5 and group_progress["settled"] is None  # nothing per document
    # The same wait with one trigger for every document, deferred after a check that saw them all.
    monkeypatch.setattr(indexing, "TRIGGER_DOCUMENT_LIMIT", 500)
    seen = check_indexing(DifyHook(), str(sensor.dataset_id), document_ids=ids)
    single = _defer(sensor, ids, monkeypatch, progress=seen.progress)
    assert single.trigger.document_ids == ids and single.method_name == "execute_complete"

    DifyHook().delete_document(str(sensor.dataset_id), doomed)
    grouped_event = await run_trigger(grouped.value.trigger)
    single_event = await run_trigger(single.trigger)
    assert grouped_event["status"] == single_event["status"] == "error"
    deleted = f"Document {doomed} was deleted while waiting for its indexing."
    assert grouped_event["message"] == single_event["message"] == deleted
    grouped_error = _failure(
        lambda: sensor.execute_indexing_group_done(
            {"ti": _TaskInstance()}, grouped_event, wait=grouped.value.kwargs["wait"]
        )
    )
    single_error = _failure(lambda: sensor.execute_complete({"ti": _TaskInstance()}, single_event))
    assert _outcome(grouped_error) == _outcome(single_error)
    assert type(grouped_error) is DifyIndexingError and grouped_error.document_id == doomed


async def test_an_id_that_never_existed_is_still_never_seen_in_a_group(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's trigger whose wait has not had a poll answer yet (the check before deferring failed) judges a
    404 as a single trigger does then: an id that never existed, which a retry cannot fix."""
    from airflow_provider_dify.exceptions import DifyDocumentNotFoundError, DifyServerError
    from airflow_provider_dify.hooks.indexing import record_failed_poll
    from tests.indexing.test_trigger import run_trigger

    sensor, ids = _waiting_sensor(dify_emulator, 4, 2, monkeypatch)
    never = str(uuid.uuid4())
    ids.insert(1, never)
    failed_check, _ = record_failed_poll(None, DifyServerError("Internal Server Error", status=500))
    grouped = _defer(sensor, ids, monkeypatch, progress=failed_check)
    assert never in grouped.trigger.document_ids == ids[:2]
    monkeypatch.setattr(indexing, "TRIGGER_DOCUMENT_LIMIT", 500)
    single = _defer(sensor, ids, monkeypatch, progress=failed_check)
    assert single.trigger.document_ids == ids

    grouped_event = await run_trigger(grouped.trigger)
    single_event = await run_trigger(single.trigger)
    assert grouped_event["status"] == single_event["status"] == "error"
    assert grouped_event["message"] == single_event["message"]
    grouped_error = _failure(
        lambda: sensor.execute_indexing_group_done({"ti": _TaskInstance()}, grouped_event, wait=grouped.kwargs["wait"])
    )
    single_error = _failure(lambda: sensor.execute_complete({"ti": _TaskInstance()}, single_event))
    assert _outcome(grouped_error) == _outcome(single_error)
    assert type(grouped_error) is DifyDocumentNotFoundError and grouped_error.document_id == never
    assert "no poll of this wait ever saw it" in str(grouped_error)


class _DeletingSensor(RecordingSensor):
    """What happens to the wait between its deferrals: when it defers on a trigger that waits on ``doomed``
    (after the check that saw it), that document is deleted; on any other, the emulator's clock moves on
    until that trigger's documents are indexed. Records the error the wait ended with in XCom."""

    emulator: Any = None
    doomed: str | None = None
    deferrals: list[list[str]] = []

    def defer(self, *, trigger: Any, **kwargs: Any) -> Any:
        from airflow_provider_dify.hooks.dify import DifyHook

        cls = type(self)
        cls.deferrals.append(list(trigger.document_ids or ()))
        if cls.doomed in cls.deferrals[-1]:
            DifyHook().delete_document(trigger.dataset_id, cls.doomed)
        else:
            cls.emulator.advance_time(61)  # two documents of 30 s each, one at a time
        return super().defer(trigger=trigger, **kwargs)

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        try:
            return super().execute_complete(context, event)
        except Exception as error:
            context["ti"].xcom_push(key="failure", value=f"{type(error).__name__}: {error}")
            raise


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.dify_emulator(indexing_seconds=30)
def test_in_a_dag_a_document_deleted_before_its_group_fails_as_in_one_trigger(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dag.test(): a document (never indexed) seen by the check after the first group is deleted before the wait
    defers on it; grouped two at a time or in one trigger, the task fails with the same error."""
    monkeypatch.setattr(_DeletingSensor, "emulator", dify_emulator)
    failures = []
    for limit in (2, 500):
        monkeypatch.setattr(indexing, "TRIGGER_DOCUMENT_LIMIT", limit)
        dataset_id = dify_emulator.create_dataset(f"deleted-between-groups-{limit}")["id"]
        dify_emulator.set_indexing_outcome(f"doomed-{limit}.txt", "stuck")
        names = [f"a-{limit}.txt", f"b-{limit}.txt", f"c-{limit}.txt", f"doomed-{limit}.txt"]
        ids = [dify_emulator.create_document(dataset_id, name, TEXT, wait=False)["id"] for name in names]
        monkeypatch.setattr(_DeletingSensor, "doomed", ids[3])
        monkeypatch.setattr(_DeletingSensor, "deferrals", [])
        dag = build_dag(
            dataset_id, f"other-{limit}.txt", deferrable=True, sensor_cls=_DeletingSensor, batch=None, document_ids=ids
        )
        dag_run = run(dag)
        groups = [ids[:2], ids[2:]] if limit == 2 else [ids]
        assert _DeletingSensor.deferrals == groups
        assert task_state(dag_run, "wait") == "failed"
        assert xcom_value(dag_run, "wait", key="resumed_with") == "error"
        failures.append(str(xcom_value(dag_run, "wait", key="failure")).replace(ids[3], "<doomed>"))
    grouped, single = failures
    assert grouped == single == "DifyIndexingError: Document <doomed> was deleted while waiting for its indexing."
