"""Section 1, DAG-parse cost: what importing the provider's operators and sensor adds to ``import airflow.sdk``.

On Airflow 2 (no ``airflow.sdk``) the base is ``airflow.models.dag``.
"""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence

from bench.report import SectionResult, fmt_ms, fmt_ratio, median, ratio
from bench.sizes import Sizes

KEY = "imports"
TITLE = "1. DAG-parse cost (imports)"
QUESTION = (
    "How much time does a DAG file that imports the provider's operators and sensor add to parsing, over "
    "`import airflow.sdk` alone, compared with Airflow's own HTTP operator?"
)

#: The alternative: the HTTP provider's operator module (installed with Airflow).
HTTP_OPERATOR_MODULE = "airflow.providers.http.operators.http"
#: The pytest plugin every pytest session of a project that installs the provider loads (``pytest11``), and
#: the emulator server it starts only for a test that asks for the ``dify_emulator`` fixture.
PLUGIN_MODULE = "airflow_provider_dify.testing.pytest_plugin"
EMULATOR_MODULE = "airflow_provider_dify.testing.server"
#: Modules worth knowing about when they are imported at DAG-parse time.
HEAVY_MODULES = (
    "requests",
    "urllib3",
    "httpx",
    "anyio",
    "aiohttp",
    "tenacity",
    "fsspec",
    "sqlalchemy",
    "pandas",
    "numpy",
    "pydantic",
)

#: Run in a fresh interpreter: time importing the base (what every DAG file imports), then the targets;
#: report the modules the targets added.
_PROBE = r"""
import importlib, json, sys, time
base_module = sys.argv[1]
targets = json.loads(sys.argv[2])
t0 = time.perf_counter()
importlib.import_module(base_module)
t1 = time.perf_counter()
sys.stderr.write("--bench-after-base--\n")
sys.stderr.flush()
base = set(sys.modules)
for name in targets:
    importlib.import_module(name)
t2 = time.perf_counter()
print(json.dumps({"base": t1 - t0, "extra": t2 - t1, "new": sorted(set(sys.modules) - base)}))
"""


def provider_parse_modules() -> list[str]:
    """Every public operator module of the provider, and the indexing sensor module when it exists."""
    spec = importlib.util.find_spec("airflow_provider_dify.operators")
    names = []
    if spec is not None and spec.submodule_search_locations:
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            if not info.name.startswith("_"):
                names.append(f"airflow_provider_dify.operators.{info.name}")
    if importlib.util.find_spec("airflow_provider_dify.sensors.indexing") is not None:
        names.append("airflow_provider_dify.sensors.indexing")
    return sorted(names)


def base_module() -> str:
    """What every DAG file imports: ``airflow.sdk`` on Airflow 3, the DAG model on Airflow 2."""
    return "airflow.sdk" if importlib.util.find_spec("airflow.sdk") is not None else "airflow.models.dag"


def probe(targets: Sequence[str], importtime: bool = False, base: str | None = None) -> tuple[dict, str]:
    """Import ``targets`` after ``base`` (:func:`base_module` by default) in a fresh interpreter; the probe's
    result and its stderr."""
    command = [sys.executable]
    if importtime:
        command += ["-X", "importtime"]
    command += ["-c", _PROBE, base or base_module(), json.dumps(list(targets))]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"import probe of {list(targets)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


def self_times(importtime_stderr: str) -> dict[str, float]:
    """Seconds of import self-time of each module imported after the base (from ``-X importtime``)."""
    after_base = importtime_stderr.split("--bench-after-base--", 1)[-1]
    times: dict[str, float] = {}
    for line in after_base.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        try:
            self_us = int(parts[0].strip())
        except ValueError:  # the header line
            continue
        times[parts[2].strip()] = self_us / 1e6
    return times


def self_time_by_package(importtime_stderr: str) -> dict[str, float]:
    """Seconds of import self-time after the base, grouped by top-level package (``-X importtime``)."""
    totals: dict[str, float] = defaultdict(float)
    for module, seconds in self_times(importtime_stderr).items():
        top = module.split(".")[0]
        if top == "airflow" and module.startswith("airflow.providers."):
            top = ".".join(module.split(".")[:3])
        totals[top] += seconds
    return dict(totals)


