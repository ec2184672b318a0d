"""
The write-order check of :mod:`tests.change_feed_checks` on the backfill order of the real-Airflow tests (5 dates,
newest first): a versioned sync never writes a record an older version than Dify held; the same runs without
``version_field`` do, and the check says which record, which calls and which versions. One check per kind of
write (a content write's text, an ``airflow_version`` metadata value) on a hand-made request log too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator
from airflow_provider_dify.operators.sync._versions import VERSION_FIELD
from airflow_provider_dify.testing import Call
from bench.environment import minimal_context
from tests.change_feed_checks import (
    SourceRow,
    assert_newest_versions,
    assert_no_write_older_than_held,
    written_versions,
)
from tests.e2e.change_feed_dag import DATES, SCOPE, day_records, source_rows

pytestmark = pytest.mark.dify_emulator(indexing_seconds=0.01, queue_pickup_seconds=0.0, status_change_seconds=0.0)


def backfill_newest_first(dataset_id: str, **versions: Any) -> None:
    """The runs of the real-Airflow backfill tests, one after another, newest date first."""
    for day in reversed(DATES):
        DifySyncDocumentsOperator(
            task_id="sync",
            dataset_id=dataset_id,
            records=day_records(day),
            key_field="note_id",
            name_prefix="note-",
            text_template="{{ body }}",
            scope=SCOPE,
            deleted_field="is_deleted",
            indexing_technique="economy",
            **versions,
        ).execute(minimal_context())


def test_a_versioned_backfill_newest_first_never_writes_back(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("versioned")["id"]
    backfill_newest_first(dataset_id, version_field="updated_at")
    assert_newest_versions(dify_emulator, dataset_id, source_rows())
    assert_no_write_older_than_held(dify_emulator, dataset_id, source_rows())


def test_the_same_backfill_without_version_field_writes_older_versions_over_newer(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("unversioned")["id"]
    backfill_newest_first(dataset_id)
    with pytest.raises(AssertionError) as raised:
        assert_no_write_older_than_held(dify_emulator, dataset_id, source_rows())
    message = str(raised.value)
    assert "note-4: call" in message and "wrote text of version 2026-01-03 after call" in message  # v3 over v5
    assert "note-1: call" in message and "wrote text of version 2026-01-01 after call" in message  # v1 over v4
    assert "note-5" not in message  # written once


def metadata_call(dataset_id: str, document_id: str, version: str) -> Call:
    body = {
        "operation_data": [
            {"document_id": document_id, "metadata_list": [{"id": "f1", "name": VERSION_FIELD, "value": version}]}
        ]
    }
    path = f"/v1/datasets/{dataset_id}/documents/metadata"
    return Call("POST", "/datasets/{dataset_id}/documents/metadata", path, 200, None, 0.0, json.dumps(body).encode())


def test_metadata_versions_are_read_in_the_sources_kind_and_failed_calls_do_not_count() -> None:
    rows = [SourceRow("note-1", "a", 105), SourceRow("note-1", "b", 99)]
    calls = [metadata_call("ds", "doc-1", "105"), metadata_call("ds", "doc-1", "99")]
    failed = metadata_call("ds", "doc-1", "98")
    calls.append(Call(failed.method, failed.route, failed.path, 400, None, 0.0, failed.body))
    calls.append(Call(failed.method, failed.route, failed.path, 200, "injected", 0.0, failed.body))
    writes = written_versions(calls, "ds", rows, {"doc-1": "note-1"})
    assert [(write.position, write.what, write.version.text) for write in writes["note-1"]] == [
        (0, "metadata", "105"),  # 105 > 99 as numbers (not as text)
        (1, "metadata", "99"),
    ]
    with pytest.raises(AssertionError, match="not found"):
        written_versions(calls, "ds", rows, {})
