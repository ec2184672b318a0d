"""Sharding one sync over mapped tasks: each shard owns its part of the scope, the summary adds them up."""

from __future__ import annotations

import functools
import itertools
import threading
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_dify.operators.shards import check_shard, merge_sync_manifests, owns, shard_of, shards
from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.01)]

_numbers = itertools.count()


def _records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"r{n:04d}", "body": f"Record {n} of the sharded export."} for n in range(start, count)]


def _python_operator() -> type:
    try:
        from airflow.providers.standard.operators.python import PythonOperator
    except ImportError:  # Airflow 2
        from airflow.operators.python import PythonOperator
    return PythonOperator


def _sharded_dag(dataset_id: str, rows: list[dict[str, Any]], count: int = 4) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    PythonOperator = _python_operator()

    with DAG(f"sharded_sync_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        sync = DifySyncDocumentsOperator.partial(
            task_id="sync",
            dataset_id=dataset_id,
            records=rows,
            key_field="id",
            text_template="{{ body }}",
            name_prefix="rec-",
            scope="export:sharded",
            delete_missing=True,
        ).expand(shard=shards(count))
        PythonOperator(task_id="summary", python_callable=merge_sync_manifests, op_args=[sync.output])
    return dag


def test_shard_arguments_are_checked() -> None:
    assert shards(3) == [[0, 3], [1, 3], [2, 3]]
    assert check_shard([1, 4]) == (1, 4) and check_shard(None) is None
    for bad in ((4, 4), (-1, 2), (0, 0), "0/4", (0.0, 2), (True, 2), (1, 2, 3)):
        with pytest.raises(ValueError, match="shard"):
            check_shard(bad)
    with pytest.raises(ValueError, match="shard"):
        DifySyncDocumentsOperator(task_id="t", dataset_id="d", records=[], key_field="id", shard=(2, 2))


def test_every_identity_has_exactly_one_owner() -> None:
    names = [f"rec-r{number:04d}" for number in range(400)]
    owners = Counter(shard_of(name, 4) for name in names)
    assert sorted(owners) == [0, 1, 2, 3] and min(owners.values()) > 60  # every shard gets a fair part
    assert all(sum(owns((index, 4), name) for index in range(4)) == 1 for name in names)
    assert [owns((index, 4), None) for index in range(4)] == [True, False, False, False]


def test_a_mapped_sync_of_four_shards_writes_each_record_once_and_deletes_only_what_is_gone(
    dify_emulator: Any,
) -> None:
    from airflow_provider_dify.testing.dag_runner import run_dag

    dataset_id = dify_emulator.create_dataset("sharded")["id"]
    dag_run = run_dag(_sharded_dag(dataset_id, _records(40)))
    assert task_state(dag_run, "summary") == "success"
    summary = xcom_value(dag_run, "summary")
    assert summary["shards"] == shards(4)
    assert summary["counts"]["created"] == summary["counts"]["records"] == 40
    names = Counter(document["name"] for document in dify_emulator.documents(dataset_id))
    assert names == Counter(f"rec-r{number:04d}" for number in range(40))

    # Records 0-9 are gone from the source: each shard deletes only its own missing ones, none twice.
    dify_emulator.reset_counters()
    dag_run = run_dag(_sharded_dag(dataset_id, _records(40, start=10)))
    summary = xcom_value(dag_run, "summary")
    assert summary["counts"]["deleted"] == 10 and summary["counts"]["unchanged"] == 30
    assert dify_emulator.count("DELETE", status=204) == 10  # (a delete refused while indexing is repeated)
    assert sorted(document["name"] for document in dify_emulator.documents(dataset_id)) == [
        f"rec-r{number:04d}" for number in range(10, 40)
    ]


def _thread_may_execute_operators() -> None:
    """Airflow 2's guard against calling ``execute`` outside a task keeps its state in a thread-local made in
    the main thread only; give this thread its own (Airflow 3 has no such guard)."""
    try:
        from airflow.models.baseoperator import ExecutorSafeguard
    except ImportError:
        return
    sentinel = getattr(ExecutorSafeguard, "_sentinel", None)
    if sentinel is not None and not hasattr(sentinel, "callers"):
        sentinel.callers = {}


