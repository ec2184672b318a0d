"""
Section 12 (issue 24), a cost set by the changes: what a change-feed run reads against the size of the scope.

A knowledge base of ``N`` indexed documents (put straight into the emulator's store) takes ``k`` changed records
from a change feed (``version_field``, no ``delete_missing``): the sync finds their documents by exact-name
lookups while ``k`` is below the listing's pages, else by the listing. Every request the run sends is counted
(reads: ``GET``; writes: the rest), once without the verifying read and once with it (the default with
``version_field``), side by side with what the full listing alone reads. Budget minutes are the run's requests
over a Dify Cloud Professional workspace's 100 requests a minute.
"""

from __future__ import annotations

import math
from typing import Any

from bench.environment import emulator_missing, minimal_context, running_emulator
from bench.report import SectionResult, fmt_count
from bench.sizes import Sizes

KEY = "changes"
TITLE = "13. Change feeds: reads per run against the scope's size and the changes"
QUESTION = (
    "How many requests does a change-feed run of k changed records into a knowledge base of N documents send, "
    "and how many budget minutes (100 requests a minute) is that, against listing the whole scope?"
)
REQUESTS_PER_MINUTE = 100
PAGE = 100


def seed(dify: Any, dataset_id: str, count: int) -> None:
    """``count`` indexed documents named ``note-000001``... straight into the emulator's store (not counted)."""
    with dify.lock:
        now = dify.state.now()
        dataset = dify.state.get_dataset(dataset_id)
        for n in range(1, count + 1):
            values = {"name": f"note-{n:06d}", "text": f"note {n}", "process_rule": {"mode": "automatic"}}
            dify.state.create_text_document(dataset, values, now)
        dify.state.drain(now)
        dify.state.bump()


def one_run(dify: Any, dataset_id: str, numbers: list[int], verify: bool) -> dict[str, float]:
    """Sync the records ``numbers`` as changed; the run's reads and writes."""
    from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

    operator = DifySyncDocumentsOperator(
        task_id="changes",
        dataset_id=dataset_id,
        records=[{"note_id": f"{n:06d}", "body": f"note {n}, changed", "updated_at": 2} for n in numbers],
        key_field="note_id",
        name_prefix="note-",
        text_template="{{ body }}",
        version_field="updated_at",
        verify_versions=verify,
    )
    dify.reset_counters()
    manifest = operator.execute(minimal_context())
    reads = dify.count("GET")
    return {
        "reads": reads,
        "writes": len(dify.calls) - reads,
        "lookups": float(manifest["found_by"] == "lookups"),
    }


def run(sizes: Sizes) -> list[SectionResult]:
    """Measure every ``(N, k)`` of ``sizes.change_feed_documents`` and ``sizes.change_feed_changes``."""
    reason = emulator_missing()
    if reason:
        return [SectionResult(KEY, TITLE, QUESTION, not_measured=reason)]
    rows: list[list[str]] = []
    figures: dict[str, float] = {}
    for documents in sizes.change_feed_documents:
        with running_emulator(indexing_seconds=0.0, queue_pickup_seconds=0.0) as dify:
            dataset_id = dify.create_dataset(f"changes-{documents}")["id"]
            seed(dify, dataset_id, documents)
            listing_reads = math.ceil(documents / PAGE)
            start = 1
            for changes in sizes.change_feed_changes:
                numbers = list(range(start, start + changes))
                start += changes
                plain = one_run(dify, dataset_id, numbers, verify=False)
                verified = one_run(dify, dataset_id, [n + documents // 2 for n in numbers], verify=True)
                listed = listing_reads + 2 + plain["writes"]  # the listing, the knowledge base, the fields
                name = f"n{documents}_k{changes}"
                figures[f"{name}_reads"] = plain["reads"]
                figures[f"{name}_verified_reads"] = verified["reads"]
                figures[f"{name}_listing_reads"] = listing_reads + 2
                rows.append(
                    [
                        fmt_count(documents),
                        fmt_count(changes),
                        "lookups" if plain["lookups"] else "listing",
                        fmt_count(plain["reads"]),
                        fmt_count(verified["reads"]),
                        fmt_count(plain["writes"]),
                        f"{(plain['reads'] + plain['writes']) / REQUESTS_PER_MINUTE:.2f}",
                        fmt_count(listing_reads + 2),
                        f"{listed / REQUESTS_PER_MINUTE:.2f}",
                    ]
                )
    largest = max(sizes.change_feed_documents)
    smallest_k = min(sizes.change_feed_changes)
    return [
        SectionResult(
            KEY,
            TITLE,
            QUESTION,
            header=[
                "documents N",
                "changed k",
                "found by",
                "reads",
                "reads with verifying",
                "writes",
                "budget minutes",
                "reads if listed",
                "budget minutes if listed",
            ],
            rows=rows,
            figures=figures,
            notes=[
                "Reads: the knowledge base, one item of the first list page (its total), one lookup per changed"
                " record (names are zero-padded, so no name is inside another), the metadata fields; the verifying"
                " read looks the written names up again. 'If listed': the listing's pages, the knowledge base and the"
                " fields, as a run that lists the scope reads. Budget minutes: requests / 100.",
            ],
            summary=(
                f"{fmt_count(smallest_k)} change(s) into {fmt_count(largest)} documents: "
                f"{fmt_count(figures[f'n{largest}_k{smallest_k}_reads'])} reads, against "
                f"{fmt_count(figures[f'n{largest}_k{smallest_k}_listing_reads'])} to list"
            ),
        )
    ]
