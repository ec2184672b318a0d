"""Section 2, per-call overhead: ``DifyHook.get_dataset`` against a bare ``requests.Session`` on one emulator."""

from __future__ import annotations

import time

from bench.environment import emulator_missing, new_dataset, running_emulator
from bench.report import SectionResult, fmt_ratio, fmt_us, ratio
from bench.sizes import Sizes

KEY = "calls"
TITLE = "2. Per-call overhead"
QUESTION = (
    "What does a hook call (retries, throttle check, error mapping, typed result) cost over the simplest "
    "`requests` code that gets the same JSON?"
)
BLOCK = 100
#: One small request to a real Dify 1.13.2 server (shared/README.md, item 19: updating one chunk took 0.03 s).
REAL_REQUEST_SECONDS = 0.03


def run(sizes: Sizes) -> SectionResult:
    """Time ``sizes.calls`` ``get dataset`` calls per client, in alternating blocks, against one emulator."""
    reason = emulator_missing()
    if reason:
        return SectionResult(KEY, TITLE, QUESTION, not_measured=reason)
    import requests

    from airflow_provider_dify.hooks.dify import DifyHook

    with running_emulator() as dify:
        hook = DifyHook()
        dataset_id = new_dataset(hook, "bench-calls")
        url = f"{dify.url}/datasets/{dataset_id}"
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {dify.api_key}", "Accept": "application/json"})

        def bare_call() -> dict:
            response = session.get(url, timeout=30)
            response.raise_for_status()
            return response.json()

        def hook_call() -> dict:
            return hook.get_dataset(dataset_id)

        assert hook_call()["id"] == bare_call()["id"] == dataset_id
        for _ in range(min(50, sizes.calls)):  # warm both connections and code paths
            hook_call()
            bare_call()

        block = max(1, min(BLOCK, sizes.calls // 4))
        timings = {"hook": 0.0, "bare": 0.0}
        requests_sent = {"hook": 0, "bare": 0}
        done = 0
        while done < sizes.calls:
            size = min(block, sizes.calls - done)
            for name, call in (("hook", hook_call), ("bare", bare_call)):
                before = dify.count(method="GET")
                started = time.perf_counter()
                for _ in range(size):
                    call()
                timings[name] += time.perf_counter() - started
                requests_sent[name] += dify.count(method="GET") - before
            done += size
        session.close()
        hook.close()

    hook_per_call = timings["hook"] / sizes.calls
    bare_per_call = timings["bare"] / sizes.calls
    figures = {
        "calls": float(sizes.calls),
        "hook_seconds_per_call": hook_per_call,
        "bare_seconds_per_call": bare_per_call,
        "hook_over_bare": ratio(hook_per_call, bare_per_call),
        "hook_minus_bare_seconds_per_call": hook_per_call - bare_per_call,
        "hook_requests_per_call": requests_sent["hook"] / sizes.calls,
        "bare_requests_per_call": requests_sent["bare"] / sizes.calls,
    }
    rows = [
        [
            "`DifyHook().get_dataset(id)`",
            fmt_us(hook_per_call),
            f"{figures['hook_requests_per_call']:.2f}",
            f"{sizes.calls / timings['hook']:.0f}",
        ],
        [
            "bare `requests.Session().get(...)` + `raise_for_status()` + `.json()`",
            fmt_us(bare_per_call),
            f"{figures['bare_requests_per_call']:.2f}",
            f"{sizes.calls / timings['bare']:.0f}",
        ],
        ["hook / bare", fmt_ratio(figures["hook_over_bare"]), "", ""],
    ]
    notes = [
        f"{sizes.calls:,} calls per client against the same emulator (no added latency), in alternating blocks "
        f"of {block} after a warm-up; both reuse one keep-alive connection. Requests per call are the emulator's "
        "counters.",
        f"The hook's own work costs {fmt_us(hook_per_call - bare_per_call)} per call, "
        f"{(hook_per_call - bare_per_call) / REAL_REQUEST_SECONDS:.1%} of one request to a real Dify server "
        f"(updating one chunk took {REAL_REQUEST_SECONDS * 1000:.0f} ms on Dify 1.13.2, shared/README.md item 19).",
    ]
    summary = (
        f"{fmt_us(hook_per_call)} vs {fmt_us(bare_per_call)} per call: {fmt_ratio(figures['hook_over_bare'])} "
        f"({fmt_us(hook_per_call - bare_per_call, signed=True)})"
    )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["Client", "Time per call", "Requests per call", "Calls/s"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )
