"""A table of bad inputs across the hook (sync and async), every operator, the sensor, the trigger and the
connection. Each one fails with a typed error naming the argument, before any request reaches the emulator,
with no piece of the API key in the message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_dify.exceptions import DifyArgumentError, DifyError
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.hooks.dify_async import DifyAsyncHook
from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator, DifyDeleteDatasetOperator
from airflow_provider_dify.operators.documents import (
    DifyCreateDocumentOperator,
    DifyDeleteDocumentOperator,
    DifyUpdateDocumentOperator,
)
from airflow_provider_dify.operators.metadata import DifyUpdateDocumentMetadataOperator
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator
from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator
from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
from airflow_provider_dify.sensors.indexing import DifyIndexingSensor
from airflow_provider_dify.triggers.indexing import DifyIndexingTrigger
from tests.input.conftest import BATCH, SQL_CONN_ID, World
from tests.operators.helpers import context
from tests.unit.helpers import assert_no_key_piece

UUID = "e6d8e8dc-2d56-4e90-8b01-f3edb7be07c2"
RECORDS = [{"id": "sku-1", "title": "Kettle"}]


@dataclass(frozen=True)
class Case:
    """One bad input: what is called, and the argument the error must name."""

    name: str
    call: Callable[[World], Any]
    argument: str
    error: type[DifyError] = DifyArgumentError


def hook() -> DifyHook:
    return DifyHook()


def run_async(method: str, *args: Any) -> Any:
    async def call() -> Any:
        async with DifyAsyncHook() as async_hook:
            return await getattr(async_hook, method)(*args)

    return asyncio.run(call())


def execute(operator: Any, **rendered: Any) -> Any:
    """Execute an operator as if Airflow had rendered its templated fields to ``rendered``."""
    for field_name, value in rendered.items():
        setattr(operator, field_name, value)
    return operator.execute(context())


def poke(sensor: DifyIndexingSensor, **rendered: Any) -> Any:
    for field_name, value in rendered.items():
        setattr(sensor, field_name, value)
    return sensor.poke(context())


def big_file(w: World, name: str = "big.txt", megabytes: int = 16) -> str:
    path = w.tmp / name
    with open(path, "wb") as handle:
        handle.truncate(megabytes * 1024 * 1024)
    return str(path)


def small_file(w: World, name: str) -> str:
    path = w.tmp / name
    path.write_text("content\n")
    return str(path)


def connection(monkeypatch: pytest.MonkeyPatch, w: World, **fields: Any) -> str:
    """A ``dify`` connection ``dify_bad`` pointing at the emulator, with ``fields`` overriding its own."""
    conn = {**json.loads(w.dify.connection_json), **fields}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_BAD", json.dumps(conn))
    return "dify_bad"


def hostile(w: World) -> str:
    return f"../../{w.b}"


# -- the sync hook ---------------------------------------------------------------------------------------------

HOOK_CASES = [
    Case("hook get_dataset by name", lambda w: hook().get_dataset("kb-a"), "dataset_id"),
    Case("hook get_dataset empty", lambda w: hook().get_dataset(""), "dataset_id"),
    Case("hook get_dataset None", lambda w: hook().get_dataset(None), "dataset_id"),
    Case("hook get_dataset number", lambda w: hook().get_dataset(5), "dataset_id"),
    Case("hook get_dataset query", lambda w: hook().get_dataset(f"{w.a}?page=2"), "dataset_id"),
    Case("hook get_dataset fragment", lambda w: hook().get_dataset(f"{w.a}#x"), "dataset_id"),
    Case("hook get_dataset encoded dots", lambda w: hook().get_dataset(f"%2e%2e%2f{w.b}"), "dataset_id"),
    Case("hook update_dataset climbing", lambda w: hook().update_dataset(f"{w.a}/..", name="x"), "dataset_id"),
    Case("hook delete_dataset with a slash", lambda w: hook().delete_dataset(f"{w.a}/"), "dataset_id"),
    Case("hook get_document climbing", lambda w: hook().get_document(w.a, hostile(w)), "document_id"),
    Case("hook delete_document climbing", lambda w: hook().delete_document(w.a, hostile(w)), "document_id"),
    Case(
        "hook delete_segment climbing", lambda w: hook().delete_segment(w.a, w.doc, f"../../../../{w.b}"), "segment_id"
    ),
    Case("hook update_segment name", lambda w: hook().update_segment(w.a, w.doc, "first", content="x"), "segment_id"),
    Case("hook list_documents climbing", lambda w: hook().list_documents(f"../{w.b}"), "dataset_id"),
    Case("hook indexing status word batch", lambda w: hook().get_indexing_status(w.a, "nosuchbatch"), "batch"),
    Case("hook indexing status climbing batch", lambda w: hook().get_indexing_status(w.a, f"1/../../{w.b}"), "batch"),
    Case("hook indexing status empty batch", lambda w: hook().get_indexing_status(w.a, ""), "batch"),
    Case("hook create by text NUL name", lambda w: hook().create_document_by_text(w.a, "a\x00b", "t"), "name"),
    Case("hook create by text line break name", lambda w: hook().create_document_by_text(w.a, "a\nb", "t"), "name"),
    Case("hook create by text NUL text", lambda w: hook().create_document_by_text(w.a, "n.txt", "te\x00xt"), "text"),
    Case("hook create by text escape text", lambda w: hook().create_document_by_text(w.a, "n.txt", "\x1b[31m"), "text"),
    Case("hook create by text number text", lambda w: hook().create_document_by_text(w.a, "n.txt", 5), "text"),
    Case(
        "hook update by text NUL text",
        lambda w: hook().update_document_by_text(w.a, w.doc, name="n", text="\x00"),
        "text",
    ),
    Case("hook create by file too large", lambda w: hook().create_document_by_file(w.a, big_file(w)), "file"),
    Case("hook create by file .exe", lambda w: hook().create_document_by_file(w.a, small_file(w, "x.exe")), "file"),
    Case(
        "hook create by file no extension",
        lambda w: hook().create_document_by_file(w.a, small_file(w, "README")),
        "file",
    ),
    Case("hook create by file missing", lambda w: hook().create_document_by_file(w.a, w.tmp / "nope.txt"), "file"),
    Case(
        "hook create by file renamed .sh",
        lambda w: hook().create_document_by_file(w.a, small_file(w, "a.txt"), filename="a.sh"),
        "file",
    ),
    Case(
        "hook update by file .exe", lambda w: hook().update_document_by_file(w.a, w.doc, small_file(w, "x.exe")), "file"
    ),
    Case(
        "hook add_segments NUL content",
        lambda w: hook().add_segments(w.a, w.doc, [{"content": "a\x00"}]),
        "segments[0].content",
    ),
    Case(
        "hook add_segments bell answer",
        lambda w: hook().add_segments(w.a, w.doc, [{"content": "a", "answer": "\x07"}]),
        "segments[0].answer",
    ),
    Case(
        "hook add_segments NUL keyword",
        lambda w: hook().add_segments(w.a, w.doc, [{"content": "a", "keywords": ["k\x00"]}]),
        "segments[0].keywords[0]",
    ),
    Case(
        "hook update_segment NUL content",
        lambda w: hook().update_segment(w.a, w.doc, w.seg, content="x\x00"),
        "segment.content",
    ),
    Case("hook add_child_chunk NUL", lambda w: hook().add_child_chunk(w.a, w.doc, w.seg, "c\x00"), "content"),
    Case(
        "hook delete_child_chunk climbing",
        lambda w: hook().delete_child_chunk(w.a, w.doc, w.seg, "../x"),
        "child_chunk_id",
    ),
    Case("hook metadata name too long", lambda w: hook().create_metadata_field(w.a, "x" * 256), "name"),
    Case("hook metadata name document_name", lambda w: hook().create_metadata_field(w.a, "document_name"), "name"),
    Case("hook metadata name uploader", lambda w: hook().create_metadata_field(w.a, "uploader"), "name"),
    Case("hook metadata name upload_date", lambda w: hook().create_metadata_field(w.a, "upload_date"), "name"),
    Case(
        "hook metadata name last_update_date", lambda w: hook().create_metadata_field(w.a, "last_update_date"), "name"
    ),
    Case("hook metadata name source", lambda w: hook().create_metadata_field(w.a, "source"), "name"),
    Case("hook metadata name line break", lambda w: hook().create_metadata_field(w.a, "a\nb"), "name"),
    Case("hook rename metadata to built-in", lambda w: hook().update_metadata_field(w.a, UUID, "source"), "name"),
    Case("hook rename metadata climbing", lambda w: hook().update_metadata_field(w.a, "../x", "n"), "metadata_id"),
    Case("hook delete metadata climbing", lambda w: hook().delete_metadata_field(w.a, f"../../{w.b}"), "metadata_id"),
    Case(
        "hook metadata value dict",
        lambda w: hook().update_documents_metadata(
            w.a, [{"document_id": w.doc, "metadata_list": [{"id": UUID, "name": "n", "value": {"a": 1}}]}]
        ),
        "operation_data[0].metadata_list[0].value",
    ),
    Case(
        "hook metadata value list",
        lambda w: hook().update_documents_metadata(
            w.a, [{"document_id": w.doc, "metadata_list": [{"id": UUID, "name": "n", "value": [1, 2]}]}]
        ),
        "operation_data[0].metadata_list[0].value",
    ),
    Case("hook retrieve NUL query", lambda w: hook().retrieve(w.a, "q\x00"), "query"),
    Case("hook retrieve by name", lambda w: hook().retrieve("kb-a", "q"), "dataset_id"),
    Case("hook bind_tags by name", lambda w: hook().bind_tags("kb-a", [UUID]), "dataset_id"),
    Case("hook unbind_tag climbing", lambda w: hook().unbind_tag(f"../{w.b}", UUID), "dataset_id"),
    Case("hook list_dataset_tags climbing", lambda w: hook().list_dataset_tags(f"../{w.b}"), "dataset_id"),
    Case("hook create_tag NUL", lambda w: hook().create_tag("t\x00"), "name"),
    Case("hook list_datasets limit 0", lambda w: hook().list_datasets(limit=0), "limit"),
    Case("hook status one id as text", lambda w: hook().update_document_status(w.a, "enable", w.doc), "document_ids"),
    Case("hook download url climbing", lambda w: hook().get_document_download_url(w.a, hostile(w)), "document_id"),
]

# -- the async hook and the trigger ----------------------------------------------------------------------------

ASYNC_CASES = [
    Case("async indexing status climbing batch", lambda w: run_async("get_indexing_status", w.a, f"../{w.b}"), "batch"),
    Case("async indexing status word batch", lambda w: run_async("get_indexing_status", w.a, "abc"), "batch"),
    Case("async indexing status dataset name", lambda w: run_async("get_indexing_status", "kb-a", BATCH), "dataset_id"),
    Case("async get_document climbing", lambda w: run_async("get_document", w.a, hostile(w)), "document_id"),
    Case("async get_document empty", lambda w: run_async("get_document", w.a, ""), "document_id"),
    Case("async get_document climbing dataset", lambda w: run_async("get_document", f"../{w.b}", w.doc), "dataset_id"),
]

TRIGGER_CASES = [
    Case("trigger dataset name", lambda w: DifyIndexingTrigger(dataset_id="kb-a", batch=BATCH), "dataset_id"),
    Case("trigger climbing dataset", lambda w: DifyIndexingTrigger(dataset_id=f"../{w.b}", batch=BATCH), "dataset_id"),
    Case("trigger word batch", lambda w: DifyIndexingTrigger(dataset_id=w.a, batch="x"), "batch"),
    Case("trigger climbing document", lambda w: DifyIndexingTrigger(w.a, document_ids=[hostile(w)]), "document_ids[0]"),
    Case("trigger None document", lambda w: DifyIndexingTrigger(w.a, document_ids=[w.doc, None]), "document_ids[1]"),
    Case("trigger poll_interval 0", lambda w: DifyIndexingTrigger(w.a, batch=BATCH, poll_interval=0), "poll_interval"),
    Case(
        "trigger poll_interval negative",
        lambda w: DifyIndexingTrigger(w.a, batch=BATCH, poll_interval=-1),
        "poll_interval",
    ),
    Case(
        "trigger poll_interval text",
        lambda w: DifyIndexingTrigger(w.a, batch=BATCH, poll_interval="fast"),
        "poll_interval",
    ),
]

# -- the sensor ------------------------------------------------------------------------------------------------


def sensor(w: World, **kwargs: Any) -> DifyIndexingSensor:
    return DifyIndexingSensor(task_id="wait", **{"dataset_id": w.a, "batch": BATCH, **kwargs})


SENSOR_CASES = [
    Case("sensor dataset name", lambda w: sensor(w, dataset_id="kb-a"), "dataset_id"),
    Case("sensor climbing dataset", lambda w: sensor(w, dataset_id=f"../{w.b}"), "dataset_id"),
    Case("sensor word batch", lambda w: sensor(w, batch="b"), "batch"),
    Case("sensor climbing document", lambda w: sensor(w, batch=None, document_ids=[hostile(w)]), "document_ids[0]"),
    Case("sensor poke_interval 0", lambda w: sensor(w, poke_interval=0), "poke_interval"),
    Case("sensor poke_interval tiny", lambda w: sensor(w, poke_interval=0.001), "poke_interval"),
    Case("sensor poke_interval negative", lambda w: sensor(w, poke_interval=-5), "poke_interval"),
    Case(
        "sensor rendered climbing dataset",
        lambda w: poke(sensor(w, dataset_id="{{ params.ds }}"), dataset_id=f"../{w.b}"),
        "dataset_id",
    ),
    Case("sensor rendered word batch", lambda w: poke(sensor(w, batch="{{ params.b }}"), batch="nosuchbatch"), "batch"),
    Case(
        "sensor rendered climbing document",
        lambda w: poke(sensor(w, batch=None, document_ids="{{ x }}"), document_ids=f"['{hostile(w)}']"),
        "document_ids[0]",
    ),
    Case(
        "sensor rendered name as document id",
        lambda w: poke(sensor(w, batch=None, document_ids="{{ x }}"), document_ids="guide.txt"),
        "document_ids[0]",
    ),
]

# -- the operators ---------------------------------------------------------------------------------------------


def create_doc(w: World, **kwargs: Any) -> DifyCreateDocumentOperator:
    return DifyCreateDocumentOperator(task_id="create", **{"dataset_id": w.a, "name": "n.txt", "text": "t", **kwargs})


def sync_docs(w: World, **kwargs: Any) -> DifySyncDocumentsOperator:
    arguments = {"dataset_id": w.a, "records": RECORDS, "key_field": "id", "text_template": "{{ title }}"}
    return DifySyncDocumentsOperator(task_id="sync", **{**arguments, **kwargs})


def sync_chunks(w: World, **kwargs: Any) -> DifySyncChunksOperator:
    arguments = {"dataset_id": w.a, "records": RECORDS, "key_field": "id", "document_name": "faq"}
    return DifySyncChunksOperator(task_id="chunks", **{**arguments, **kwargs})


OPERATOR_CASES = [
    Case(
        "create dataset NUL name",
        lambda w: execute(DifyCreateDatasetOperator(task_id="c", name="{{ n }}"), name="kb\x00"),
        "name",
    ),
    Case(
        "delete dataset by name as id",
        lambda w: DifyDeleteDatasetOperator(task_id="d", dataset_id="kb-b"),
        "dataset_id",
    ),
    Case(
        "delete dataset climbing",
        lambda w: DifyDeleteDatasetOperator(task_id="d", dataset_id=f"{w.a}/../{w.b}"),
        "dataset_id",
    ),
    Case(
        "delete dataset rendered climbing",
        lambda w: execute(DifyDeleteDatasetOperator(task_id="d", dataset_id="{{ x }}"), dataset_id=f"../{w.b}"),
        "dataset_id",
    ),
    Case("create document dataset name as id", lambda w: create_doc(w, dataset_id="kb-a"), "dataset_id"),
    Case("create document NUL name", lambda w: create_doc(w, name="a\x00.txt"), "name"),
    Case("create document tab name", lambda w: create_doc(w, name="a\t.txt"), "name"),
    Case("create document built-in metadata", lambda w: create_doc(w, metadata={"document_name": "x"}), "metadata"),
    Case("create document source metadata", lambda w: create_doc(w, metadata={"source": "x"}), "metadata"),
    Case("create document long metadata name", lambda w: create_doc(w, metadata={"m" * 256: 1}), "metadata"),
    Case("create document dict metadata", lambda w: create_doc(w, metadata={"k": {"a": 1}}), "metadata"),
    Case("create document list metadata", lambda w: create_doc(w, metadata={"k": ["a"]}), "metadata"),
    Case("create document NUL metadata value", lambda w: create_doc(w, metadata={"k": "a\x00"}), "metadata"),
    Case("create document poll_interval 0", lambda w: create_doc(w, poll_interval=0), "poll_interval"),
    Case(
        "create document rendered climbing dataset",
        lambda w: execute(create_doc(w, dataset_id="{{ x }}"), dataset_id=f"../../{w.b}"),
        "dataset_id",
    ),
    Case("create document NUL text", lambda w: execute(create_doc(w, text="{{ x }}"), text="bad\x00text"), "text"),
    Case(
        "create document file too large",
        lambda w: execute(create_doc(w, name=None, text=None, file=big_file(w, "report.md"))),
        "file",
    ),
    Case(
        "create document .exe file",
        lambda w: execute(create_doc(w, name=None, text=None, file=small_file(w, "tool.exe"))),
        "file",
    ),
    Case(
        "update document climbing id",
        lambda w: DifyUpdateDocumentOperator(task_id="u", dataset_id=w.a, document_id=hostile(w), text="t"),
        "document_id",
    ),
    Case(
        "update document rendered climbing id",
        lambda w: execute(
            DifyUpdateDocumentOperator(task_id="u", dataset_id=w.a, document_id="{{ x }}", text="t"),
            document_id=hostile(w),
        ),
        "document_id",
    ),
    Case(
        "update document file too large",
        lambda w: execute(
            DifyUpdateDocumentOperator(task_id="u", dataset_id=w.a, document_id=w.doc, file=big_file(w, "guide.txt"))
        ),
        "file",
    ),
    Case(
        "delete document climbing id",
        lambda w: DifyDeleteDocumentOperator(task_id="d", dataset_id=w.a, document_id=hostile(w)),
        "document_id",
    ),
    Case(
        "delete document rendered climbing id",
        lambda w: execute(
            DifyDeleteDocumentOperator(task_id="d", dataset_id=w.a, document_id="{{ x }}"), document_id=hostile(w)
        ),
        "document_id",
    ),
    Case(
        "delete document climbing dataset",
        lambda w: DifyDeleteDocumentOperator(task_id="d", dataset_id=f"../{w.b}", document_name="x"),
        "dataset_id",
    ),
    Case(
        "add segments climbing document",
        lambda w: DifyAddSegmentsOperator(task_id="s", dataset_id=w.a, document_id="../x", segments=[{"content": "a"}]),
        "document_id",
    ),
    Case(
        "add segments NUL content",
        lambda w: execute(
            DifyAddSegmentsOperator(task_id="s", dataset_id=w.a, document_id=w.doc, segments=[{"content": "a\x00"}])
        ),
        "segments[0].content",
    ),
    Case(
        "retrieve dataset name as id",
        lambda w: DifyRetrieveOperator(task_id="r", dataset_id="kb-a", query="q"),
        "dataset_id",
    ),
    Case(
        "retrieve rendered NUL query",
        lambda w: execute(DifyRetrieveOperator(task_id="r", dataset_id=w.a, query="{{ q }}"), query="q\x00"),
        "query",
    ),
    Case(
        "metadata operator built-in name",
        lambda w: DifyUpdateDocumentMetadataOperator(
            task_id="m", dataset_id=w.a, document_id=w.doc, metadata={"upload_date": 1}
        ),
        "metadata",
    ),
    Case(
        "metadata operator list value",
        lambda w: DifyUpdateDocumentMetadataOperator(
            task_id="m", dataset_id=w.a, document_id=w.doc, metadata={"k": [1]}
        ),
        "metadata",
    ),
    Case(
        "metadata operator climbing id",
        lambda w: DifyUpdateDocumentMetadataOperator(
            task_id="m", dataset_id=w.a, document_id=hostile(w), metadata={"k": 1}
        ),
        "document_id",
    ),
]

SYNC_CASES = [
    Case("sync documents dataset name as id", lambda w: sync_docs(w, dataset_id="kb-a"), "dataset_id"),
    Case(
        "sync documents built-in metadata",
        lambda w: sync_docs(w, metadata_fields={"title": "source"}),
        "metadata_fields",
    ),
    Case(
        "sync documents long metadata", lambda w: sync_docs(w, metadata_fields={"title": "t" * 256}), "metadata_fields"
    ),
    Case("sync documents poll_interval 0", lambda w: sync_docs(w, poll_interval=0), "poll_interval"),
    Case(
        "sync documents rendered climbing dataset",
        lambda w: execute(sync_docs(w, dataset_id="{{ x }}"), dataset_id=f"../{w.b}"),
        "dataset_id",
    ),
    Case(
        "sync documents NUL in key",
        lambda w: execute(sync_docs(w, records=[{"id": "a\x00b", "title": "t"}])),
        "records[0].id",
    ),
    Case(
        "sync documents line break in key",
        lambda w: execute(sync_docs(w, records=[{"id": "a\nb", "title": "t"}])),
        "records[0].id",
    ),
    Case(
        "sync documents dict as key",
        lambda w: execute(sync_docs(w, records=[{"id": {"a": 1}, "title": "t"}])),
        "records[0].id",
    ),
    Case(
        "sync documents list as key",
        lambda w: execute(sync_docs(w, records=[{"id": "ok", "title": "t"}, {"id": [1], "title": "u"}])),
        "records[1].id",
    ),
    Case(
        "sync documents dict metadata value",
        lambda w: execute(sync_docs(w, records=[{"id": "a", "title": "t", "m": {"x": 1}}], metadata_fields=["m"])),
        "records[0].m",
    ),
    Case(
        "sync documents list metadata value",
        lambda w: execute(sync_docs(w, records=[{"id": "a", "title": "t", "m": [1]}], metadata_fields=["m"])),
        "records[0].m",
    ),
    Case(
        "sync documents NUL in text",
        lambda w: execute(sync_docs(w, records=[{"id": "a", "title": "t\x00"}])),
        "records[0] (text)",
    ),
    Case(
        "sync documents NUL in rendered name",
        lambda w: execute(sync_docs(w, name_template="{{ title }}.txt", records=[{"id": "a", "title": "t\x01"}])),
        "records[0] (document name)",
    ),
    Case(
        "sync documents all texts blank",
        lambda w: execute(sync_docs(w, records=[{"id": "a", "title": " "}, {"id": "b", "title": ""}])),
        "text_template",
    ),
    Case("sync documents records is a dict", lambda w: execute(sync_docs(w, records={"id": "a"})), "records"),
    Case(
        "sync documents rendered records not a list",
        lambda w: execute(sync_docs(w, records="{{ ti.xcom_pull('x') }}"), records="None"),
        "records",
    ),
    Case(
        "sync documents rendered records not parseable",
        lambda w: execute(sync_docs(w, records="{{ ti.xcom_pull('x') }}"), records="[{'id': datetime(1)}]"),
        "records",
    ),
    Case(
        "sync documents SQL syntax error",
        lambda w: execute(sync_docs(w, records=None, sql="SELEC id FROM products", sql_conn_id=SQL_CONN_ID)),
        "sql",
    ),
    Case(
        "sync documents SQL unknown table",
        lambda w: execute(sync_docs(w, records=None, sql="SELECT id FROM nowhere", sql_conn_id=SQL_CONN_ID)),
        "sql",
    ),
    Case(
        "sync documents SQL duplicate columns",
        lambda w: execute(
            sync_docs(w, records=None, sql="SELECT id, title, title FROM products", sql_conn_id=SQL_CONN_ID)
        ),
        "sql",
    ),
    Case(
        "sync documents sql_conn_id is a dify connection",
        lambda w: execute(sync_docs(w, records=None, sql="SELECT 1", sql_conn_id="dify_default")),
        "sql_conn_id",
    ),
    Case(
        "sync documents sql_conn_id missing",
        lambda w: execute(sync_docs(w, records=None, sql="SELECT 1", sql_conn_id="no_such_connection")),
        "sql_conn_id",
    ),
    Case(
        "sync chunks SQL duplicate columns",
        lambda w: execute(
            sync_chunks(w, records=None, sql="SELECT id AS title, title FROM products", sql_conn_id=SQL_CONN_ID)
        ),
        "sql",
    ),
    Case(
        "sync chunks SQL syntax error",
        lambda w: execute(sync_chunks(w, records=None, sql="SELECT FROM WHERE", sql_conn_id=SQL_CONN_ID)),
        "sql",
    ),
    Case("sync chunks climbing dataset", lambda w: sync_chunks(w, dataset_id=f"../{w.b}"), "dataset_id"),
    Case("sync chunks poll_interval 0", lambda w: sync_chunks(w, poll_interval=0), "poll_interval"),
    Case("sync chunks NUL document name", lambda w: execute(sync_chunks(w, document_name="faq\x00")), "document_name"),
    Case(
        "sync chunks built-in document metadata",
        lambda w: execute(sync_chunks(w, document_metadata={"source": "x"})),
        "document_metadata",
    ),
    Case(
        "sync chunks NUL in key",
        lambda w: execute(sync_chunks(w, records=[{"id": "\x00", "title": "t"}])),
        "records[0].id",
    ),
    Case(
        "sync chunks NUL in text",
        lambda w: execute(sync_chunks(w, records=[{"id": "a", "title": "t\x00"}])),
        "records[0] (text)",
    ),
    Case(
        "sync chunks all texts blank",
        lambda w: execute(sync_chunks(w, text_template="{{ title }}", records=[{"id": "a", "title": "  "}])),
        "text_template",
    ),
    Case(
        "sync chunks rendered records not a list",
        lambda w: execute(sync_chunks(w, records="{{ x }}"), records="{'id': 'a'}"),
        "records",
    ),
]

CASES = HOOK_CASES + ASYNC_CASES + TRIGGER_CASES + SENSOR_CASES + OPERATOR_CASES + SYNC_CASES


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_fails_before_any_request(world: World, case: Case) -> None:
    before = world.snapshot()
    with pytest.raises(case.error) as raised:
        case.call(world)
    error = raised.value
    assert isinstance(error, DifyArgumentError), f"{type(error).__name__}: {error}"
    assert error.argument.startswith(case.argument), (error.argument, str(error))
    assert str(error).startswith(case.argument), str(error)
    assert world.dify.calls == [], [f"{call.method} {call.path}" for call in world.dify.calls]
    assert world.snapshot() == before  # no knowledge base, document or chunk changed
    assert_no_key_piece(world.key, str(error), repr(error))


# -- the connection --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionCase:
    """A connection whose fields are bad; every client refuses it before sending."""

    name: str
    fields: Callable[[World], dict[str, Any]]
    argument: str


CONNECTION_CASES = [
    ConnectionCase("key with a line break", lambda w: {"password": w.key[:20] + "\n" + w.key[20:]}, "password"),
    ConnectionCase("key with a trailing line inside", lambda w: {"password": w.key + "\nsecond"}, "password"),
    ConnectionCase("key with a carriage return", lambda w: {"password": w.key[:12] + "\r" + w.key[12:]}, "password"),
    ConnectionCase("key with a space", lambda w: {"password": w.key[:15] + " " + w.key[15:]}, "password"),
    ConnectionCase("key with a tab", lambda w: {"password": w.key[:9] + "\t" + w.key[9:]}, "password"),
    ConnectionCase("key with NUL", lambda w: {"password": w.key[:10] + "\x00" + w.key[10:]}, "password"),
    ConnectionCase("key with a non-ASCII letter", lambda w: {"password": w.key[:10] + "é" + w.key[10:]}, "password"),
    ConnectionCase(
        "key with a zero-width space", lambda w: {"password": w.key[:10] + "\u200b" + w.key[10:]}, "password"
    ),
    ConnectionCase("no key", lambda w: {"password": ""}, "password"),
    ConnectionCase("extras not JSON", lambda w: {"extra": '{"timeout": 60,'}, "extra"),
    ConnectionCase("extras a JSON list", lambda w: {"extra": "[1, 2]"}, "extra"),
    ConnectionCase("extras unknown field", lambda w: {"extra": json.dumps({"timeuot": 5})}, "extra"),
    ConnectionCase("extras timeout not a number", lambda w: {"extra": json.dumps({"timeout": "soon"})}, "extra"),
    ConnectionCase("extras upload limit negative", lambda w: {"extra": json.dumps({"upload_max_mb": -1})}, "extra"),
    ConnectionCase(
        "extras upload extensions empty", lambda w: {"extra": json.dumps({"upload_extensions": " , "})}, "extra"
    ),
    ConnectionCase("host empty", lambda w: {"host": ""}, "host"),
    ConnectionCase("host ftp", lambda w: {"host": "ftp://files.example.com/v1"}, "host"),
]


@pytest.mark.parametrize("case", CONNECTION_CASES, ids=[case.name for case in CONNECTION_CASES])
@pytest.mark.parametrize("client", ["sync hook", "async hook", "operator"])
def test_bad_connection_fails_before_any_request(
    world: World, monkeypatch: pytest.MonkeyPatch, case: ConnectionCase, client: str
) -> None:
    conn_id = connection(monkeypatch, world, **case.fields(world))
    calls: dict[str, Callable[[], Any]] = {
        "sync hook": lambda: DifyHook(conn_id).list_datasets(),
        "async hook": lambda: asyncio.run(_async_read(conn_id, world.a)),
        "operator": lambda: DifyRetrieveOperator(
            task_id="r", dataset_id=world.a, query="q", dify_conn_id=conn_id
        ).execute(context()),
    }
    with pytest.raises(DifyArgumentError) as raised:
        calls[client]()
    assert raised.value.argument == case.argument, str(raised.value)
    assert world.dify.calls == []
    assert_no_key_piece(world.key, str(raised.value), repr(raised.value))


async def _async_read(conn_id: str, dataset_id: str) -> Any:
    async with DifyAsyncHook(conn_id) as async_hook:
        return await async_hook.get_document(dataset_id, UUID)


def test_the_table_holds_at_least_120_bad_inputs() -> None:
    assert len(CASES) + len(CONNECTION_CASES) * 3 >= 120
