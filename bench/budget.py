"""
Section 9 (issue 14), the rate budget: 1, 2 and 4 worker processes syncing into one workspace under one limit.

The emulator enforces Dify's rate limit: a sliding window that counts refused calls too. To keep the run
short the window is shortened (the limiter is told the same window through the connection's
``rate_limit_window``), which scales time and leaves the ratios as they are with 60 s. Each worker process is
given the workspace's whole limit (``requests_per_minute``), as a team would configure its Celery workers, and
runs one shard of one sync (``shard=(i, n)``), as a mapped task would. Three ways of sharing are measured: the
default (the processes of one machine share a window in a locked file), each process on its own
(``rate_limit_storage="process"``: what workers on separate machines do without a store; each shard keeps to
its part of the limit), and, with a Redis server on the machine, one window in Redis (``rate_limit_storage``
a Redis URI). Last, separate syncs (not shards of one) with each process on its own: nothing tells them their
parts, so they learn their shares from the 403s.

The time-optimal schedule for ``A`` writes (every call the window counted but the 403s) under a limit of ``R``
a window ``W``: a window's worth at once, then ``R`` a window: ``(A - R) / R * W``. The share reached is that
time over the time the writes took (from the first write to the last one).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from contextlib import contextmanager
from typing import Any

from bench.environment import emulator_missing, minimal_context, new_dataset, records, running_emulator
from bench.report import SectionResult, fmt_count, fmt_seconds, ratio
from bench.sizes import Sizes

KEY = "budget"
TITLE = "9. Rate budget: workers sharing one workspace's rate limit"
QUESTION = (
    "Under Dify's rate limit (a sliding window per workspace that counts refused calls), what share of the "
    "time-optimal write rate do 1, 2 and 4 worker processes reach together, each told the workspace's limit, "
    "and how many 403s do they draw?"
)
WRITE_METHODS = ("POST", "PATCH", "DELETE")
MACHINE = "shards, one machine's window (default)"
PROCESS = "shards, each process alone ('process')"
REDIS = "shards, one window in Redis"
SEPARATE = "separate syncs, each process alone ('process')"
MODE_KEYS = {MACHINE: "machine", PROCESS: "process", REDIS: "redis", SEPARATE: "separate"}


def _worker(
    connection: str,
    dataset_id: str,
    rows: tuple[int, int],
    shard: tuple[int, int] | None,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One worker process: sync its shard of the records (``shard``), or the records of ``rows`` as a sync of its
    own (scope ``budget:<index>``), and report its figures."""
    os.environ["AIRFLOW_CONN_DIFY_DEFAULT"] = connection
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    start, count = rows
    own = {"shard": shard, "scope": "budget", "name_prefix": "doc-"} if shard else {}
    index = shard[0] if shard else start
    operator = DifySyncDocumentsOperator(
        task_id=f"worker_{index}",
        dataset_id=dataset_id,
        records=records(count, words=12, start=start),
        key_field="id",
        text_template="{{ body }}",
        **(own or {"scope": f"budget:{start}", "name_prefix": f"w{start}-"}),
    )
    DifyHook().settings  # noqa: B018 - parse the connection before the start signal
    ready.put(index)
    go.wait()
    manifest = operator.execute(minimal_context())
    budget = operator._shared_hook().rate_budget
    out.put({"index": index, "created": manifest["counts"]["created"], "refusals": budget.refusals})


@contextmanager
def _redis_server() -> Any:
    """A private ``redis-server`` on a free 127.0.0.1 port, or ``None`` when none is installed."""
    import shutil

    from tests.services import redis_server

    if shutil.which("redis-server") is None:
        yield None
        return
    with redis_server() as url:
        yield url


