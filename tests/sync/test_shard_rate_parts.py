"""
The shards of one sync keep together to the workspace's rate limit: real processes, real HTTP, Dify's window.

Three worker processes each run one shard of one document sync (``shard=(i, 3)``), each told the workspace's
whole limit, against an emulated workspace that enforces Dify's sliding window (refused calls count). Each
shard keeps to its part of the limit (the limit split in proportion to the shards' records):

- each process on its own (``rate_limit_storage="process"``: machines that share nothing) draws no 403, where
  three processes spending the whole limit each would draw many (``test_machine_rate_window`` shows that);
- with the machine's window (the default) the parts count towards the machine's limit, so the shards of one
  machine still spend the whole limit between them: the sync ends at the window's bound.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

from tests.sync.test_machine_rate_window import rate_limited_connection
from tests.sync.test_overlap import assert_exact, rows
from tests.sync.test_overlap_runs import _pythonpath

LIMIT = 9
WINDOW = 1.0
SHARDS = 3
RECORDS = 48
WRITE_METHODS = ("POST", "PATCH", "DELETE")


def _shard(connection: str, dataset_id: str, index: int, ready: Any, go: Any, out: Any) -> None:
    """One worker process: shard ``index`` of the sync; its counts (or its error) sent back."""
    try:
        os.environ["AIRFLOW_CONN_DIFY_DEFAULT"] = connection
        from airflow_provider_dify.hooks.dify import DifyHook
        from tests.sync.test_overlap import run_sync

        DifyHook().settings  # noqa: B018 - read the connection before the start
        ready.set()
        go.wait(120)
        manifest = run_sync(dataset_id, rows(RECORDS), shard=(index, SHARDS), delete_missing=False)
        out.put(("ok", manifest["counts"]))
    except BaseException as error:
        out.put(("error", repr(error)))


def _run_shards(dify: Any, storage: str | None) -> tuple[str, list[Any]]:
    dataset_id = dify.create_dataset("shard-parts", indexing_technique="economy")["id"]
    connection = rate_limited_connection(dify, LIMIT, WINDOW, storage)
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    readies = [context.Event() for _ in range(SHARDS)]
    with _pythonpath():
        processes = [
            context.Process(target=_shard, args=(connection, dataset_id, index, ready, go, out))
            for index, ready in enumerate(readies)
        ]
        for process in processes:
            process.start()
    for ready in readies:
        assert ready.wait(180), "a worker process did not start"
    import time

    time.sleep(WINDOW)  # the knowledge base's creation leaves the window
    dify.reset_counters()
    go.set()
    outcomes = [out.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert [kind for kind, _ in outcomes] == ["ok"] * SHARDS, outcomes
    assert sum(counts["created"] for _, counts in outcomes) == RECORDS
    return dataset_id, [call for call in dify.calls if call.method in WRITE_METHODS]


@pytest.mark.parametrize("storage", ["process", None])
def test_the_shards_of_one_sync_keep_together_to_the_limit(dify_emulator_factory: Any, storage: Any) -> None:
    dify = dify_emulator_factory(rate_limit_per_minute=LIMIT, rate_limit_window_seconds=WINDOW, indexing_seconds=0)
    dataset_id, writes = _run_shards(dify, storage)
    assert [call for call in writes if call.status == 403] == []
    assert_exact(dify, dataset_id, rows(RECORDS))
    counted = sorted(call.time for call in writes)
    windows = (len(counted) - 1) // LIMIT  # the sliding window's bound: LIMIT at once, then LIMIT a window
    span = counted[-1] - counted[0]
    assert span + 0.05 >= windows * WINDOW
    if storage is None:  # the machine's window: the parts of the shards here add up to the whole limit
        assert span < (windows + 1) * WINDOW
