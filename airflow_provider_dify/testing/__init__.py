"""
A stateful Dify Knowledge API emulator for tests, demos and benchmarks (like moto for AWS).

>>> from airflow_provider_dify.testing import DifyEmulator
>>> with DifyEmulator(indexing_seconds=0.1) as dify:  # doctest: +SKIP
...     dify.url, dify.api_key  # "http://127.0.0.1:PORT/v1", "dataset-..."

See docs/emulator.md for the knobs, fault injection, counters and the differences from a real server.
"""

from __future__ import annotations

from airflow_provider_dify.testing.config import DEFAULT_EXTENSIONS, EmulatorConfig
from airflow_provider_dify.testing.server import Call, DifyEmulator

__all__ = ["DEFAULT_EXTENSIONS", "Call", "DifyEmulator", "EmulatorConfig"]
