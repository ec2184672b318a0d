"""CHANGELOG.md keeps the format of Airflow's providers' changelogs: ``Unreleased`` first, then each release,
each with only Features, Bug Fixes and Misc sections; the newest release is the package's version."""

from __future__ import annotations

import re
from pathlib import Path

import airflow_provider_dify

CHANGELOG = (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()
SECTIONS = ("Features", "Bug Fixes", "Misc")


def _releases() -> list[tuple[str, str]]:
    parts = re.split(r"^## (.+)$", CHANGELOG, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_unreleased_comes_first_then_the_package_version() -> None:
    names = [name for name, _ in _releases()]
    assert names[0] == "Unreleased"
    assert names[1] == airflow_provider_dify.__version__


def test_each_release_has_only_the_three_sections_in_order() -> None:
    for name, body in _releases():
        sections = re.findall(r"^### (.+)$", body, flags=re.MULTILINE)
        assert sections and all(section in SECTIONS for section in sections), (name, sections)
        assert sections == sorted(sections, key=SECTIONS.index), (name, sections)
