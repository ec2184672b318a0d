"""Reproducible installs: the committed constraints pin everything, cover pyproject.toml, and are what is installed.

``make`` installs every environment with ``uv pip install -c constraints/airflow-<line>-py<X.Y>.txt`` (see the
Makefile); ``make constraints`` writes those files with ``uv pip compile``. These tests fail when a dependency
is added to pyproject.toml without regenerating them, when a file holds a range instead of a pin, when a make
target installs without constraints, and when the environment under test drifted from its file. A hung test
fails with its stack (pytest-timeout), which the last test checks in a pytest of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYVER = f"{sys.version_info[0]}.{sys.version_info[1]}"
#: Each environment the Makefile makes: its constraints file and the extras it installs.
ENVIRONMENTS = {
    f"airflow-3.3-py{PYVER}.txt": ("dev", "docs", "sql", "demo"),
    f"airflow-2.11-py{PYVER}.txt": ("test", "sql"),
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def read_pins(path: Path) -> dict[str, Version]:
    """The ``name==version`` lines of a constraints file; any other requirement line fails the test."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path.name}:{number}: {raw!r} is not an exact pin (name==version)"
        pins[canonicalize_name(match.group(1))] = Version(match.group(3))
    return pins


def requirements_of(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's dependencies plus those of ``extras``, the project's own self-references followed."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    found: list[Requirement] = []
    todo = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    todo += [Requirement(text) for extra in extras for text in optional[extra]]
    seen_extras: set[str] = set(extras)
    while todo:
        requirement = todo.pop()
        if canonicalize_name(requirement.name) == canonicalize_name(PYPROJECT["project"]["name"]):
            for extra in requirement.extras - seen_extras:
                seen_extras.add(extra)
                todo += [Requirement(text) for text in optional[extra]]
            continue
        found.append(requirement)
    return found


@pytest.mark.parametrize("filename", sorted(ENVIRONMENTS))
def test_every_requirement_of_pyproject_is_pinned_within_its_range(filename: str) -> None:
    path = CONSTRAINTS / filename
    assert path.is_file(), f"{filename} is missing: run `make constraints` with Python {PYVER}"
    pins = read_pins(path)
    problems = []
    for requirement in requirements_of(ENVIRONMENTS[filename]):
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement} does not admit the pinned {pins[name]}")
    assert not problems, f"{filename} is stale, run `make constraints`: " + "; ".join(problems)


@pytest.mark.parametrize("line", ["3.3", "2.11"])
def test_constraints_honour_their_inputs(line: str) -> None:
    """Each bound written in constraints/airflow-<line>.in (the Airflow release, known incompatibilities) holds."""
    pins = read_pins(CONSTRAINTS / f"airflow-{line}-py{PYVER}.txt")
    inputs = [
        Requirement(text.split("#", 1)[0])
        for text in (CONSTRAINTS / f"airflow-{line}.in").read_text().splitlines()
        if text.split("#", 1)[0].strip()
    ]
    assert any(canonicalize_name(req.name) == "apache-airflow" for req in inputs)
    for requirement in inputs:
        pinned = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned), f"{requirement} but {pinned} is pinned"


def test_every_make_install_is_constrained() -> None:
    """Every install in the Makefile takes a constraints file, but uv itself (pinned) and ``test-latest``."""
    makefile = (ROOT / "Makefile").read_text()
    targets = re.split(r"^(?=[\w$().%/-]+:)", makefile, flags=re.MULTILINE)
    installs = 0
    for block in targets:
        target = block.split(":", 1)[0]
        for line in block.splitlines():
            if "pip install" not in line:
                continue
            installs += 1
            if target == "test-latest":
                assert "-c " not in line, "test-latest is meant to take the newest releases"
            elif '"uv==$(UV_VERSION)"' in line:
                assert re.search(r"^UV_VERSION := \d+\.\d+\.\d+$", makefile, re.MULTILINE)
            else:
                assert re.search(r"-c \$\(CONSTRAINTS\d\) -b \$\(CONSTRAINTS\d\)", line), f"{target}: {line.strip()}"
    assert installs >= 4


def test_this_environment_is_the_one_its_constraints_pin() -> None:
    """The venv under test holds exactly the pinned versions (make exports the file it installed from)."""
    name = os.environ.get("DIFY_PROVIDER_CONSTRAINTS")
    if not name:
        pytest.skip("not run by `make test-af3`/`make test-af2` (make test-latest takes the newest releases)")
    pins = read_pins(ROOT / name)
    installed = {canonicalize_name(dist.metadata["Name"]): Version(dist.version) for dist in metadata.distributions()}
    drift = {
        name: (str(pins[name]), str(installed[name]))
        for name in pins
        if name in installed and installed[name] != pins[name]
    }
    assert not drift, f"installed versions differ from {name} (pinned, installed): {drift}"
    airflow = installed[canonicalize_name("apache-airflow")]
    assert airflow == pins[canonicalize_name("apache-airflow")]


def test_a_hung_test_fails_with_its_stack_and_the_session_goes_on(tmp_path: Path) -> None:
    """The project's pytest configuration has a per-test timeout; a test past it fails, and the next one runs."""
    configured = PYPROJECT["tool"]["pytest"]["ini_options"]["timeout"]
    assert 60 <= int(configured) <= 1200
    (tmp_path / "test_hangs.py").write_text(
        textwrap.dedent(
            """
            import time

            def test_hangs():
                time.sleep(120)

            def test_after():
                assert True
            """
        )
    )
    completed = subprocess.run(
        # The project's own configuration file, with the limit shortened so that this test takes seconds.
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=2",
            "-q",
            str(tmp_path / "test_hangs.py"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=tmp_path,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output[-3000:]
    assert "Timeout" in output and "time.sleep(120)" in output, output[-3000:]
    assert re.search(r"\b1 failed, 1 passed\b", output), output[-3000:]
