"""
End to end: a real Airflow 3 (api-server, scheduler with LocalExecutor, dag-processor, triggerer) on SQLite runs a
DAG whose deferrable DifyIndexingSensor waits in the triggerer for a document that the DAG's first task created in
the Dify emulator.

Every process binds to 127.0.0.1 (the api-server on a free port; the scheduler and triggerer serve no logs), uses a
fresh AIRFLOW_HOME under ``tmp_path`` and gets the Dify connection through ``AIRFLOW_CONN_DIFY_DEFAULT``. All of
them are stopped (process group by process group) when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_dify_indexing"
RUN_TIMEOUT = 240.0
STATUS_ROUTE = "/datasets/{dataset_id}/documents/{batch}/indexing-status"

DAG_FILE = '''
"""Create a document in Dify, then wait for its indexing in the triggerer."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dify.sensors.indexing import DifyIndexingSensor

DATASET_ID = {dataset_id!r}

with DAG({dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False):

    @task(task_id="create")
    def create() -> dict:
        from airflow_provider_dify.hooks.dify import DifyHook

        answer = DifyHook().create_document_by_text(
            DATASET_ID,
            "e2e.txt",
            "A paragraph written by the end-to-end test.\\n\\nAnother paragraph to index.",
            indexing_technique="economy",
            process_rule={{"mode": "automatic"}},
        )
        return {{"batch": answer["batch"], "document_ids": [answer["document"]["id"]]}}

    wait = DifyIndexingSensor(
        task_id="wait",
        dataset_id=DATASET_ID,
        batch="{{{{ ti.xcom_pull(task_ids='create')['batch'] }}}}",
        document_ids="{{{{ ti.xcom_pull(task_ids='create')['document_ids'] | tojson }}}}",
        deferrable=True,
        poke_interval=1,
        timeout=180,
        stall_timeout=120,
    )
    create() >> wait
'''


def _airflow_version() -> tuple[int, ...]:
    from airflow import __version__
    from packaging.version import Version

    return Version(__version__).release


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowProcesses:
    """The Airflow processes of one test, each in its own process group, with their output in log files."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.airflow = str(Path(sys.executable).parent / "airflow")
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def run(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [self.airflow, *args], env=self.env, capture_output=True, timeout=timeout, cwd=self.home, check=False
        )
        output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{output[-4000:]}"
        return output

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        log_path = self.home / f"{name}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [self.airflow, *args],
                env={**self.env, **(extra_env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        self.started.append((name, process, log_path))

    def check_alive(self) -> None:
        for name, process, _ in self.started:
            assert process.poll() is None, f"airflow {name} exited with {process.returncode}:\n{self.logs()}"

    def stop(self) -> None:
        for _, process, _ in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process, _ in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Children of the group (task supervisors, uvicorn workers) may outlive the leader.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def logs(self, tail: int = 3000) -> str:
        parts = []
        for name, _, path in self.started:
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"----- {name} -----\n{text[-tail:]}")
        return "\n".join(parts)


def _wait_until(condition: Callable[[], Any], timeout: float, what: str, processes: AirflowProcesses) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{processes.logs()}")


def _query(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the file or table does not exist yet, or a writer holds the lock
        return []


@pytest.fixture
def emulator() -> Iterator[Any]:
    from airflow_provider_dify.testing import DifyEmulator

    with DifyEmulator(indexing_seconds=6.0) as dify:
        yield dify


@pytest.mark.skipif(_airflow_version() < (3,), reason="the end-to-end test runs a real Airflow 3")
def test_deferrable_sensor_waits_in_a_real_triggerer(tmp_path: Path, emulator: Any) -> None:
    dataset_id = emulator.create_dataset("e2e")["id"]
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE.format(dataset_id=dataset_id, dag_id=DAG_ID))
    db_path = home / "airflow.db"
    api_port = _free_port()

    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db_path}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"airflow_provider_dify\..*",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json,
        }
    )
    processes = AirflowProcesses(home, env)
    try:
        processes.run("db", "migrate")
        processes.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        processes.start("dag-processor", "dag-processor")
        processes.start("scheduler", "scheduler", "--skip-serve-logs")
        processes.start("triggerer", "triggerer", "--skip-serve-logs")

        def api_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        _wait_until(api_healthy, 120, "the api-server", processes)
        _wait_until(lambda: _query(db_path, "SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID), 120, "the DAG", processes)
        processes.run("dags", "trigger", DAG_ID)

        seen_states: set[str] = set()

        def run_finished() -> str | None:
            for (state,) in _query(
                db_path, "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = 'wait'", DAG_ID
            ):
                seen_states.add(str(state))
            rows = _query(db_path, "SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)
            states = [str(state) for (state,) in rows]
            return states[0] if states and states[0] in ("success", "failed") else None

        final = _wait_until(run_finished, RUN_TIMEOUT, "the DAG run to finish", processes)
        assert final == "success", f"the run ended {final}\n{processes.logs()}"
        assert "deferred" in seen_states, f"the sensor was never seen deferred: {seen_states}\n{processes.logs()}"

        [(wait_state, try_number)] = _query(
            db_path, "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND task_id = 'wait'", DAG_ID
        )
        assert (wait_state, try_number) == ("success", 1)  # deferring and resuming is one try
        [(results,)] = _query(
            db_path, "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'wait' AND key = 'return_value'", DAG_ID
        )
        [document] = json.loads(results) if isinstance(results, str) else json.loads(results.decode())
        stored = emulator.documents(dataset_id)
        assert [doc["id"] for doc in stored] == [document["id"]]
        assert document["indexing_status"] == "completed" == stored[0]["indexing_status"]
        assert document["completed_segments"] == document["total_segments"] > 0
        # The sensor checked once, then the triggerer polled until the document completed.
        assert emulator.count("GET", STATUS_ROUTE) >= 3
        assert emulator.write_count() == 1  # the create task; waiting only reads
    finally:
        processes.stop()
