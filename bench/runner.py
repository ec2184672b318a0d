"""
The command line: ``python -m bench [--quick] [--only NAME ...] [--output PATH]``.

A full run writes ``docs/performance.md``; ``--quick`` and ``--only`` print the report (unless ``--output`` is
given) so a fast check never overwrites the committed figures.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.report import SectionResult, machine_facts, render
from bench.sizes import FULL, QUICK, Sizes

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "performance.md"

#: Section name -> (module, title). Modules are imported when their section runs.
SECTIONS: dict[str, str] = {
    "imports": "bench.imports",
    "calls": "bench.calls",
    "export": "bench.export",
    "upload": "bench.upload",
    "waiting": "bench.waiting",
    "pace": "bench.pace",
    "retrieval": "bench.retrieval",
    "budget": "bench.budget",
    "scale": "bench.scale",
    "rss": "bench.memory",
    "changes": "bench.change_feed",
}
ALIASES = {
    "rerun": "export",
    "parse": "imports",
    "memory": "upload",
    "indexing": "pace",
    "chunks": "pace",
    "quality": "retrieval",
}


def _section_runner(name: str) -> Callable[[Sizes], SectionResult | list[SectionResult]]:
    import importlib

    return importlib.import_module(SECTIONS[name]).run


def run_sections(names: Sequence[str], sizes: Sizes, log: Callable[[str], None] = print) -> list[SectionResult]:
    """Run the named sections in order; a section that fails is reported as not measured, the others go on."""
    results: list[SectionResult] = []
    for name in names:
        log(f"[bench] {name} ...")
        started = time.perf_counter()
        try:
            outcome = _section_runner(name)(sizes)
        except Exception as error:
            traceback.print_exc()
            outcome = SectionResult(name, name, not_measured=f"the benchmark failed: {type(error).__name__}: {error}")
        elapsed = time.perf_counter() - started
        for result in outcome if isinstance(outcome, list) else [outcome]:
            result.seconds = elapsed
            results.append(result)
            state = "done" if result.measured else f"not measured ({result.not_measured})"
            log(f"[bench] {result.title}: {state} in {elapsed:.0f} s")
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; prints the report instead of writing it")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--output", type=Path, help=f"write the report here (default for a full run: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    chosen = []
    for item in args.only or []:
        for name in item.split(","):
            name = ALIASES.get(name.strip(), name.strip())
            if name not in SECTIONS:
                parser.error(f"--only {name!r}: unknown section; choose from {', '.join(SECTIONS)}")
            if name not in chosen:
                chosen.append(name)
    args.sections = chosen or list(SECTIONS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write or print the report; exit status 0 even when a section was not measured."""
    args = parse_args(argv)
    from bench.environment import use_private_airflow_home

    use_private_airflow_home()
    logging.basicConfig(level=logging.WARNING)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    results = run_sections(args.sections, sizes)
    total = time.perf_counter() - started
    if args.quick or args.only:
        command = f"`.venv/bin/python -m bench {shlex.join(list(argv if argv is not None else sys.argv[1:]))}`"
    else:
        command = "`make bench` (`.venv/bin/python -m bench`)"
    report = render(results, command, machine_facts(), total)
    output = args.output or (None if (args.quick or args.only) else DEFAULT_OUTPUT)
    if output is None:
        print(report)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report)
        print(f"[bench] wrote {output} ({total / 60:.1f} min)")
    return 0
