"""
pytest plugin: a running Dify emulator and a matching Airflow connection, in one fixture.

Registered through the ``pytest11`` entry point, so any project that installs the provider gets:

``dify_emulator``
    Function-scoped. A running :class:`~airflow_provider_dify.testing.DifyEmulator`, reset before the test
    (state, counters, faults and knobs), with ``AIRFLOW_CONN_DIFY_DEFAULT`` set to its connection. One server
    is shared by the whole session for speed. Fast by default: documents index in :data:`TEST_PACING`'s
    milliseconds, and the connection caps every indexing wait's poll interval at
    :data:`TEST_POLL_INTERVAL_MAX` seconds (its ``poll_interval_max`` extra), whatever the DAG's
    ``poll_interval`` or ``poke_interval`` says.
``dify_emulator_factory``
    Function-scoped. Call it with knobs to start extra, private emulators (stopped after the test).

Knobs for one test: ``@pytest.mark.dify_emulator(indexing_seconds=0.3, server_version="1.13")``; realistic
pacing is ``indexing_seconds=0.3, queue_pickup_seconds=0.05`` (the emulator's own defaults), and
``poll_interval_max=None`` lifts the cap on the DAG's poll intervals.

``airflow_db``
    Session-scoped. An isolated Airflow home (a temporary ``AIRFLOW_HOME``) with its own SQLite metadata
    database, created once for the session; :func:`~airflow_provider_dify.testing.run_dag` runs DAGs in it.
    A database configured elsewhere (``~/airflow``, a server) is never touched.

Nothing here imports Airflow: pytest loads plugins before the test session is configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_dify.testing.server import DifyEmulator

CONN_ENV_VAR = "AIRFLOW_CONN_DIFY_DEFAULT"
#: The ``dify_emulator`` fixture's pacing: each document indexes in 10 ms, picked up at once.
TEST_PACING: dict[str, float] = {"indexing_seconds": 0.01, "queue_pickup_seconds": 0.0}
#: The ``dify_emulator`` fixture's cap on indexing poll intervals (the connection's ``poll_interval_max``).
TEST_POLL_INTERVAL_MAX = 0.05


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``dify_emulator`` marker (knobs for the emulator of one test)."""
    config.addinivalue_line(
        "markers",
        "dify_emulator(**knobs): configure the dify_emulator fixture for this test "
        "(e.g. indexing_seconds=0.3, server_version='1.13', rate_limit_per_minute=10, poll_interval_max=None).",
    )


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    An isolated Airflow home with a SQLite metadata database, created once per session; returns the home.

    A session whose conftest already called
    :func:`~airflow_provider_dify.testing.airflow_home.use_isolated_airflow_home` keeps that home.
    """
    from airflow_provider_dify.testing.airflow_home import active_home, create_metadata_db, use_isolated_airflow_home

    home = active_home() or use_isolated_airflow_home(tmp_path_factory.mktemp("airflow-home"))
    return create_metadata_db(home)


@pytest.fixture(scope="session")
def _dify_emulator_session() -> Iterator[DifyEmulator]:
    """One emulator server for the whole test session (the function fixture resets it per test)."""
    from airflow_provider_dify.testing.server import DifyEmulator

    emulator = DifyEmulator(**TEST_PACING)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def dify_emulator(
    _dify_emulator_session: DifyEmulator, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DifyEmulator]:
    """
    A running Dify emulator, reset for this test, with ``AIRFLOW_CONN_DIFY_DEFAULT`` pointing at it.

    Fast by default (:data:`TEST_PACING`, polls capped at :data:`TEST_POLL_INTERVAL_MAX` seconds). Knobs from a
    ``@pytest.mark.dify_emulator(...)`` marker are applied after the reset; ``poll_interval_max`` there sets the
    connection's cap (``None``: none).
    """
    emulator = _dify_emulator_session
    emulator.reset()
    marker = request.node.get_closest_marker("dify_emulator")
    knobs = dict(marker.kwargs) if marker is not None else {}
    poll_interval_max = knobs.pop("poll_interval_max", TEST_POLL_INTERVAL_MAX)
    if knobs:
        emulator.configure(**knobs)
    connection = emulator.connection_dict
    if poll_interval_max is not None:
        connection = {**connection, "extra": json.dumps({"poll_interval_max": poll_interval_max})}
    monkeypatch.setenv(CONN_ENV_VAR, json.dumps(connection))
    try:
        yield emulator
    finally:
        emulator.reset()


@pytest.fixture
def dify_emulator_factory() -> Iterator[Callable[..., DifyEmulator]]:
    """
    Start private emulators with their own knobs: ``dify = dify_emulator_factory(server_version="1.13")``.

    Every emulator started through the factory is stopped when the test ends.
    """
    from airflow_provider_dify.testing.server import DifyEmulator

    started: list[DifyEmulator] = []

    def make(**knobs: Any) -> DifyEmulator:
        emulator = DifyEmulator(**knobs)
        emulator.start()
        started.append(emulator)
        return emulator

    try:
        yield make
    finally:
        for emulator in started:
            emulator.stop()
