"""Results of the benchmark sections, the machine they ran on, and the Markdown report."""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SectionResult:
    """
    What one benchmark section measured.

    :param key: the name given to ``--only``.
    :param title: the heading in the report.
    :param question: what the section answers, in one sentence.
    :param header: column titles of the table.
    :param rows: table rows (already formatted cells).
    :param figures: the raw numbers behind the table, by name (checked by the smoke test).
    :param notes: how it was measured and what the figures mean.
    :param summary: the headline shown in the summary table.
    :param not_measured: the reason, when the section could not run (then there is no table).
    :param seconds: how long the section took to run.
    """

    key: str
    title: str
    question: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    not_measured: str | None = None
    seconds: float = 0.0

    @property
    def measured(self) -> bool:
        """Whether the section produced figures."""
        return self.not_measured is None

    def to_markdown(self) -> str:
        """The section as Markdown: heading, question, table, notes."""
        lines = [f"## {self.title}", ""]
        if self.question:
            lines += [self.question, ""]
        if not self.measured:
            lines += [f"**Not measured:** {self.not_measured}", ""]
            return "\n".join(lines)
        if self.header:
            lines.append("| " + " | ".join(self.header) + " |")
            lines.append("|" + "|".join(" --- " for _ in self.header) + "|")
            for row in self.rows:
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        for note in self.notes:
            lines.append(f"- {note}")
        if self.notes:
            lines.append("")
        return "\n".join(lines)


def not_measured(key: str, title: str, reason: str, question: str = "") -> SectionResult:
    """A section that could not run, with the reason shown in the report."""
    return SectionResult(key=key, title=title, question=question, not_measured=reason)


# -- machine ---------------------------------------------------------------------------------------------------


def _meminfo_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, str]:
    """Cores, memory, CPU, OS, Python, Airflow and provider versions of this machine."""
    import airflow

    import airflow_provider_dify

    try:
        from importlib.metadata import version

        requests_version = version("requests")
        httpx_version = version("httpx")
    except Exception:  # pragma: no cover - metadata missing
        requests_version = httpx_version = "unknown"
    return {
        "CPU": f"{os.cpu_count()} cores, {_cpu_model()}",
        "Memory": f"{_meminfo_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": platform.python_version(),
        "Airflow": airflow.__version__,
        "airflow-provider-dify": airflow_provider_dify.__version__,
        "requests / httpx": f"{requests_version} / {httpx_version}",
    }


def render(results: Sequence[SectionResult], command: str, machine: dict[str, str], total_seconds: float) -> str:
    """The whole report as Markdown."""
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance",
        "",
        "What a DAG author feels, measured against what they would otherwise write, side by side in one run. "
        "Every figure below comes from the same run of the benchmark suite (`bench/`) against the project's Dify "
        "emulator over 127.0.0.1; the emulator runs as threads of the benchmark's own process, sharing the cores with "
        "the client under test. Absolute times depend on this machine; the ratios and request counts are what "
        "carry over. Nothing here is asserted by the test suite (`tests/bench/` only checks that the benchmark "
        "code still runs and yields numbers).",
        "",
        f"Generated by {command} on {today} in {total_seconds / 60:.1f} minutes.",
        "",
        "| Machine | |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value} |" for name, value in machine.items()]
    lines += ["", "## Summary", ""]
    lines += ["| Section | Headline |", "| --- | --- |"]
    for result in results:
        lines.append(f"| {result.title} | {headline(result)} |")
    lines.append("")
    for result in results:
        lines.append(result.to_markdown())
    lines += [
        "## Reproduce",
        "",
        "```",
        "make bench                                   # every section; rewrites docs/performance.md",
        ".venv/bin/python -m bench --quick            # smaller sizes; prints the report",
        ".venv/bin/python -m bench --only upload      # one section: " + ", ".join(result.key for result in results),
        "```",
        "",
    ]
    return "\n".join(lines)


def headline(result: SectionResult) -> str:
    """One line for the summary table."""
    if not result.measured:
        return f"not measured: {result.not_measured}"
    return result.summary


# -- formatting ------------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return statistics.median(values)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else float("nan")


def fmt_ratio(value: float) -> str:
    """``1.23x``."""
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def fmt_ms(seconds: float) -> str:
    """Seconds shown as milliseconds."""
    return f"{seconds * 1000:.1f} ms"


def fmt_us(seconds: float, signed: bool = False) -> str:
    """Seconds shown as microseconds (with a sign when ``signed``)."""
    return f"{seconds * 1e6:+.0f} µs" if signed else f"{seconds * 1e6:.0f} µs"


def fmt_seconds(seconds: float) -> str:
    """Seconds, with minutes or hours when long."""
    if seconds >= 3600:
        return f"{seconds:.0f} s ({seconds / 3600:.1f} h)"
    if seconds >= 120:
        return f"{seconds:.0f} s ({seconds / 60:.1f} min)"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def fmt_mib(num_bytes: float) -> str:
    """Bytes shown as MiB."""
    return f"{num_bytes / 1024 / 1024:.1f} MiB"


def fmt_count(value: float) -> str:
    """An integer count with thousands separators."""
    return f"{int(value):,}"
