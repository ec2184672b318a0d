"""Overlapping chunk syncs into one holder converge: each record exactly one chunk once the runs end.

Writers race for real: threads and processes over HTTP against one emulator, and parallel ``dag.test()``
runs in separate processes. A barrier makes the writers plan from the same listing (each would add every
missing chunk); the verification after writing removes the surplus copies by the shared survivor rule.
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.sync import overlap_workers as workers

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0)

SEGMENTS = "/datasets/{dataset_id}/documents/{document_id}/segments"


def holder(dify: Any, name: str = "overlap holder") -> tuple[str, str]:
    dataset_id = dify.create_dataset(f"overlap {random.random()}")["id"]
    document = dify.create_document(dataset_id, name, "")
    return dataset_id, document["id"]


def contents(dify: Any, dataset_id: str, document_id: str) -> list[str]:
    return [chunk["content"] for chunk in dify.segments(dataset_id, document_id)]


def assert_exact(dify: Any, dataset_id: str, document_id: str, rows: list[dict[str, Any]]) -> None:
    found = contents(dify, dataset_id, document_id)
    assert sorted(found) == sorted(workers.texts(rows)), "a record is missing, duplicated or stale"


def post_chunks(dify: Any, dataset_id: str, document_id: str, contents: list[str]) -> list[dict[str, Any]]:
    """Add chunks as another writer would, over HTTP; return them as Dify answered."""
    import requests

    answer = requests.post(
        f"{dify.url}{SEGMENTS.format(dataset_id=dataset_id, document_id=document_id)}",
        json={"segments": [{"content": content} for content in contents]},
        headers=dify.headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def _seed_holder(
    dify: Any, dataset_id: str, document_id: str, rng: random.Random, rows: list[dict[str, Any]]
) -> dict[str, str]:
    """Some chunks there already: current ones, old-form ones with key lines, stale ones.

    :return: the chunk id of each record that has a chunk already, by the record's text.
    """
    present, texts = [], []
    for row in rows:
        roll = rng.random()
        text = f"{row['name']}: {row['detail']}"
        if roll < 0.25:
            present.append(text)
            texts.append(text)
        elif roll < 0.4:
            present.append(f"{text}\n\n[key: {row['sku']}]")
            texts.append(text)
    present += [f"stale chunk {n}" for n in range(rng.randint(0, 3))]
    if present:
        added = post_chunks(dify, dataset_id, document_id, present)
        return dict(zip(texts, (chunk["id"] for chunk in added), strict=False))
    return {}


@pytest.mark.parametrize("seed", range(20))
def test_two_chunk_syncs_on_one_holder_end_exact(dify_emulator: Any, seed: int) -> None:
    rng = random.Random(seed)
    dataset_id, document_id = holder(dify_emulator)
    rows = workers.records(rng.randint(3, 12))
    kept_ids = _seed_holder(dify_emulator, dataset_id, document_id, rng, rows)
    barrier = threading.Barrier(2)
    outcomes: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            outcomes.append(
                workers.sync_holder(
                    dify_emulator.connection_json,
                    dataset_id,
                    document_id,
                    rows,
                    batch_size=rng.choice([1, 2, 5, 100]),
                    barrier=barrier,
                    seed=seed * 10 + number,
                )
            )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(outcomes) == 2
    assert all(outcome["verified"] and not outcome["failed"] for outcome in outcomes), outcomes
    assert_exact(dify_emulator, dataset_id, document_id, rows)
    ids = {chunk["content"]: chunk["id"] for chunk in dify_emulator.segments(dataset_id, document_id)}
    assert {text: ids[text] for text in kept_ids} == kept_ids  # chunks there before: kept (old ones rewritten)
    if any(outcome["added"] for outcome in outcomes):  # both planned from one listing: both added
        assert sum(outcome["copies_removed"] for outcome in outcomes) >= min(o["added"] for o in outcomes)


def test_writer_processes_on_one_holder_end_exact(dify_emulator: Any) -> None:
    dataset_id, document_id = holder(dify_emulator)
    rows = workers.records(30)
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(3), context.Queue()
    processes = [
        context.Process(
            target=workers.run_in_process,
            args=((dify_emulator.connection_json, dataset_id, document_id, rows), {"barrier": barrier}, answers),
        )
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    results = [answers.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert all("error" not in result for result in results), results
    assert all(result["verified"] for result in results)
    assert_exact(dify_emulator, dataset_id, document_id, rows)
    assert sum(result["added"] for result in results) == 3 * 30  # each added every record, from one listing
    assert dify_emulator.count("DELETE", SEGMENTS + "/{segment_id}") >= 60  # and the copies were removed

    later = workers.records(30, changed=(3, 7))[:28]  # two records changed, two gone
    dify_emulator.reset_counters()
    assert workers.sync_holder(dify_emulator.connection_json, dataset_id, document_id, later)["verified"]
    assert_exact(dify_emulator, dataset_id, document_id, later)
    assert dify_emulator.count("POST", SEGMENTS) == 1 and dify_emulator.write_count() == 1 + 4


def test_parallel_dag_test_runs_on_one_holder_end_exact(
    dify_emulator: Any, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id, document_id = holder(dify_emulator)
    rows = workers.records(25)
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(2), context.Queue()
    processes = [
        context.Process(
            target=workers.run_dag_in_process,
            args=(dataset_id, rows, f"overlap_chunks_{number}", barrier, answers),
        )
        for number in range(2)
    ]
    for number, process in enumerate(processes):
        # Each run gets a copy of the metadata database: two processes writing one SQLite file lock each other
        # out, which is SQLite's limit, not the overlap under test (the holder in the emulator is shared).
        database = tmp_path / f"airflow-{number}.db"
        with sqlite3.connect(airflow_db / "airflow.db") as source, sqlite3.connect(database) as copy:
            source.backup(copy)
        source.close()
        copy.close()
        with monkeypatch.context() as scoped:
            scoped.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{database}")
            process.start()
    results = [answers.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert all("error" not in result for result in results), results
    assert [result["state"] for result in results] == ["success", "success"]
    assert all(result["manifest"]["document_id"] == document_id for result in results)
    assert_exact(dify_emulator, dataset_id, document_id, rows)


@pytest.mark.parametrize("seed", range(5))
def test_two_syncs_that_both_create_the_holder_end_exact(
    dify_emulator: Any, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Neither finds the holder, both create it: Dify reuses the name (one document, re-indexed), both converge."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator
    from bench.environment import minimal_context

    dataset_id = dify_emulator.create_dataset(f"create race {seed}")["id"]
    rows = workers.records(random.Random(seed).randint(3, 15))
    barrier = threading.Barrier(2)
    find = DifyHook.find_documents_by_name

    def find_then_wait(self: DifyHook, *args: Any, **kwargs: Any) -> Any:
        found = find(self, *args, **kwargs)
        barrier.wait(timeout=30)  # both have looked before either creates
        return found

    monkeypatch.setattr(DifyHook, "find_documents_by_name", find_then_wait)
    outcomes: list[Any] = []

    def sync() -> None:
        _thread_safe_execute()
        operator = DifySyncChunksOperator(
            task_id="sync",
            dataset_id=dataset_id,
            records=rows,
            key_field="sku",
            text_template=workers.TEMPLATE,
            document_name="created twice",
            poll_interval=0.05,
        )
        try:
            outcomes.append(operator.execute(minimal_context()))
        except Exception as error:
            outcomes.append(error)

    threads = [threading.Thread(target=sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 2 and all(isinstance(outcome, dict) for outcome in outcomes), outcomes
    assert dify_emulator.count("POST", "/datasets/{dataset_id}/document/create-by-text") == 2
    [document] = dify_emulator.documents(dataset_id)
    assert_exact(dify_emulator, dataset_id, document["id"], rows)


def _thread_safe_execute() -> None:
    """Airflow 2.11's guard around ``execute`` keeps a thread-local set in the importing thread only."""
    try:
        from airflow.models.baseoperator import ExecutorSafeguard  # type: ignore[attr-defined]
    except ImportError:  # Airflow 3 keeps it elsewhere, per thread already
        return
    if not hasattr(ExecutorSafeguard._sentinel, "callers"):
        ExecutorSafeguard._sentinel.callers = {}


