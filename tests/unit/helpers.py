"""Shared helpers of the unit tests: test keys, ``dify`` connections in the environment, transcript bodies."""

from __future__ import annotations

import http.server
import json
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

BASE_URL = "http://dify.test/v1"
DATA = Path(__file__).with_name("data")
DATASET_ID = "96d82e49-408d-46ea-b2ac-169fd6a21cc3"
DOCUMENT_ID = "bc33cd8c-dab8-459d-8b62-36a9f08ecc72"
SEGMENT_ID = "c42a017a-93b2-44a3-bf35-e67d8bcf8ab7"
BATCH = "20261123194403568155"


def make_api_key() -> str:
    """A fresh knowledge API key for one test (built at run time, never a literal in the source)."""
    return "dataset-" + secrets.token_hex(12)


#: The length of the pieces of the key that the secret sweep looks for.
KEY_PIECE = 7


def key_pieces(key: str) -> list[str]:
    """Every piece of ``KEY_PIECE`` characters of ``key`` but those inside its public ``dataset-`` prefix."""
    pieces = {key[start : start + KEY_PIECE] for start in range(len(key) - KEY_PIECE + 1)}
    return sorted(piece for piece in pieces if piece not in "dataset-")


def assert_no_key_piece(key: str, *texts: str) -> None:
    """No text holds the key or any ``KEY_PIECE``-character piece of it (escaped or cut keys included)."""
    pieces = key_pieces(key)
    assert pieces, "the key is too short to sweep for"
    for text in texts:
        found = [piece for piece in pieces if piece in text]
        assert not found, f"a piece of the API key ({found[0]!r}) is in: {text[:300]!r}"


def set_dify_connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str = "dify_default",
    *,
    host: str | None = BASE_URL,
    password: str | None = None,
    extra: dict[str, Any] | None = None,
    **fields: Any,
) -> str:
    """Define connection ``conn_id`` (type ``dify``) through ``AIRFLOW_CONN_<ID>``; return its API key."""
    key = make_api_key() if password is None else password
    conn: dict[str, Any] = {"conn_type": "dify", "host": host, "password": key, **fields}
    if extra is not None:
        conn["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return key


@cache
def _bodies() -> dict[str, Any]:
    return json.loads((DATA / "transcript_bodies.json").read_text())


def success_body(name: str) -> Any:
    """The decoded body of a successful response recorded in the transcripts (a fresh copy)."""
    return json.loads(json.dumps(_bodies()["success"][name]["body"]))


def error_response(name: str) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, raw body)`` of an error response recorded in the transcripts."""
    entry = _bodies()["errors"][name]
    return entry["status"], {"Content-Type": entry["content_type"]}, entry["body"].encode()


def error_names() -> list[str]:
    """Names of every error response recorded in the transcripts."""
    return sorted(_bodies()["errors"])


def dify_error_body(status: int, code: str, message: str) -> bytes:
    """Dify's error envelope, for answers documented in the API reference but absent from the transcripts."""
    return json.dumps({"code": code, "message": message, "status": status}).encode()


class FakeClock:
    """A monotonic clock that only moves when told to (or when its ``sleep`` is called)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def closed_port() -> int:
    """A local TCP port nothing listens on (bound once to find a free one, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ReceivedRequest:
    """What the local server saw of one request."""

    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    body: bytes | None  # None when the server was told to discard bodies
    head: bytes  # the first bytes of the body (up to 4 KiB), kept even when the body is discarded
    tail: bytes  # the last bytes of the body (up to 4 KiB)


Responder = Callable[[ReceivedRequest], tuple[int, dict[str, str], bytes]]


class LocalHttpServer:
    """
    A small HTTP/1.1 server on 127.0.0.1 in a background thread, for tests that need real sockets.

    :param respond: turns each received request into ``(status, headers, body)``.
    :param keep_bodies: keep request bodies (``False`` reads and discards them in chunks).
    """

    def __init__(self, respond: Responder, *, keep_bodies: bool = True) -> None:
        self.respond = respond
        self.keep_bodies = keep_bodies
        self.received: list[ReceivedRequest] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                remaining = int(self.headers.get("Content-Length") or 0)
                size, head, tail = 0, b"", b""
                kept = bytearray() if outer.keep_bodies else None
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    size += len(chunk)
                    if len(head) < 4096:
                        head += chunk[: 4096 - len(head)]
                    tail = (tail + chunk)[-4096:]
                    if kept is not None:
                        kept += chunk
                request = ReceivedRequest(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    size,
                    bytes(kept) if kept is not None else None,
                    head,
                    tail,
                )
                outer.received.append(request)
                status, headers, body = outer.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The API base URL of the server (``http://127.0.0.1:<port>/v1``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> LocalHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def json_answer(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    """A JSON answer for :class:`LocalHttpServer` responders."""
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
