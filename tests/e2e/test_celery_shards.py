"""
End to end: a document sync split over four mapped shards runs on a real Airflow 3 with the CeleryExecutor and
two Celery workers (Redis as broker and result backend), into one rate-limited emulated knowledge base. The
shards share the workspace's rate window through the same Redis (``rate_limit_storage``), so together they stay
under the limit; the knowledge base ends with every record exactly once.

Each worker reports its own hostname (``hostname_callable``, as two machines would), so the metadata DB shows
which worker ran which shard. Everything started here (Redis, the Airflow processes) is stopped at the end.
Uses the harness of :mod:`tests.e2e.test_real_airflow`.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_backfill_overlap import _env
from tests.e2e.test_real_airflow import AirflowProcesses, _airflow_version, _free_port, _query, _wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(_airflow_version() < (3,), reason="the end-to-end test runs a real Airflow 3"),
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

# A consumer scheduled on the knowledge base registers its asset when the file is parsed, so the shards' first
# asset events (four tasks finishing at once) do not race to create it (docs/assets.md, "Overlapping first events").
with DAG("e2e_dify_celery_consumer", schedule=[knowledge_base_asset({dataset_id!r}, host={host!r})],
         start_date=datetime(2026, 1, 1), catchup=False):
    task(task_id="consume")(lambda: None)()

with DAG({dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    sync = DifySyncDocumentsOperator.partial(
        task_id="sync",
        dataset_id={dataset_id!r},
        records=[{{"id": number, "text": f"record {{number}}"}} for number in range({records})],
        key_field="id",
        text_template="{{{{ text }}}}",
        name_prefix="rec-",
        scope="e2e:celery",
        delete_missing=True,
        indexing_technique="economy",
        retries=0,
    ).expand(shard=shards({shards}))
    task(task_id="summary")(merge_sync_manifests)(sync.output)

    # Mapped operators are built only when they run, so their alias is not in the parsed DAG, and Airflow links an
    # alias to an asset on the first event through it: four shards doing that at once race on SQLite's unique
    # key (asset_alias_asset). One event through the alias before the shards makes the link.
    @task(task_id="link_alias", outlets=[knowledge_base_alias()])
    def link_alias(**context):
        context["outlet_events"][knowledge_base_alias()].add(knowledge_base_asset({dataset_id!r}, host={host!r}))

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


def test_sharded_sync_on_two_celery_workers(tmp_path: Path, redis_url: str, emulator: Any) -> None:
    dataset_id = emulator.create_dataset("e2e-celery")["id"]
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / f"{DAG_ID}.py").write_text(
        DAG_FILE.format(dataset_id=dataset_id, dag_id=DAG_ID, records=RECORDS, shards=SHARDS, host=emulator.url)
    )
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "e2e_worker_hostname.py").write_text(HOSTNAME_MODULE)
    db_path = home / "airflow.db"
    api_port = _free_port()
    env = _env(home, dags, db_path, api_port, emulator)
    connection = {
        **emulator.connection_dict,
        "extra": {
            "requests_per_minute": RATE_LIMIT,
            "rate_limit_window": RATE_WINDOW,
            "rate_limit_storage": f"{redis_url}/1",  # the broker is db 0, Celery's results db 2
        },
    }
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"{redis_url}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis_url}/2",
            "AIRFLOW_CONN_DIFY_DEFAULT": json.dumps(connection),
        }
    )
    processes = AirflowProcesses(home, env)
    try:
        processes.run("db", "migrate")
        processes.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        processes.start("dag-processor", "dag-processor")
        processes.start("scheduler", "scheduler", "--skip-serve-logs")
        for name in WORKERS:
            processes.start(
                name,
                "celery",
                "worker",
                "-H",
                name,
                "-c",
                "2",
                "--skip-serve-logs",
                "--without-gossip",
                "--without-mingle",
                extra_env={
                    "PYTHONPATH": os.pathsep.join(filter(None, (str(modules), env.get("PYTHONPATH")))),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_worker_hostname.hostname",
                    "E2E_WORKER_HOSTNAME": name,
                },
            )

        def api_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        def workers_ready() -> bool:
            return all(" ready." in (home / f"{name}.log").read_text(errors="replace") for name in WORKERS)

        _wait_until(api_healthy, 120, "the api-server", processes)
        _wait_until(workers_ready, 120, "both Celery workers", processes)
        _wait_until(lambda: _query(db_path, "SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID), 120, "the DAG", processes)
        processes.run("dags", "trigger", DAG_ID)

        def run_finished() -> str | None:
            states = [str(state) for (state,) in _query(db_path, "SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)]
            return states[0] if states and states[0] in ("success", "failed") else None

        final = _wait_until(run_finished, 180, "the DAG run to finish", processes)
        assert final == "success", f"the run ended {final}\n{processes.logs()}"
        shard_rows = _query(
            db_path,
            "SELECT map_index, state, hostname FROM task_instance WHERE dag_id = ? AND task_id = 'sync'",
            DAG_ID,
        )
        assert sorted(row[:2] for row in shard_rows) == [(index, "success") for index in range(SHARDS)]
        hostnames = {hostname for _, _, hostname in shard_rows}
        assert hostnames == set(WORKERS), f"the shards ran on {shard_rows}, not on both workers"
        [(summary_value,)] = _query(
            db_path, "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'summary' AND key = 'return_value'", DAG_ID
        )
        summary = json.loads(summary_value if isinstance(summary_value, str) else summary_value.decode())
    finally:
        processes.stop()
    assert sorted(summary["shards"]) == [[index, SHARDS] for index in range(SHARDS)], summary
    assert (summary["counts"]["created"], summary["counts"]["failed"]) == (RECORDS, 0), summary
    stored = emulator.documents(dataset_id)
    names = sorted(doc["name"] for doc in stored)
    assert names == sorted(f"rec-{number}" for number in range(RECORDS))  # every record exactly once
    assert all(doc["text"] == f"record {doc['name'][4:]}" for doc in stored)
    assert emulator.count("DELETE") == 0
    # The shards shared the workspace's window through Redis: (almost) no call was refused.
    writes = emulator.write_count()
    refused = emulator.count(status=403)
    assert writes >= RECORDS
    assert refused <= 0.01 * writes, f"{refused} rate-limit refusals for {writes} writes"
