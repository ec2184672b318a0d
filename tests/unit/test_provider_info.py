"""The provider as Airflow sees it: provider info, entry point, ProvidersManager and the ``dify`` connection type."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import distribution, entry_points
from pathlib import Path

import airflow
import pytest

import airflow_provider_dify
from airflow_provider_dify import get_provider_info
from airflow_provider_dify.hooks.connection import CONNECTION_EXTRAS
from airflow_provider_dify.hooks.dify import DifyHook, connection_ui_behaviour

INFO = get_provider_info()


def _listed_modules() -> list[str]:
    modules = []
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in INFO.get(section, []):
            modules.extend(entry["python-modules"])
    return sorted(modules)


def _listed_classes() -> list[str]:
    classes = list(INFO.get("extra-links", []))
    classes += [entry["hook-class-name"] for entry in INFO["connection-types"]]
    return sorted(classes)


@pytest.mark.parametrize("module", _listed_modules())
def test_every_listed_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("dotted", _listed_classes())
def test_every_listed_class_imports(dotted: str) -> None:
    module, name = dotted.rsplit(".", 1)
    assert isinstance(getattr(importlib.import_module(module), name), type)


def test_identity_matches_the_distribution() -> None:
    assert INFO["package-name"] == "airflow-provider-dify"
    assert INFO["versions"][0] == airflow_provider_dify.__version__
    assert distribution("airflow-provider-dify").version == airflow_provider_dify.__version__


def test_provider_info_follows_airflows_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(INFO, schema)


def test_connection_type() -> None:
    (connection,) = INFO["connection-types"]
    assert connection["connection-type"] == DifyHook.conn_type == "dify"
    assert connection["hook-class-name"] == f"{DifyHook.__module__}.{DifyHook.__qualname__}"
    assert set(connection["conn-fields"]) == set(CONNECTION_EXTRAS)
    behaviour = connection_ui_behaviour()
    assert connection["ui-field-behaviour"]["hidden-fields"] == behaviour["hidden_fields"]
    assert connection["ui-field-behaviour"]["relabeling"] == behaviour["relabeling"]
    assert DifyHook.default_conn_name == "dify_default"
    assert DifyHook.conn_name_attr == "dify_conn_id"


def test_entry_point_points_at_get_provider_info() -> None:
    (entry,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_dify")
    ]
    assert entry.value == "airflow_provider_dify:get_provider_info"
    assert entry.load()() == INFO


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_providers_manager_sees_the_package_and_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-dify" in manager.providers
    assert manager.providers["airflow-provider-dify"].version == airflow_provider_dify.__version__
    hook_info = manager.hooks.get("dify")
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_dify.hooks.dify.DifyHook"
    assert hook_info.connection_id_attribute_name == "dify_conn_id"


def test_importing_the_package_is_cheap() -> None:
    """DAG parsing imports the package: it must not pull in the HTTP clients."""
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_dify, airflow_provider_dify.exceptions;"
        "print(sorted(m for m in ('httpx', 'requests', 'tenacity') if m in sys.modules and "
        "m not in PRELOADED))"
    )
    preload = "import sys; import airflow.providers.common.compat.sdk; PRELOADED = set(sys.modules);"
    result = subprocess.run([sys.executable, "-c", preload + code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "first_import",
    [
        "from airflow_provider_dify.exceptions import DifyError",
        "from airflow_provider_dify.hooks.retries import RetryPolicy",
    ],
)
def test_any_module_can_be_imported_first(first_import: str) -> None:
    """Airflow loads provider info (which imports the connection settings) while our first import is running."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", first_import], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
