"""The main flows against the oldest Dify version the provider supports (the emulator's ``server_version``).

Dify 1.13 differs from the newest in ways the provider must handle: no ``PATCH /documents/{id}`` (405, so file
updates fall back to ``POST .../update-by-file``), no legacy ``upload-file`` route, the tag ``binding_count``
bug. The tests here run tests of the suite unchanged on that version, plus the file update that must take the
older route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify import OLDEST_SUPPORTED_DIFY_VERSION
from airflow_provider_dify.testing.config import SERVER_VERSIONS
from tests.operators import test_operator_dags, test_pipeline
from tests.sync import test_chunk_sync_dags, test_document_sync_dags

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.dify_emulator(server_version=OLDEST_SUPPORTED_DIFY_VERSION, indexing_seconds=0.02),
]


def test_the_emulator_models_the_oldest_supported_version(dify_emulator: Any) -> None:
    assert min(SERVER_VERSIONS, key=lambda v: tuple(map(int, v.split(".")))) == OLDEST_SUPPORTED_DIFY_VERSION
    assert dify_emulator.config.server_version == OLDEST_SUPPORTED_DIFY_VERSION


def test_lifecycle_operators(dify_emulator: Any) -> None:
    test_operator_dags.test_lifecycle_writes_once_then_reruns_and_backfills_write_nothing(dify_emulator)


def test_document_sync(dify_emulator: Any, warehouse: Path) -> None:
    dataset_id = dify_emulator.create_dataset("warehouse-sync")["id"]
    test_document_sync_dags.test_first_run_rerun_change_and_delete(dify_emulator, dataset_id, warehouse)


def test_a_changed_file_is_updated_through_the_older_route(dify_emulator: Any, tmp_path: Path) -> None:
    """1.13 answers 405 to ``PATCH /documents/{id}``: the update goes to ``POST .../update-by-file`` instead."""
    from airflow_provider_dify.testing.dag_runner import xcom_value

    dataset_id = dify_emulator.create_dataset("file-sync")["id"]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.txt").write_text("Returns are free within 30 days.")
    dag = test_document_sync_dags.sync_dag(
        dataset_id,
        sql=None,
        sql_conn_id=None,
        path=f"file://{docs}",
        key_field=None,
        text_template=None,
        metadata_fields=["path"],
        name_prefix="kb-",
        scope="files",
    )
    assert xcom_value(test_document_sync_dags.run(dag), "sync")["counts"]["created"] == 1
    assert dify_emulator.wait_for_indexing()  # Dify updates only available documents
    (docs / "returns.txt").write_text("Returns are free within 60 days.")
    dify_emulator.reset_counters()
    assert xcom_value(test_document_sync_dags.run(dag), "sync")["counts"]["updated"] == 1
    assert dify_emulator.count("PATCH", status=405) == 1  # a route 1.13 does not have
    assert dify_emulator.count("POST", "/datasets/{dataset_id}/documents/{document_id}/update-by-file") == 1
    [stored] = dify_emulator.documents(dataset_id)
    assert "60 days" in stored["text"]


def test_chunk_sync(dify_emulator: Any, warehouse: Path) -> None:
    dataset_id = dify_emulator.create_dataset("chunk-sync")["id"]
    test_chunk_sync_dags.test_first_run_rerun_change_and_removal(dify_emulator, dataset_id, warehouse)


def test_knowledge_pipeline(dify_emulator: Any) -> None:
    test_pipeline.test_run_pipeline_on_crawled_pages_waits_in_the_worker(dify_emulator)
