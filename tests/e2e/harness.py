"""
The end-to-end harness: a real Airflow deployment for one test, and the DAG-file pieces the tests share.

:class:`AirflowDeployment` gives a test a fresh ``AIRFLOW_HOME`` (DAGs folder and SQLite metadata DB) under its
``tmp_path``, runs the ``airflow`` CLI and starts Airflow's components (api-server, dag-processor, scheduler,
triggerer, Celery workers), each in its own process group with its output in a log file. Every process binds to
127.0.0.1: the api-server on a free port, the scheduler and triggerer serve no logs, and the log-server ports that
are configured anyway are free ones too. Leaving the ``with`` block stops everything it started, process group by
process group. The test reads the results from the metadata DB, read-only, with :meth:`AirflowDeployment.query`.

Importing this module is cheap and works on Airflow 2 too, so the e2e files are collected (and deselected or
skipped) there. On Airflow 2.11 the CLI side works as well (:meth:`AirflowDeployment.cli`, ``query``,
``backfill`` with ``airflow dags backfill``, ``task_intervals``), with the SequentialExecutor: Airflow 2 refuses
any other executor on SQLite. Starting Airflow 3's components needs Airflow 3.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.services import free_port

#: Marks a test that needs a real Airflow 3 (the harness starts Airflow 3's components).
requires_airflow_3 = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the end-to-end test runs a real Airflow 3")

#: Runs of a CLI command that SQLite refused with "database is locked" before the test fails.
SQLITE_LOCKED_ATTEMPTS = 3
#: The states in which a DAG run or task instance is done.
FINISHED_STATES = ("success", "failed")


class AirflowDeployment:
    """
    One test's Airflow on SQLite: Airflow 3 with the LocalExecutor unless ``env`` says otherwise, Airflow 2.11
    with the SequentialExecutor (its only executor on SQLite; the CLI only, no components).

    Use it as a context manager: leaving the block stops every process it started (:meth:`stop`).

    :param root: The folder to build the deployment in (the test's ``tmp_path``); ``AIRFLOW_HOME`` is
        ``root / "airflow"``, its DAGs folder ``dags/`` and its metadata DB ``airflow.db`` in there.
    :param parallelism: ``[core] parallelism``: how many task instances may run at once.
    :param env: Environment variables set on top of the deployment's own (connections as ``AIRFLOW_CONN_*``,
        other Airflow settings, what the DAGs read); they win over the defaults.
    """

    def __init__(self, root: Path, *, parallelism: int = 2, env: Mapping[str, str] | None = None) -> None:
        self.home = root / "airflow"
        self.dags_folder = self.home / "dags"
        self.dags_folder.mkdir(parents=True)
        self.db_path = self.home / "airflow.db"
        self.api_port = free_port()
        self.env = {
            **airflow_environment(self.home, self.dags_folder, self.api_port, parallelism),
            **(env or {}),
        }
        self.airflow = str(Path(sys.executable).parent / "airflow")
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> AirflowDeployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def write_dag(self, file_name: str, source: str) -> Path:
        """
        Write a DAG file into the DAGs folder.

        :param file_name: The file's name, ``<dag_id>.py`` by convention.
        :param source: The file's Python source.
        :return: The file's path.
        """
        path = self.dags_folder / file_name
        path.write_text(source)
        return path

    def cli(self, *args: str, timeout: float = 180) -> str:
        """
        Run an ``airflow`` CLI command to its end and fail the test if it fails.

        A command refused with SQLite's "database is locked" (the scheduler held the metadata database longer
        than SQLite's busy timeout, which a loaded machine sees) rolled back and is run again, up to
        :data:`SQLITE_LOCKED_ATTEMPTS` times.

        :param args: The command's arguments, e.g. ``"dags", "trigger", dag_id``.
        :param timeout: Seconds the command may take.
        :return: Its standard output and standard error.
        """
        for attempt in range(1, SQLITE_LOCKED_ATTEMPTS + 1):
            result = subprocess.run(
                [self.airflow, *args], env=self.env, capture_output=True, timeout=timeout, cwd=self.home, check=False
            )
            output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
            if result.returncode == 0 or "database is locked" not in output or attempt == SQLITE_LOCKED_ATTEMPTS:
                break
            time.sleep(1.0)
        assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{output[-4000:]}"
        return output

    def start(self, *components: str) -> None:
        """
        Start Airflow components, in the order given, each in its own process group.

        :param components: Any of ``"api-server"`` (one worker, on 127.0.0.1 at :attr:`api_port`),
            ``"dag-processor"``, ``"scheduler"`` and ``"triggerer"`` (both without a log server).
        """
        arguments = {
            "api-server": ("api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"),
            "dag-processor": ("dag-processor",),
            "scheduler": ("scheduler", "--skip-serve-logs"),
            "triggerer": ("triggerer", "--skip-serve-logs"),
        }
        unknown = [component for component in components if component not in arguments]
        if unknown:
            raise ValueError(f"unknown Airflow components {unknown}: use any of {sorted(arguments)}")
        for component in components:
            self._spawn(component, arguments[component])

    def start_celery_worker(self, name: str, *, concurrency: int = 2, env: Mapping[str, str] | None = None) -> None:
        """
        Start a Celery worker (the deployment's ``env`` must configure the CeleryExecutor and its broker).

        :param name: The worker's Celery node name (``-H``), also the name of its log file.
        :param concurrency: How many tasks the worker runs at once.
        :param env: Environment variables for this worker only, on top of the deployment's.
        """
        self._spawn(
            name,
            (
                "celery",
                "worker",
                "-H",
                name,
                "-c",
                str(concurrency),
                "--skip-serve-logs",
                "--without-gossip",
                "--without-mingle",
            ),
            env,
        )

    def _spawn(self, name: str, args: Iterable[str], env: Mapping[str, str] | None = None) -> None:
        log_path = self.home / f"{name}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [self.airflow, *args],
                env={**self.env, **(env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        self.started.append((name, process, log_path))

    def check_alive(self) -> None:
        """Fail the test, with the logs, if a started process has exited."""
        for name, process, _ in self.started:
            assert process.poll() is None, f"airflow {name} exited with {process.returncode}:\n{self.logs()}"

    def stop(self) -> None:
        """Stop every started process and its process group: SIGTERM, then after up to 20 s SIGKILL."""
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

    def log(self, name: str) -> str:
        """
        The whole log of one started process.

        :param name: The name it was started under (a component's name, a Celery worker's name).
        """
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 3000) -> str:
        """
        The end of every started process's log, for failure messages.

        :param tail: How many characters of each log.
        """
        return "\n".join(f"----- {name} -----\n{self.log(name)[-tail:]}" for name, _, _ in self.started)

    def wait_until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """
        Poll ``condition`` until it returns something true, failing the test if a process exits or time runs out.

        :param condition: Called every 0.3 s.
        :param timeout: Seconds to wait.
        :param what: What is awaited, for the failure message.
        :return: The first true value ``condition`` returned.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = condition()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def wait_for_api_server(self, timeout: float = 120) -> None:
        """
        Wait until the api-server answers its health check.

        :param timeout: Seconds to wait.
        """

        def healthy() -> bool:
            try:
                url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        self.wait_until(healthy, timeout, "the api-server")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """
        Wait until the dag-processor has stored a DAG in the metadata DB.

        :param dag_id: The DAG's id.
        :param timeout: Seconds to wait.
        """
        self.wait_until(
            lambda: self.query("SELECT 1 FROM dag WHERE dag_id = ?", dag_id), timeout, f"the DAG {dag_id}"
        )

    def wait_for_celery_workers(self, names: Iterable[str], timeout: float = 120) -> None:
        """
        Wait until Celery workers say they are ready.

        :param names: The names they were started under (:meth:`start_celery_worker`).
        :param timeout: Seconds to wait.
        """
        names = tuple(names)
        self.wait_until(
            lambda: all(" ready." in self.log(name) for name in names), timeout, f"the Celery workers {names}"
        )

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """
        Read the metadata DB (read-only).

        :param sql: One SQL statement, with ``?`` placeholders.
        :param params: The placeholders' values.
        :return: The rows; none while the file or table does not exist yet or a writer holds the lock.
        """
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5) as connection:
                return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []

    def finished_run_state(self, dag_id: str) -> str | None:
        """
        The state of a DAG's first run once it has finished.

        :param dag_id: The DAG's id.
        :return: ``"success"`` or ``"failed"``; ``None`` while there is no run or it has not finished.
        """
        states = [str(state) for (state,) in self.query("SELECT state FROM dag_run WHERE dag_id = ?", dag_id)]
        return states[0] if states and states[0] in FINISHED_STATES else None

    def backfill(
        self, dag_id: str, dates: Sequence[str], *, max_active_runs: int, backwards: bool = False, timeout: float = 300
    ) -> list[str]:
        """
        Backfill a DAG over ``dates`` and wait for all its runs to finish.

        On Airflow 3 ``airflow backfill create`` (the scheduler runs the backfill); on Airflow 2.11 ``airflow dags
        backfill``, which runs the backfill in the CLI's own process and returns when it is done. That command has
        no ``--max-active-runs``: the DAG's own ``max_active_runs`` applies (give the DAG the same value; the
        ``dag_run`` table's start and end dates tell how many ran at once).

        :param dag_id: The DAG's id (unpaused first on Airflow 3).
        :param dates: The logical dates, first to last (``--from-date`` and ``--to-date``; ``--start-date`` and
            ``--end-date`` on Airflow 2).
        :param max_active_runs: The backfill's ``--max-active-runs`` (Airflow 3 only, see above).
        :param backwards: Run the newest date first (``--run-backwards``).
        :param timeout: Seconds to wait for the runs.
        :return: The final state of every run of the DAG (the backfill's and any scheduled one).
        """
        if not AIRFLOW_V_3_0_PLUS:
            return self._backfill_airflow_2(dag_id, dates, backwards=backwards, timeout=timeout)
        self.cli("dags", "unpause", dag_id)
        args = ["--dag-id", dag_id, "--from-date", dates[0], "--to-date", dates[-1]]
        args += ["--max-active-runs", str(max_active_runs)] + (["--run-backwards"] if backwards else [])
        self.cli("backfill", "create", *args)

        def runs_finished() -> list[str] | None:
            rows = self.query("SELECT run_type, state FROM dag_run WHERE dag_id = ?", dag_id)
            backfill = [str(state) for run_type, state in rows if run_type == "backfill"]
            finished = all(str(state) in FINISHED_STATES for _, state in rows)
            return [str(state) for _, state in rows] if len(backfill) == len(dates) and finished else None

        return self.wait_until(runs_finished, timeout, f"the backfill runs of {dag_id} to finish")

    def _backfill_airflow_2(self, dag_id: str, dates: Sequence[str], *, backwards: bool, timeout: float) -> list[str]:
        args = ["dags", "backfill", "--start-date", dates[0], "--end-date", dates[-1], "--yes"]
        self.cli(*args, *(["--run-backwards"] if backwards else []), dag_id, timeout=timeout)
        rows = self.query("SELECT run_type, state FROM dag_run WHERE dag_id = ?", dag_id)
        assert sum(run_type == "backfill" for run_type, _ in rows) == len(dates), rows
        return [str(state) for _, state in rows]

    def task_intervals(self, dag_id: str, task_id: str) -> tuple[list[tuple[Any, Any]], int]:
        """
        When each instance of a task ran, and how many pairs of them ran at the same time.

        :param dag_id: The DAG's id.
        :param task_id: The task's id.
        :return: ``([(start_date, end_date), ...], overlapping pairs)``.
        """
        intervals = self.query(
            "SELECT start_date, end_date FROM task_instance WHERE dag_id = ? AND task_id = ?", dag_id, task_id
        )
        overlapping = sum(
            1
            for index, (start, end) in enumerate(intervals)
            for other_start, other_end in intervals[index + 1 :]
            if start < other_end and other_start < end
        )
        return intervals, overlapping

    def return_value(self, dag_id: str, task_id: str) -> Any:
        """
        The return value (XCom) of the one task instance of ``task_id`` in a DAG's runs, decoded from JSON.

        :param dag_id: The DAG's id.
        :param task_id: The task's id.
        """
        [(value,)] = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'", dag_id, task_id
        )
        return json.loads(value if isinstance(value, str) else value.decode())


