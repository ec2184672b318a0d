"""DifyIndexingSensor in real DAGs (``dag.test()`` on the SQLite metadata DB) against the emulator over HTTP."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.sensors.indexing import DifyIndexingSensor
from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

TEXT = "Alpha paragraph for the sensor.\n\nBeta paragraph for the sensor.\n\nGamma paragraph for the sensor."
STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"
_dag_numbers = itertools.count()

pytestmark = pytest.mark.usefixtures("airflow_db")

DS_ID = "0b3a2d4c-1111-4a5b-8c6d-000000000002"
BATCH_ID = "20261123194403568155"
A_ID = "0b3a2d4c-2222-4a5b-8c6d-00000000000a"
B_ID = "0b3a2d4c-2222-4a5b-8c6d-00000000000b"


class RecordingSensor(DifyIndexingSensor):
    """The sensor, recording in XCom which event status resumed it (proof that it waited in the trigger)."""

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        context["ti"].xcom_push(key="resumed_with", value=(event or {}).get("status"))
        return super().execute_complete(context, event)

    def poke(self, context: Any) -> Any:
        try:
            return super().poke(context)
        except Exception as error:
            context["ti"].xcom_push(key="failure", value=f"{type(error).__name__}: {error}")
            raise


def build_dag(dataset_id: str, name: str, **sensor_kwargs: Any) -> Any:
    """create (a task writing a document through DifyHook) >> wait (the sensor, fed by Jinja from create's XCom)."""
    from airflow.providers.common.compat.sdk import DAG, task

    dag_id = f"indexing_sensor_{next(_dag_numbers)}"
    with DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:

        @task(task_id="create")
        def create() -> dict[str, Any]:
            from airflow_provider_dify.hooks.dify import DifyHook

            answer = DifyHook().create_document_by_text(
                dataset_id, name, TEXT, indexing_technique="economy", process_rule={"mode": "automatic"}
            )
            return {"dataset_id": dataset_id, "batch": answer["batch"], "document_ids": [answer["document"]["id"]]}

        sensor_kwargs.setdefault("batch", "{{ ti.xcom_pull(task_ids='create')['batch'] }}")
        sensor_cls = sensor_kwargs.pop("sensor_cls", DifyIndexingSensor)
        wait = sensor_cls(
            task_id="wait",
            dataset_id="{{ ti.xcom_pull(task_ids='create')['dataset_id'] }}",
            **{"poke_interval": 0.2, "timeout": 60, **sensor_kwargs},
        )
        create() >> wait
    return dag


def reschedule_count(dag_run: Any, task_id: str) -> int:
    """How many times the task was rescheduled (rows of the task_reschedule table)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    ti = dag_run.dag_run.get_task_instance(task_id)
    with create_session() as session:
        if hasattr(TaskReschedule, "ti_id"):  # Airflow 3
            query = select(func.count()).where(TaskReschedule.ti_id == ti.id)
        else:
            query = select(func.count()).where(
                TaskReschedule.dag_id == ti.dag_id,
                TaskReschedule.task_id == ti.task_id,
                TaskReschedule.run_id == ti.run_id,
            )
        return int(session.scalar(query) or 0)


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("indexing-sensor")["id"]


def run(dag: Any) -> Any:
    from airflow_provider_dify.testing.dag_runner import run_dag

    return run_dag(dag)


def assert_completed_results(dify: Any, dataset_id: str, results: Any) -> None:
    documents = dify.documents(dataset_id)
    assert isinstance(results, list) and len(results) == len(documents) == 1
    [result], [stored] = results, documents
    assert result["id"] == stored["id"]
    assert result["indexing_status"] == "completed" == stored["indexing_status"]
    assert result["completed_segments"] == result["total_segments"] == len(dify.segments(dataset_id, stored["id"]))


@pytest.mark.dify_emulator(indexing_seconds=1.0)
def test_poke_mode_waits_and_returns_results(dify_emulator: Any, dataset_id: str) -> None:
    dag_run = run(build_dag(dataset_id, "poke.txt", mode="poke", deferrable=False))
    assert task_state(dag_run, "wait") == "success"
    assert_completed_results(dify_emulator, dataset_id, xcom_value(dag_run, "wait"))
    assert dify_emulator.count("GET", STATUS_ROUTE) >= 2  # it saw the document indexing before it completed


@pytest.mark.dify_emulator(indexing_seconds=1.0)
def test_reschedule_mode_frees_the_slot_between_pokes(dify_emulator: Any, dataset_id: str) -> None:
    dag_run = run(build_dag(dataset_id, "reschedule.txt", mode="reschedule", deferrable=False))
    assert task_state(dag_run, "wait") == "success"
    assert reschedule_count(dag_run, "wait") >= 1
    assert_completed_results(dify_emulator, dataset_id, xcom_value(dag_run, "wait"))


@pytest.mark.dify_emulator(indexing_seconds=1.0)
def test_deferrable_mode_waits_in_the_trigger(dify_emulator: Any, dataset_id: str) -> None:
    dag = build_dag(dataset_id, "deferred.txt", deferrable=True, sensor_cls=RecordingSensor)
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "success"
    assert xcom_value(dag_run, "wait", key="resumed_with") == "success"
    assert_completed_results(dify_emulator, dataset_id, xcom_value(dag_run, "wait"))


@pytest.mark.dify_emulator(indexing_seconds=0.6)
def test_deferrable_mode_returns_every_result_when_the_event_names_only_a_few(
    dify_emulator: Any, dataset_id: str
) -> None:
    """The trigger's event is bounded (it names at most a few documents); the sensor's XCom is not: the same
    per-document results as the poke mode, read once when the task resumes."""
    from airflow_provider_dify.hooks.indexing import EVENT_DOCUMENT_LIMIT

    documents = [dify_emulator.create_document(dataset_id, f"many-{n}.txt", TEXT, wait=False) for n in range(12)]
    assert len(documents) > EVENT_DOCUMENT_LIMIT
    ids = [doc["id"] for doc in documents]
    dag = build_dag(dataset_id, "many.txt", deferrable=True, sensor_cls=RecordingSensor, batch=None, document_ids=ids)
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "success"
    assert xcom_value(dag_run, "wait", key="resumed_with") == "success"  # it waited in the trigger
    results = xcom_value(dag_run, "wait")
    assert sorted(result["id"] for result in results) == sorted(ids)
    assert {result["indexing_status"] for result in results} == {"completed"}


def _trigger_groups(monkeypatch: pytest.MonkeyPatch, limit: int) -> list[tuple[str, ...]]:
    """Lower the ids a trigger is given to ``limit``; return the id lists the triggers were made with."""
    import airflow_provider_dify.sensors.indexing as indexing
    from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger

    monkeypatch.setattr(indexing, "TRIGGER_DOCUMENT_LIMIT", limit)
    groups: list[tuple[str, ...]] = []
    real_init = DifyIndexingTrigger.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        groups.append(tuple(self.document_ids or ()))

    monkeypatch.setattr(DifyIndexingTrigger, "__init__", recording_init)
    return groups


@pytest.mark.dify_emulator(indexing_seconds=0.8)
def test_a_deferred_wait_on_many_documents_waits_a_bounded_group_at_a_time(
    dify_emulator: Any, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow stores a trigger's arguments in a TEXT column (64 KB on MySQL): a trigger is given at most
    TRIGGER_DOCUMENT_LIMIT ids, the unfinished ones, and the task goes on with the next group until all are done."""
    groups = _trigger_groups(monkeypatch, 2)
    documents = [dify_emulator.create_document(dataset_id, f"group-{n}.txt", TEXT, wait=False) for n in range(9)]
    ids = [doc["id"] for doc in documents]
    dag = build_dag(dataset_id, "group.txt", deferrable=True, sensor_cls=RecordingSensor, batch=None, document_ids=ids)
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "success"
    assert xcom_value(dag_run, "wait", key="resumed_with") == "success"
    results = xcom_value(dag_run, "wait")
    assert sorted(result["id"] for result in results) == sorted(ids)
    assert {result["indexing_status"] for result in results} == {"completed"}
    assert groups and all(0 < len(group) <= 2 for group in groups)
    assert len(set(groups)) >= 2 and set().union(*groups) <= set(ids)  # several groups, each of the wait's ids


@pytest.mark.dify_emulator(indexing_seconds=0.8)
def test_a_grouped_wait_fails_on_a_document_that_failed_outside_the_first_group(
    dify_emulator: Any, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = _trigger_groups(monkeypatch, 2)
    dify_emulator.set_indexing_outcome("group-bad.txt", "error", error="Document parse failed: bad encoding")
    names = [f"group-{n}.txt" for n in range(5)] + ["group-bad.txt"]
    ids = [dify_emulator.create_document(dataset_id, name, TEXT, wait=False)["id"] for name in names]
    dag = build_dag(dataset_id, "group.txt", deferrable=True, sensor_cls=RecordingSensor, batch=None, document_ids=ids)
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "failed"
    assert xcom_value(dag_run, "wait", key="resumed_with") == "error"
    assert ids[-1] not in groups[0]


def test_deferrable_sensor_does_not_defer_when_already_done(dify_emulator: Any, dataset_id: str) -> None:
    doc = dify_emulator.create_document(dataset_id, "ready.txt", TEXT, wait=True)
    dag = build_dag(
        dataset_id, "other.txt", deferrable=True, sensor_cls=RecordingSensor, batch=None, document_ids=[doc["id"]]
    )
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "success"
    assert xcom_value(dag_run, "wait", key="resumed_with") is None  # never deferred
    assert [result["id"] for result in xcom_value(dag_run, "wait")] == [doc["id"]]


def test_deferrable_default_follows_airflow_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert DifyIndexingSensor(task_id="a", dataset_id=DS_ID, batch=BATCH_ID).deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert DifyIndexingSensor(task_id="b", dataset_id=DS_ID, batch=BATCH_ID).deferrable is False
    assert DifyIndexingSensor(task_id="c", dataset_id=DS_ID, batch=BATCH_ID, deferrable=True).deferrable is True


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_indexing_error_fails_the_task_naming_the_document(
    dify_emulator: Any, dataset_id: str, deferrable: bool
) -> None:
    dify_emulator.set_indexing_outcome("bad.txt", "error", error="Document parse failed: bad encoding")
    dag_run = run(build_dag(dataset_id, "bad.txt", deferrable=deferrable))
    assert task_state(dag_run, "wait") == "failed"
    assert task_state(dag_run, "create") == "success"


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_an_id_that_never_existed_fails_the_task_without_its_retries(
    dify_emulator: Any, dataset_id: str, deferrable: bool
) -> None:
    import uuid
    from datetime import timedelta

    from airflow_provider_dify.testing.dag_runner import try_number

    never = str(uuid.uuid4())
    dag = build_dag(
        dataset_id,
        "fine.txt",
        batch=None,
        document_ids=[never],
        deferrable=deferrable,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "failed"
    assert try_number(dag_run, "wait") == 1  # a retry would wait on the same wrong id


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_soft_fail_skips_a_stalled_wait(dify_emulator: Any, dataset_id: str, deferrable: bool) -> None:
    dify_emulator.set_indexing_outcome("stall.txt", "stall")
    dag = build_dag(dataset_id, "stall.txt", deferrable=deferrable, stall_timeout=0.8, soft_fail=True)
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "skipped"


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_stalled_wait_fails_without_soft_fail(dify_emulator: Any, dataset_id: str, deferrable: bool) -> None:
    dify_emulator.set_indexing_outcome("stall.txt", "stall")
    dag_run = run(build_dag(dataset_id, "stall.txt", deferrable=deferrable, stall_timeout=0.8, timeout=60))
    assert task_state(dag_run, "wait") == "failed"


def test_reschedule_mode_detects_a_stall_across_pokes(dify_emulator: Any, dataset_id: str) -> None:
    from airflow import __version__ as airflow_version
    from packaging.version import Version

    if Version(airflow_version).release < (3, 3):
        pytest.skip("reschedule mode remembers progress in the task state store of Airflow 3.3+")
    dify_emulator.set_indexing_outcome("stall.txt", "stall")
    dag = build_dag(
        dataset_id, "stall.txt", mode="reschedule", deferrable=False, stall_timeout=0.8, sensor_cls=RecordingSensor
    )
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "failed"
    assert reschedule_count(dag_run, "wait") >= 1
    failure = xcom_value(dag_run, "wait", key="failure")
    assert failure.startswith("DifyIndexingError: Indexing stalled"), failure


class UpgradedSensor(RecordingSensor):
    """
    The sensor just after an upgrade of the provider: its first poke finds in the task state store the snapshot
    the previous version wrote there (one entry per document), with the stall clock started 59.5 s ago.
    """

    def _load_progress(self, context: Any) -> Any:
        import time

        from airflow_provider_dify.hooks.indexing import check_indexing
        from airflow_provider_dify.sensors.indexing import PROGRESS_STATE_KEY
        from tests.indexing.test_snapshot import previous_version

        store = self._state_store(context)
        if store is not None and store.get(PROGRESS_STATE_KEY) is None and not getattr(self, "_upgraded", False):
            self._upgraded = True
            dataset_id, batch, document_ids = self._wait_arguments()
            seen = check_indexing(self.hook, dataset_id, batch=batch, document_ids=document_ids)
            store.set(PROGRESS_STATE_KEY, previous_version(seen.documents, moved_at=time.time() - 59.5))
        return super()._load_progress(context)


def test_reschedule_mode_reads_the_previous_versions_snapshot_and_keeps_its_stall_clock(
    dify_emulator: Any, dataset_id: str
) -> None:
    from airflow import __version__ as airflow_version
    from packaging.version import Version

    if Version(airflow_version).release < (3, 3):
        pytest.skip("reschedule mode remembers progress in the task state store of Airflow 3.3+")
    dify_emulator.set_indexing_outcome("stuck.txt", "stuck")
    dag = build_dag(
        dataset_id, "stuck.txt", mode="reschedule", deferrable=False, stall_timeout=60, sensor_cls=UpgradedSensor
    )
    dag_run = run(dag)
    # The first poke accepts the old snapshot (59.5 s without movement: running); a later one, after a
    # reschedule, counts from the old snapshot's clock and fails as stalled long before 60 s have passed here.
    assert task_state(dag_run, "wait") == "failed"
    assert reschedule_count(dag_run, "wait") >= 1
    failure = xcom_value(dag_run, "wait", key="failure")
    assert failure.startswith("DifyIndexingError: Indexing stalled"), failure


@pytest.mark.parametrize(
    ("mode", "deferrable"),
    [("poke", False), ("reschedule", False), ("poke", True)],
    ids=["poke", "reschedule", "deferrable"],
)
def test_soft_fail_skips_a_timed_out_wait(dify_emulator: Any, dataset_id: str, mode: str, deferrable: bool) -> None:
    dify_emulator.set_indexing_outcome("slow.txt", "stuck")
    dag = build_dag(dataset_id, "slow.txt", mode=mode, deferrable=deferrable, timeout=1.5, soft_fail=True)
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "skipped"


def test_superseded_batch_is_followed_by_document_ids(dify_emulator: Any, dataset_id: str) -> None:
    first = dify_emulator.create_document(dataset_id, "twice.txt", TEXT, wait=False)
    dify_emulator.create_document(dataset_id, "twice.txt", TEXT, wait=False)  # same name: new batch
    dag = build_dag(
        dataset_id, "unrelated.txt", deferrable=True, batch=first["batch"], document_ids=f'["{first["id"]}"]'
    )
    dag_run = run(dag)
    assert task_state(dag_run, "wait") == "success"
    assert [result["id"] for result in xcom_value(dag_run, "wait")] == [first["id"]]
    assert dify_emulator.count("GET", STATUS_ROUTE, status=404) == 1


# -- arguments ------------------------------------------------------------------------------------------------


def test_batch_or_document_ids_is_required() -> None:
    with pytest.raises(ValueError, match="batch or document_ids"):
        DifyIndexingSensor(task_id="w", dataset_id=DS_ID)


@pytest.mark.parametrize("dataset_id", ["", "   ", None, 5])
def test_dataset_id_is_required(dataset_id: Any) -> None:
    with pytest.raises(ValueError, match="dataset_id"):
        DifyIndexingSensor(task_id="w", dataset_id=dataset_id, batch=BATCH_ID)


@pytest.mark.parametrize("document_ids", [[1, 2], {"a": 1}, [A_ID, None]])
def test_document_ids_must_be_strings(document_ids: Any) -> None:
    with pytest.raises(ValueError, match="document_ids"):
        DifyIndexingSensor(task_id="w", dataset_id=DS_ID, document_ids=document_ids)


@pytest.mark.parametrize("stall_timeout", [0, -1, "10", True])
def test_stall_timeout_must_be_positive_seconds(stall_timeout: Any) -> None:
    with pytest.raises(ValueError, match="stall_timeout"):
        DifyIndexingSensor(task_id="w", dataset_id=DS_ID, batch=BATCH_ID, stall_timeout=stall_timeout)


def test_default_poke_interval_is_thirty_seconds() -> None:
    assert DifyIndexingSensor(task_id="w", dataset_id=DS_ID, batch=BATCH_ID).poke_interval == 30


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        (f"['{A_ID}', '{B_ID}']", [A_ID, B_ID]),
        (f'["{A_ID}", "{B_ID}"]', [A_ID, B_ID]),
        (A_ID, [A_ID]),
        ("None", None),
        ("", None),
    ],
)
def test_rendered_document_ids_are_read_back(rendered: str, expected: Any) -> None:
    sensor = DifyIndexingSensor(task_id="w", dataset_id=DS_ID, batch=BATCH_ID, document_ids=rendered)
    assert sensor._wait_arguments()[2] == expected


def test_rendered_none_batch_without_ids_fails_naming_the_arguments() -> None:
    sensor = DifyIndexingSensor(task_id="w", dataset_id=DS_ID, batch="{{ missing }}")
    sensor.batch = "None"  # what Jinja renders for a missing XCom value
    with pytest.raises(ValueError, match="batch or document_ids"):
        sensor._wait_arguments()
