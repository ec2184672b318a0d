"""The ``dify://`` asset URI: normalisation, Airflow's registration of the scheme, the factory and converters.

Runs on Airflow 3 (assets) and 2.11 (datasets) alike.
"""

from __future__ import annotations

import warnings
from urllib.parse import urlsplit, urlunsplit

import pytest

from airflow_provider_dify.assets import (
    convert_asset_to_openlineage,
    create_asset,
    knowledge_base_alias,
    knowledge_base_asset,
    knowledge_base_uri,
    sanitize_uri,
)
from airflow_provider_dify.operators._lineage import event_extra, written_counts, written_granularity

ID = "5f0e1c2a-9d1b-4c3e-8f4a-1b2c3d4e5f60"
URI = f"dify://api.dify.ai/datasets/{ID}"


def normalise(uri: str) -> str:
    return urlunsplit(sanitize_uri(urlsplit(uri)))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (URI, URI),
        (f"dify://API.Dify.AI/datasets/{ID.upper()}", URI),
        (f"dify://api.dify.ai:443/datasets/{ID}/", URI),
        (f"dify://api.dify.ai:80/datasets/{ID.replace('-', '')}", URI),
        (f"dify://user@api.dify.ai/datasets/{ID}?b=1&a=2#top", URI),
        (f"dify://127.0.0.1:5001/datasets/{ID}", f"dify://127.0.0.1:5001/datasets/{ID}"),
        (f"dify://[::1]:5001/datasets/{ID}", f"dify://[::1]:5001/datasets/{ID}"),
    ],
)
def test_uris_are_normalised(given: str, expected: str) -> None:
    assert normalise(given) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"dify:///datasets/{ID}", "names the Dify API host"),
        (f"dify://api.dify.ai/datasets/{ID}/documents/{ID}", "documents and chunks are not assets"),
        ("dify://api.dify.ai/datasets", "dify://<host>/datasets/<dataset id>"),
        (f"dify://api.dify.ai/apps/{ID}", "dify://<host>/datasets/<dataset id>"),
        ("dify://api.dify.ai/datasets/not-an-id", "is not a Dify knowledge base id"),
        (f"dify://api.dify.ai:port/datasets/{ID}", "invalid port"),
    ],
)
def test_other_uris_are_refused_with_the_form_to_use(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalise(uri)


@pytest.mark.parametrize(
    "host", ["https://api.dify.ai/v1", "https://API.dify.ai:443/v1/", "api.dify.ai", "http://api.dify.ai:80"]
)
def test_the_uri_keeps_only_the_api_host(host: str) -> None:
    assert knowledge_base_uri(host, ID.upper()) == URI


def test_airflow_normalises_dify_uris_through_the_registered_handler() -> None:
    """Asset (Dataset on 2.11) construction finds the handler through the provider info."""
    from airflow.providers.common.compat.sdk import Asset

    assert Asset(f"dify://API.dify.ai:443/datasets/{ID.upper()}/").uri == URI


def test_airflow_refuses_document_uris() -> None:
    """Airflow 3 refuses a URI the handler refuses; 2.11 warns (and keeps it) unless strict validation is on."""
    from airflow.providers.common.compat.sdk import Asset
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    uri = f"dify://api.dify.ai/datasets/{ID}/documents/{ID}"
    if AIRFLOW_V_3_0_PLUS:
        with pytest.raises(ValueError, match="documents and chunks are not assets"):
            Asset(uri)
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Asset(uri)
        assert any("documents and chunks are not assets" in str(warning.message) for warning in caught)


def test_the_providers_manager_registers_handler_factory_and_converter() -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    kind = "asset" if AIRFLOW_V_3_0_PLUS else "dataset"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert getattr(manager, f"{kind}_uri_handlers")["dify"] is sanitize_uri
        assert getattr(manager, f"{kind}_factories")["dify"] is create_asset
        assert getattr(manager, f"{kind}_to_openlineage_converters")["dify"] is convert_asset_to_openlineage


def test_factory_helper_and_openlineage_converter() -> None:
    asset = create_asset(host="https://api.dify.ai/v1", dataset_id=ID)
    assert asset.uri == URI
    assert knowledge_base_asset(ID, host="api.dify.ai") == asset
    dataset = convert_asset_to_openlineage(asset, None)
    assert (dataset.namespace, dataset.name) == ("dify://api.dify.ai", f"datasets/{ID}")
    assert knowledge_base_alias("dify_prod").name == "dify:dify_prod"
    with pytest.raises(ValueError, match="exactly one"):
        knowledge_base_asset(ID, dataset_name="faq", host="api.dify.ai")


def test_the_asset_helper_reads_the_host_from_the_connection_and_resolves_names(dify_emulator) -> None:
    dataset_id = dify_emulator.create_dataset("test-assets-helper")["id"]
    host = urlsplit(dify_emulator.url).netloc
    expected = f"dify://{host}/datasets/{dataset_id}"
    assert knowledge_base_asset(dataset_id).uri == expected
    assert knowledge_base_asset(dataset_name="test-assets-helper").uri == expected
    with pytest.raises(ValueError, match="no knowledge base is named"):
        knowledge_base_asset(dataset_name="no-such-kb")


@pytest.mark.parametrize(
    ("manifest", "granularity", "counts"),
    [
        (
            {"granularity": "documents", "counts": {"created": 2, "updated": 1, "unchanged": 5, "deleted": 3}},
            "documents",
            (2, 1, 3, 5),
        ),
        (
            {"granularity": "chunks", "counts": {"added": 4, "updated": 0, "unchanged": 1, "deleted": 0}},
            "chunks",
            (4, 0, 0, 1),
        ),
        ({"action": "added", "added": 3, "already_present": 2, "document_id": "d"}, "chunks", (3, 0, 0, 2)),
        ({"action": "metadata_updated", "document_id": "d"}, "document", (0, 1, 0, 0)),
        ({"action": "skipped", "document_id": "d"}, "document", (0, 0, 0, 1)),
        ({"action": "reused"}, "knowledge_base", (0, 0, 0, 1)),
        ({"action": "deleted"}, "knowledge_base", (0, 0, 1, 0)),
    ],
)
def test_what_a_manifest_counts_as(manifest: dict, granularity: str, counts: tuple[int, ...]) -> None:
    assert written_granularity(manifest) == granularity
    found = written_counts(manifest)
    assert (found["created"], found["updated"], found["deleted"], found["unchanged"]) == counts


def test_event_extra_is_flat_and_keeps_at_most_100_batches() -> None:
    manifest = {"dataset_id": ID, "dataset_name": "faq", "scope": "s", "batches": [str(n) for n in range(150)]}
    extra = event_extra(manifest, "documents", written_counts({"counts": {"created": 150}}))
    assert all(not isinstance(value, (dict, list, set)) for value in extra.values())  # 2.11 hashes them
    assert len(extra["batches"]) == 100 and extra["batches_total"] == 150
    assert (extra["created"], extra["scope"], extra["dataset_name"]) == (150, "s", "faq")
