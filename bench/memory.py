"""
Section 12 (issue 14), memory at scale: peak RSS of a sync process at 10,000 and 100,000 records.

Each sync runs in a fresh process (spawned), against the emulator served by the bench process, so the figure is
the sync's alone. The records are made in the child (about 300 bytes of text each) before the baseline: they
are the user's (what a task hands the operator), and everything the sync allocates after them, the copies it
makes of them included, is the provider's.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from typing import Any

from bench.environment import emulator_missing, records, running_emulator
from bench.report import SectionResult, fmt_count, fmt_mib
from bench.sizes import Sizes

KEY = "rss"
TITLE = "12. Memory at scale: peak RSS of one sync process"
QUESTION = "How much memory does one sync process take for 10,000 and 100,000 records, beyond the texts themselves?"


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc (``VmHWM``: peak RSS since exec; ``getrusage`` keeps the
    peak of the process the child was forked from)."""
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_rss() -> int:
    return _status_bytes("VmHWM")


def _child(connection: str, dataset_id: str, granularity: str, count: int, out: Any) -> None:
    os.environ["AIRFLOW_CONN_DIFY_DEFAULT"] = connection
    import time

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
    from bench.environment import minimal_context

    DifyHook().settings  # noqa: B018 - the connection, before the baseline
    before_source = _peak_rss()
    rows = records(count, words=40)
    text_bytes = sum(len(row["body"]) + len(row["title"]) for row in rows)
    baseline = _peak_rss()  # the source records are the user's: in the baseline
    common = {"task_id": "sync", "dataset_id": dataset_id, "records": rows, "key_field": "id", "max_workers": 8}
    if granularity == "documents":
        operator = DifySyncDocumentsOperator(text_template="{{ title }}\n\n{{ body }}", **common)
    else:
        operator = DifySyncChunksOperator(
            document_name="memory", text_template="{{ title }}: {{ body }}", poll_interval=0.05, **common
        )
    started = time.perf_counter()
    manifest = operator.execute(minimal_context())
    seconds = time.perf_counter() - started
    out.put(
        {
            "source": baseline - before_source,
            "baseline": baseline,
            "peak": _peak_rss(),
            "text_bytes": text_bytes,
            "seconds": seconds,
            "counts": manifest["counts"],
        }
    )


def one_run(granularity: str, count: int) -> dict[str, float]:
    """Sync ``count`` records as ``granularity`` in a fresh process; return its memory figures."""
    context = multiprocessing.get_context("spawn")
    with running_emulator(indexing_seconds=0, queue_pickup_seconds=0) as dify:
        dataset_id = dify.create_dataset(f"memory-{granularity}-{count}")["id"]
        out = context.Queue()
        process = context.Process(target=_child, args=(dify.connection_json, dataset_id, granularity, count, out))
        process.start()
        report = out.get(timeout=1800)
        process.join(timeout=60)
    written = report["counts"].get("created", report["counts"].get("added", 0))
    if written != count:
        raise RuntimeError(f"memory: {granularity} sync of {count} wrote {json.dumps(report['counts'])}")
    provider = report["peak"] - report["baseline"]
    return {
        "records": count,
        "source": report["source"],
        "baseline": report["baseline"],
        "peak": report["peak"],
        "text_bytes": report["text_bytes"],
        "seconds": report["seconds"],
        "provider_per_record": provider / count,
        "provider_minus_texts_per_record": (provider - report["text_bytes"]) / count,
    }


def run(sizes: Sizes) -> SectionResult:
    """Documents and chunks at each of the sizes of ``sizes.memory_runs``."""
    reason = emulator_missing()
    if reason:
        return SectionResult(KEY, TITLE, QUESTION, not_measured=reason)
    measured = [(granularity, one_run(granularity, count)) for granularity, count in sizes.memory_runs]
    rows = [
        [
            granularity,
            fmt_count(f["records"]),
            f"{f['seconds']:.0f} s",
            fmt_mib(f["source"]),
            fmt_mib(f["baseline"]),
            fmt_mib(f["peak"]),
            fmt_mib(f["text_bytes"]),
            f"{f['provider_per_record'] / 1024:.2f} KiB",
            f"{f['provider_minus_texts_per_record'] / 1024:.2f} KiB",
        ]
        for granularity, f in measured
    ]
    names = ("peak", "provider_per_record", "provider_minus_texts_per_record", "seconds")
    figures = {f"{g}_{int(f['records'])}_{name}": f[name] for g, f in measured for name in names}
    slopes = []
    for granularity in dict.fromkeys(g for g, _ in measured):
        runs = sorted((f for g, f in measured if g == granularity), key=lambda f: f["records"])
        if len(runs) >= 2 and runs[-1]["records"] > runs[0]["records"]:
            small, large = runs[0], runs[-1]
            extra = large["provider_minus_texts_per_record"] * large["records"]
            extra -= small["provider_minus_texts_per_record"] * small["records"]
            slope = extra / (large["records"] - small["records"])
            figures[f"{granularity}_marginal_minus_texts_per_record"] = slope
            slopes.append(
                f"{granularity} {slope / 1024:.2f} KiB from {fmt_count(small['records'])} to"
                f" {fmt_count(large['records'])}"
            )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=[
            "sync",
            "records",
            "sync took",
            "source records",
            "baseline RSS",
            "peak RSS",
            "texts",
            "provider, per record",
            "beyond the texts, per record",
        ],
        rows=rows,
        figures=figures,
        notes=[
            "Source records: what building the records (dicts of `id`, `title`, `body`) added to the process's"
            " RSS. They are the user's, so the baseline is taken after them (and after importing Airflow and the"
            " provider and reading the connection).",
            "Provider, per record: (peak - baseline) / records, everything the sync allocated, its own copies of"
            " the records included: the rendered records (name, text, hash), the plan, the listing of the"
            " knowledge base read back, the writes queued on the thread pool (a bounded window), the manifest."
            " Beyond the texts: the same less the texts' bytes, one rendered copy of which the sync holds to"
            " send. It includes what the sync costs whatever the number of records (modules imported on first"
            " use, threads, connection pools), a larger share at 10,000 records than at 100,000.",
            "The emulator runs in the bench's process, not in the sync's; each sync starts from an empty knowledge"
            " base (every record is a create or an add, and the chunk sync reads every chunk back to verify).",
            *(
                [f"What each further record costs beyond its text (the slope between two sizes): {'; '.join(slopes)}."]
                if slopes
                else []
            ),
        ],
        summary=", ".join(
            f"{g} x{fmt_count(f['records'])}: {fmt_mib(f['peak'])} peak,"
            f" {f['provider_minus_texts_per_record'] / 1024:.2f} KiB/record beyond the texts"
            for g, f in measured
        ),
    )
