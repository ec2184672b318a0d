"""Record values are data: a literal list of records is stored as written, never rendered as Jinja, and a
template that pulls the records from XCom is read back as the list it stands for. Both sync operators, in
real DAG runs (``dag.test()``), with a sweep of XCom, rendered fields and the stored texts for the key."""

from __future__ import annotations

import itertools
import logging
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state
from tests.operators.helpers import all_xcom_text, rendered_fields_text
from tests.unit.helpers import assert_no_key_piece

pytestmark = pytest.mark.usefixtures("airflow_db")
_numbers = itertools.count()

#: Values that Airflow's rendering would turn into the API key, 49, a loop's output or an error.
HOSTILE_VALUES = {
    "key": "{{ conn.dify_default.password }}",
    "math": "{{ 7 * 7 }}",
    "loop": "{% for x in range(3) %}{{ x }}{% endfor %}",
    "undefined": "{{ user_name }} and {{ var.value.missing }}",
    "raw": "{% raw %}{{ kept }}{% endraw %}",
}


def _records() -> list[dict[str, Any]]:
    return [{"id": name, "body": f"Record {name}: {value}"} for name, value in HOSTILE_VALUES.items()]


def _dag(dataset_id: str, *, from_xcom: bool) -> Any:
    from airflow.providers.common.compat.sdk import DAG, task

    records: Any = "{{ ti.xcom_pull(task_ids='extract') }}" if from_xcom else _records()
    dag_id = f"record_values_{next(_numbers)}"
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

        @task(task_id="extract")
        def extract() -> list[dict[str, Any]]:
            return _records()

        documents = DifySyncDocumentsOperator(
            task_id="documents",
            dataset_id=dataset_id,
            records=records,
            key_field="id",
            text_template="{{ body }}",
            name_prefix="doc-",
            scope="record-values",
        )
        chunks = DifySyncChunksOperator(
            task_id="chunks",
            dataset_id=dataset_id,
            records=records,
            key_field="id",
            text_template="{{ body }}",
            document_name="chunks: record values",
        )
        extract() >> [documents, chunks]
    return dag


@pytest.mark.dify_emulator(indexing_seconds=0.001, queue_pickup_seconds=0)
@pytest.mark.parametrize("from_xcom", [False, True], ids=["literal list", "xcom pull template"])
def test_record_values_are_stored_verbatim(
    dify_emulator: Any, from_xcom: bool, caplog: pytest.LogCaptureFixture
) -> None:
    dataset_id = dify_emulator.create_dataset("record-values")["id"]
    with caplog.at_level(logging.DEBUG):
        dag_run = run_dag(_dag(dataset_id, from_xcom=from_xcom))
    assert task_state(dag_run, "documents") == "success"
    assert task_state(dag_run, "chunks") == "success"

    expected = {f"Record {name}: {value}" for name, value in HOSTILE_VALUES.items()}
    documents = {doc["name"]: doc for doc in dify_emulator.documents(dataset_id)}
    texts = {doc["text"] for name, doc in documents.items() if name.startswith("doc-")}
    assert texts == expected  # as written: no key, no 49, no loop output, no error
    [chunk_document] = [doc for name, doc in documents.items() if name == "chunks: record values"]
    contents = [segment["content"] for segment in dify_emulator.segments(dataset_id, chunk_document["id"])]
    for text in expected:
        assert sum(text in content for content in contents) == 1, (text, contents)

    stored = [doc["text"] for doc in documents.values()] + contents
    rendered = rendered_fields_text(dag_run)
    if not from_xcom:
        assert "Record math: {{ 7 * 7 }}" in rendered  # the rendered field shows the records as written
    database = metadata_db_text(dag_run.dag_id)
    assert "record-values" in database  # the sweep reads the run's rows
    assert_no_key_piece(dify_emulator.api_key, rendered, all_xcom_text(dag_run), database, caplog.text, *stored)


def metadata_db_text(dag_id: str) -> str:
    """Every row of every metadata database table that has a ``dag_id`` column, for one DAG, as text."""
    from airflow.utils.session import create_session
    from sqlalchemy import inspect, text

    parts = []
    with create_session() as session:
        inspector = inspect(session.get_bind())
        for table in inspector.get_table_names():
            if "dag_id" in {column["name"] for column in inspector.get_columns(table)}:
                rows = session.execute(text(f'SELECT * FROM "{table}" WHERE dag_id = :dag_id'), {"dag_id": dag_id})
                parts += [f"{table}: {tuple(row)!r}" for row in rows]
    return "\n".join(parts)
