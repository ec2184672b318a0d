"""Section 6, waiting cost: a deferrable wait on slow indexing against a poke-mode sensor holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bench.environment import emulator_missing, missing, new_dataset, running_emulator
from bench.report import SectionResult, fmt_seconds, ratio
from bench.sizes import Sizes

KEY = "waiting"
TITLE = "6. Waiting cost (deferrable vs poke)"
QUESTION = (
    "What does waiting for a slow indexing cost: worker-slot time and requests, deferring to the triggerer "
    "against a sensor in poke mode?"
)


def polls_from_calls(times: Sequence[float], interval: float) -> int:
    """Number of polls in a sorted list of request times: a new poll starts after a gap of half an interval."""
    polls = 0
    previous = None
    for moment in times:
        if previous is None or moment - previous > interval / 2:
            polls += 1
        previous = moment
    return polls


def _indexing_calls(dify: Any, since: int) -> list[float]:
    return [call.time for call in dify.calls[since:] if call.method == "GET"]


def _slow_document(hook: Any, prefix: str) -> tuple[str, str, str]:
    dataset_id = new_dataset(hook, prefix)
    created = hook.create_document_by_text(
        dataset_id,
        f"{prefix}.txt",
        "a document whose indexing takes a while",
        indexing_technique="economy",
        process_rule={"mode": "automatic"},
    )
    return dataset_id, created["batch"], created["document"]["id"]


def _deferred_wait(sizes: Sizes, conn_id: str, out: dict[str, Any]) -> None:
    """The deferrable sensor: execute until it defers, run its trigger as the triggerer would, resume."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.sensors.indexing import DifyIndexingSensor

    with running_emulator(conn_id, indexing_seconds=sizes.wait_seconds) as dify:
        hook = DifyHook(conn_id)
        dataset_id, batch, document_id = _slow_document(hook, "bench-wait-deferred")
        hook.close()
        dify.reset_counters()
        sensor = DifyIndexingSensor(
            task_id="wait_deferrable",
            dataset_id=dataset_id,
            batch=batch,
            document_ids=[document_id],
            dify_conn_id=conn_id,
            deferrable=True,
            poke_interval=sizes.poll_interval_seconds,
            timeout=sizes.wait_seconds * 4 + 30,
        )
        started = time.perf_counter()
        try:
            sensor.execute({})
        except TaskDeferred as deferred:
            trigger = deferred.trigger
            method_name = deferred.method_name
        else:
            raise RuntimeError("the deferrable sensor finished without deferring: the indexing was not slow")
        held_before_defer = time.perf_counter() - started
        calls_before_defer = dify.count()
        marker = len(dify.calls)

        async def run_trigger() -> Any:
            async for event in trigger.run():
                return event
            raise RuntimeError("the trigger ended without an event")

        trigger_started = time.perf_counter()
        event = asyncio.run(run_trigger())
        deferred_seconds = time.perf_counter() - trigger_started
        trigger_times = _indexing_calls(dify, marker)
        resumed = time.perf_counter()
        results = getattr(sensor, method_name)({}, event.payload)
        held_after_resume = time.perf_counter() - resumed
        out.update(
            held_seconds=held_before_defer + held_after_resume,
            wall_seconds=time.perf_counter() - started,
            deferred_seconds=deferred_seconds,
            requests=dify.count(),
            requests_before_defer=calls_before_defer,
            trigger_requests=len(trigger_times),
            trigger_polls=polls_from_calls(trigger_times, sizes.poll_interval_seconds),
            status=results[0]["indexing_status"],
        )


def _poke_wait(sizes: Sizes, conn_id: str, out: dict[str, Any]) -> None:
    """The same sensor in poke mode: it holds its worker slot until the indexing completes."""
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.sensors.indexing import DifyIndexingSensor

    with running_emulator(conn_id, indexing_seconds=sizes.wait_seconds) as dify:
        hook = DifyHook(conn_id)
        dataset_id, batch, document_id = _slow_document(hook, "bench-wait-poke")
        hook.close()
        dify.reset_counters()
        sensor = DifyIndexingSensor(
            task_id="wait_poke",
            dataset_id=dataset_id,
            batch=batch,
            document_ids=[document_id],
            dify_conn_id=conn_id,
            deferrable=False,
            mode="poke",
            poke_interval=sizes.poll_interval_seconds,
            timeout=sizes.wait_seconds * 4 + 30,
        )
        started = time.perf_counter()
        results = sensor.execute({})
        held = time.perf_counter() - started
        times = _indexing_calls(dify, 0)
        out.update(
            held_seconds=held,
            wall_seconds=held,
            requests=dify.count(),
            polls=polls_from_calls(times, sizes.poll_interval_seconds),
            status=results[0]["indexing_status"],
        )


