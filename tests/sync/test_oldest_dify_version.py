"""The main flows against the oldest Dify version the provider supports (the emulator's ``server_version``).

Dify 1.13 differs from the newest in ways the provider must handle: no ``PATCH /documents/{id}`` (405, so file
updates fall back to ``POST .../update-by-file``), no legacy ``upload-file`` route, the tag ``binding_count``
bug. Each test here runs a test of the suite unchanged, on that version.
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


def test_document_sync_of_files_updates_through_the_older_route(dify_emulator: Any, tmp_path: Path) -> None:
    dataset_id = dify_emulator.create_dataset("warehouse-sync")["id"]
    test_document_sync_dags.test_files_from_object_storage_update_only_when_changed(dify_emulator, dataset_id, tmp_path)
    assert dify_emulator.count("PATCH", "/datasets/{dataset_id}/documents/{document_id}", status=405) <= 1
    assert dify_emulator.count("POST", "/datasets/{dataset_id}/documents/{document_id}/update-by-file") >= 1


def test_chunk_sync(dify_emulator: Any, warehouse: Path) -> None:
    dataset_id = dify_emulator.create_dataset("chunk-sync")["id"]
    test_chunk_sync_dags.test_first_run_rerun_change_and_removal(dify_emulator, dataset_id, warehouse)


def test_knowledge_pipeline(dify_emulator: Any) -> None:
    test_pipeline.test_run_pipeline_on_crawled_pages_waits_in_the_worker(dify_emulator)
