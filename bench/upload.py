"""Section 5, upload memory: peak RSS growth while uploading a large file, hook against ``requests`` ``files=``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.environment import emulator_missing, new_dataset, running_emulator
from bench.report import SectionResult, fmt_mib, fmt_ratio, fmt_seconds, ratio
from bench.sizes import Sizes

KEY = "upload"
TITLE = "5. Upload memory"
QUESTION = (
    "How much memory does a worker need to upload a large file: the hook's streamed multipart body against "
    "`requests.post(files=...)`, which builds the whole body in memory?"
)
REPO_ROOT = Path(__file__).resolve().parents[1]
_LINE = b"airflow provider dify bench upload line of plain text, repeated to make a large file.\n"


def write_file(path: Path, mib: int) -> None:
    """Write a text file of ``mib`` MiB."""
    block = _LINE * (1024 * 1024 // len(_LINE) + 1)
    block = block[: 1024 * 1024]
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(block)


def probe(mode: str, path: Path, dataset_id: str, url: str, key: str) -> dict:
    """Run one upload in a fresh interpreter; its JSON report."""
    env = {**os.environ, "DIFY_BENCH_URL": url, "DIFY_BENCH_KEY": key}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-m", "bench.upload_probe", mode, str(path), dataset_id],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=900,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"upload probe ({mode}) failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(sizes: Sizes) -> SectionResult:
    """Upload a ``sizes.upload_mib`` MiB file once with each client, each in its own interpreter."""
    reason = emulator_missing()
    if reason:
        return SectionResult(KEY, TITLE, QUESTION, not_measured=reason)
    from airflow_provider_dify.hooks.dify import DifyHook

    size = sizes.upload_mib * 1024 * 1024
    with (
        tempfile.TemporaryDirectory(prefix="dify-bench-upload-") as folder,
        running_emulator(upload_limit_bytes=size + 1024 * 1024) as dify,
    ):
        # The connection states the raised limit, or the hook would refuse the file before sending it.
        connection = {**json.loads(dify.connection_json), "extra": json.dumps({"upload_max_mb": sizes.upload_mib + 1})}
        os.environ["AIRFLOW_CONN_DIFY_DEFAULT"] = json.dumps(connection)
        hook = DifyHook()
        results = {}
        for mode in ("hook", "requests"):
            dataset_id = new_dataset(hook, f"bench-upload-{mode}")
            path = Path(folder) / f"large-{mode}.txt"
            write_file(path, sizes.upload_mib)
            # The emulator would split the file's text into chunks in this process: keep it from indexing.
            dify.set_indexing_outcome(path.name, "stuck")
            results[mode] = probe(mode, path, dataset_id, dify.url, dify.api_key)
            stored = hook.get_document(dataset_id, results[mode]["document_id"])
            if stored.get("name") != path.name:
                raise RuntimeError(f"the {mode} upload stored {stored.get('name')!r}, not {path.name!r}")
            path.unlink()
        hook.close()

    hook_peak = results["hook"]["peak_increase"]
    bare_peak = results["requests"]["peak_increase"]
    figures = {
        "file_bytes": float(size),
        "hook_peak_increase_bytes": float(hook_peak),
        "requests_peak_increase_bytes": float(bare_peak),
        "requests_over_hook": ratio(bare_peak, hook_peak),
        "hook_peak_over_file": ratio(hook_peak, size),
        "requests_peak_over_file": ratio(bare_peak, size),
        "hook_seconds": results["hook"]["seconds"],
        "requests_seconds": results["requests"]["seconds"],
    }
    rows = [
        [
            "`DifyHook().create_document_by_file(...)`",
            fmt_mib(hook_peak),
            f"{figures['hook_peak_over_file']:.3f}",
            fmt_seconds(results["hook"]["seconds"]),
        ],
        [
            "`requests.post(..., files={'file': open(...)})`",
            fmt_mib(bare_peak),
            f"{figures['requests_peak_over_file']:.3f}",
            fmt_seconds(results["requests"]["seconds"]),
        ],
        ["requests / hook", fmt_ratio(figures["requests_over_hook"]), "", ""],
    ]
    method = (
        "the peak is reset through `/proc/self/clear_refs` just before the upload"
        if results["hook"]["peak_was_reset"] and results["requests"]["peak_was_reset"]
        else "`VmHWM` after the upload minus `VmHWM` before it (the kernel did not allow resetting the peak)"
    )
    notes = [
        f"One {sizes.upload_mib} MiB text file uploaded to the emulator (upload limit raised) by each client, each "
        "in a fresh interpreter after a warm-up request, so the two never share a heap. Peak RSS growth = `VmHWM` "
        f"after the upload minus RSS before it; {method}.",
        "The emulator runs in the benchmark's own process, not in the measured ones.",
    ]
    summary = (
        f"{sizes.upload_mib} MiB file: +{fmt_mib(hook_peak)} peak RSS with the hook vs +{fmt_mib(bare_peak)} "
        f"with `requests` `files=`"
    )
    return SectionResult(
        KEY,
        TITLE,
        QUESTION,
        header=["Client", "Peak RSS growth", "Growth / file size", "Upload time"],
        rows=rows,
        figures=figures,
        notes=notes,
        summary=summary,
    )
