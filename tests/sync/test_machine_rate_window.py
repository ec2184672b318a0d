"""
Worker processes of one machine share the workspace's rate window by default: real processes, real HTTP.

Three processes, each told the workspace's whole limit, call a rate-limited route of an emulated workspace at
once. With the default (``rate_limit_storage`` unset: the machine's window) Dify refuses none of their calls;
each process on its own (``"process"``) draws 403s, which is what the default prevents.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from typing import Any

import pytest

LIMIT = 6
WINDOW = 1.0
PROCESSES = 3
CALLS = 6
KEYWORD_SEARCH = {
    "search_method": "keyword_search",
    "top_k": 1,
    "reranking_enable": False,
    "score_threshold_enabled": False,
}


def _calls(connection: str, dataset_id: str, go: Any, out: Any) -> None:
    os.environ["AIRFLOW_CONN_DIFY_DEFAULT"] = connection
    from airflow_provider_dify.hooks.dify import DifyHook

    hook = DifyHook()
    hook.settings  # noqa: B018 - read the connection before the start
    go.wait(timeout=60)
    for _ in range(CALLS):
        hook.retrieve(dataset_id, "rate window", retrieval_model=KEYWORD_SEARCH)
    out.put(hook.rate_budget.refusals)


def rate_limited_connection(dify: Any, limit: int, window: float, storage: str | None) -> str:
    """The emulator's connection (JSON) told the workspace's limit, and where to share its window."""
    settings = json.loads(dify.connection_json)
    extra = {"requests_per_minute": limit, "rate_limit_window": window, "max_retries": 8}
    if storage is not None:
        extra["rate_limit_storage"] = storage
    settings["extra"] = {**(settings.get("extra") or {}), **extra}
    return json.dumps(settings)


def _run(dify: Any, storage: str | None) -> tuple[int, list[float]]:
    """Run the processes; return the 403s Dify answered and the times of the accepted calls."""
    dataset_id = dify.create_dataset("machine-window", indexing_technique="economy")["id"]
    connection = rate_limited_connection(dify, LIMIT, WINDOW, storage)
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    processes = [
        context.Process(target=_calls, args=(connection, dataset_id, go, out), daemon=True) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    import time

    time.sleep(WINDOW)  # the knowledge base's creation leaves the window while the processes start
    go.set()
    reports = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    calls = [call for call in dify.calls if call.path.endswith("/retrieve")]
    refused = [call for call in calls if call.status == 403]
    assert sum(reports) == len(refused)
    return len(refused), sorted(call.time for call in calls if call.status < 400)


@pytest.mark.parametrize("storage", [None, "machine"])
def test_processes_of_one_machine_share_one_window_and_draw_no_403(dify_emulator_factory: Any, storage: Any) -> None:
    dify = dify_emulator_factory(rate_limit_per_minute=LIMIT, rate_limit_window_seconds=WINDOW)
    refused, accepted = _run(dify, storage)
    assert refused == 0
    assert len(accepted) == PROCESSES * CALLS
    # Never faster than the window allows: LIMIT at once, then LIMIT a window. How close to that bound the
    # processes come depends on how the machine schedules them, which is the bench's to measure, not a test's.
    span = accepted[-1] - accepted[0]
    assert span + 0.05 >= (PROCESSES * CALLS - 1) // LIMIT * WINDOW


def test_processes_on_their_own_draw_403s(dify_emulator_factory: Any) -> None:
    dify = dify_emulator_factory(rate_limit_per_minute=LIMIT, rate_limit_window_seconds=WINDOW)
    refused, accepted = _run(dify, "process")
    assert len(accepted) == PROCESSES * CALLS
    assert refused > 0
