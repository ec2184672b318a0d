"""
Section 7 (issue 8), records end to end on Dify's indexing pace: documents against chunks.

The emulator's indexing queue is set to the pace measured on a real Dify 1.13.2 server: one document at a
time per workspace, about 2 s each (shared/README.md, item 18). The documents path is run on a few documents
and extrapolated with that queue model; the chunks path is run in full.
"""

from __future__ import annotations

import time
from typing import Any

from bench.environment import (
    RECORD_TEXT_TEMPLATE,
    emulator_missing,
    minimal_context,
    missing,
    new_dataset,
    records,
    requests_by_route,
    running_emulator,
    searchable,
)
from bench.report import SectionResult, fmt_count, fmt_ratio, fmt_seconds, ratio
from bench.sizes import Sizes

KEY = "pace"
TITLE = "7. Records end to end on Dify's indexing pace: documents vs chunks"
QUESTION = (
    "How long until records are written and searchable when Dify indexes one document at a time (~2 s each): "
    "one document per record (`DifySyncDocumentsOperator` + wait for indexing) or one chunk per record "
    "(`DifySyncChunksOperator`)?"
)
#: Chunks per add request measured on a real 1.13.2 server, 100 per request (shared/README.md, item 19).
REAL_SERVER_CHUNKS_PER_SECOND = 220.0


def _token(row: dict[str, str]) -> str:
    return row["body"].split()[0]


DOCUMENT_ROUTE = "/datasets/{dataset_id}/documents/{document_id}"
DOCUMENT_LIST_ROUTE = "/datasets/{dataset_id}/documents"


def _last_write(dify: Any) -> float:
    """When the last write of the sync arrived (the search made afterwards is not a write of the sync)."""
    return max(
        (
            call.time
            for call in dify.calls
            if call.method not in ("GET", "HEAD") and not (call.route or "").endswith("/retrieve")
        ),
        default=0.0,
    )


def reads_per_poll(dify: Any, poll_interval: float) -> list[int]:
    """Status reads of each indexing poll: document details and document-list pages (a poll's reads are told apart
    by the pause between polls)."""
    routes = (DOCUMENT_ROUTE, DOCUMENT_LIST_ROUTE)
    times = sorted(call.time for call in dify.calls if call.method == "GET" and call.route in routes)
    polls: list[int] = []
    previous = None
    for moment in times:
        if previous is None or moment - previous > poll_interval / 2:
            polls.append(0)
        polls[-1] += 1
        previous = moment
    return polls


