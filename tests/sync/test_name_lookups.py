"""Names that hold LIKE's special characters are found by the syncs' and the hook's name lookups.

Dify filters the document list with ``name LIKE '%keyword%'``, the keyword unescaped (a backslash is the escape
character), so a name holding a backslash was never found by its own name, and ``_`` or ``%`` matched others.
The provider escapes the names it looks up (``like_literal``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.operations import like_literal
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.0)]

#: Names with a backslash, an underscore and a percent sign, and names those would match as wildcards.
NAMES = ["dir\\readme", "note_1", "50% off"]
DECOYS = ["dirreadme", "noteX1", "50 percent off"]


def test_like_literal_escapes_the_escape_character_first() -> None:
    assert like_literal("a\\b_c%d") == "a\\\\b\\_c\\%d"
    assert like_literal("plain-name.txt") == "plain-name.txt"


def test_the_hook_finds_a_name_holding_a_backslash_exactly(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("names")["id"]
    for name in NAMES + DECOYS:
        dify_emulator.create_document(dataset_id, name, "text")
    hook = DifyHook()
    for name in NAMES:
        assert [doc["name"] for doc in hook.find_documents_by_name(dataset_id, name)] == [name]


def test_a_change_feed_updates_and_deletes_documents_whose_names_hold_like_characters(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("feed")["id"]

    def run(records: list[dict[str, Any]], number: int) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import DAG

        with DAG(f"name_lookups_{number}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            DifySyncDocumentsOperator(
                task_id="sync",
                dataset_id=dataset_id,
                records=records,
                name_template="{{ name }}",
                text_template="{{ body }}",
                deleted_field="is_deleted",
            )
        dag_run = run_dag(dag)
        assert task_state(dag_run, "sync") == "success"
        return xcom_value(dag_run, "sync")

    with dify_emulator.lock:  # 400 more documents: looking 3 names up reads less than listing 4 pages
        now = dify_emulator.state.now()
        dataset = dify_emulator.state.get_dataset(dataset_id)
        for name in DECOYS + [f"filler-{n}" for n in range(400)]:
            values = {"name": name, "text": "a decoy", "process_rule": {"mode": "automatic"}}
            dify_emulator.state.create_text_document(dataset, values, now)
        dify_emulator.state.drain(now)
    first = run([{"name": name, "body": "v1", "is_deleted": False} for name in NAMES], 1)
    assert first["counts"]["created"] == 3
    second = run([{"name": name, "body": "v2", "is_deleted": name == "50% off"} for name in NAMES], 2)
    assert second["found_by"] == "lookups"
    assert second["counts"]["updated"] == 2 and second["counts"]["created"] == 0 and second["counts"]["deleted"] == 1
    texts = {doc["name"]: doc["text"] for doc in dify_emulator.documents(dataset_id)}
    assert {name: texts.get(name) for name in NAMES + DECOYS} == {
        "dir\\readme": "v2",
        "note_1": "v2",
        "50% off": None,
        **{name: "a decoy" for name in DECOYS},
    }
    assert len(texts) == 2 + len(DECOYS) + 400
