"""Fixtures of the unit tests: a ``dify`` connection in the environment and a hook that never really sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.helpers import set_dify_connection


@pytest.fixture
def dify_api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Define ``dify_default`` (http://dify.test/v1, default extras) and return its API key."""
    return set_dify_connection(monkeypatch)


@pytest.fixture
def sleeps() -> list[float]:
    """The waits a hook asked for, in order (the hook's ``sleep`` is replaced: nothing really sleeps)."""
    return []


@pytest.fixture
def hook(dify_api_key: str, sleeps: list[float]) -> Iterator:
    """A ``DifyHook`` on ``dify_default`` whose retries record their waits instead of sleeping."""
    from airflow_provider_dify.hooks.dify import DifyHook

    dify_hook = DifyHook()
    dify_hook.sleep = sleeps.append
    yield dify_hook
    dify_hook.close()