def documents_path(sizes: Sizes, count: int, poll_interval: float) -> dict[str, Any]:
    """Sync ``count`` records as documents and wait for their indexing; then check the last one is searchable."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    rows = records(count)
    with running_emulator(indexing_seconds=sizes.pace_seconds_per_document) as dify:
        hook = DifyHook()
        dataset_id = new_dataset(hook, "bench-pace-documents")
        operator = DifySyncDocumentsOperator(
            task_id="sync_documents",
            dataset_id=dataset_id,
            records=rows,
            key_field="id",
            text_template=RECORD_TEXT_TEMPLATE,
            indexing_technique="economy",
            wait_for_indexing=True,
            poll_interval=poll_interval,
            indexing_timeout=24 * 3600,
        )
        dify.reset_counters()
        wall_start = time.time()
        started = time.perf_counter()
        manifest = operator.execute(minimal_context())
        found = searchable(hook, dataset_id, _token(rows[-1]))
        seconds = time.perf_counter() - started
        write_seconds = _last_write(dify) - wall_start
        completed = sum(1 for doc in dify.documents(dataset_id) if doc.get("indexing_status") == "completed")
        result = {
            "records": count,
            "seconds": seconds,
            "write_seconds": write_seconds,
            "searchable": found,
            "completed": completed,
            "indexed": (manifest.get("indexing") or {}).get("completed", 0),
            "writes": dify.write_count(),
            "reads": dify.count(method="GET"),
            "routes": requests_by_route(dify),
            "pickup": dify.config.queue_pickup_seconds,
            "reads_per_poll": reads_per_poll(dify, poll_interval),
        }
        hook.close()
    if not found or completed != count:
        raise RuntimeError(f"documents path incomplete: {completed} of {count} indexed, searchable={found}")
    return result


def chunks_path(sizes: Sizes, count: int, poll_interval: float) -> dict[str, Any]:
    """Sync ``count`` records as chunks of one document; then check the last one is searchable."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync import DifySyncChunksOperator

    rows = records(count)
    with running_emulator(indexing_seconds=sizes.pace_seconds_per_document) as dify:
        hook = DifyHook()
        dataset_id = new_dataset(hook, "bench-pace-chunks")
        operator = DifySyncChunksOperator(
            task_id="sync_chunks",
            dataset_id=dataset_id,
            records=rows,
            key_field="id",
            text_template=RECORD_TEXT_TEMPLATE,
            document_name="bench records",
            indexing_technique="economy",
            poll_interval=poll_interval,
            indexing_timeout=3600,
        )
        dify.reset_counters()
        started = time.perf_counter()
        manifest = operator.execute(minimal_context())
        found = searchable(hook, dataset_id, _token(rows[-1]))
        seconds = time.perf_counter() - started
        document_id = manifest["document_id"]
        stored = [seg for seg in dify.segments(dataset_id, document_id) if seg.get("status") == "completed"]
        result = {
            "records": count,
            "seconds": seconds,
            "searchable": found,
            "added": manifest["counts"]["added"],
            "completed_chunks": len(stored),
            "add_requests": manifest["requests"]["add"],
            "batch_size": operator.batch_size,
            "max_workers": operator.max_workers,
            "writes": dify.write_count(),
            "reads": dify.count(method="GET"),
            "routes": requests_by_route(dify),
        }
        hook.close()
    if not found or result["added"] != count:
        raise RuntimeError(f"chunks path incomplete: {result['added']} of {count} added, searchable={found}")
    return result


def _poll_reading(docs: dict[str, Any], big: int) -> str:
    polls = docs["reads_per_poll"]
    if polls and polls[-1] >= docs["records"]:
        return (
            f": every poll reads each document waited on, completed ones included, so waiting on {big:,} documents "
            f"would read {big:,} documents a poll"
        )
    return ": reads fall as documents complete"


