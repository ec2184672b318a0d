"""``get_openlineage_facets_on_complete`` of the document and chunk operators, after a real write to the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.operators.helpers import context

pytest.importorskip("airflow.providers.openlineage", reason="apache-airflow-providers-openlineage is not installed")
pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0)


def knowledge_base(lineage: Any, dify: Any, dataset_id: str) -> dict[str, Any]:
    [output] = lineage.outputs
    assert (output.namespace, output.name) == (f"dify://{urlsplit(dify.url).netloc}", f"datasets/{dataset_id}")
    facet = output.facets["difyKnowledgeBaseWrite"]
    return {name: getattr(facet, name) for name in ("granularity", "createdCount", "unchangedCount", "documentName")}


def test_a_document_from_a_file_reads_the_file_and_writes_the_knowledge_base(
    dify_emulator: Any, tmp_path: Path
) -> None:
    from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator

    dataset_id = dify_emulator.create_dataset("test-ol-document", indexing_technique="economy")["id"]
    source = tmp_path / "handbook.md"
    source.write_text("# Handbook\n\nReturns within 30 days.\n")
    operator = DifyCreateDocumentOperator(task_id="create", dataset_id=dataset_id, file=str(source))
    operator.execute(context())
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(item.namespace, item.name) for item in lineage.inputs] == [("file", str(source))]
    written = knowledge_base(lineage, dify_emulator, dataset_id)
    assert written == {"granularity": "document", "createdCount": 1, "unchangedCount": 0, "documentName": "handbook.md"}


def test_added_chunks_are_reported_on_their_knowledge_base(dify_emulator: Any) -> None:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator

    dataset_id = dify_emulator.create_dataset("test-ol-chunks", indexing_technique="economy")["id"]
    DifyHook().create_document_by_text(dataset_id, "notes", "Notes.", process_rule={"mode": "automatic"})
    assert dify_emulator.wait_for_indexing()
    operator = DifyAddSegmentsOperator(
        task_id="chunks",
        dataset_id=dataset_id,
        document_name="notes",
        segments=[{"content": "One."}, {"content": "Two."}],
    )
    operator.execute(context())
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert lineage.inputs == []
    assert knowledge_base(lineage, dify_emulator, dataset_id) == {
        "granularity": "chunks",
        "createdCount": 2,
        "unchangedCount": 0,
        "documentName": "notes",
    }