def run(sizes: Sizes) -> SectionResult:
    """Wait for one document whose indexing takes ``sizes.wait_seconds``, both ways at once on two emulators."""
    reason = (
        emulator_missing()
        or missing("airflow_provider_dify.sensors.indexing", "DifyIndexingSensor")
        or missing("airflow_provider_dify.triggers.indexing", "DifyIndexingTrigger")
    )
    if reason:
        return SectionResult(KEY, TITLE, QUESTION, not_measured=reason)

    deferred: dict[str, Any] = {}
    poked: dict[str, Any] = {}
    # One after the other, in the main thread: Airflow 2 builds operators only there.
    _deferred_wait(sizes, "dify_bench_deferred", deferred)
    _poke_wait(sizes, "dify_bench_poke", poked)
    if deferred["status"] != "completed" or poked["status"] != "completed":
        raise RuntimeError(f"the waits did not end in completed indexing: {deferred['status']}, {poked['status']}")

    figures = {
        "indexing_seconds": sizes.wait_seconds,
        "deferred_slot_seconds": deferred["held_seconds"],
        "poke_slot_seconds": poked["held_seconds"],
        "poke_over_deferred_slot_seconds": ratio(poked["held_seconds"], deferred["held_seconds"]),
        "slots_held_while_deferred": 0.0,
        "deferred_requests": float(deferred["requests"]),
        "deferred_trigger_polls": float(deferred["trigger_polls"]),
        "deferred_requests_per_poll": ratio(deferred["trigger_requests"], deferred["trigger_polls"]),
        "poke_requests": float(poked["requests"]),
        "poke_polls": float(poked["polls"]),
        "poke_requests_per_poll": ratio(poked["requests"], poked["polls"]),
    }
    rows = [
        [
            "deferrable sensor (trigger in an asyncio loop)",
            fmt_seconds(deferred["held_seconds"]),
            "0",
            fmt_seconds(deferred["wall_seconds"]),
            str(deferred["requests"]),
            f"{figures['deferred_requests_per_poll']:.2f}",
        ],
        [
            "poke-mode sensor",
            fmt_seconds(poked["held_seconds"]),
            "1",
            fmt_seconds(poked["wall_seconds"]),
            str(poked["requests"]),
            f"{figures['poke_requests_per_poll']:.2f}",
        ],
        [
            "worker-slot time saved by deferring",
            fmt_seconds(poked["held_seconds"] - deferred["held_seconds"]),
            "",
            "",
            "",
            "",
        ],
    ]
    notes = [
        f"One document whose indexing takes {sizes.wait_seconds:.0f} s on the emulator (`indexing_seconds`), polled "
        f"every {sizes.poll_interval_seconds:.0f} s; each wait on its own emulator, one after the other.",
        "Deferrable: `DifyIndexingSensor(deferrable=True).execute()` runs until it raises `TaskDeferred` (slot held), "
        "its `DifyIndexingTrigger.run()` is driven in an asyncio loop as the triggerer does (no slot), then "
        "`execute_complete()` runs with the event (slot held). Slot time is the sum of the two held parts; while "
        "deferred, the task holds no worker slot by construction.",
        f"Requests are the emulator's counters for the whole wait; the trigger made {deferred['trigger_requests']} "
        f"request(s) in {deferred['trigger_polls']} poll(s) (polls told apart by the gaps between requests), plus "
        f"{deferred['requests_before_defer']} in the check before deferring.",
        "Poke: `DifyIndexingSensor(mode='poke').execute()` holds a worker slot from the first poke to completion.",
    ]
    summary = (
        f"{sizes.wait_seconds:.0f} s indexing: {fmt_seconds(deferred['held_seconds'])} of worker slot deferred vs "
        f"{fmt_seconds(poked['held_seconds'])} in poke mode; "
        f"{figures['deferred_requests_per_poll']:.0f} request per poll"
    )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["Wait", "Worker-slot time", "Slots held while waiting", "Wall time", "Requests", "Requests per poll"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )
