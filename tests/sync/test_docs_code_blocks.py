"""Every Python code block of README.md and docs/ is run or checked, so that none can go stale.

DAG blocks are imported as DAG files and each of their DAGs runs with ``dag.test()`` against the emulator,
with the sample warehouse behind ``warehouse_sqlite``; test blocks run under pytest in a process of their own
(with the provider's ``dify_emulator`` fixture, as a user's test would); every other block must be valid
Python. See tests/doc_blocks.py for how blocks are found and sorted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.testing.dag_runner import run_dag, task_state
from tests.doc_blocks import REPO, blocks_of_kind, code_blocks

DAG_BLOCKS = blocks_of_kind("dag")
TEST_BLOCKS = blocks_of_kind("test")


def test_the_pages_have_blocks_of_every_kind() -> None:
    assert {block.page for block in DAG_BLOCKS} >= {"README.md", "docs/assets.md"}
    assert {block.page for block in TEST_BLOCKS} >= {"README.md"}


def test_every_project_block_is_run_by_its_pages_test() -> None:
    """A page's project files run together; docs/emulator.md's are run by tests/emulator/test_testing_docs.py."""
    pages = {block.page for block in blocks_of_kind("project")}
    assert pages == {"docs/emulator.md"}, f"project blocks on {pages}: give each page a test that runs its project"


def test_every_block_is_valid_python() -> None:
    invalid = [block.name for block in code_blocks() if block.kind == "invalid"]
    assert invalid == [], "not valid Python (fix the block, or fence it as text): " + ", ".join(invalid)


def _load_dags(block: Any, directory: Path) -> list[Any]:
    """The DAGs of a block, parsed as Airflow parses a DAG file (a ``with DAG(...):`` needs no name)."""
    path = directory / f"docs_block_{block.page.replace('/', '_').replace('.', '_')}_{block.line}.py"
    path.write_text(block.source)
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3

        bag = DagBag(dag_folder=str(path))
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2

        bag = DagBag(dag_folder=str(path), include_examples=False)
    assert bag.import_errors == {}, f"{block.name}: {bag.import_errors}"
    return list(bag.dags.values())


def skip_airflow_3_blocks_on_airflow_2(block: Any) -> None:
    """The pages write DAGs for Airflow 3 (``airflow.sdk``); on Airflow 2.11 such a block is skipped."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if "airflow.sdk" in block.source and not AIRFLOW_V_3_0_PLUS:
        pytest.skip("the block is written for Airflow 3 (airflow.sdk)")


@pytest.mark.usefixtures("airflow_db", "warehouse")
@pytest.mark.dify_emulator(indexing_seconds=0.002, queue_pickup_seconds=0)
@pytest.mark.parametrize("block", DAG_BLOCKS, ids=lambda block: block.name)
def test_dag_block_runs_against_the_emulator(block: Any, dify_emulator: Any, tmp_path: Path) -> None:
    skip_airflow_3_blocks_on_airflow_2(block)
    dags = _load_dags(block, tmp_path)
    assert dags, f"{block.name}: no DAG object at the top level of the block"
    for dag in dags:
        dag_run = run_dag(dag)
        states = {task_id: task_state(dag_run, task_id) for task_id in dag.task_ids}
        assert set(states.values()) == {"success"}, f"{block.name}: {dag.dag_id}: {states}"


@pytest.mark.parametrize("block", TEST_BLOCKS, ids=lambda block: block.name)
def test_test_block_passes_under_pytest(block: Any, tmp_path: Path) -> None:
    skip_airflow_3_blocks_on_airflow_2(block)
    test_file = tmp_path / "test_docs_block.py"
    test_file.write_text(block.source)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", str(test_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, f"{block.name}:\n{completed.stdout[-3000:]}\n{completed.stderr[-2000:]}"
    assert " passed" in completed.stdout and " failed" not in completed.stdout
