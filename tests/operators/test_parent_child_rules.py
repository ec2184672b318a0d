"""Parent-child (hierarchical) process rules are checked where Dify looks for their parts, before anything is
sent: Dify answers 200 and silently ignores a misplaced ``parent_mode`` or ``subchunk_segmentation``
(langgenius/dify issues 22118, 22270, 27641)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_dify.operators._base import check_parent_child_rule
from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state
from tests.operators.helpers import content_writes, dag_id

DATASET_ID = "5e1f0c3a-6b2d-4f8e-9a1c-7d3b2e4f6a80"  # a well-formed id of no knowledge base

RULE: dict[str, Any] = {
    "mode": "hierarchical",
    "rules": {
        "pre_processing_rules": [],
        "segmentation": {"separator": "\n\n", "max_tokens": 500},
        "parent_mode": "paragraph",
        "subchunk_segmentation": {"separator": "\n", "max_tokens": 50},
    },
}
TEXT = "Refunds.\nWithin thirty days.\n\nShipping.\nIn two days."


def changed(change: Any) -> dict[str, Any]:
    rule = copy.deepcopy(RULE)
    change(rule)
    return rule


def misplace(key: str) -> Any:
    def move(rule: dict[str, Any]) -> None:
        rule["rules"]["segmentation"][key] = rule["rules"].pop(key)

    return move


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (changed(misplace("parent_mode")), r"\['segmentation'\]\['parent_mode'\]: move it up to"),
        (changed(misplace("subchunk_segmentation")), r"\['segmentation'\]\['subchunk_segmentation'\]: move it up"),
        (changed(lambda r: r.update(mode="custom")), r"\['mode'\]: parent_mode, subchunk_segmentation only take"),
        (changed(lambda r: r["rules"].pop("parent_mode")), r"\['parent_mode'\]: must be one of 'paragraph'"),
        (changed(lambda r: r["rules"].update(parent_mode="page")), r"\['parent_mode'\]: must be one of"),
        (changed(lambda r: r["rules"].pop("subchunk_segmentation")), r"\['subchunk_segmentation'\]: a hierarchical"),
        (
            changed(lambda r: r["rules"]["subchunk_segmentation"].update(separator="")),
            r"\['subchunk_segmentation'\]\['separator'\]",
        ),
        (
            changed(lambda r: r["rules"]["subchunk_segmentation"].update(max_tokens=800)),
            r"child chunks \(800\) must be smaller than their parent chunks",
        ),
        (
            changed(lambda r: r["rules"]["segmentation"].pop("max_tokens")),
            r"\['segmentation'\]\['max_tokens'\]: the parent chunks' size",
        ),
    ],
    ids=[
        "parent_mode-in-segmentation",
        "subchunk-in-segmentation",
        "custom-mode",
        "no-parent_mode",
        "unknown-parent_mode",
        "no-subchunk",
        "blank-child-separator",
        "child-bigger-than-parent",
        "paragraph-without-parent-size",
    ],
)
def test_misplaced_or_missing_parts_are_refused_when_the_dag_is_built(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DifyCreateDocumentOperator(task_id="t", dataset_id=DATASET_ID, name="a.txt", text=TEXT, process_rule=rule)


def test_rules_dify_accepts_pass() -> None:
    check_parent_child_rule(RULE)
    full_doc = changed(lambda r: r["rules"].update(parent_mode="full-doc", segmentation={"separator": "\n\n"}))
    check_parent_child_rule(full_doc)  # full-doc needs no parent size
    check_parent_child_rule({"mode": "custom", "rules": {"segmentation": {"separator": "\n", "max_tokens": 9}}})
    check_parent_child_rule({"mode": "automatic"})


@pytest.mark.usefixtures("airflow_db")
def test_a_hierarchical_rule_needs_a_hierarchical_knowledge_base(dify_emulator: Any) -> None:
    """A new knowledge base would take text_model from its first document: refused before anything is sent."""
    from airflow.providers.common.compat.sdk import DAG

    dataset = dify_emulator.create_dataset("kb")
    with DAG(dag_id("parent_child"), schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC)) as dag:
        first = DifyCreateDocumentOperator(
            task_id="text_model", dataset_id=dataset["id"], name="a.txt", text=TEXT, process_rule=RULE
        )
        second = DifyCreateDocumentOperator(
            task_id="hierarchical",
            dataset_id=dataset["id"],
            name="b.txt",
            text=TEXT,
            process_rule=RULE,
            doc_form="hierarchical_model",
            wait_for_indexing=True,
            deferrable=False,
            poll_interval=0.05,
            trigger_rule="all_done",
        )
        first >> second
    run = run_dag(dag)
    assert task_state(run, "text_model") == "failed"
    assert task_state(run, "hierarchical") == "success"
    [document] = dify_emulator.documents(dataset["id"])
    assert document["name"] == "b.txt"
    segments = dify_emulator.segments(dataset["id"], document["id"])
    # The child separator "\n" reached Dify as it is (Jinja would drop a trailing newline): two children each.
    assert segments and all(len(segment["child_chunks"]) == 2 for segment in segments)
    assert {call.path.rsplit("/", 1)[-1] for call in content_writes(dify_emulator)} >= {"create-by-text"}


def _indexed_segments(dify: Any, process_rule: dict[str, Any], doc_form: str) -> list[dict[str, Any]]:
    """Send a document straight through the hook (no operator checks); its chunks once indexed."""
    from airflow_provider_dify.hooks.dify import DifyHook

    dataset = dify.create_dataset(f"kb-{len(dify.datasets())}")
    answer = DifyHook().create_document_by_text(
        dataset["id"], "a.txt", TEXT, indexing_technique="economy", doc_form=doc_form, process_rule=process_rule
    )
    assert dify.wait_for_indexing()
    assert dify.document(dataset["id"], answer["document"]["id"])["indexing_status"] == "completed"
    return dify.segments(dataset["id"], answer["document"]["id"])


@pytest.mark.parametrize("version", ["1.13", "1.16"])
def test_the_emulator_ignores_misplaced_parts_as_dify_does(
    dify_emulator_factory: Any, monkeypatch: Any, version: str
) -> None:
    """What the checks above prevent: Dify answers 200, then indexes no chunk, or chunks without children."""
    dify = dify_emulator_factory(server_version=version, indexing_seconds=0)
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", dify.connection_json)
    no_children = changed(lambda r: r["rules"].pop("subchunk_segmentation"))
    assert _indexed_segments(dify, no_children, "hierarchical_model") == []
    misplaced = _indexed_segments(dify, changed(misplace("parent_mode")), "hierarchical_model")
    if version == "1.13":
        assert misplaced == []
    else:  # newer servers default parent_mode to paragraph
        assert misplaced and all(segment["child_chunks"] for segment in misplaced)
    flat = _indexed_segments(dify, RULE, "text_model")
    assert flat and not any(segment["child_chunks"] for segment in flat)
    complete = _indexed_segments(dify, RULE, "hierarchical_model")
    assert complete and all(len(segment["child_chunks"]) == 2 for segment in complete)
