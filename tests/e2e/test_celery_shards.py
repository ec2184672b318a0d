"""
End to end: a document sync split over four mapped shards runs on a real Airflow 3 with the CeleryExecutor and
two Celery workers (Redis as broker and result backend), into one rate-limited emulated knowledge base. The
shards keep together to the workspace's rate limit, and the knowledge base ends with every record exactly once.
Three ways: through one window in the same Redis (``rate_limit_storage``), by default (no
``rate_limit_storage``), where the task processes of the two workers, which run on this one machine, share the
machine's window file, and with each process on its own (``"process"``: what workers on separate machines do
without a store), where each shard keeps to its part of the limit.

Each worker reports its own hostname (``hostname_callable``, as two machines would), so the metadata DB shows
which worker ran which shard. Everything started here (Redis, the Airflow processes) is stopped at the end.
Uses the harness of :mod:`tests.e2e.harness`.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    AirflowDeployment,
    alias_link_task,
    assert_every_record_once,
    asset_consumer_dag,
    numbered_records_sync_arguments,
    requires_airflow_3,
)

pytestmark = [
    pytest.mark.e2e,
    requires_airflow_3,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (`make redis-server`)"),
]

DAG_ID = "e2e_dify_celery_shards"
RECORDS = 120
SHARDS = 4
WORKERS = ("worker-a", "worker-b")
#: The emulated workspace's knowledge rate limit: requests per sliding window of RATE_WINDOW seconds.
RATE_LIMIT = 60
RATE_WINDOW = 4.0

DAG_FILE = '''
"""One export split over {shards} shards, summed up by one task."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dify.assets import knowledge_base_alias, knowledge_base_asset
from airflow_provider_dify.operators.shards import merge_sync_manifests, shards
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

{consumer_dag}
SYNC_ARGUMENTS = {sync_arguments}

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    sync = DifySyncDocumentsOperator.partial(task_id="sync", **SYNC_ARGUMENTS).expand(shard=shards({shards}))
    task(task_id="summary")(merge_sync_manifests)(sync.output)

    # Mapped operators are built only when they run, so their alias is not in the parsed DAG, and Airflow links an
    # alias to an asset on the first event through it: four shards doing that at once race on SQLite's unique
    # key (asset_alias_asset). One event through the alias before the shards makes the link.
{link_alias}
    link_alias() >> sync
'''

HOSTNAME_MODULE = '''
"""The hostname a worker reports for its tasks: its own name, as two machines would."""

import os


def hostname() -> str:
    return os.environ["E2E_WORKER_HOSTNAME"]
'''


@pytest.fixture
def redis_url() -> Iterator[str]:
    from tests.services import redis_server

    with redis_server() as url:
        yield url.removesuffix("/0")


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    with DifyEmulator(
        indexing_seconds=0.05,
        queue_pickup_seconds=0.0,
        rate_limit_per_minute=RATE_LIMIT,
        rate_limit_window_seconds=RATE_WINDOW,
    ) as dify:
        yield dify


@pytest.mark.parametrize("window", ["redis", "machine (default)", "process"])
def test_sharded_sync_on_two_celery_workers(tmp_path: Path, redis_url: str, emulator: Any, window: str) -> None:
    dataset_id = emulator.create_dataset("e2e-celery")["id"]
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "e2e_worker_hostname.py").write_text(HOSTNAME_MODULE)
    extra: dict[str, Any] = {"requests_per_minute": RATE_LIMIT, "rate_limit_window": RATE_WINDOW}
    if window == "redis":
        extra["rate_limit_storage"] = f"{redis_url}/1"  # the broker is db 0, Celery's results db 2
    elif window == "process":
        extra["rate_limit_storage"] = "process"
    connection = {**emulator.connection_dict, "extra": extra}
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"{redis_url}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis_url}/2",
        "AIRFLOW_CONN_DIFY_DEFAULT": json.dumps(connection),
    }
    with AirflowDeployment(tmp_path, parallelism=4, env=env) as deployment:
        deployment.write_dag(
            f"{DAG_ID}.py",
            DAG_FILE.format(
                dag_id=DAG_ID,
                shards=SHARDS,
                link_alias=textwrap.indent(alias_link_task(dataset_id, emulator.url), "    "),
                consumer_dag=asset_consumer_dag("e2e_dify_celery_consumer", dataset_id, emulator.url),
                sync_arguments=numbered_records_sync_arguments(dataset_id, RECORDS, "e2e:celery"),
            ),
        )
        deployment.cli("db", "migrate")
        deployment.start("api-server", "dag-processor", "scheduler")
        for name in WORKERS:
            deployment.start_celery_worker(
                name,
                env={
                    "PYTHONPATH": os.pathsep.join(filter(None, (str(modules), deployment.env.get("PYTHONPATH")))),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_worker_hostname.hostname",
                    "E2E_WORKER_HOSTNAME": name,
                },
            )
        deployment.wait_for_api_server()
        deployment.wait_for_celery_workers(WORKERS)
        deployment.wait_for_dag(DAG_ID)
        deployment.cli("dags", "trigger", DAG_ID)

        final = deployment.wait_until(lambda: deployment.finished_run_state(DAG_ID), 180, "the DAG run to finish")
        assert final == "success", f"the run ended {final}\n{deployment.logs()}"
        shard_rows = deployment.query(
            "SELECT map_index, state, hostname FROM task_instance WHERE dag_id = ? AND task_id = 'sync'", DAG_ID
        )
        assert sorted(row[:2] for row in shard_rows) == [(index, "success") for index in range(SHARDS)]
        hostnames = {hostname for _, _, hostname in shard_rows}
        assert hostnames == set(WORKERS), f"the shards ran on {shard_rows}, not on both workers"
        summary = deployment.return_value(DAG_ID, "summary")
    assert sorted(summary["shards"]) == [[index, SHARDS] for index in range(SHARDS)], summary
    assert (summary["counts"]["created"], summary["counts"]["failed"]) == (RECORDS, 0), summary
    assert_every_record_once(emulator, dataset_id, RECORDS)
    # The shards kept together to the workspace's limit: (almost) no call was refused.
    writes = emulator.write_count()
    refused = emulator.count(status=403)
    assert writes >= RECORDS
    assert refused <= 0.01 * writes, f"{refused} rate-limit refusals for {writes} writes"
