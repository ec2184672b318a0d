"""
Sections 3 and 4, export throughput and re-run cost.

3: sync records into an empty knowledge base through a slow link (every request delayed), with
``DifySyncDocumentsOperator`` against a naive loop creating the documents one by one with ``requests``.
4: the same sync again with nothing changed: how many writes and reads each approach makes.
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
    record_text,
    records,
    requests_by_route,
    running_emulator,
)
from bench.report import SectionResult, fmt_count, fmt_ratio, fmt_seconds, ratio
from bench.sizes import Sizes

EXPORT_KEY = "export"
EXPORT_TITLE = "3. Export throughput"
EXPORT_QUESTION = (
    "How fast do records get into an empty knowledge base when every request takes 50 ms: the sync operator "
    "against a loop that creates the documents one by one with `requests`?"
)
RERUN_KEY = "rerun"
RERUN_TITLE = "4. Re-run cost (nothing changed)"
RERUN_QUESTION = (
    "What does running the same sync again cost when no record changed: writes (each one re-indexes a "
    "document in Dify) and reads?"
)


def naive_loop(url: str, api_key: str, dataset_id: str, rows: list[dict[str, str]]) -> int:
    """What a DAG author writes without the provider: one ``create-by-text`` POST per record, in order."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    created = 0
    try:
        for row in rows:
            response = session.post(
                f"{url}/datasets/{dataset_id}/document/create-by-text",
                json={
                    "name": row["id"],
                    "text": record_text(row),
                    "indexing_technique": "economy",
                    "process_rule": {"mode": "automatic"},
                },
                timeout=60,
            )
            response.raise_for_status()
            created += 1
    finally:
        session.close()
    return created


#: What an unchanged re-run of the export may cost at most (2,000 documents: 1 dataset read + 20 list pages).
RERUN_MAX_WRITES = 0
RERUN_MAX_READS = 25


def sync_operator(dataset_id: str, rows: list[dict[str, str]]) -> Any:
    """
    The provider's way: ``DifySyncDocumentsOperator`` with its defaults (4 workers, metadata in batches), owning
    its scope with ``delete_missing`` as an export that must converge under overlapping runs does (the whole
    knowledge base is listed; only what a plan deletes is checked again).
    """
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    return DifySyncDocumentsOperator(
        task_id="sync_documents",
        dataset_id=dataset_id,
        records=rows,
        key_field="id",
        text_template=RECORD_TEXT_TEMPLATE,
        indexing_technique="economy",
        scope="bench:export",
        delete_missing=True,
    )


def _counts(dify: Any) -> dict[str, Any]:
    return {
        "writes": dify.write_count(),
        "reads": dify.count(method="GET"),
        "all": dify.count(),
        "routes": requests_by_route(dify),
    }


