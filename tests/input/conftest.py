"""Fixtures of the hostile and bad input tests: two knowledge bases in the emulator, the key to sweep for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Importing a hook first avoids the provider's import cycle in a fresh process (see tests/indexing/conftest.py).
import airflow_provider_dify.hooks.dify  # noqa: F401

BATCH = "20261123194403568155"
#: A SQLite connection with a ``products`` table (``id``, ``title``), defined by the ``world`` fixture.
SQL_CONN_ID = "input_sqlite"


@dataclass
class World:
    """What a bad input must not reach: knowledge base ``a`` (with a document and a chunk) and ``b``."""

    dify: Any
    key: str
    a: str
    doc: str
    seg: str
    b: str
    b_doc: str
    tmp: Path

    def snapshot(self) -> Any:
        """Everything in the emulator: knowledge bases, documents (with text) and chunks."""
        state = []
        for dataset in sorted(self.dify.datasets(), key=lambda item: item["id"]):
            documents = self.dify.documents(dataset["id"])
            chunks = [self.dify.segments(dataset["id"], doc["id"]) for doc in documents]
            state.append((dataset["id"], dataset["name"], [(d["id"], d["text"]) for d in documents], chunks))
        return repr(state)


@pytest.fixture
def world(dify_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """Two knowledge bases, seeded without HTTP, and a SQLite source; the emulator's counters start at zero."""
    import json
    import sqlite3

    database = tmp_path / "source.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE products (id TEXT, title TEXT)")
        connection.execute("INSERT INTO products VALUES ('sku-1', 'Kettle')")
    connection.close()
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SQL_CONN_ID.upper()}", json.dumps({"conn_type": "sqlite", "host": str(database)})
    )
    a = dify_emulator.create_dataset("kb-a")["id"]
    doc = dify_emulator.create_document(a, "guide.txt", "Kettles boil water. Chairs hold people.")["id"]
    seg = dify_emulator.segments(a, doc)[0]["id"]
    b = dify_emulator.create_dataset("kb-b")["id"]
    b_doc = dify_emulator.create_document(b, "other.txt", "Another knowledge base's text.")["id"]
    dify_emulator.reset_counters()
    return World(dify_emulator, dify_emulator.api_key, a, doc, seg, b, b_doc, tmp_path)
