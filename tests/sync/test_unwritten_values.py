"""Values nobody wrote are never stored: None, bytes, NaN and infinity fail their record (or the task, for the
single-document operators) before any request, naming the record, the field and the value's type; a body JSON
cannot encode is a ``DifyArgumentError``, never retried as a network error."""

from __future__ import annotations

import decimal
import itertools
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator
from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.dify_emulator(indexing_seconds=0.02)]
_numbers = itertools.count()


def run_task(operator_class: type, **arguments: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(f"unwritten_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        operator_class(task_id="task", retries=0, **arguments)
    return run_dag(dag)


@pytest.fixture
def dataset_id(dify_emulator: Any) -> str:
    return dify_emulator.create_dataset("unwritten-values")["id"]


def failures_by_key(dag_run: Any) -> dict[str, str]:
    manifest = xcom_value(dag_run, "task", key="manifest")
    return {str(failure["key"]): failure["error"] for failure in manifest["failed"]}


def test_none_and_bytes_are_not_stored_as_text(dify_emulator: Any, dataset_id: str) -> None:
    records = [
        {"id": "null", "q": None},
        {"id": "bytes", "q": b"caf\xc3\xa9 menu"},
        {"id": "nan", "q": float("nan")},
        {"id": "good", "q": "café menu"},
    ]
    dag_run = run_task(
        DifySyncDocumentsOperator,
        dataset_id=dataset_id,
        records=lambda: records,  # a callable: Airflow cannot store a NaN among the rendered fields
        key_field="id",
        text_template="{{ q }}",
        name_prefix="menu-",
    )

    assert task_state(dag_run, "task") == "failed"
    failed = failures_by_key(dag_run)
    assert "record 0: text_template rendered None" in failed["null"]
    assert "record 1: text_template rendered the bytes value" in failed["bytes"]
    assert "rendered the float value nan" in failed["nan"]
    assert [(doc["name"], doc["text"]) for doc in dify_emulator.documents(dataset_id)] == [("menu-good", "café menu")]


def test_a_text_callable_returning_none_fails_its_record(dify_emulator: Any, dataset_id: str) -> None:
    dag_run = run_task(
        DifySyncChunksOperator,
        dataset_id=dataset_id,
        records=[{"id": 1, "t": None}, {"id": 2, "t": "kept"}],
        key_field="id",
        text_template=lambda record: record["t"],
        document_name="callable holder",
        poll_interval=0.05,
    )

    assert task_state(dag_run, "task") == "failed"
    assert "text_template rendered None" in failures_by_key(dag_run)["1"]
    [holder] = dify_emulator.documents(dataset_id)
    assert [chunk["content"] for chunk in dify_emulator.segments(dataset_id, holder["id"])] == ["kept"]


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), decimal.Decimal("NaN"), decimal.Decimal("-Infinity")], ids=repr
)
def test_non_finite_metadata_fails_its_record_before_any_write(dify_emulator: Any, dataset_id: str, value: Any) -> None:
    dify_emulator.reset_counters()
    dag_run = run_task(
        DifySyncDocumentsOperator,
        dataset_id=dataset_id,
        records=lambda: [{"id": "a", "t": "text", "score": value}],  # a callable, as above
        key_field="id",
        text_template="{{ t }}",
        metadata_fields=["score"],
        name_prefix="scored-",
    )

    assert task_state(dag_run, "task") == "failed"
    error = failures_by_key(dag_run)["a"]
    assert f"metadata column 'score' holds the {type(value).__name__} value" in error
    assert dify_emulator.write_count() == 0 and dify_emulator.documents(dataset_id) == []


def test_non_finite_metadata_fails_the_single_document_operator_before_any_request(
    dify_emulator: Any, dataset_id: str
) -> None:
    from airflow_provider_dify.exceptions import DifyArgumentError

    for value in (float("nan"), decimal.Decimal("NaN")):
        with pytest.raises(DifyArgumentError, match=r"^metadata\['score'\]: (metadata )?values (are|must be) strings"):
            DifyCreateDocumentOperator(
                task_id="task", dataset_id=dataset_id, name="scored.txt", text="Scored.", metadata={"score": value}
            )
    assert dify_emulator.count() == 0


def test_an_unencodable_body_is_an_argument_error_and_is_not_sent(dify_emulator: Any, dataset_id: str) -> None:
    from airflow_provider_dify.exceptions import DifyArgumentError
    from airflow_provider_dify.hooks.dify import DifyHook

    document = dify_emulator.create_document(dataset_id, "plain.txt", "Plain.")
    dify_emulator.reset_counters()
    hook = DifyHook()
    operation = {"document_id": document["id"], "metadata_list": [{"id": "f", "name": "score", "value": float("nan")}]}
    with pytest.raises(DifyArgumentError, match=r"metadata_list\[0\]\.value: metadata values are strings, finite"):
        hook.update_documents_metadata(dataset_id, [operation])
    # Any other body: refused where the request is described, naming the place in the body.
    model = {"search_method": "keyword_search", "score_threshold": float("inf"), "top_k": decimal.Decimal(3)}
    with pytest.raises(DifyArgumentError, match=r"^update_dataset body\.retrieval_model\.score_threshold: JSON"):
        hook.update_dataset(dataset_id, retrieval_model=model)
    with pytest.raises(DifyArgumentError, match=r"retrieval_model\.top_k: JSON cannot hold the Decimal value"):
        hook.update_dataset(dataset_id, retrieval_model={**model, "score_threshold": 0.5})
    assert dify_emulator.count() == 0  # refused before sending: not sent, not retried


def test_an_unencodable_multipart_data_field_is_refused_too(dify_emulator: Any, dataset_id: str, tmp_path: Any) -> None:
    from airflow_provider_dify.exceptions import DifyArgumentError
    from airflow_provider_dify.hooks.dify import DifyHook

    path = tmp_path / "notes.txt"
    path.write_text("Notes.")
    dify_emulator.reset_counters()
    rule = {"mode": "custom", "rules": {"segmentation": {"separator": "\n", "max_tokens": float("nan")}}}
    with pytest.raises(DifyArgumentError, match=r"^create_document_by_file body\.process_rule\.rules\.segmentation"):
        DifyHook().create_document_by_file(dataset_id, path, process_rule=rule)
    assert dify_emulator.count() == 0