def one_run(sizes: Sizes, workers: int, storage: str | None = None, *, sharded: bool = True) -> dict[str, float]:
    """Sync ``budget_documents`` records over ``workers`` processes (shards of one sync, or separate syncs of
    equal parts); return the figures of the run."""
    per_window, window = sizes.budget_per_window, sizes.budget_window_seconds
    context = multiprocessing.get_context("spawn")
    knobs = {"indexing_seconds": 0, "rate_limit_per_minute": per_window, "rate_limit_window_seconds": window}
    with running_emulator(**knobs) as dify:
        from airflow_provider_dify.hooks.dify import DifyHook

        dataset_id = new_dataset(DifyHook(), "budget")
        settings = json.loads(dify.connection_json)
        extra = {"requests_per_minute": per_window, "rate_limit_window": window}
        if storage:
            extra["rate_limit_storage"] = storage
        settings["extra"] = {**(settings.get("extra") or {}), **extra}
        time.sleep(window)  # the dataset's creation leaves the window
        ready, go, out = context.Queue(), context.Event(), context.Queue()
        total, part = sizes.budget_documents, sizes.budget_documents // workers
        work = (
            [((0, total), (index, workers)) for index in range(workers)]
            if sharded
            else [((index * part, part), None) for index in range(workers)]
        )
        processes = [
            context.Process(
                target=_worker, args=(json.dumps(settings), dataset_id, rows, shard, ready, go, out), daemon=True
            )
            for rows, shard in work
        ]
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=120)
        started = time.time()
        go.set()
        reports = [out.get(timeout=600) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        calls = [call for call in dify.calls if call.time >= started and call.method in WRITE_METHODS]
        # Every call the window counted but the 403s: the writes and the refusals of another kind (a metadata
        # field that a parallel shard created first), which take their places in the window too.
        counted = [call for call in calls if call.status != 403]
        refused = [call for call in calls if call.status == 403]
        first = min(call.time for call in calls)
        last = max(call.time for call in counted)
        optimal = max(0.0, len(counted) - per_window) / per_window * window
        # No schedule does better under a sliding window: at most R calls in any [t, t + W).
        bound = (len(counted) - 1) // per_window * window
        return {
            "workers": workers,
            "documents": sum(report["created"] for report in reports),
            "writes": len(counted),
            "refused": len(refused),
            "seconds": last - first,
            "optimal_seconds": optimal,
            "share": ratio(optimal, last - first),
            "bound_seconds": bound,
            "bound_share": ratio(bound, last - first),
        }


def _shared_window(window: float) -> int:
    from airflow_provider_dify.hooks.budget import shared_window_seconds

    return shared_window_seconds(window)


def run(sizes: Sizes) -> SectionResult:
    """Measure the rate budget with 1, 2 and 4 workers: shards sharing a window on the machine, shards on their
    own, shards sharing a Redis window (when Redis is installed), and separate syncs on their own."""
    reason = emulator_missing()
    if reason:
        return SectionResult(KEY, TITLE, QUESTION, not_measured=reason)
    several = sizes.budget_workers[1:]
    runs = [(MACHINE, one_run(sizes, workers)) for workers in sizes.budget_workers]
    runs += [(PROCESS, one_run(sizes, workers, "process")) for workers in several]
    with _redis_server() as storage:
        if storage is not None:
            runs += [(REDIS, one_run(sizes, workers, storage)) for workers in several]
    runs += [(SEPARATE, one_run(sizes, workers, "process", sharded=False)) for workers in several]
    rows = [
        [
            mode,
            str(int(figures["workers"])),
            fmt_count(figures["writes"]),
            fmt_seconds(figures["seconds"]),
            fmt_seconds(figures["optimal_seconds"]),
            f"{figures['share']:.2f}",
            f"{figures['bound_share']:.2f}",
            f"{fmt_count(figures['refused'])} ({figures['refused'] / max(1, figures['writes']):.1%})",
        ]
        for mode, figures in runs
    ]
    figures = {
        f"{MODE_KEYS[mode]}_{int(f['workers'])}_{name}": f[name]
        for mode, f in runs
        for name in ("share", "bound_share", "refused", "writes")
    }
    notes = [
        f"Limit R = {sizes.budget_per_window} writes per {sizes.budget_window_seconds:g} s window (the emulator's"
        " window shortened from 60 s, the connection told the same window); every worker's connection has"
        f" `requests_per_minute` = R. {sizes.budget_documents} documents: 'shards' rows run one sync of them all"
        " with `shard=(i, n)` in each worker process (one scope); 'separate syncs' rows give each process an"
        " equal part of them as a sync of its own (one scope each).",
        "Writes: every call the window counted but the 403s (the creations of the same metadata fields by"
        " parallel shards, refused as existing, included). Time-optimal: a window's worth at once, then R a"
        " window: (writes - R) / R x window. Share = that time over the time from the first write to the last.",
        "The window bound: under a sliding window no schedule puts more than R writes in any window, so the last"
        " of A writes comes at least floor((A - 1) / R) windows after the first; the time-optimal figure above is"
        " below that bound whenever (A - R) / R is not a whole number.",
        "The shared window is lengthened to a whole number of seconds above the window plus a margin (`limits`"
        f" counts whole seconds): {_shared_window(sizes.budget_window_seconds)} s for the"
        f" {sizes.budget_window_seconds:g} s window here, {_shared_window(60.0)} s for Dify's 60 s; its share is"
        " bounded by that ratio.",
        "403s count the writes Dify refused; each is repeated by the worker that drew it once its budget has room.",
        "The worker processes run on one machine, so the default shares one window between them (a locked file):"
        " exact, with no infrastructure. 'each process alone' is what workers on separate machines do without a"
        " store: a shard keeps to its part of R (R split in proportion to the shards' records, which every shard"
        " counts); separate syncs have no parts and learn their shares from the 403s they draw.",
        "The number of documents is chosen so that the writes (documents, plus the metadata fields and one"
        " metadata batch per 100 documents of a worker) fill about four fifths of their last window: the share"
        " is not lowered by a last, nearly empty window, and the shards' parts (whole calls, and each shard's"
        " few writes of its own) have room in it.",
    ]
    if not any(mode == REDIS for mode, _ in runs):
        notes.append("The Redis runs need `redis-server` on the machine; it is not installed here.")
    summary = "; ".join(
        f"{MODE_KEYS[mode]} "
        + ", ".join(f"{int(f['workers'])}w {f['share']:.2f} ({int(f['refused'])} 403s)" for m, f in runs if m == mode)
        for mode in dict.fromkeys(mode for mode, _ in runs)
    )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["budget", "workers", "writes", "took", "time-optimal", "share", "share of the window bound", "403s"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=f"share of the time-optimal rate: {summary}",
    )