def _other_writer_before_reads(dify: Any, dataset_id: str, document_id: str, added: list[str]) -> Any:
    """A ``ChunkSync`` whose verifying reads each come after another writer added the next of ``added``."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._chunk_sync import ChunkSync

    sync = ChunkSync(DifyHook(), dataset_id, document_id)
    listing, reads = sync.list_chunks, {"n": 0}

    def list_chunks() -> list[dict[str, Any]]:
        reads["n"] += 1
        if reads["n"] > 1 and added:  # after this run's first write pass: one chunk per read, as a slow writer
            post_chunks(dify, dataset_id, document_id, [added.pop(0)])
        return listing()

    sync.list_chunks = list_chunks  # type: ignore[method-assign]
    return sync


def _reconcile(sync: Any, rows: list[dict[str, Any]]) -> Any:
    from airflow_provider_dify.operators.sync._chunk_sync import plan_chunks, reconcile
    from airflow_provider_dify.operators.sync._records import RecordRenderer, render_all

    rendered, _ = render_all(RecordRenderer(key_field="sku", text_template=workers.TEMPLATE, names=False), rows)
    return reconcile(sync, lambda chunks: plan_chunks(rendered, chunks, keyed=True, header=""))[1]


def test_copies_that_keep_coming_from_a_slow_writer_are_outlasted(dify_emulator: Any) -> None:
    """Passes that only remove copies converge, so more of them are allowed than passes that find other changes."""
    from airflow_provider_dify.operators.sync._chunk_sync import MAX_VERIFY_PASSES

    dataset_id, document_id = holder(dify_emulator)
    rows = workers.records(6)
    copies = sorted(workers.texts(rows)) + sorted(workers.texts(rows))[:2]  # 8 copies, one per read
    sync = _other_writer_before_reads(dify_emulator, dataset_id, document_id, copies)
    result = _reconcile(sync, rows)
    assert result.verified and not result.failed
    assert result.copies_removed == 8 > MAX_VERIFY_PASSES and result.passes == 1 + 8 + 1
    assert_exact(dify_emulator, dataset_id, document_id, rows)


def test_a_writer_that_wants_other_chunks_fails_the_run_after_three_reads_and_a_retry_ends_exact(
    dify_emulator: Any,
) -> None:
    from airflow_provider_dify.operators.sync._chunk_sync import MAX_VERIFY_PASSES

    dataset_id, document_id = holder(dify_emulator)
    rows = workers.records(4)
    others = [f"another writer's chunk {number}" for number in range(10)]
    result = _reconcile(_other_writer_before_reads(dify_emulator, dataset_id, document_id, others), rows)
    assert not result.verified and result.passes == 1 + MAX_VERIFY_PASSES
    [failure] = result.failed
    assert failure["operation"] == "verify" and f"after {MAX_VERIFY_PASSES} verifying reads" in failure["error"]
    assert _reconcile(_other_writer_before_reads(dify_emulator, dataset_id, document_id, []), rows).verified
    assert_exact(dify_emulator, dataset_id, document_id, rows)


def test_copies_that_never_stop_coming_fail_the_run_after_the_copy_removal_limit(dify_emulator: Any) -> None:
    from airflow_provider_dify.operators.sync._chunk_sync import MAX_COPY_REMOVAL_PASSES

    dataset_id, document_id = holder(dify_emulator)
    rows = workers.records(2)
    endless = [sorted(workers.texts(rows))[0]] * (MAX_COPY_REMOVAL_PASSES + 5)
    result = _reconcile(_other_writer_before_reads(dify_emulator, dataset_id, document_id, endless), rows)
    assert not result.verified and result.copies_removed == MAX_COPY_REMOVAL_PASSES
    assert result.passes == 1 + MAX_COPY_REMOVAL_PASSES + 1 and result.failed[0]["operation"] == "verify"
