"""
A stateful Dify Knowledge API emulator for tests, demos and benchmarks (like moto for AWS).

>>> from airflow_provider_dify.testing import DifyEmulator
>>> with DifyEmulator(indexing_seconds=0.1) as dify:  # doctest: +SKIP
...     dify.url, dify.api_key  # "http://127.0.0.1:PORT/v1", "dataset-..."

:func:`run_dag` runs a DAG in a test (``dag.test()``, on the ``airflow_db`` fixture's isolated metadata
database) and returns a :class:`DagRunResult`. See docs/emulator.md for testing DAGs, the knobs, fault
injection, counters and the differences from a real server.

The names are imported on first use: the pytest plugin (``airflow_provider_dify.testing.pytest_plugin``) is
loaded by every pytest session of a project that installs the provider, and must not load the server with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_dify.testing.config import DEFAULT_EXTENSIONS, EmulatorConfig
    from airflow_provider_dify.testing.dag_runner import DagRunResult, load_dag, run_dag
    from airflow_provider_dify.testing.server import Call, DifyEmulator

__all__ = ["DEFAULT_EXTENSIONS", "Call", "DagRunResult", "DifyEmulator", "EmulatorConfig", "load_dag", "run_dag"]

#: Where each public name lives.
_MODULES = {
    "DEFAULT_EXTENSIONS": "airflow_provider_dify.testing.config",
    "EmulatorConfig": "airflow_provider_dify.testing.config",
    "Call": "airflow_provider_dify.testing.server",
    "DifyEmulator": "airflow_provider_dify.testing.server",
    "DagRunResult": "airflow_provider_dify.testing.dag_runner",
    "load_dag": "airflow_provider_dify.testing.dag_runner",
    "run_dag": "airflow_provider_dify.testing.dag_runner",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