def test_shards_running_at_once_do_not_touch_each_other(dify_emulator: Any) -> None:
    """Four shards in four threads at the same time, one of them with half of its records gone."""
    from bench.environment import minimal_context

    dataset_id = dify_emulator.create_dataset("sharded-concurrent")["id"]
    first = _records(200)

    def run_shards(rows_of: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        manifests: list[dict[str, Any]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def one(index: int) -> None:
            _thread_may_execute_operators()
            operator = DifySyncDocumentsOperator(
                task_id=f"shard_{index}",
                dataset_id=dataset_id,
                records=rows_of[index],
                key_field="id",
                text_template="{{ body }}",
                name_prefix="rec-",
                scope="export:concurrent",
                delete_missing=True,
                allow_empty_source=True,
                shard=(index, 4),
            )
            barrier.wait()
            try:
                manifests.append(operator.execute(minimal_context()))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=one, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        return manifests

    run_shards(dict.fromkeys(range(4), first))
    assert len(dify_emulator.documents(dataset_id)) == 200
    # Shard 1 sees a source without any record (its own or another's): it may delete only its own documents.
    manifests = run_shards({0: first, 1: [], 2: first, 3: first})
    summary = merge_sync_manifests(manifests)
    own = [f"rec-{row['id']}" for row in first if shard_of(f"rec-{row['id']}", 4) == 1]
    assert summary["counts"]["deleted"] == len(own) > 0
    remaining = {document["name"] for document in dify_emulator.documents(dataset_id)}
    assert remaining == {f"rec-{row['id']}" for row in first} - set(own)


def _sharded_chunks_dag(dataset_id: str, rows: list[dict[str, Any]], count: int = 4) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    PythonOperator = _python_operator()

    common = {
        "dataset_id": dataset_id,
        "document_name": "sharded chunks",
        "document_header": "Records of the sharded export, one chunk each.",
        "key_field": "id",
        "text_template": "{{ body }}",
        "poll_interval": 0.05,
    }
    with DAG(f"sharded_chunks_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        # The document is made once, before the shards: shards creating it at once would each re-index it.
        prepare = DifySyncChunksOperator(
            task_id="prepare", records=[], allow_empty_source=True, delete_missing=False, **common
        )
        sync = DifySyncChunksOperator.partial(task_id="sync", records=rows, **common).expand(shard=shards(count))
        summary = PythonOperator(task_id="summary", python_callable=merge_sync_manifests, op_args=[sync.output])
        prepare >> sync >> summary
    return dag


def test_a_mapped_chunk_sync_of_four_shards_writes_each_chunk_once(dify_emulator: Any) -> None:
    """Shards own chunk texts (a chunk's identity): each record is one chunk, the header is never touched."""
    from airflow_provider_dify.testing.dag_runner import run_dag

    header = "Records of the sharded export, one chunk each."
    dataset_id = dify_emulator.create_dataset("sharded-chunks")["id"]
    dag_run = run_dag(_sharded_chunks_dag(dataset_id, _records(60)))
    assert task_state(dag_run, "summary") == "success"
    summary = xcom_value(dag_run, "summary")
    assert summary["granularity"] == "chunks" and summary["counts"]["added"] == 60
    [document] = dify_emulator.documents(dataset_id)
    texts = Counter(chunk["content"] for chunk in dify_emulator.segments(dataset_id, document["id"]))
    assert texts.pop(header) == 1  # the header, never touched by a shard
    assert texts == Counter(row["body"] for row in _records(60))

    dag_run = run_dag(_sharded_chunks_dag(dataset_id, _records(60, start=15)))
    summary = xcom_value(dag_run, "summary")
    assert summary["counts"]["deleted"] == 15 and summary["counts"]["unchanged"] == 45
    texts = Counter(chunk["content"] for chunk in dify_emulator.segments(dataset_id, document["id"]))
    assert texts == Counter([header] + [row["body"] for row in _records(60, start=15)])

    # Changed texts hash to other shards than the old ones: one shard adds the new chunk, another deletes the old.
    changed = [{**row, "body": row["body"] + " Revised."} if n % 5 == 0 else row for n, row in enumerate(_records(60))]
    dag_run = run_dag(_sharded_chunks_dag(dataset_id, changed))
    assert task_state(dag_run, "summary") == "success"
    texts = Counter(chunk["content"] for chunk in dify_emulator.segments(dataset_id, document["id"]))
    assert texts == Counter([header] + [row["body"] for row in changed])


def test_a_sharded_chunk_sync_does_not_create_the_document(dify_emulator: Any) -> None:
    from bench.environment import minimal_context

    dataset_id = dify_emulator.create_dataset("sharded-chunks-missing")["id"]
    operator = DifySyncChunksOperator(
        task_id="sync",
        dataset_id=dataset_id,
        document_name="missing",
        records=_records(4),
        key_field="id",
        shard=(1, 2),
    )
    with pytest.raises(AirflowException, match="without shard and with records=\\[\\]"):
        operator.execute(minimal_context())
    assert dify_emulator.documents(dataset_id) == []


def test_the_rate_limit_is_split_in_proportion_to_the_shards_records() -> None:
    from airflow_provider_dify.operators.shards import rate_limit_part, shard_sizes

    assert shard_sizes(["a", "b", None], 1) == [3]
    sizes = shard_sizes([f"doc-r{n:04d}" for n in range(1000)], 4)
    assert sum(sizes) == 1000 and len(set(sizes)) > 1
    for limit in (4, 7, 100, 1000):
        parts = [rate_limit_part(limit, sizes, index) for index in range(4)]
        assert sum(parts) == limit
        assert all(abs(part - limit * size / 1000) < 1 for part, size in zip(parts, sizes, strict=True))
    assert [rate_limit_part(10, [5, 0, 5], index) for index in range(3)] == [5, 1, 5]  # at least one call
    assert [rate_limit_part(10, [0, 0, 0], index) for index in range(3)] == [4, 3, 3]  # no records: evenly
    assert [rate_limit_part(2, [1, 1, 1], index) for index in range(3)] == [1, 1, 1]  # more shards than calls


@pytest.mark.parametrize("granularity", ["documents", "chunks"])
def test_a_shard_writes_within_its_part_of_the_rate_limit(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch, granularity: str
) -> None:
    """The part a shard keeps to is computed from every record (which all shards read), for both syncs."""
    import json

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.shards import rate_limit_part, shard_sizes
    from bench.environment import minimal_context

    dataset_id = dify_emulator.create_dataset(f"sharded-parts-{granularity}")["id"]
    rows = _records(40)
    common = {"task_id": "sync", "dataset_id": dataset_id, "records": rows, "key_field": "id"}
    if granularity == "documents":
        make = functools.partial(DifySyncDocumentsOperator, text_template="{{ body }}", name_prefix="rec-", **common)
        identities = [f"rec-{row['id']}" for row in rows]
    else:
        make = functools.partial(DifySyncChunksOperator, document_name="parts", text_template="{{ body }}", **common)
        make(records=[]).execute(minimal_context())  # the document, made by an unsharded run
        identities = [row["body"] for row in rows]
    parts: list[int] = []
    real_part = DifyHook.rate_limit_part

    def spy(hook: DifyHook, calls: int, sync: str) -> Any:
        parts.append(calls)
        return real_part(hook, calls, sync)

    monkeypatch.setattr(DifyHook, "rate_limit_part", spy)
    make(shard=(1, 3)).execute(minimal_context())
    assert parts == []  # the connection does not know the workspace's limit: nothing to split
    connection = json.loads(dify_emulator.connection_json)
    connection["extra"] = {**(connection.get("extra") or {}), "requests_per_minute": 50}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
    manifest = make(shard=(1, 3)).execute(minimal_context())
    assert parts == [rate_limit_part(50, shard_sizes(identities, 3), 1)]
    assert manifest["counts"]["failed"] == 0


def test_a_chunk_shard_writes_its_document_s_metadata_within_its_part(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of a shard, the holding document's metadata too, is made while the shard keeps to its part."""
    import contextlib
    import json

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators import _documents
    from bench.environment import minimal_context

    dataset_id = dify_emulator.create_dataset("sharded-metadata")["id"]
    common = {"task_id": "sync", "dataset_id": dataset_id, "key_field": "id", "document_name": "held"}
    DifySyncChunksOperator(records=[], text_template="{{ body }}", **common).execute(minimal_context())
    connection = json.loads(dify_emulator.connection_json)
    connection["extra"] = {**(connection.get("extra") or {}), "requests_per_minute": 50}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
    inside: list[bool] = []
    written: list[bool] = []
    real_part, real_write = DifyHook.rate_limit_part, _documents.write_metadata

    @contextlib.contextmanager
    def part(hook: DifyHook, calls: int, sync: str) -> Any:
        with real_part(hook, calls, sync):
            inside.append(True)
            try:
                yield
            finally:
                inside.pop()

    def write_metadata(*args: Any, **kwargs: Any) -> Any:
        written.append(bool(inside))
        return real_write(*args, **kwargs)

    monkeypatch.setattr(DifyHook, "rate_limit_part", part)
    monkeypatch.setattr(_documents, "write_metadata", write_metadata)
    manifest = DifySyncChunksOperator(
        records=_records(6), text_template="{{ body }}", document_metadata={"team": "data"}, shard=(0, 2), **common
    ).execute(minimal_context())
    assert manifest["counts"]["failed"] == 0
    assert written == [True]
    [document] = [doc for doc in dify_emulator.documents(dataset_id) if doc["name"] == "held"]
    assert {item["name"]: item["value"] for item in document["doc_metadata"]}.get("team") == "data"
