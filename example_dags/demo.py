"""
The demo behind ``make demo``: a sample warehouse synced into a Dify knowledge base by a real Airflow DAG, twice.

``python -m example_dags.demo``:

1. uses the Airflow connection ``dify_default`` when you set one (``AIRFLOW_CONN_DIFY_DEFAULT``), else starts
   the provider's Dify emulator on 127.0.0.1;
2. sets a private ``AIRFLOW_HOME`` under ``.demo/`` with a SQLite metadata database, and migrates it;
3. builds a small SQLite warehouse (``.demo/warehouse.db``: 240 products, 40 FAQ entries) and points the
   connection ``warehouse_sqlite`` at it;
4. runs the DAG ``example_dify_warehouse_export`` with ``dag.test()``: products become documents (waiting for
   their indexing), FAQ entries become chunks, then a search checks that the knowledge base answers;
5. runs it a second time, which changes nothing, and prints both summaries.

Options: ``--knowledge-base NAME`` (default ``airflow-example-warehouse``), ``--query TEXT`` (default
``espresso``), ``--verbose`` (show Airflow's task logs). ``DIFY_DEMO_DIR`` puts ``.demo/`` elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = Path(os.environ.get("DIFY_DEMO_DIR") or REPO / ".demo")
RETRIEVE_ROUTE = "/datasets/{dataset_id}/retrieve"
DAG_ID = "example_dify_warehouse_export"


def shown(path: Path) -> str:
    """A path as the reader typed it: relative to the current directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def configure_airflow(home: Path, *, verbose: bool) -> None:
    """A private AIRFLOW_HOME with a SQLite metadata database; the DAGs folder is ``example_dags/``."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP"] = r"airflow_provider_dify\..*"
    if not os.environ.get("AIRFLOW__CORE__FERNET_KEY"):  # encrypt what Airflow stores, as a deployment does
        key_file = home / "fernet.key"
        if not key_file.exists():
            from cryptography.fernet import Fernet

            key_file.touch(mode=0o600)
            key_file.write_bytes(Fernet.generate_key())
        os.environ["AIRFLOW__CORE__FERNET_KEY"] = key_file.read_text().strip()
    # dag.test() answers the task's API calls in process through Starlette's test client, which warns about
    # its own httpx use: nothing a DAG author can act on.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    if not verbose:
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"


def migrate_metadata_db() -> None:
    """``airflow db migrate`` for the demo's SQLite database (creates it the first time)."""
    from airflow.utils import db

    with _quiet():
        db.upgradedb()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    if os.environ.get("DIFY_DEMO_VERBOSE"):
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


@contextlib.contextmanager
def dify_connection() -> Iterator[Any]:
    """Yield the emulator it started, or ``None`` when the user's ``dify_default`` connection is used."""
    if os.environ.get("AIRFLOW_CONN_DIFY_DEFAULT"):
        yield None
        return
    from airflow_provider_dify.testing import DifyEmulator

    # A real Dify takes from ~0.1 s to ~2 s a document, at its queue's pace; 20 ms here keeps the demo short.
    with DifyEmulator(indexing_seconds=0.02, queue_pickup_seconds=0.01) as emulator:
        os.environ["AIRFLOW_CONN_DIFY_DEFAULT"] = emulator.connection_json
        yield emulator


