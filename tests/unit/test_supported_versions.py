"""Claim what is tested, test what is claimed: the Python and Airflow versions that the package metadata, the
README and the installation page name are exactly those the committed constraints (what CI installs) pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: constraints/airflow-<airflow line>-py<python>.txt: one file per environment CI installs.
CONSTRAINTS = re.compile(r"airflow-(\d+\.\d+)-py(\d+\.\d+)\.txt")
CANDIDATE_PYTHONS = [f"3.{minor}" for minor in range(8, 16)]
CANDIDATE_AIRFLOWS = ["2.10", "2.11", "3.0", "3.1", "3.2", "3.3", "3.4"]


def _tested() -> tuple[set[str], set[str]]:
    found = [CONSTRAINTS.fullmatch(path.name) for path in (ROOT / "constraints").glob("*.txt")]
    pairs = [match.groups() for match in found if match]
    assert pairs, "no constraints files"
    return {airflow for airflow, _ in pairs}, {python for _, python in pairs}


def _pinned_airflow(path: Path) -> str:
    match = re.search(r"^apache-airflow==(\d+\.\d+)\.\d+", path.read_text(), re.MULTILINE)
    assert match, path
    return match.group(1)


def test_each_constraints_file_pins_the_airflow_line_it_is_named_after() -> None:
    for path in (ROOT / "constraints").glob("*.txt"):
        match = CONSTRAINTS.fullmatch(path.name)
        assert match and _pinned_airflow(path) == match.group(1), path.name


def test_requires_python_and_classifiers_claim_exactly_the_tested_pythons() -> None:
    _, pythons = _tested()
    allowed = SpecifierSet(PYPROJECT["requires-python"])
    assert {python for python in CANDIDATE_PYTHONS if Version(f"{python}.0") in allowed} == pythons
    classifiers = {c.rsplit(" :: ", 1)[1] for c in PYPROJECT["classifiers"] if re.fullmatch(r".*Python :: \d+\.\d+", c)}
    assert classifiers == pythons


def test_the_airflow_requirement_allows_exactly_the_tested_lines_up_to_the_newest() -> None:
    airflows, _ = _tested()
    requirement = next(d for d in PYPROJECT["dependencies"] if re.match(r"apache-airflow\b(?!-)", d))
    allowed = SpecifierSet(requirement.removeprefix("apache-airflow"))
    newest = max(airflows, key=Version)
    claimed = {
        line for line in CANDIDATE_AIRFLOWS if Version(f"{line}.0") in allowed and Version(line) <= Version(newest)
    }
    assert claimed == airflows


def test_the_readme_and_the_docs_name_the_tested_versions() -> None:
    airflows, pythons = _tested()
    claim = f"Airflow {' and '.join(sorted(airflows, key=Version))}"
    on_python = f"Python {', '.join(sorted(pythons, key=Version))}"
    for page in ("README.md", "docs/index.md", "docs/installation.md"):
        text = " ".join((ROOT / page).read_text().replace("*", "").split())
        assert claim in text and on_python in text, page


def test_no_page_claims_a_whole_series() -> None:
    """No "Python 3.11+" or "Airflow 3.x": a claim names the tested versions."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        text = " ".join(page.read_text().split())
        assert not re.search(r"Python 3\.\d+\+|Airflow (?:[\d.]+ (?:and|or) )?3\.x\b", text), page.name
