"""``make demo`` (``python -m example_dags.demo``) on a fresh directory: two runs, the second writing nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_twice_and_the_second_run_changes_nothing(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_", "AIRFLOW__")) and key != "DIFY_DEMO_VERBOSE"
    }
    env["DIFY_DEMO_DIR"] = str(tmp_path / "demo")
    result = subprocess.run(
        [sys.executable, "-m", "example_dags.demo", "--query", "grinder"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Dify: the provider's emulator" in out
    assert "Run 1: success" in out and "Run 2: success" in out
    first, second = out.split("Run 2:")
    assert "240 created, 0 updated, 0 unchanged" in first and "40 added" in first
    assert "0 created, 0 updated, 240 unchanged, 0 deleted; nothing to index" in second
    assert "0 added, 0 updated, 40 unchanged" in second
    assert "0 write request(s) to Dify besides the search" in second
    assert re.search(r"search: [1-9]\d* hit\(s\); best: .*[Gg]rinder", second)
    assert (tmp_path / "demo" / "airflow" / "airflow.db").exists()
    assert (tmp_path / "demo" / "warehouse.db").exists()
