"""How big each benchmark is: the full run, ``--quick``, and the tiny sizes of the smoke test."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """
    Sizes of the benchmark sections.

    :param import_runs: fresh interpreters per import measurement (the median is reported).
    :param calls: ``get dataset`` calls per client in the per-call overhead section.
    :param export_records: records synced in the export and re-run sections.
    :param export_latency_seconds: emulator latency added to every request in the export section.
    :param upload_mib: size of the uploaded file in the upload memory section.
    :param wait_seconds: how long the slow indexing takes in the waiting section.
    :param poll_interval_seconds: poll interval of the trigger and poke interval of the sensor.
    :param pace_documents: documents synced (and waited for) on the measured indexing pace.
    :param pace_records: records synced as chunks on the measured indexing pace, and the size extrapolated to.
    :param pace_seconds_per_document: the indexing queue's pace (one document at a time per workspace).
    :param budget_documents: documents synced under the rate limit in the rate-budget section.
    :param budget_per_window: the rate limit (writes per window) in the rate-budget section.
    :param budget_window_seconds: the rate limit's window there (Dify's is 60 s; shortened to scale time).
    :param budget_workers: the worker-process counts compared there.
    :param scale_documents: the numbers of documents one trigger poll is measured at.
    :param throughput_records: records synced in the throughput section (sync against bare requests).
    :param throughput_workers: the thread counts compared there.
    :param throughput_repeats: runs of each side at each thread count, alternated (the median is reported).
    :param memory_runs: ``(granularity, records)`` of the syncs whose peak RSS is measured.
    :param change_feed_documents: the knowledge base sizes ``N`` of the change-feed section.
    :param change_feed_changes: the numbers ``k`` of changed records synced into each.
    """

    import_runs: int = 15
    calls: int = 2000
    export_records: int = 2000
    export_latency_seconds: float = 0.05
    upload_mib: int = 200
    wait_seconds: float = 60.0
    poll_interval_seconds: float = 5.0
    pace_documents: int = 50
    pace_records: int = 5000
    pace_seconds_per_document: float = 2.0
    budget_documents: int = 1156
    budget_per_window: int = 120
    budget_window_seconds: float = 6.0
    budget_workers: tuple[int, ...] = (1, 2, 4)
    scale_documents: tuple[int, ...] = (10, 10_000)
    throughput_records: int = 600
    throughput_workers: tuple[int, ...] = (4, 8)
    throughput_repeats: int = 3
    memory_runs: tuple[tuple[str, int], ...] = (
        ("documents", 10_000),
        ("chunks", 10_000),
        ("documents", 100_000),
        ("chunks", 100_000),
    )
    change_feed_documents: tuple[int, ...] = (1_000, 10_000, 100_000)
    change_feed_changes: tuple[int, ...] = (1, 5, 50)


FULL = Sizes()
QUICK = Sizes(
    import_runs=5,
    calls=300,
    export_records=200,
    upload_mib=40,
    wait_seconds=10.0,
    poll_interval_seconds=2.0,
    pace_documents=8,
    pace_records=1000,
    budget_documents=120,
    budget_per_window=20,
    budget_window_seconds=4.0,
    throughput_records=200,
    memory_runs=(("documents", 2_000), ("chunks", 10_000)),
    change_feed_documents=(1_000, 10_000),
)
#: For the smoke test: every code path, seconds in all.
TINY = Sizes(
    import_runs=1,
    calls=20,
    export_records=12,
    export_latency_seconds=0.005,
    upload_mib=2,
    wait_seconds=1.0,
    poll_interval_seconds=0.25,
    pace_documents=3,
    pace_records=60,
    pace_seconds_per_document=0.1,
    budget_documents=16,
    budget_per_window=8,
    budget_window_seconds=1.0,
    budget_workers=(1, 2),
    scale_documents=(5, 40),
    throughput_records=12,
    throughput_workers=(2,),
    throughput_repeats=1,
    memory_runs=(("documents", 10), ("chunks", 10)),
    change_feed_documents=(300,),
    change_feed_changes=(1, 5),
)
