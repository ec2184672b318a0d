"""Fixtures of the operator tests."""

from __future__ import annotations

# Importing a hook first avoids the provider's import cycle in a fresh process (see tests/indexing/conftest.py).
import airflow_provider_dify.hooks.dify  # noqa: F401
