"""The shared rate window on a real redis-server: two workers' clients share one budget exactly."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pytest

from airflow_provider_dify.hooks.budget import SharedRateBudget
from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import BASE_URL, DATASET_ID, set_dify_connection

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (make installs it: apt-get install redis-server)"
)


@pytest.fixture(scope="module")
def redis_url() -> Any:
    from tests.services import redis_server

    with redis_server() as url:
        yield url


def test_two_workers_share_one_window(redis_url: str) -> None:
    first = SharedRateBudget(redis_url, 4, "workspace-a", window=1.0)
    second = SharedRateBudget(redis_url, 4, "workspace-a", window=1.0)
    other = SharedRateBudget(redis_url, 4, "workspace-b", window=1.0)
    waits: list[float] = []
    for budget in (first, second, first, second):
        assert budget.acquire(waits.append)[1] == 0.0
    assert other.acquire(waits.append)[1] == 0.0  # another workspace has its own window
    assert waits == []
    started = time.monotonic()
    assert first.acquire(time.sleep)[1] > 0  # the fifth call of workspace a waits for the window to slide
    assert time.monotonic() - started >= 1.0  # the window (1 s, lengthened to whole seconds: 2 s) has moved on


def test_the_hook_uses_the_shared_window_from_the_connection(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, requests_mock: Any
) -> None:
    set_dify_connection(
        monkeypatch, extra={"requests_per_minute": 2, "rate_limit_window": 1, "rate_limit_storage": redis_url}
    )
    hook = DifyHook()
    waits: list[float] = []
    hook.sleep = lambda seconds: (waits.append(seconds), time.sleep(seconds))
    requests_mock.post(f"{BASE_URL}/datasets/{DATASET_ID}/retrieve", json={"query": {"content": "q"}, "records": []})
    # Another worker has spent the workspace's window: this process's first call waits for the shared window.
    another_worker = SharedRateBudget(redis_url, 2, hook.settings.workspace_key, window=1.0)
    another_worker.acquire()
    another_worker.acquire()
    hook.retrieve(DATASET_ID, "q")
    assert len(waits) == 1 and waits[0] > 0.5
    assert hook.rate_budget.refusals == 0
    assert redis_url not in repr(hook.settings)