def run(sizes: Sizes) -> SectionResult:
    """The documents path on ``sizes.pace_documents`` (extrapolated), the chunks path on ``sizes.pace_records``."""
    reason = emulator_missing() or missing(
        "airflow_provider_dify.operators.sync", "DifySyncDocumentsOperator", "DifySyncChunksOperator"
    )
    if reason:
        return SectionResult(KEY, TITLE, QUESTION, not_measured=reason)
    pace = sizes.pace_seconds_per_document
    big = sizes.pace_records
    poll_interval = min(1.0, pace)
    docs = documents_path(sizes, sizes.pace_documents, poll_interval)
    chunks = chunks_path(sizes, big, poll_interval)

    small = docs["records"]
    # Queue model: one document at a time, `pace` seconds each, so the queue, not the client, sets the pace
    # while the writes outrun it. The last of `big` documents is indexed (big - small) * pace later than the
    # last of `small`; the writes alone would take big / (measured write rate).
    queue_bound = docs["seconds"] + (big - small) * pace
    write_bound = docs["write_seconds"] / small * big + pace
    docs_big = max(queue_bound, write_bound)
    model_small = docs["pickup"] + small * pace
    real_chunks_seconds = big / REAL_SERVER_CHUNKS_PER_SECOND + pace

    figures = {
        "pace_seconds_per_document": pace,
        "documents_measured": float(small),
        "documents_measured_seconds": docs["seconds"],
        "documents_model_seconds": model_small,
        "documents_write_seconds": docs["write_seconds"],
        "documents_extrapolated_seconds": docs_big,
        "chunks_records": float(big),
        "chunks_seconds": chunks["seconds"],
        "chunks_records_per_second": big / chunks["seconds"],
        "documents_records_per_second": small / docs["seconds"],
        "documents_over_chunks": ratio(docs_big, chunks["seconds"]),
        "chunks_add_requests": float(chunks["add_requests"]),
        "documents_requests": float(docs["writes"] + docs["reads"]),
        "chunks_requests": float(chunks["writes"] + chunks["reads"]),
        "documents_polls": float(len(docs["reads_per_poll"])),
        "documents_first_poll_reads": float(docs["reads_per_poll"][0] if docs["reads_per_poll"] else 0),
        "documents_last_poll_reads": float(docs["reads_per_poll"][-1] if docs["reads_per_poll"] else 0),
    }
    rows = [
        [
            f"documents, {small:,} records (measured)",
            fmt_seconds(docs["seconds"]),
            f"{figures['documents_records_per_second']:.2f}",
            fmt_count(docs["writes"]),
            fmt_count(docs["reads"]),
        ],
        [
            f"documents, {big:,} records (extrapolated, queue model)",
            fmt_seconds(docs_big),
            f"{big / docs_big:.2f}",
            "",
            "",
        ],
        [
            f"chunks, {big:,} records (measured)",
            fmt_seconds(chunks["seconds"]),
            f"{figures['chunks_records_per_second']:.0f}",
            fmt_count(chunks["writes"]),
            fmt_count(chunks["reads"]),
        ],
        [f"documents / chunks, {big:,} records", fmt_ratio(figures["documents_over_chunks"]), "", "", ""],
    ]
    notes = [
        f"The emulator's indexing queue runs one document at a time per workspace, {pace:g} s each "
        f"(`indexing_seconds={pace:g}`), the pace measured on a real Dify 1.13.2 server (shared/README.md, item 18: "
        "40 small documents created in 0.9 s, the last indexed after 78 s). Both operators are called with "
        f"`execute()` directly, `poll_interval={poll_interval:g}`; the clock stops when a keyword search finds the "
        "last record.",
        f"**The {big:,}-record documents figure is not measured: it is computed.** Running it would take about "
        f"{fmt_seconds(docs_big)}. The documents path was measured on {small:,} records: written in "
        f"{fmt_seconds(docs['write_seconds'])}, all indexed and searchable after {fmt_seconds(docs['seconds'])} "
        f"(the queue model alone predicts {fmt_seconds(model_small)} = {docs['pickup']:g} s pickup + {small} x "
        f"{pace:g} s). Since the writes outrun the queue, each further document adds {pace:g} s: "
        f"{fmt_seconds(docs['seconds'])} + ({big:,} - {small:,}) x {pace:g} s = {fmt_seconds(queue_bound)} "
        f"(the writes alone, at the measured rate, would take {fmt_seconds(write_bound)}).",
        f"The chunks path ran in full: one document holding the chunks (indexed once, {pace:g} s), then "
        f"{chunks['add_requests']:,} add requests of {chunks['batch_size']} chunks on {chunks['max_workers']} "
        f"workers; {chunks['completed_chunks']:,} chunks completed (one per record, the holder has no text). "
        f"Requests: {chunks['routes']}.",
        f"Documents path requests ({small:,} records): {docs['routes']}. Waiting for indexing read "
        f"{figures['documents_first_poll_reads']:.0f} document(s) in the first poll and "
        f"{figures['documents_last_poll_reads']:.0f} in the last ({len(docs['reads_per_poll'])} polls)"
        f"{_poll_reading(docs, big)}.",
        "The emulator adds chunks faster than a real server: at the rate measured on Dify 1.13.2 (item 19: "
        f"{REAL_SERVER_CHUNKS_PER_SECOND:.0f} chunks/s at 100 a request) the chunks path would take about "
        f"{fmt_seconds(real_chunks_seconds)} for {big:,} records, "
        f"{fmt_ratio(ratio(docs_big, real_chunks_seconds))} faster than documents (an estimate, not measured here).",
    ]
    summary = (
        f"{big:,} records searchable: chunks {fmt_seconds(chunks['seconds'])} (measured) vs documents "
        f"{fmt_seconds(docs_big)} (extrapolated from {small} measured): {fmt_ratio(figures['documents_over_chunks'])}"
    )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["Path", "Written and searchable", "Records/s", "Write requests", "Read requests"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )
