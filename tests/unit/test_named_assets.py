"""A knowledge base named in the DAG file: its ``dify-knowledge-base://<connection id>/<name>`` asset, and the
outlet the writing operators declare for it when the file is parsed (docs/assets.md)."""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_dify.assets import (
    convert_named_asset_to_openlineage,
    create_named_asset,
    knowledge_base_named,
    knowledge_base_named_uri,
    sanitize_named_uri,
    split_named_uri,
)


@pytest.mark.parametrize(
    ("conn_id", "name", "uri"),
    [
        ("dify_default", "support-faq", "dify-knowledge-base://dify_default/support-faq"),
        ("dify.prod-eu", "Support FAQ", "dify-knowledge-base://dify.prod-eu/Support%20FAQ"),
        ("dify_default", "a/b?c#d%e", "dify-knowledge-base://dify_default/a%2Fb%3Fc%23d%25e"),
        ("dify_default", "Café 知识库", "dify-knowledge-base://dify_default/Caf%C3%A9%20%E7%9F%A5%E8%AF%86%E5%BA%93"),
    ],
)
def test_the_named_uri_keeps_the_connection_and_the_exact_name(conn_id: str, name: str, uri: str) -> None:
    assert knowledge_base_named_uri(conn_id, name) == uri
    assert split_named_uri(uri) == (conn_id, name)
    assert knowledge_base_named(name, conn_id).uri == uri


def test_the_handler_normalises_one_spelling_and_refuses_other_forms() -> None:
    assert sanitize_named_uri(urlsplit("dify-knowledge-base://dify_default/Support FAQ?x=1#f")).geturl() == (
        "dify-knowledge-base://dify_default/Support%20FAQ"
    )
    for uri, field in (
        ("dify-knowledge-base://dify_default/", "dify-knowledge-base://<connection id>/<knowledge base name>"),
        ("dify-knowledge-base://dify_default/a/b", "percent-encoded"),
        ("dify-knowledge-base:///faq", "<connection id>"),
        ("dify-knowledge-base://user@dify_default/faq", "dify_conn_id"),
    ):
        with pytest.raises(ValueError, match=field):
            sanitize_named_uri(urlsplit(uri))
    with pytest.raises(ValueError, match="dataset_name"):
        knowledge_base_named("  ")


def test_airflow_finds_the_handler_factory_and_converter_in_the_provider_info() -> None:
    from airflow.providers.common.compat.sdk import Asset
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.providers_manager import ProvidersManager

    assert Asset("dify-knowledge-base://dify_default/Support FAQ").uri == "dify-knowledge-base://dify_default/Support%20FAQ"
    manager, kind = ProvidersManager(), "asset" if AIRFLOW_V_3_0_PLUS else "dataset"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert getattr(manager, f"{kind}_uri_handlers")["dify-knowledge-base"] is sanitize_named_uri
        assert getattr(manager, f"{kind}_factories")["dify-knowledge-base"] is create_named_asset
        converter = getattr(manager, f"{kind}_to_openlineage_converters")["dify-knowledge-base"]
    dataset = converter(knowledge_base_named("Support FAQ", "dify_prod"), None)
    assert converter is convert_named_asset_to_openlineage
    assert (dataset.namespace, dataset.name) == ("dify-knowledge-base://dify_prod", "Support FAQ")


def _uris(outlets: Any) -> list[str]:
    return [getattr(outlet, "uri", None) or f"alias:{outlet.name}" for outlet in outlets or []]


def _dag() -> Any:
    from airflow.providers.common.compat.sdk import DAG

    start = datetime(2026, 1, 1)
    return DAG("named_outlets", schedule=None, start_date=start, default_args={"dify_conn_id": "dify_eu"})


NAMED = "dify-knowledge-base://dify_eu/support-faq"


def test_an_operator_given_a_literal_name_declares_its_named_asset_when_the_file_is_parsed() -> None:
    from airflow_provider_dify.assets import knowledge_base_asset
    from airflow_provider_dify.operators.datasets import DifyCreateDatasetOperator, DifyDeleteDatasetOperator
    from airflow_provider_dify.operators.documents import DifyCreateDocumentOperator
    from airflow_provider_dify.operators.pipeline import DifyRunPipelineOperator
    from airflow_provider_dify.operators.segments import DifyAddSegmentsOperator
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator

    declared_id = knowledge_base_asset("5f0e1c2a-9d1b-4c3e-8f4a-1b2c3d4e5f60", host="api.dify.ai")
    sync = {"records": [{"id": 1}], "key_field": "id", "text_template": "{{ id }}"}
    with _dag():
        operators = {
            "create kb": DifyCreateDatasetOperator(task_id="kb", name="support-faq"),
            "delete kb": DifyDeleteDatasetOperator(task_id="drop", dataset_name="support-faq"),
            "document": DifyCreateDocumentOperator(task_id="doc", dataset_name="support-faq", name="n", text="t"),
            "chunks": DifyAddSegmentsOperator(
                task_id="add", dataset_name="support-faq", document_name="n", segments=[{"content": "c"}]
            ),
            "sync": DifySyncDocumentsOperator(task_id="sync", dataset_name="support-faq", **sync),
            "pipeline": DifyRunPipelineOperator(task_id="run", dataset_name="support-faq", files=["/data/a.pdf"]),
            "templated": DifySyncDocumentsOperator(task_id="t1", dataset_name="{{ params.kb }}", **sync),
            "by id": DifySyncDocumentsOperator(task_id="t2", dataset_id="{{ ti.xcom_pull('kb') }}", **sync),
            "declared": DifySyncChunksOperator(
                task_id="t3", dataset_name="support-faq", document_name="d", outlets=[declared_id], **sync
            ),
            "alias given": DifySyncDocumentsOperator(
                task_id="t4", dataset_name="support-faq", asset_alias="dify:everything", **sync
            ),
        }
    got = {label: _uris(operator.outlets) for label, operator in operators.items()}
    for label in ("create kb", "delete kb", "document", "chunks", "sync", "pipeline"):
        assert got[label] == [NAMED, "alias:dify:dify_eu"], label
    assert got["templated"] == got["by id"] == ["alias:dify:dify_eu"]
    assert got["declared"] == [declared_id.uri, "alias:dify:dify_eu"]
    assert got["alias given"] == ["alias:dify:everything"]


def test_a_mapped_operator_declares_it_from_partial_and_not_again_when_unmapped() -> None:
    from airflow_provider_dify.operators.shards import shards
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    sync = {"records": [{"id": 1}], "key_field": "id", "text_template": "{{ id }}"}
    with _dag() as dag:
        literal = DifySyncDocumentsOperator.partial(task_id="literal", dataset_name="support-faq", **sync).expand(
            shard=shards(2)
        )
        expanded = DifySyncDocumentsOperator.partial(task_id="expanded", **sync).expand(
            dataset_name=["support-faq", "other"]
        )
    assert _uris(literal.partial_kwargs["outlets"]) == [NAMED]
    assert _uris(expanded.partial_kwargs.get("outlets")) == []
    assert _uris(literal.outlets) == [NAMED] and _uris(expanded.outlets) == []
    with dag:  # a worker unmaps a mapped task with the partial's outlets: the asset is not declared twice
        unmapped = DifySyncDocumentsOperator(
            task_id="unmapped",
            dataset_name="support-faq",
            outlets=list(literal.partial_kwargs["outlets"]),
            _airflow_from_mapped=True,
            **sync,
        )
    assert _uris(unmapped.outlets) == [NAMED, "alias:dify:dify_eu"]