def airflow_environment(home: Path, dags_folder: Path, api_port: int, parallelism: int) -> dict[str, str]:
    """
    The environment of an Airflow deployment on 127.0.0.1: this process's environment without any ``AIRFLOW*``
    variable, plus the testing kit's isolated home (SQLite ``home/airflow.db``, the DAGs folder, no examples:
    :func:`airflow_provider_dify.testing.airflow_home.isolated_environment`) and what a deployment of
    processes needs on top (LocalExecutor on Airflow 3, DAGs unpaused at creation, simple auth with everyone an
    admin, fresh secrets, free log-server ports).

    :param home: ``AIRFLOW_HOME``; the metadata DB is ``home/airflow.db``.
    :param dags_folder: The DAGs folder.
    :param api_port: The api-server's port on 127.0.0.1.
    :param parallelism: ``[core] parallelism``.
    """
    from airflow_provider_dify.testing.airflow_home import isolated_environment

    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(isolated_environment(home, dags_folder))
    # Executors start `airflow ...` by name (Airflow 2's SequentialExecutor: `airflow tasks run`): this one's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if AIRFLOW_V_3_0_PLUS:  # Airflow 2 refuses the LocalExecutor on SQLite: the isolated home's SequentialExecutor
        env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    env.update(
        {
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
    )
    return env


def asset_consumer_dag(dag_id: str, dataset_id: str, host: str) -> str:
    """
    DAG-file source of a DAG scheduled on a knowledge base's asset, with one task that does nothing.

    Put it in the producer's DAG file: parsing the file then registers the asset in Airflow's database, so the
    producer's first asset events (several tasks finishing at once) do not race to create it (docs/assets.md,
    "Which events are quiet, and which race"). The file must import ``datetime``, ``DAG``, ``task`` and
    ``knowledge_base_asset``.

    :param dag_id: The consumer DAG's id.
    :param dataset_id: The knowledge base's id.
    :param host: The Dify host the asset names (the emulator's URL).
    """
    return (
        "# A consumer scheduled on the knowledge base: it registers the asset when the file is parsed.\n"
        f"with DAG({dag_id!r}, schedule=[knowledge_base_asset({dataset_id!r}, host={host!r})],\n"
        "         start_date=datetime(2026, 1, 1), catchup=False):\n"
        '    task(task_id="consume")(lambda: None)()\n'
    )


def alias_link_task(dataset_id: str, host: str, task_id: str = "link_alias") -> str:
    """
    DAG-file source of a task (``link_alias()`` calls it) that sends one event through the connection's alias.

    Airflow links an alias to an asset on the first event through it; several tasks sending that first event at
    once race on SQLite's unique key (``asset_alias_asset``) and the losers are marked failed after they
    succeeded (docs/assets.md, "Which events are quiet, and which race"). Running this task once before they
    start makes the link; writing tasks that declare the knowledge base in their ``outlets`` need none
    (tests/e2e/test_mapped_first_events.py). The file must import ``task``, ``knowledge_base_alias`` and
    ``knowledge_base_asset``.

    :param dataset_id: The knowledge base's id.
    :param host: The Dify host the asset names (the emulator's URL).
    :param task_id: The task's id.
    """
    return (
        f"@task(task_id={task_id!r}, outlets=[knowledge_base_alias()])\n"
        "def link_alias(**context):\n"
        "    context['outlet_events'][knowledge_base_alias()].add(\n"
        f"        knowledge_base_asset({dataset_id!r}, host={host!r})\n"
        "    )\n"
    )


def numbered_records_sync_arguments(dataset_id: str | None, records: int, scope: str, dataset_name: str = "") -> str:
    """
    DAG-file source of a ``dict`` of :class:`~airflow_provider_dify.operators.sync.DifySyncDocumentsOperator`
    arguments (all but ``task_id``) that sync ``records`` records ``{"id": n, "text": "record n"}`` into documents
    named ``rec-<n>``, deleting the scope's documents of records that are gone, with economy indexing and no retries.
    :func:`assert_every_record_once` checks the knowledge base afterwards.

    :param dataset_id: The knowledge base's id (``None``: by ``dataset_name``).
    :param records: How many records (numbered from 0).
    :param scope: The sync's scope.
    :param dataset_name: The knowledge base's name, when ``dataset_id`` is ``None``.
    """
    knowledge_base = f"dataset_id={dataset_id!r}" if dataset_id is not None else f"dataset_name={dataset_name!r}"
    return (
        "dict(\n"
        f"    {knowledge_base},\n"
        f'    records=[{{"id": number, "text": f"record {{number}}"}} for number in range({records})],\n'
        '    key_field="id",\n'
        '    text_template="{{ text }}",\n'
        '    name_prefix="rec-",\n'
        f"    scope={scope!r},\n"
        "    delete_missing=True,\n"
        '    indexing_technique="economy",\n'
        "    retries=0,\n"
        ")"
    )


def assert_every_record_once(emulator: Any, dataset_id: str, records: int) -> list[dict[str, Any]]:
    """
    Assert that the knowledge base holds one document per record of :func:`numbered_records_sync_arguments`, each
    with its record's text, and that nothing was deleted.

    :param emulator: The :class:`~airflow_provider_dify.testing.DifyEmulator` the DAGs wrote to.
    :param dataset_id: The knowledge base's id.
    :param records: How many records were synced.
    :return: The knowledge base's documents, for further checks.
    """
    stored = emulator.documents(dataset_id)
    names = sorted(doc["name"] for doc in stored)
    assert names == sorted(f"rec-{number}" for number in range(records))  # every record exactly once
    assert all(doc["text"] == f"record {doc['name'][4:]}" for doc in stored)
    assert emulator.count("DELETE") == 0
    return stored
