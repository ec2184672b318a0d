"""``airflow dags test`` of the warehouse export DAG: the asset event it records, and its OpenLineage events.

The CLI runs in a subprocess on the suite's metadata DB, against the emulator and a SQLite warehouse, with the
OpenLineage provider's file transport writing every event to a file (when the provider is installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sync.test_asset_events import asset_events

pytestmark = [
    pytest.mark.usefixtures("airflow_db"),
    pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0),
]

DAG_ID = "example_dify_warehouse_export"
KNOWLEDGE_BASE = "test-dags-test-lineage"


def openlineage_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("airflow.providers.openlineage") is not None


def dags_test(tmp_path: Path, **conf: Any) -> tuple[str, Path]:
    """Run ``airflow dags test`` of the export DAG; return its output and the OpenLineage event file."""
    events = tmp_path / "openlineage.jsonl"
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "test-dify",
            "DIFY_EXAMPLE_KNOWLEDGE_BASE": KNOWLEDGE_BASE,  # the DAG file names its knowledge base
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]),
        }
    )
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    airflow = str(Path(sys.executable).parent / "airflow")
    commands = [[airflow, "dags", "test", DAG_ID, "-c", json.dumps(conf)]]
    if not AIRFLOW_V_3_0_PLUS:  # 2.11's `dags test` does not write the DAG (and its datasets) to the DB
        commands.insert(0, [airflow, "dags", "reserialize"])
    output = ""
    for command in commands:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        output += result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
    return output, events


def run_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_dags_test_records_the_knowledge_base_asset_event_and_lineage(
    dify_emulator: Any, warehouse: Path, tmp_path: Path
) -> None:
    from airflow_provider_dify.assets import knowledge_base_named_uri

    output, lineage_file = dags_test(tmp_path, smoke_query="grinder")
    dataset_id = dify_emulator.find_dataset(KNOWLEDGE_BASE)["id"]
    events = {task: extra for task, extra in asset_events(knowledge_base_named_uri("dify_default", KNOWLEDGE_BASE))}
    assert events["sync_products"]["created"] == 240, output[-3000:]
    assert events["sync_faq"]["created"] == 40 and events["sync_faq"]["granularity"] == "chunks"

    if not openlineage_installed():
        pytest.skip("apache-airflow-providers-openlineage is not installed: the asset event is checked, lineage not")
    complete = {
        event["job"]["name"].rsplit(".", 1)[-1]: event
        for event in run_events(lineage_file)
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].startswith(f"{DAG_ID}.")
    }
    assert {"sync_products", "sync_faq", "knowledge_base"} <= set(complete), sorted(complete)
    namespace = f"dify://{dify_emulator.url.split('//', 1)[1].split('/', 1)[0]}"
    for task, table in (("sync_products", "products"), ("sync_faq", "faq")):
        event = complete[task]
        assert [(item["namespace"], item["name"]) for item in event["inputs"]] == [
            (f"sqlite://{warehouse.resolve()}", table)
        ]
        [output_dataset] = event["outputs"]
        assert (output_dataset["namespace"], output_dataset["name"]) == (namespace, f"datasets/{dataset_id}")
        facet = output_dataset["facets"]["difyKnowledgeBaseWrite"]
        assert facet["datasetName"] == KNOWLEDGE_BASE
    assert complete["sync_products"]["outputs"][0]["facets"]["difyKnowledgeBaseWrite"]["createdCount"] == 240
    assert complete["sync_faq"]["outputs"][0]["facets"]["difyKnowledgeBaseWrite"]["granularity"] == "chunks"
