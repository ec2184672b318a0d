"""The smaller findings of the demanding-user probe: each refused before the first request, or named plainly."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.exceptions import (
    DifyArgumentError,
    DifyFileRejectedError,
    DifyUnsupportedEndpointError,
    DifyUploadRefusedError,
)
from airflow_provider_dify.hooks.connection import normalize_base_url
from airflow_provider_dify.hooks.dify import DifyHook
from airflow_provider_dify.testing.dag_runner import run_dag, task_state, xcom_value

_numbers = itertools.count()


def test_a_host_that_answers_html_404_pages_is_named(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {**json.loads(dify_emulator.connection_json), "host": dify_emulator.url + "/v1"}
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
    with pytest.raises(DifyUnsupportedEndpointError) as raised:
        DifyHook().list_datasets()
    message = str(raised.value)
    assert f"requests go to {dify_emulator.host}, path /v1/v1 (it holds /v1 twice)" in message
    assert "check the connection's host" in message and "/v1/v1/datasets" in message


@pytest.mark.parametrize("host", ["http://user:pw@dify.local", "https://:secret-pw@dify.local/v1"])
def test_credentials_in_the_host_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="password field") as raised:
        normalize_base_url(host)
    assert "pw" not in str(raised.value).replace("password", "")


def test_the_hook_refuses_names_dify_would_truncate(dify_emulator: Any, tmp_path: Path) -> None:
    dataset_id = dify_emulator.create_dataset("long-names")["id"]
    dify_emulator.reset_counters()
    with pytest.raises(DifyArgumentError, match="has 201 characters; Dify keeps at most 200"):
        DifyHook().create_document_by_text(dataset_id, "n" * 201, "text", process_rule={"mode": "automatic"})
    path = tmp_path / ("f" * 200 + ".txt")
    path.write_text("text")
    with pytest.raises(DifyArgumentError, match="Dify keeps at most 200"):
        DifyHook().create_document_by_file(dataset_id, path, process_rule={"mode": "automatic"})
    assert dify_emulator.count() == 0


@pytest.mark.parametrize("character", ["\u2028", "\u2029", "\x85"])
def test_unicode_line_breaks_are_refused_in_names_and_keys(dify_emulator: Any, character: str) -> None:
    dataset_id = dify_emulator.create_dataset("line-breaks")["id"]
    dify_emulator.reset_counters()
    with pytest.raises(DifyArgumentError, match=r"name: holds the line break .* \(U\+"):
        DifyHook().create_document_by_text(dataset_id, f"a{character}b", "text", process_rule={"mode": "automatic"})
    from airflow_provider_dify.operators._input import check_record
    from airflow_provider_dify.operators.sync._records import RecordRenderer

    with pytest.raises(DifyArgumentError, match=r"records\[0\]\.id: holds the line break"):
        check_record(RecordRenderer(key_field="id"), {"id": f"key{character}1"}, 0)
    assert dify_emulator.count() == 0


def test_a_lone_surrogate_in_a_text_names_the_field(dify_emulator: Any) -> None:
    dataset_id = dify_emulator.create_dataset("surrogates")["id"]
    dify_emulator.reset_counters()
    text = b"caf\xe9".decode("utf-8", errors="surrogateescape")
    with pytest.raises(DifyArgumentError, match=r"^text: holds a lone surrogate"):
        DifyHook().create_document_by_text(dataset_id, "menu.txt", text, process_rule={"mode": "automatic"})
    assert dify_emulator.count() == 0


@pytest.mark.parametrize(
    ("name", "content", "refusal"),
    [("empty.txt", b"", r"is empty \(0 bytes\)"), ("tool.exe", b"MZ", "has the extension 'exe'")],
)
def test_a_file_refused_before_sending_is_a_file_rejected_error(
    dify_emulator: Any, tmp_path: Path, name: str, content: bytes, refusal: str
) -> None:
    dataset_id = dify_emulator.create_dataset("refused-files")["id"]
    dify_emulator.reset_counters()
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DifyFileRejectedError, match=refusal) as raised:
        DifyHook().create_document_by_file(dataset_id, path, process_rule={"mode": "automatic"})
    assert isinstance(raised.value, DifyUploadRefusedError) and isinstance(raised.value, DifyArgumentError)
    assert raised.value.argument == "file"
    assert dify_emulator.count() == 0


@pytest.mark.usefixtures("airflow_db")
def test_a_raising_answer_template_fails_its_record_only(dify_emulator: Any) -> None:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    dataset_id = dify_emulator.create_dataset("answers", doc_form="qa_model")["id"]
    records = [{"id": 1, "q": "Open?", "a": "Yes."}, {"id": 2, "q": "Closed?", "a": None}]
    with DAG(f"answers_{next(_numbers)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        DifySyncChunksOperator(
            task_id="task",
            dataset_id=dataset_id,
            records=records,
            key_field="id",
            text_template="{{ q }}",
            answer_template=lambda record: record["a"].upper(),
            document_name="faq",
            doc_form="qa_model",
            poll_interval=0.05,
        )
    dag_run = run_dag(dag)

    assert task_state(dag_run, "task") == "failed"
    [failure] = xcom_value(dag_run, "task", key="manifest")["failed"]
    assert failure["key"] == "2" and "answer_template failed: AttributeError" in failure["error"]
    [holder] = dify_emulator.documents(dataset_id)
    assert [chunk["answer"] for chunk in dify_emulator.segments(dataset_id, holder["id"])] == ["YES."]