def run(sizes: Sizes) -> SectionResult:
    """Median extra import time of the provider's modules and of the HTTP operator over the base import."""
    provider_targets = provider_parse_modules()
    if not provider_targets:
        return SectionResult(KEY, TITLE, QUESTION, not_measured="no operator or sensor module in the provider yet")
    # Warm the file-system cache and the bytecode of both sides, then interleave the measured runs.
    probe(provider_targets)
    probe([HTTP_OPERATOR_MODULE])
    provider_runs: list[dict] = []
    http_runs: list[dict] = []
    for _ in range(sizes.import_runs):
        provider_runs.append(probe(provider_targets)[0])
        http_runs.append(probe([HTTP_OPERATOR_MODULE])[0])

    # The pytest plugin, over ``import pytest`` (pytest has loaded itself when it loads plugins), against
    # what importing the emulator it starts would cost.
    probe([PLUGIN_MODULE], base="pytest")
    probe([EMULATOR_MODULE], base="pytest")
    plugin_runs: list[dict] = []
    emulator_runs: list[dict] = []
    for _ in range(sizes.import_runs):
        plugin_runs.append(probe([PLUGIN_MODULE], base="pytest")[0])
        emulator_runs.append(probe([EMULATOR_MODULE], base="pytest")[0])
    plugin_extra = median([r["extra"] for r in plugin_runs])
    emulator_extra = median([r["extra"] for r in emulator_runs])
    plugin_new = set(plugin_runs[-1]["new"])

    base = median([r["base"] for r in provider_runs + http_runs])
    provider_extra = median([r["extra"] for r in provider_runs])
    http_extra = median([r["extra"] for r in http_runs])
    provider_new = set(provider_runs[-1]["new"])
    http_new = set(http_runs[-1]["new"])

    def heavy(new: set[str]) -> list[str]:
        return [name for name in HEAVY_MODULES if name in new]

    provider_heavy = heavy(provider_new)
    http_heavy = heavy(http_new)

    _, provider_trace = probe(provider_targets, importtime=True)
    by_package = sorted(self_time_by_package(provider_trace).items(), key=lambda item: -item[1])[:6]
    own_modules = sorted(
        (
            (name, seconds)
            for name, seconds in self_times(provider_trace).items()
            if name.startswith("airflow_provider_")
        ),
        key=lambda item: -item[1],
    )[:4]

    figures = {
        "base_seconds": base,
        "provider_extra_seconds": provider_extra,
        "http_extra_seconds": http_extra,
        "provider_over_http": ratio(provider_extra, http_extra),
        "provider_extra_over_base": ratio(provider_extra, base),
        "provider_new_modules": float(len(provider_new)),
        "http_new_modules": float(len(http_new)),
        "provider_heavy_modules": float(len(provider_heavy)),
        "plugin_extra_seconds": plugin_extra,
        "emulator_extra_seconds": emulator_extra,
        "plugin_over_emulator": ratio(plugin_extra, emulator_extra),
        "plugin_new_modules": float(len(plugin_new)),
    }
    rows = [
        [f"`import {base_module()}` alone (both sides)", fmt_ms(base), "", ""],
        [
            f"+ provider: {len(provider_targets)} module(s)",
            fmt_ms(provider_extra),
            str(len(provider_new)),
            ", ".join(provider_heavy) or "none",
        ],
        [
            f"+ `{HTTP_OPERATOR_MODULE}`",
            fmt_ms(http_extra),
            str(len(http_new)),
            ", ".join(http_heavy) or "none",
        ],
        ["provider / HTTP operator", fmt_ratio(figures["provider_over_http"]), "", ""],
        [
            f"pytest plugin: `import {PLUGIN_MODULE}` after `import pytest`",
            fmt_ms(plugin_extra),
            str(len(plugin_new)),
            ", ".join(heavy(plugin_new)) or "none",
        ],
        [
            f"(what the emulator would cost: `import {EMULATOR_MODULE}` after `import pytest`)",
            fmt_ms(emulator_extra),
            str(len(emulator_runs[-1]["new"])),
            ", ".join(heavy(set(emulator_runs[-1]["new"]))) or "none",
        ],
    ]
    module_list = ", ".join(f"`{name.removeprefix('airflow_provider_dify.')}`" for name in provider_targets)
    notes = [
        f"Median of {sizes.import_runs} fresh interpreters per side (interleaved, after one warm-up each): each "
        f"imports `{base_module()}`, then the targets, timed with `time.perf_counter()`; bytecode caches warm, as on a "
        "DAG processor.",
        f"Provider targets: {module_list} (every public module of `airflow_provider_dify.operators`, plus "
        "`airflow_provider_dify.sensors.indexing`).",
        f"Heavy modules checked (loaded by the targets but not by `{base_module()}`): "
        + ", ".join(HEAVY_MODULES)
        + ".",
        "Where the provider's extra import time goes (one `-X importtime` run, self time by top-level package): "
        + ", ".join(f"{name} {fmt_ms(seconds)}" for name, seconds in by_package)
        + "; the provider's slowest modules: "
        + ", ".join(f"`{name}` {fmt_ms(seconds)}" for name, seconds in own_modules)
        + ".",
        "The pytest plugin (the `pytest11` entry point) is loaded by every pytest session of a project that "
        "installs the provider; it imports the emulator only when a test asks for `dify_emulator`. Its row is the "
        f"median of {sizes.import_runs} fresh interpreters that import `pytest`, then the plugin (interleaved with "
        "the emulator's row).",
    ]
    summary = (
        f"+{fmt_ms(provider_extra)} over `{base_module()}` ({fmt_ms(base)}); HTTP operator +{fmt_ms(http_extra)}: "
        f"{fmt_ratio(figures['provider_over_http'])}; heavy modules pulled in: {', '.join(provider_heavy) or 'none'}; "
        f"pytest plugin +{fmt_ms(plugin_extra)} (the emulator would be +{fmt_ms(emulator_extra)})"
    )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["Import", "Time (median)", "New modules", "Heavy modules pulled in"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )
