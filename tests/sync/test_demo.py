"""``make demo`` (``python -m example_dags.demo``) on a fresh directory: two runs, the second writing nothing,
and exactly the output docs/examples.md shows (but for the durations)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DURATION = re.compile(r"\bin \d+(?:\.\d+)? s\b")


def _documented_output() -> str:
    page = (REPO / "docs" / "examples.md").read_text()
    match = re.search(r"```text\n(Airflow home:.*?)```\n", page, re.DOTALL)
    assert match, "docs/examples.md shows no demo output"
    return match.group(1)


def _without_durations(text: str) -> list[str]:
    return [DURATION.sub("in <duration>", line) for line in text.splitlines()]


def _demo(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_", "AIRFLOW__")) and key != "DIFY_DEMO_VERBOSE"
    }
    env["DIFY_DEMO_DIR"] = str(tmp_path / ".demo")  # shown as .demo/..., relative to the working directory
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "example_dags.demo", *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_prints_what_the_examples_page_shows(tmp_path: Path) -> None:
    result = _demo(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    first, second = out.split("Run 2:")
    assert "240 created, 0 updated, 0 unchanged" in first and "40 added" in first
    assert "0 created, 0 updated, 240 unchanged, 0 deleted; nothing to index" in second
    assert "0 write request(s) to Dify besides the search" in second
    assert "console:" not in out and "http" not in out  # no link to the emulator, which stops with the demo
    assert _without_durations(out) == _without_durations(_documented_output())
    assert (tmp_path / ".demo" / "airflow" / "airflow.db").exists()
    assert (tmp_path / ".demo" / "warehouse.db").exists()


def test_the_demos_task_logs_hold_no_warning(tmp_path: Path) -> None:
    """``--verbose`` shows Airflow's logs: a normal run of the export logs no warning (no asset warnings: the
    file names its knowledge base; no unencrypted-storage warning: the demo keeps a Fernet key)."""
    result = _demo(tmp_path, "--verbose")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logged = result.stdout + result.stderr
    assert "Knowledge base" in logged and "changed: asset event dify-knowledge-base://" in logged
    warnings = [line for line in logged.splitlines() if re.search(r"\[warning\s*\]|\bWARNING\b", line)]
    assert warnings == []
    assert (tmp_path / ".demo" / "airflow" / "fernet.key").stat().st_mode & 0o077 == 0
