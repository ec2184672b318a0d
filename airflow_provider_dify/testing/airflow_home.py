"""
An isolated Airflow home for tests: a temporary ``AIRFLOW_HOME`` with its own SQLite metadata database.

:func:`use_isolated_airflow_home` points Airflow at a directory (through ``AIRFLOW_HOME`` and ``AIRFLOW__*``
variables) and, when Airflow was imported already, re-reads those settings and re-creates its database engine;
:func:`create_metadata_db` then builds the database there, once. The ``airflow_db`` fixture of the pytest
plugin does both in a temporary directory, so a DAG author's test needs no conftest.

Only a database this module configured is ever created or reset: the variables are set to a path inside the
given directory, so a user's own metadata database (``~/airflow``, a Postgres server) is never touched.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

#: The marker file :func:`create_metadata_db` leaves in a home whose database it created.
DB_READY_MARKER = ".dify-test-db-ready"

_active_home: Path | None = None


def isolated_environment(home: Path, dags_folder: Path | None = None) -> dict[str, str]:
    """
    The variables that make Airflow use ``home``: its database, DAGs folder, logs, no example DAGs.

    :param home: the directory that becomes ``AIRFLOW_HOME``.
    :param dags_folder: the DAGs folder (default: ``home/dags``, made empty).
    """
    environment = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # XCom values of the provider (its results) are plain data; allow its classes all the same.
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"airflow_provider_dify\..*",
    }
    if version("apache-airflow").startswith("2."):
        # A unit-test config may pick LocalExecutor, which refuses SQLite; dag.test() needs no executor.
        environment["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"
    return environment


def use_isolated_airflow_home(home: Path, dags_folder: Path | None = None) -> Path:
    """
    Point this process (and the processes it starts) at an Airflow home of its own in ``home``.

    Call it before Airflow is imported when you can (a conftest's top); after, Airflow's settings are read
    again and its database engine re-created, which the ``airflow_db`` fixture relies on.

    :param home: the directory that becomes ``AIRFLOW_HOME`` (made if missing).
    :param dags_folder: the DAGs folder (default: ``home/dags``).
    :return: ``home``.
    """
    global _active_home
    home = Path(home).resolve()
    (home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ.update(isolated_environment(home, dags_folder))
    if "airflow.settings" in sys.modules:
        from airflow import settings

        settings.dispose_orm()
        settings.configure_vars()
        settings.configure_orm()
    _active_home = home
    return home


def active_home() -> Path | None:
    """The home :func:`use_isolated_airflow_home` set last in this process, ``None`` before."""
    return _active_home


def create_metadata_db(home: Path) -> Path:
    """
    Create the metadata database of an isolated home once (later calls find the marker and return at once).

    :param home: a home made by :func:`use_isolated_airflow_home` in this process.
    :raises RuntimeError: ``home`` is not the isolated home Airflow currently uses (nothing is reset then).
    """
    home = Path(home).resolve()
    expected = f"sqlite:///{home / 'airflow.db'}"
    if _active_home != home or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") != expected:
        raise RuntimeError(
            f"create_metadata_db: {home} is not the isolated Airflow home in use; call"
            " use_isolated_airflow_home() with it first (a database configured elsewhere is never reset)."
        )
    if not (home / DB_READY_MARKER).exists():
        from airflow.utils import db

        db.resetdb()
        (home / DB_READY_MARKER).touch()
    return home
