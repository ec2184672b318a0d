"""The benchmark suite still runs: every section on tiny sizes yields well-formed figures (no timing asserted)."""

from __future__ import annotations

import importlib
import math

import pytest

from bench.report import SectionResult, render
from bench.runner import SECTIONS, parse_args, run_sections
from bench.sizes import TINY


def _check(result: SectionResult) -> None:
    assert result.measured, f"{result.title} was not measured: {result.not_measured}"
    assert result.figures, f"{result.title} has no figures"
    for name, value in result.figures.items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
        assert math.isfinite(value), f"{result.title}: {name} = {value}"
        if "minus" not in name:  # differences of two timings may be negative; the rest are counts, times, ratios
            assert value >= 0, f"{result.title}: {name} = {value}"
    assert result.rows and all(len(row) == len(result.header) for row in result.rows)
    assert result.summary
    text = result.to_markdown()
    assert text.startswith(f"## {result.title}") and "| " + " | ".join(result.header) + " |" in text


@pytest.mark.parametrize("name", list(SECTIONS))
def test_section_runs_on_tiny_sizes(name: str) -> None:
    results = run_sections([name], TINY, log=lambda line: None)
    assert results
    for result in results:
        _check(result)


def test_counts_are_counts() -> None:
    """The request counts the report shows are whole numbers taken from the emulator."""
    (calls,) = run_sections(["calls"], TINY, log=lambda line: None)
    assert calls.figures["hook_requests_per_call"] == 1.0
    assert calls.figures["bare_requests_per_call"] == 1.0
    assert calls.figures["calls"] == TINY.calls


def test_report_renders_every_section() -> None:
    results = [
        SectionResult("a", "A", header=["x"], rows=[["1"]], figures={"x": 1.0}, summary="one"),
        SectionResult("b", "B", not_measured="the module is missing"),
    ]
    text = render(results, "`python -m bench`", {"CPU": "2 cores"}, 12.0)
    assert "| CPU | 2 cores |" in text
    assert "## A" in text and "| A | one |" in text
    assert "**Not measured:** the module is missing" in text and "not measured: the module is missing" in text
    assert "# one section: a, b" in text  # the Reproduce block names the report's own sections


def test_every_section_key_is_a_name_the_command_line_takes() -> None:
    keys = {module.KEY for module in map(importlib.import_module, SECTIONS.values()) if hasattr(module, "KEY")}
    for key in keys:
        assert parse_args(["--only", key]).sections, key


def test_command_line() -> None:
    assert parse_args([]).sections == list(SECTIONS)
    assert parse_args(["--only", "rerun", "--only", "upload,calls"]).sections == ["export", "upload", "calls"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])
