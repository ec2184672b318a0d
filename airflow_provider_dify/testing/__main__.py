"""
Run the Dify emulator in the foreground::

    python -m airflow_provider_dify.testing [--port 5101] [--api-key K] [--indexing-seconds S] ...

Prints the API URL, the key, whether an embedding model is emulated and the exact
``export AIRFLOW_CONN_DIFY_DEFAULT=...`` line; stops on Ctrl-C or ``SIGTERM`` (what ``kill``, a service
manager and ``docker stop`` send), exiting with 0.

From the shell the emulator stands in for a Dify a developer works with, so it differs from the library's
defaults in three ways: the key is fixed (:data:`CLI_API_KEY`, so a connection exported once keeps working
across restarts), an embedding model is emulated (Dify's own curl examples create ``high_quality`` knowledge
bases and retrieve without naming a model; ``--no-embedding-available`` answers them as a Dify without one),
and the port is :data:`CLI_PORT`, not 5001, which a self-hosted Dify's API takes.
"""

from __future__ import annotations

import argparse
import signal
import sys

from airflow_provider_dify.testing.config import SERVER_VERSIONS
from airflow_provider_dify.testing.server import DifyEmulator

#: The command line's default port: 5001 is a self-hosted Dify's API, 5101 is free next to it.
CLI_PORT = 5101
#: The command line's default API key, the same on every start.
CLI_API_KEY = "dataset-emulator"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_dify.testing", description="Run a local Dify Knowledge API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=CLI_PORT, help=f"TCP port (default {CLI_PORT}; 0 picks a free one)"
    )
    parser.add_argument(
        "--api-key", default=CLI_API_KEY, help=f"dataset API key (default {CLI_API_KEY}, the same on every start)"
    )
    parser.add_argument(
        "--server-version", default="1.16", help=f"emulated version, one of {SERVER_VERSIONS}"
    )
    parser.add_argument("--indexing-seconds", type=float, default=0.3, help="indexing time per document")
    parser.add_argument(
        "--queue-pickup-seconds", type=float, default=0.05, help="delay before the queue picks a doc"
    )
    parser.add_argument(
        "--rate-limit-per-minute", type=int, default=None, help="knowledge rate limit (default off)"
    )
    parser.add_argument("--document-limit", type=int, default=None, help="document quota (default unlimited)")
    parser.add_argument("--upload-limit-bytes", type=int, default=15 * 1024 * 1024, help="largest upload")
    parser.add_argument(
        "--sandbox-plan", action="store_true", help="refuse chunk writes like the Sandbox plan"
    )
    parser.add_argument(
        "--embedding-available",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="emulate a default embedding model (high_quality, semantic search); --no-embedding-available"
        " answers 400 like a Dify without one (default: on)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered with 5xx")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share of connections reset")
    parser.add_argument("--latency-seconds", type=float, default=0.0, help="delay added to every request")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault generator")
    parser.add_argument(
        "--ignore-paging", action="store_true", help="answer every item on every list page (Dify ~1.1-1.2)"
    )
    return parser


def _embedding_line(available: bool) -> str:
    if available:
        return "emulated (high_quality and semantic search work; --no-embedding-available to refuse them)"
    return "none (high_quality and retrieval without a model answer 400; --embedding-available to emulate one)"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the emulator until Ctrl-C or SIGTERM."""
    args = _parser().parse_args(argv)
    # Ctrl-C stops it even when the shell started it with Ctrl-C ignored (``... &`` in a script), and SIGTERM
    # stops it as cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # it raises KeyboardInterrupt whatever the signal
    emulator = DifyEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        server_version=args.server_version,
        indexing_seconds=args.indexing_seconds,
        queue_pickup_seconds=args.queue_pickup_seconds,
        rate_limit_per_minute=args.rate_limit_per_minute,
        document_limit=args.document_limit,
        upload_limit_bytes=args.upload_limit_bytes,
        sandbox_plan=args.sandbox_plan,
        embedding_available=args.embedding_available,
        fault_rate=args.fault_rate,
        reset_rate=args.reset_rate,
        latency_seconds=args.latency_seconds,
        seed=args.seed,
        ignore_paging=args.ignore_paging,
    )
    emulator.start()
    try:  # Ctrl-C may come as soon as the URL is printed
        print(f"Dify emulator (server version {emulator.config.server_version}) listening")
        print(f"  URL:     {emulator.url}")
        print(f"  API key: {emulator.api_key}")
        print(f"  Embedding model: {_embedding_line(args.embedding_available)}")
        print("Use it from Airflow (copy this line into the shell that runs Airflow):")
        print(f"  export AIRFLOW_CONN_DIFY_DEFAULT='{emulator.connection_json}'")
        print("Press Ctrl-C to stop.", flush=True)
        emulator.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
