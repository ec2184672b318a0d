"""What every section needs: a private Airflow home, a running emulator with a connection, missing-module checks."""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.testing import DifyEmulator

CONN_ENV_VAR = "AIRFLOW_CONN_DIFY_DEFAULT"


def use_private_airflow_home() -> str:
    """Point Airflow at a fresh temporary home (before Airflow is imported) so the bench touches no real setup."""
    home = tempfile.mkdtemp(prefix="dify-bench-airflow-home-")
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    return home


def missing(module: str, *names: str) -> str | None:
    """Why ``module`` (and the ``names`` in it) cannot be used, or ``None`` when it can."""
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        return f"`{module}` is not importable ({error})"
    absent = [name for name in names if not hasattr(loaded, name)]
    if absent:
        return f"`{module}` has no {', '.join(absent)}"
    return None


def emulator_missing() -> str | None:
    """Why the Dify emulator cannot be used, or ``None``."""
    return missing("airflow_provider_dify.testing", "DifyEmulator")


@contextmanager
def running_emulator(conn_id: str = "dify_default", **knobs: Any) -> Iterator[DifyEmulator]:
    """A Dify emulator on 127.0.0.1 with these knobs, and connection ``conn_id`` pointing at it while it runs."""
    from airflow_provider_dify.testing import DifyEmulator

    variable = CONN_ENV_VAR if conn_id == "dify_default" else f"AIRFLOW_CONN_{conn_id.upper()}"
    previous = os.environ.get(variable)
    with DifyEmulator(**knobs) as emulator:
        os.environ[variable] = emulator.connection_json
        try:
            yield emulator
        finally:
            if previous is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = previous


def new_dataset(hook: DifyHook, prefix: str) -> str:
    """Create an empty economy knowledge base; return its id."""
    name = f"{prefix}-{time.monotonic_ns() % 10**9}"[:40]
    return hook.create_dataset(name, indexing_technique="economy")["id"]


def records(count: int, words: int = 40, start: int = 0) -> list[dict[str, str]]:
    """
    ``count`` synthetic records ``{"id", "title", "body"}`` of about ``words`` words each (deterministic).

    Each body holds the record's unique token (``record000042``), which :func:`searchable` looks for.
    """
    vocabulary = [
        *("airflow", "dify", "knowledge", "base", "document", "chunk", "index", "retrieve", "pipeline"),
        *("warehouse", "record", "customer", "order", "invoice", "product", "region", "season", "shipment"),
        *("supplier", "contract", "policy", "report", "summary", "metric", "quality"),
    ]
    out = []
    for number in range(start, start + count):
        token = f"record{number:06d}"
        body = [vocabulary[(number * 7 + k * 3) % len(vocabulary)] for k in range(words)]
        # The record's own token three times: more often than any other word, so it is among the keywords
        # Dify's economy index extracts (the most frequent words), and a keyword search finds the record.
        text = " ".join([token, *body[: words // 2], token, *body[words // 2 :], token])
        out.append({"id": f"rec-{number:06d}", "title": f"Record {number}", "body": text})
    return out


RECORD_TEXT_TEMPLATE = "{{ title }}\n\n{{ body }}"


def record_text(record: dict[str, str]) -> str:
    """The text the operators render from a record with :data:`RECORD_TEXT_TEMPLATE` (for the naive loops)."""
    return f"{record['title']}\n\n{record['body']}"


class TaskInstanceStub:
    """The part of a task instance an operator's ``execute`` touches outside a DAG run (XCom pushes are kept)."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        """Keep the value."""
        self.xcom[key] = value


def requests_by_route(dify: DifyEmulator) -> str:
    """The emulator's recorded requests as ``POST /route xN`` items, most frequent first."""
    from collections import Counter

    counted = Counter(f"{call.method} {call.route or call.path}" for call in dify.calls)
    return ", ".join(f"`{name}` x{number:,}" for name, number in counted.most_common())


def minimal_context() -> dict[str, Any]:
    """A minimal task context for calling ``execute`` directly."""
    return {"ti": TaskInstanceStub(), "params": {}}


def searchable(hook: DifyHook, dataset_id: str, token: str) -> bool:
    """Whether a keyword search for ``token`` finds a chunk containing it."""
    model = {"search_method": "keyword_search", "reranking_enable": False, "top_k": 3, "score_threshold_enabled": False}
    found = hook.retrieve(dataset_id, token, retrieval_model=model).get("records") or []
    return any(token in str((hit.get("segment") or {}).get("content", "")) for hit in found)
