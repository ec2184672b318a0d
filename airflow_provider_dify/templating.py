"""Values known only when a task runs: a Jinja template or an ``XComArg``, which DAG-build time checks skip."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_unrendered(value: Any) -> bool:
    """Whether ``value`` holds a Jinja template or an ``XComArg``: it is known only when the task runs."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(is_unrendered(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unrendered(item) for item in value)
    from airflow.providers.common.compat.sdk import XComArg

    return isinstance(value, XComArg)