def run(sizes: Sizes) -> list[SectionResult]:
    """Sections 3 and 4 in one emulator session (the re-run needs the export's knowledge base)."""
    reason = emulator_missing() or missing("airflow_provider_dify.operators.sync", "DifySyncDocumentsOperator")
    if reason:
        return [
            SectionResult(EXPORT_KEY, EXPORT_TITLE, EXPORT_QUESTION, not_measured=reason),
            SectionResult(RERUN_KEY, RERUN_TITLE, RERUN_QUESTION, not_measured=reason),
        ]
    from airflow_provider_dify.hooks.dify import DifyHook

    count = sizes.export_records
    rows = records(count)
    latency = sizes.export_latency_seconds
    with running_emulator(indexing_seconds=0, latency_seconds=0) as dify:
        hook = DifyHook()
        operator_dataset = new_dataset(hook, "bench-export-operator")
        naive_dataset = new_dataset(hook, "bench-export-naive")
        dify.configure(latency_seconds=latency)

        # 3. First export into empty knowledge bases.
        dify.reset_counters()
        started = time.perf_counter()
        operator = sync_operator(operator_dataset, rows)
        manifest = operator.execute(minimal_context())
        operator_seconds = time.perf_counter() - started
        operator_requests = _counts(dify)

        dify.reset_counters()
        started = time.perf_counter()
        naive_loop(dify.url, dify.api_key, naive_dataset, rows)
        naive_seconds = time.perf_counter() - started
        naive_requests = _counts(dify)

        dify.configure(latency_seconds=0)
        operator_documents = len(dify.documents(operator_dataset))
        naive_documents = len(dify.documents(naive_dataset))
        if manifest["counts"]["created"] != count or operator_documents != count or naive_documents != count:
            raise RuntimeError(
                f"export incomplete: manifest {manifest['counts']}, {operator_documents} and {naive_documents} "
                f"documents for {count} records"
            )
        dify.configure(latency_seconds=latency)

        # 4. The same sync again, nothing changed.
        dify.reset_counters()
        started = time.perf_counter()
        rerun_manifest = sync_operator(operator_dataset, rows).execute(minimal_context())
        rerun_seconds = time.perf_counter() - started
        rerun_requests = _counts(dify)
        reads_allowed = max(RERUN_MAX_READS, 1 + -(-count // 100) + 4)  # the budget, or what more records need
        if rerun_requests["writes"] > RERUN_MAX_WRITES or rerun_requests["reads"] > reads_allowed:
            raise RuntimeError(
                f"the unchanged re-run of {count:,} documents made {rerun_requests['writes']} writes and "
                f"{rerun_requests['reads']} reads (at most {RERUN_MAX_WRITES} and {reads_allowed}): "
                f"{rerun_requests['routes']}"
            )

        # The naive loop has no way to tell what changed; it posts everything again (no latency: only counted).
        dify.configure(latency_seconds=0)
        dify.reset_counters()
        naive_loop(dify.url, dify.api_key, naive_dataset, rows)
        naive_rerun_requests = _counts(dify)
        naive_after_rerun = len(dify.documents(naive_dataset))
        hook.close()

    export = _export_result(
        sizes, count, operator_seconds, naive_seconds, operator_requests, naive_requests, manifest, operator
    )
    rerun = _rerun_result(
        count, rerun_seconds, rerun_requests, naive_rerun_requests, rerun_manifest, naive_after_rerun, latency
    )
    return [export, rerun]


def _export_result(
    sizes: Sizes,
    count: int,
    operator_seconds: float,
    naive_seconds: float,
    operator_requests: dict[str, Any],
    naive_requests: dict[str, Any],
    manifest: dict[str, Any],
    operator: Any,
) -> SectionResult:
    figures = {
        "records": float(count),
        "latency_seconds": sizes.export_latency_seconds,
        "operator_seconds": operator_seconds,
        "naive_seconds": naive_seconds,
        "operator_documents_per_second": count / operator_seconds,
        "naive_documents_per_second": count / naive_seconds,
        "speedup": ratio(naive_seconds, operator_seconds),
        "operator_requests": float(operator_requests["all"]),
        "naive_requests": float(naive_requests["all"]),
        "operator_writes": float(operator_requests["writes"]),
        "naive_writes": float(naive_requests["writes"]),
    }
    rows = [
        [
            "`DifySyncDocumentsOperator(...).execute()`",
            fmt_seconds(operator_seconds),
            f"{figures['operator_documents_per_second']:.1f}",
            fmt_count(operator_requests["writes"]),
            fmt_count(operator_requests["reads"]),
        ],
        [
            "naive loop: `requests` POST create-by-text per record",
            fmt_seconds(naive_seconds),
            f"{figures['naive_documents_per_second']:.1f}",
            fmt_count(naive_requests["writes"]),
            fmt_count(naive_requests["reads"]),
        ],
        ["naive / operator time", fmt_ratio(figures["speedup"]), "", "", ""],
    ]
    notes = [
        f"{count:,} records into an empty economy knowledge base each, on one emulator delaying every request by "
        f"{sizes.export_latency_seconds * 1000:.0f} ms (`latency_seconds`); indexing is instant here so only the "
        "export is timed (section 7 adds Dify's indexing pace).",
        f"The operator's `execute()` is called directly with a minimal context (no DAG run), with its defaults: "
        f"{operator.max_workers} parallel writers on one hook, the content hash and metadata written "
        f"{operator.metadata_batch_size} documents a request.",
        f"Operator requests: {operator_requests['routes']}.",
        f"Naive loop requests: {naive_requests['routes']}.",
        "Both sides end with every record as a document (checked in the emulator's state).",
    ]
    summary = (
        f"{count:,} docs at {sizes.export_latency_seconds * 1000:.0f} ms/request: "
        f"{figures['operator_documents_per_second']:.1f} vs {figures['naive_documents_per_second']:.1f} docs/s "
        f"({fmt_ratio(figures['speedup'])} faster)"
    )
    return SectionResult(
        EXPORT_KEY,
        EXPORT_TITLE,
        EXPORT_QUESTION,
        header=["Export", "Time", "Documents/s", "Write requests", "Read requests"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )


def _rerun_result(
    count: int,
    rerun_seconds: float,
    rerun_requests: dict[str, Any],
    naive_rerun_requests: dict[str, Any],
    rerun_manifest: dict[str, Any],
    naive_after_rerun: int,
    latency: float,
) -> SectionResult:
    figures = {
        "records": float(count),
        "operator_writes": float(rerun_requests["writes"]),
        "operator_reads": float(rerun_requests["reads"]),
        "operator_seconds": rerun_seconds,
        "operator_unchanged": float(rerun_manifest["counts"]["unchanged"]),
        "naive_writes": float(naive_rerun_requests["writes"]),
        "naive_reads": float(naive_rerun_requests["reads"]),
        "naive_documents_after": float(naive_after_rerun),
    }
    rows = [
        [
            "`DifySyncDocumentsOperator` again",
            fmt_count(rerun_requests["writes"]),
            fmt_count(rerun_requests["reads"]),
            fmt_count(rerun_manifest["counts"]["unchanged"]),
            fmt_seconds(rerun_seconds),
        ],
        [
            "naive loop again",
            fmt_count(naive_rerun_requests["writes"]),
            fmt_count(naive_rerun_requests["reads"]),
            "0",
            "",
        ],
    ]
    notes = [
        f"The sync of section 3 run a second time on the same {count:,} records; request counts are the emulator's "
        f"counters, time measured with the {latency * 1000:.0f} ms latency still on. Operator requests: "
        f"{rerun_requests['routes'] or 'none'}.",
        f"Budget, checked by the run: at most {RERUN_MAX_WRITES} writes and {RERUN_MAX_READS} reads for 2,000 "
        "unchanged documents (1 knowledge-base read and 20 list pages; checks before deleting happen only for "
        "what a plan deletes, none here); the run fails when it is exceeded.",
        "The naive loop cannot tell what changed, so it posts every record again; Dify's same-name upsert keeps "
        f"the document count ({naive_after_rerun:,}) but re-indexes each one (its write count). It was run without "
        "latency: only its counts are reported.",
    ]
    summary = (
        f"{fmt_count(rerun_requests['writes'])} writes and {fmt_count(rerun_requests['reads'])} reads for "
        f"{count:,} unchanged records (naive loop: {fmt_count(naive_rerun_requests['writes'])} writes)"
    )
    return SectionResult(
        RERUN_KEY,
        RERUN_TITLE,
        RERUN_QUESTION,
        header=["Re-run", "Write requests", "Read requests", "Documents left untouched", "Time"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )
