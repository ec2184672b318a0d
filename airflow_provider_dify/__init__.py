"""Apache Airflow provider for Dify's Knowledge Base API.

Importing this package is cheap: hooks, operators, sensors and triggers live in their own modules and are
imported only where a DAG uses them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
#: The oldest Dify server version the provider supports: the suite runs its main flows against the emulator's
#: ``server_version`` of it (tests/sync/test_oldest_dify_version.py), and real-server transcripts are of 1.13.2.
OLDEST_SUPPORTED_DIFY_VERSION = "1.13"

__all__ = ["OLDEST_SUPPORTED_DIFY_VERSION", "__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point)."""
    from airflow_provider_dify.hooks.connection import CONNECTION_EXTRAS

    integration = "Dify"
    asset_uris = [
        {
            "schemes": ["dify"],
            "handler": "airflow_provider_dify.assets.sanitize_uri",
            "factory": "airflow_provider_dify.assets.create_asset",
            "to_openlineage_converter": "airflow_provider_dify.assets.convert_asset_to_openlineage",
        },
        {
            "schemes": ["dify-knowledge-base"],
            "handler": "airflow_provider_dify.assets.sanitize_named_uri",
            "factory": "airflow_provider_dify.assets.create_named_asset",
            "to_openlineage_converter": "airflow_provider_dify.assets.convert_named_asset_to_openlineage",
        },
    ]
    conn_fields: dict[str, Any] = {}
    for name, description in CONNECTION_EXTRAS.items():
        if name == "verify_ssl":
            schema: dict[str, Any] = {"type": ["boolean", "null"], "default": True}
        elif name in ("timeout", "connect_timeout", "retry_wait_max", "rate_limit_wait", "upload_max_mb"):
            schema = {"type": ["number", "null"]}
        elif name in ("max_retries", "requests_per_minute"):
            schema = {"type": ["integer", "null"]}
        else:
            schema = {"type": ["string", "null"]}
        conn_fields[name] = {"label": name.replace("_", " ").capitalize(), "description": description, "schema": schema}
    return {
        "package-name": "airflow-provider-dify",
        "name": "Dify",
        "description": "Keep Dify knowledge bases in step with your data: hook, operators, sensor and trigger "
        "for Dify's Knowledge Base API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://docs.dify.ai/",
                "tags": ["ai", "service"],
            }
        ],
        "hooks": [
            {
                "integration-name": integration,
                "python-modules": ["airflow_provider_dify.hooks.dify", "airflow_provider_dify.hooks.dify_async"],
            }
        ],
        "operators": [
            {
                "integration-name": integration,
                "python-modules": [
                    "airflow_provider_dify.operators.datasets",
                    "airflow_provider_dify.operators.documents",
                    "airflow_provider_dify.operators.segments",
                    "airflow_provider_dify.operators.retrieval",
                    "airflow_provider_dify.operators.metadata",
                    "airflow_provider_dify.operators.sync",
                    "airflow_provider_dify.operators.pipeline",
                ],
            }
        ],
        "sensors": [{"integration-name": integration, "python-modules": ["airflow_provider_dify.sensors.indexing"]}],
        "triggers": [{"integration-name": integration, "python-modules": ["airflow_provider_dify.triggers.indexing"]}],
        "asset-uris": asset_uris,  # Airflow 3
        "dataset-uris": asset_uris,  # Airflow 2.11
        "extra-links": ["airflow_provider_dify.links.DifyConsoleLink"],
        "connection-types": [
            {
                "connection-type": "dify",
                "hook-class-name": "airflow_provider_dify.hooks.dify.DifyHook",
                "hook-name": "Dify",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "API base URL", "password": "API key"},
                    "placeholders": {"host": "https://api.dify.ai/v1", "password": "dataset-..."},
                },
                "conn-fields": conn_fields,
            }
        ],
    }
