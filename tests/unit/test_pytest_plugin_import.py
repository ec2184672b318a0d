"""The pytest plugin costs nothing to a test session that does not use the emulator.

Every pytest session of a project that installs the provider loads the plugin (``pytest11`` entry point), so the
plugin must not import the emulator's server, its routes or Airflow until a test asks for ``dify_emulator``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

#: Modules that only a test using the emulator should load.
HEAVY = (
    "airflow_provider_dify.testing.server",
    "airflow_provider_dify.testing.routes",
    "airflow_provider_dify.testing.state",
    "http.server",
    "airflow",
    "requests",
)


def _loaded_after(code: str, cwd: Path | None = None) -> list[str]:
    probe = code + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(name for name in {list(HEAVY)!r} if name in sys.modules)))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True, cwd=cwd
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_importing_the_plugin_loads_no_emulator_module() -> None:
    assert _loaded_after("import airflow_provider_dify.testing.pytest_plugin\n") == []


def test_the_emulator_names_load_on_first_use() -> None:
    loaded = _loaded_after("from airflow_provider_dify.testing import DifyEmulator\n")
    assert "airflow_provider_dify.testing.server" in loaded


def test_a_session_that_does_not_use_the_fixture_loads_no_emulator_module(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "import sys\n"
        "def test_plain():\n"
        f"    print('LOADED', sorted(n for n in {list(HEAVY[:3])!r} if n in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "dify_emulator", "test_plain.py"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "LOADED []" in completed.stdout