def xcom_value(dag_run: Any, task_id: str) -> Any:
    """A task's return value in the run (read from the metadata database; Airflow 3 or 2.11)."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XCom

        return XCom.get_one(run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key="return_value")
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value")
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_states(dag_run: Any) -> dict[str, str]:
    """The final state of every task of the run."""
    return {ti.task_id: str(ti.state).rsplit(".", 1)[-1].lower() for ti in dag_run.get_task_instances()}


def summary(number: int, dag_run: Any, seconds: float, writes: int | None, *, console: bool = False) -> str:
    """A few human-readable lines about one run; ``console``: add the link to the knowledge base in Dify's
    console (a real Dify's; the emulator has no console, and it stops when the demo ends)."""
    products = xcom_value(dag_run, "sync_products") or {}
    faq = xcom_value(dag_run, "sync_faq") or {}
    hit = xcom_value(dag_run, "check_hits") or {}
    counts, chunk_counts = products.get("counts", {}), faq.get("counts", {})
    indexing = products.get("indexing") or {}
    lines = [
        f"Run {number}: {dag_run.state} in {seconds:.1f} s"
        + (f", {writes} write request(s) to Dify besides the search" if writes is not None else "")
    ]
    lines.append(
        f"  products -> documents: {counts.get('created', 0)} created, {counts.get('updated', 0)} updated,"
        f" {counts.get('unchanged', 0)} unchanged, {counts.get('deleted', 0)} deleted"
        + (
            f"; waited for {indexing.get('completed', 0)} to be indexed ({indexing.get('chunks', 0)} chunks)"
            if indexing
            else "; nothing to index"
        )
    )
    lines.append(
        f"  FAQ -> chunks of {faq.get('document_name')!r}: {chunk_counts.get('added', 0)} added,"
        f" {chunk_counts.get('updated', 0)} updated, {chunk_counts.get('unchanged', 0)} unchanged,"
        f" {chunk_counts.get('deleted', 0)} deleted ({faq.get('requests', {}).get('add', 0)} add requests)"
    )
    if hit:
        content = " ".join(str(hit.get("content") or "").split())
        lines.append(f"  search: {hit.get('hits')} hit(s); best: {hit.get('document')!r}: {content[:110]}...")
    if console and products.get("console_url"):
        lines.append(f"  console: {products['console_url']}")
    return "\n".join(lines)


def _test(dag: Any, logical_date: datetime, conf: dict[str, Any]) -> Any:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:  # dag.test() finds the DAG through the dags-folder bundle (example_dags/)
        return dag.test(logical_date=logical_date, run_conf=conf)
    return dag.test(execution_date=logical_date, run_conf=conf)


def run_once(dag: Any, number: int, conf: dict[str, Any], emulator: Any) -> Any:
    """One ``dag.test()`` run; print its summary; return the DagRun."""
    if emulator is not None:
        emulator.reset_counters()
    logical_date = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2 - number)
    started = time.monotonic()
    with _quiet():
        dag_run = _test(dag, logical_date, conf)
    seconds = time.monotonic() - started
    writes = None
    if emulator is not None:
        writes = emulator.write_count() - emulator.count("POST", RETRIEVE_ROUTE)
    print(summary(number, dag_run, seconds, writes, console=emulator is None))
    failed = {task: state for task, state in task_states(dag_run).items() if state != "success"}
    if failed:
        print(f"  tasks not successful: {failed}; rerun with --verbose to see their logs.", file=sys.stderr)
    return dag_run


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m example_dags.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--knowledge-base", default="airflow-example-warehouse", help="knowledge base name")
    parser.add_argument("--query", default="espresso", help="the search run at the end of each DAG run")
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    options = parser.parse_args(argv)
    if options.verbose:
        os.environ["DIFY_DEMO_VERBOSE"] = "1"

    configure_airflow(DEMO_DIR / "airflow", verbose=options.verbose)
    from example_dags.warehouse import FAQ, PRODUCT_COUNT, build_warehouse, sqlite_connection_json

    warehouse = build_warehouse(DEMO_DIR / "warehouse.db")
    os.environ["AIRFLOW_CONN_WAREHOUSE_SQLITE"] = sqlite_connection_json(warehouse)
    print(f"Airflow home: {shown(DEMO_DIR / 'airflow')} (SQLite metadata database; DAGs folder example_dags/)")
    print(f"Warehouse: {shown(warehouse)} ({PRODUCT_COUNT} products, {len(FAQ)} FAQ entries)")
    migrate_metadata_db()

    with dify_connection() as emulator:
        if emulator is not None:
            print("Dify: the provider's emulator on 127.0.0.1 (set AIRFLOW_CONN_DIFY_DEFAULT to use your Dify)")
        else:
            host = (
                json.loads(os.environ["AIRFLOW_CONN_DIFY_DEFAULT"]).get("host")
                if os.environ["AIRFLOW_CONN_DIFY_DEFAULT"].lstrip().startswith("{")
                else "your dify_default connection"
            )
            print(f"Dify: {host} (the first run waits on Dify's indexing queue, whose pace is the server's)")
        print(f"Knowledge base: {options.knowledge_base!r}\n")

        os.environ["DIFY_EXAMPLE_KNOWLEDGE_BASE"] = options.knowledge_base  # the DAG file names it when parsed
        from example_dags.example_dify_warehouse_export import dag

        conf = {"smoke_query": options.query}
        first = run_once(dag, 1, conf, emulator)
        second = run_once(dag, 2, conf, emulator)
    ok = first.state == second.state == "success"
    if ok:
        print("\nThe second run found every document and chunk unchanged and wrote nothing.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
