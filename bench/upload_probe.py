"""
One upload in a fresh interpreter, reporting the process's peak memory growth (run by :mod:`bench.upload`).

``python -m bench.upload_probe {hook|requests} FILE DATASET_ID`` with ``AIRFLOW_CONN_DIFY_DEFAULT`` set and, for
``requests``, ``DIFY_BENCH_URL`` and ``DIFY_BENCH_KEY``. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

DOCUMENT_OPTIONS = {"indexing_technique": "economy", "process_rule": {"mode": "automatic"}}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); ``False`` when the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 64


def main(argv: list[str]) -> int:
    """Upload the file once with the chosen client; print RSS before, peak after, seconds and the document id."""
    mode, path, dataset_id = argv
    import requests

    from airflow_provider_dify.hooks.dify import DifyHook

    hook = DifyHook()
    url = os.environ.get("DIFY_BENCH_URL", "")
    key = os.environ.get("DIFY_BENCH_KEY", "")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    # Warm up both clients (imports, connection, TLS-free keep-alive) before measuring.
    hook.get_dataset(dataset_id)
    if mode == "requests":
        session.get(f"{url}/datasets/{dataset_id}", timeout=30).raise_for_status()

    peak_was_reset = _reset_peak()
    rss_before = _status_kib("VmRSS") * 1024
    peak_before = _status_kib("VmHWM") * 1024
    started = time.perf_counter()
    if mode == "hook":
        document = hook.create_document_by_file(dataset_id, path, **DOCUMENT_OPTIONS)["document"]
    elif mode == "requests":
        with open(path, "rb") as handle:
            response = session.post(
                f"{url}/datasets/{dataset_id}/document/create-by-file",
                files={"file": (Path(path).name, handle, "text/plain")},
                data={"data": json.dumps(DOCUMENT_OPTIONS)},
                timeout=600,
            )
        response.raise_for_status()
        document = response.json()["document"]
    else:
        raise SystemExit(f"unknown mode {mode!r}: use hook or requests")
    seconds = time.perf_counter() - started
    peak_after = _status_kib("VmHWM") * 1024
    baseline = rss_before if peak_was_reset else peak_before
    print(
        json.dumps(
            {
                "mode": mode,
                "rss_before": rss_before,
                "peak_after": peak_after,
                "peak_increase": max(0, peak_after - baseline),
                "peak_was_reset": peak_was_reset,
                "seconds": seconds,
                "document_id": document["id"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
