"""
Section 11 (issue 14), memory at scale: peak RSS of a sync process at 10,000 and 100,000 records.

Each sync runs in a fresh process (spawned), against the emulator served by the bench process, so the figure is
the sync's alone. The baseline is the process's peak RSS after the imports and the connection, before the
records exist; the records are made in the child (about 300 bytes of text each).
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
TITLE = "11. Memory at scale: peak RSS of one sync process"
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
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator, DifySyncDocumentsOperator
    from bench.environment import minimal_context

    DifyHook().settings  # noqa: B018 - the connection, before the baseline
    baseline = _peak_rss()
    rows = records(count, words=40)
    text_bytes = sum(len(row["body"]) + len(row["title"]) for row in rows)
    common = {"task_id": "sync", "dataset_id": dataset_id, "records": rows, "key_field": "id", "max_workers": 8}
    if granularity == "documents":
        operator = DifySyncDocumentsOperator(text_template="{{ title }}\n\n{{ body }}", **common)
    else:
        operator = DifySyncChunksOperator(
            document_name="memory", text_template="{{ title }}: {{ body }}", poll_interval=0.05, **common
        )
    manifest = operator.execute(minimal_context())
    out.put({"baseline": baseline, "peak": _peak_rss(), "text_bytes": text_bytes, "counts": manifest["counts"]})


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
    beyond = report["peak"] - report["baseline"] - report["text_bytes"]
    return {
        "records": count,
        "baseline": report["baseline"],
        "peak": report["peak"],
        "text_bytes": report["text_bytes"],
        "per_record": beyond / count,
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
            fmt_mib(f["baseline"]),
            fmt_mib(f["peak"]),
            fmt_mib(f["text_bytes"]),
            f"{f['per_record'] / 1024:.2f} KiB",
        ]
        for granularity, f in measured
    ]
    figures = {f"{g}_{int(f['records'])}_{name}": f[name] for g, f in measured for name in ("peak", "per_record")}
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["sync", "records", "baseline RSS", "peak RSS", "texts", "beyond the texts, per record"],
        rows=rows,
        figures=figures,
        notes=[
            "Baseline: the process's peak RSS after importing Airflow and the provider and reading the connection."
            " Beyond the texts: (peak - baseline - the records' text bytes) / records; it includes the records"
            " as Python dicts (the source), the rendered records, the listing of the knowledge base read back"
            " and the manifest.",
            "100,000 documents are not run here: on the emulator that takes minutes of writes; the chunk syncs"
            " show how memory grows with the number of records.",
        ],
        summary=", ".join(
            f"{g} x{fmt_count(f['records'])}: {fmt_mib(f['peak'])} peak, {f['per_record'] / 1024:.2f} KiB/record"
            for g, f in measured
        ),
    )
