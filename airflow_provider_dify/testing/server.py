"""
The HTTP layer of the emulator and its public face, :class:`DifyEmulator`.

A ``ThreadingHTTPServer`` on 127.0.0.1 speaking HTTP/1.1 with keep-alive; each answer is written in one
``sendall`` (no Nagle stalls). One lock guards the state; request bodies are read (and multipart uploads
parsed, streaming) outside of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from airflow_provider_dify.testing.config import EmulatorConfig
from airflow_provider_dify.testing.errors import NOT_FOUND_HTML, ApiError, internal_error
from airflow_provider_dify.testing.exchange import JSON, Ctx, Request, Response
from airflow_provider_dify.testing.interference import DatasetDeleter, PageWriter, run_interference
from airflow_provider_dify.testing.multipart import BodyError, BodyReader, boundary_of, parse_multipart
from airflow_provider_dify.testing.pipeline import PIPELINE_ENDPOINTS, add_pipeline
from airflow_provider_dify.testing.routes import ENDPOINTS, Endpoint, Match, Router
from airflow_provider_dify.testing.state import EmulatorState
from airflow_provider_dify.testing.text import load_keyword_index
from airflow_provider_dify.testing.views import dataset_view, document_detail_view, segment_view

MAX_JSON_BODY = 64 * 1024 * 1024
HTML = "text/html; charset=utf-8"
_GATEWAY_PAGES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


@dataclass(frozen=True)
class Call:
    """
    One request the emulator received.

    :param method: HTTP method.
    :param route: route template without ``/v1`` (``/datasets/{dataset_id}``), ``None`` for unknown paths.
    :param path: the request path.
    :param status: the status answered; 0 when the connection was reset without an answer.
    :param fault: ``None``, ``"injected"`` (an injected error status) or ``"reset"``.
    :param time: when the request arrived (emulator clock).
    :param body: the request body as received; empty for a multipart upload (its parts, files included, are not
        kept), for an unknown route and for a request an injected fault refused before reading it.
    """

    method: str
    route: str | None
    path: str
    status: int
    fault: str | None
    time: float
    body: bytes = field(default=b"", repr=False)

    def json(self) -> Any:
        """The body decoded as JSON; ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class _Fault:
    remaining: int
    status: int | str
    method: str | None
    route: str | None
    after_processing: bool

    def matches(self, method: str, route: str | None, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.route is None:
            return True
        wanted = self.route[3:] if self.route.startswith("/v1/") else self.route
        local_path = path[3:] if path.startswith("/v1/") else path
        return wanted in (route, local_path)


def _error_response(status: int) -> Response:
    if status in _GATEWAY_PAGES:
        title = f"{status} {_GATEWAY_PAGES[status]}"
        page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        page += f"<center><h1>{title}</h1></center>\r\n"
        return Response(
            status, page + "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", content_type=HTML
        )
    if status == 500:
        return Response(500, internal_error().to_body())
    if status == 429:
        return Response(429, {"code": "too_many_requests", "message": "Too Many Requests", "status": 429})
    return Response(status, {"code": "unknown", "message": f"Injected error {status}", "status": status})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DifyEmulator/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no line per request."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.emulator._handle(self)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_answer(self, response: Response) -> None:
        body = response.encode()
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = {"Server": self.server_version, "Date": self.date_time_string()}
        headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(body))
        headers.update(response.headers)
        if self.close_connection:
            headers["Connection"] = "close"
        lines.extend(f"{key}: {value}" for key, value in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + (b"" if self.command == "HEAD" else body))

    def reset_connection(self) -> None:
        """Drop the connection with a TCP reset, without an answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: DifyEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors (clients going away) are normal here: stay quiet."""


class DifyEmulator:
    """
    A stateful emulator of Dify's Knowledge Base API (as a 1.13.2 server behaves, or 1.16), over real HTTP.

    Use it as a context manager (``with DifyEmulator() as dify: ...``) or with :meth:`start` / :meth:`stop`.
    ``dify.url`` is the API base URL ending in ``/v1``, ``dify.api_key`` a random ``dataset-...`` key.

    :param config: an :class:`EmulatorConfig`; keyword knobs override its values.
    :param knobs: any :class:`EmulatorConfig` field, e.g. ``indexing_seconds=0``, ``server_version="1.13"``.
    """

    def __init__(self, config: EmulatorConfig | None = None, **knobs: Any) -> None:
        base = config if config is not None else EmulatorConfig()
        self._initial = base.copy(**knobs)
        self.config = self._initial.copy()
        self.api_key = self.config.api_key or f"dataset-{secrets.token_hex(12)}"
        self.lock = threading.RLock()
        self.state = EmulatorState(self.config)
        self.router = Router((*ENDPOINTS, *PIPELINE_ENDPOINTS))
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._writers: list[PageWriter | DatasetDeleter] = []
        self._rng = random.Random(self.config.seed)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.last_exception: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DifyEmulator:
        """Start serving in a daemon thread (idempotent); return ``self``."""
        if self._server is not None:
            return self
        load_keyword_index()  # jieba loads its dictionary once per process, before the first request
        self._server = _Server((self.config.host, self.config.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="dify-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``python -m airflow_provider_dify.testing``)."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def __enter__(self) -> DifyEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """The interface the server listens on."""
        return self.config.host

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.base_url}/v1"

    @property
    def connection_dict(self) -> dict[str, str]:
        """The Airflow connection for this emulator as a dict."""
        return {"conn_type": "dify", "host": self.url, "password": self.api_key}

    @property
    def connection_json(self) -> str:
        """The Airflow connection as JSON, for ``AIRFLOW_CONN_<ID>`` environment variables."""
        return json.dumps(self.connection_dict)

    @property
    def connection_uri(self) -> str:
        """The Airflow connection as an Airflow URI (``dify://http://:KEY@HOST%3APORT%2Fv1``)."""
        return (
            f"dify://http://:{quote(self.api_key, safe='')}@{quote(f'{self.host}:{self.port}/v1', safe='')}"
        )

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header with this emulator's key (handy in tests)."""
        return {"Authorization": f"Bearer {self.api_key}"}

    # ------------------------------------------------------------------ knobs, resets, faults

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime (any :class:`EmulatorConfig` field but ``host``, ``port``, ``api_key``)."""
        fixed = {"host", "port", "api_key"} & set(knobs)
        if fixed:
            raise TypeError(f"cannot change {', '.join(sorted(fixed))} of a created emulator")
        with self.lock:
            updated = self.config.copy(**knobs)
            for name in EmulatorConfig.knob_names():
                setattr(self.config, name, getattr(updated, name))
            if "seed" in knobs:
                self._rng = random.Random(self.config.seed)

    def reset(self) -> None:
        """Clear state, counters, faults and indexing outcomes; restore the knobs given at construction."""
        with self.lock:
            for name in EmulatorConfig.knob_names():
                if name not in ("host", "port", "api_key"):
                    setattr(self.config, name, getattr(self._initial, name))
            self.state.clear()
            self.state.clock_offset = 0.0
            self._calls.clear()
            self._faults.clear()
            self._writers.clear()
            self._rng = random.Random(self.config.seed)

    def reset_counters(self) -> None:
        """Forget the recorded calls."""
        with self.lock:
            self._calls.clear()

    def fail_next(
        self,
        count: int = 1,
        status: int | str = 502,
        method: str | None = None,
        route: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """
        Make the next ``count`` matching requests fail.

        :param count: how many requests.
        :param status: the HTTP status to answer, or ``"reset"`` to drop the connection without an answer.
        :param method: only requests with this method (``None``: any).
        :param route: only this route template (``/datasets/{dataset_id}/documents``) or exact path
            (``None``: any).
        :param after_processing: process the request first (the write happens), then fail: a lost answer.
        """
        if status != "reset" and not isinstance(status, int):
            raise ValueError("status must be an HTTP status code or 'reset'")
        with self.lock:
            self._faults.append(_Fault(int(count), status, method, route, after_processing))

    def write_between_pages(
        self,
        dataset_id: str,
        *,
        document_id: str | None = None,
        after_page: int = 1,
        create: int = 0,
        delete: int = 0,
        delete_prefix: str | None = None,
        reindex: int = 0,
        times: int | None = 1,
        name_prefix: str = "other-",
        seed: int | None = None,
    ) -> PageWriter:
        """
        Another writer: right after page ``after_page`` of the document list of ``dataset_id`` (or of the chunk
        list of ``document_id``) is answered, it creates ``create`` documents (chunks) named (starting with)
        ``name_prefix`` + a counter and deletes ``delete`` of those whose name (content) starts with
        ``delete_prefix`` (default ``name_prefix``), picked with ``seed``, and re-queues ``reindex`` documents
        of those for indexing (another run's update); ``times`` listings (``None``: all).

        :return: the writer; its ``created`` and ``deleted`` list the ids it wrote.
        """
        writer = PageWriter(
            dataset_id,
            document_id=document_id,
            after_page=after_page,
            create=create,
            delete=delete,
            delete_prefix=delete_prefix,
            reindex=reindex,
            times=times,
            name_prefix=name_prefix,
            seed=seed,
        )
        with self.lock:
            self._writers.append(writer)
        return writer

    def delete_dataset_after(
        self, dataset_id: str, *, requests: int = 1, method: str | None = None, route: str | None = None
    ) -> DatasetDeleter:
        """
        Delete knowledge base ``dataset_id`` right after ``requests`` requests to it (optionally only those with
        ``method`` and/or to the route template ``route``) were answered, as someone would in the console.
        """
        deleter = DatasetDeleter(dataset_id, after=requests, method=method, route=route)
        with self.lock:
            self._writers.append(deleter)
        return deleter

    def clear_faults(self) -> None:
        """Forget pending ``fail_next`` faults."""
        with self.lock:
            self._faults.clear()

    def set_indexing_outcome(
        self,
        match: str | Callable[[dict[str, Any]], bool],
        outcome: str,
        error: str | None = None,
        count: int | None = None,
    ) -> None:
        """
        Decide how the indexing of matching documents ends (when the queue picks them up).

        :param match: a document name, or a predicate called with
            ``{"id", "name", "dataset_id", "batch", "text"}``.
        :param outcome: ``"error"`` (ends in ``error`` with ``error`` text), ``"stall"`` (stays ``indexing``
            without progress), ``"stuck"`` (stays ``waiting``) or ``"paused"`` (reports ``paused``). Stalled
            and stuck documents do not block the queue.
        :param error: the error text for ``"error"``.
        :param count: apply to this many documents, then forget the rule (``None``: always).
        """
        with self.lock:
            self.state.set_outcome(match, outcome, error, count)

    def clear_indexing_outcomes(self) -> None:
        """Forget all indexing outcome rules."""
        with self.lock:
            self.state.outcome_rules.clear()

    def advance_time(self, seconds: float) -> None:
        """Move the emulator's clock forward (indexing, status locks and the rate-limit window follow)."""
        with self.lock:
            self.state.clock_offset += seconds
            self.state.tick(self.state.now())

    def complete_indexing(self) -> None:
        """Finish every queued and running indexing job now (outcome rules still apply)."""
        with self.lock:
            self.state.drain(self.state.now())

    def wait_for_indexing(self, timeout: float = 30.0) -> bool:
        """Wait (real time) until the indexing queue is empty; return whether it emptied in time."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                self.state.tick(self.state.now())
                if self.state.idle:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    # ------------------------------------------------------------------ counters

    @property
    def calls(self) -> list[Call]:
        """Every request received since the last reset, oldest first (a copy)."""
        with self.lock:
            return list(self._calls)

    def count(self, method: str | None = None, route: str | None = None, status: int | None = None) -> int:
        """Requests received, filtered by method, route template (or path) and status."""
        if route is not None and route.startswith("/v1/"):
            route = route[3:]
        with self.lock:
            return sum(
                1
                for c in self._calls
                if (method is None or c.method == method.upper())
                and (route is None or route in (c.route, c.path[3:] if c.path.startswith("/v1/") else c.path))
                and (status is None or c.status == status)
            )

    def write_count(self) -> int:
        """Requests with a method other than GET/HEAD/OPTIONS."""
        with self.lock:
            return sum(1 for c in self._calls if c.method not in ("GET", "HEAD", "OPTIONS"))

    # ------------------------------------------------------------------ inspection and seeding

    @contextmanager
    def _locked(self) -> Iterator[float]:
        with self.lock:
            now = self.state.now()
            self.state.tick(now)
            yield now

    def datasets(self) -> list[dict[str, Any]]:
        """All datasets as ``GET /datasets/{id}`` shows them (copies)."""
        with self._locked():
            return [
                dataset_view(
                    ds,
                    variant="get",
                    counts=self.state.dataset_counts(ds),
                    tags=self.state.dataset_tags(ds),
                    newest=self.config.version_tuple >= (1, 16),
                )
                for ds in self.state.datasets.values()
            ]

    def find_dataset(self, name: str) -> dict[str, Any] | None:
        """The dataset with this name, or ``None``."""
        return next((ds for ds in self.datasets() if ds["name"] == name), None)

    def documents(self, dataset_id: str) -> list[dict[str, Any]]:
        """Documents of a dataset (list shape plus ``text`` and ``batch``), oldest first."""
        with self._locked() as now:
            return self.state.document_dicts(self.state.get_dataset(dataset_id), now)

    def document(self, dataset_id: str, document_id: str) -> dict[str, Any]:
        """One document in the detail shape, plus ``text`` and ``batch``."""
        with self._locked() as now:
            ds = self.state.get_dataset(dataset_id)
            doc = self.state.get_document(ds, document_id)
            return {**document_detail_view(ds, doc, now), "text": doc.text, "batch": doc.batch}

    def segments(self, dataset_id: str, document_id: str) -> list[dict[str, Any]]:
        """Chunks of a document, by position (copies)."""
        with self._locked() as now:
            ds = self.state.get_dataset(dataset_id)
            doc = self.state.get_document(ds, document_id)
            return [
                segment_view(s, doc, now) for s in sorted(doc.segments.values(), key=lambda s: s.position)
            ]

    def tags(self) -> list[dict[str, Any]]:
        """Knowledge tags with their bound dataset ids."""
        with self.lock:
            return [
                {"id": t.id, "name": t.name, "dataset_ids": sorted(self.state.tag_bindings.get(t.id, ()))}
                for t in self.state.tags.values()
            ]

    def create_dataset(self, name: str, *, keyword_number: int = 10, **values: Any) -> dict[str, Any]:
        """
        Create a dataset directly (no HTTP, not counted); ``indexing_technique`` defaults to economy.

        :param keyword_number: keywords the economy index extracts per chunk (set in Dify's console).
        """
        values.setdefault("indexing_technique", "economy")
        with self._locked() as now:
            ds = self.state.create_dataset({"name": name, **values}, now)
            ds.keyword_number = int(keyword_number)
            self.state.bump()
            return dataset_view(
                ds,
                variant="create",
                counts=self.state.dataset_counts(ds),
                tags=[],
                newest=self.config.version_tuple >= (1, 16),
            )

    def create_document(
        self, dataset_id: str, name: str, text: str, *, wait: bool = True, **values: Any
    ) -> dict[str, Any]:
        """Create a text document directly (no HTTP); with ``wait`` its indexing is completed at once."""
        values.setdefault("process_rule", {"mode": "automatic"})
        values.setdefault("indexing_technique", "economy")
        with self._locked() as now:
            ds = self.state.get_dataset(dataset_id)
            doc, _batch = self.state.create_text_document(ds, {"name": name, "text": text, **values}, now)
            if wait:
                self.state.drain(now)
            self.state.bump()
            return {**document_detail_view(ds, doc, now), "text": doc.text, "batch": doc.batch}

    def create_pipeline_dataset(
        self,
        name: str,
        *,
        chunk_structure: str = "text_model",
        process_rule: dict[str, Any] | None = None,
        datasource_nodes: list[dict[str, Any]] | None = None,
        **values: Any,
    ) -> dict[str, Any]:
        """
        Create a knowledge base that ingests through a published knowledge pipeline (``runtime_mode``
        ``rag_pipeline``), as Dify's console does; no HTTP, not counted.

        :param chunk_structure: the document form the pipeline writes.
        :param process_rule: how the pipeline's chunker splits documents (default ``{"mode": "automatic"}``).
        :param datasource_nodes: the pipeline's datasource nodes (``node_id``, ``datasource_type``, ``title``...);
            default one ``local_file`` node, id ``"1750000000000"``.
        """
        values.setdefault("indexing_technique", "economy")
        with self._locked() as now:
            ds = self.state.create_dataset({"name": name, **values}, now)
            add_pipeline(
                self.state, ds, nodes=datasource_nodes, chunk_structure=chunk_structure, process_rule=process_rule
            )
            self.state.bump()
            return dataset_view(
                ds,
                variant="get",
                counts=self.state.dataset_counts(ds),
                tags=[],
                newest=self.config.version_tuple >= (1, 16),
            )

    def set_dataset_api_enabled(self, dataset_id: str, enabled: bool) -> None:
        """Flip a dataset's "API Access" switch (off: its routes answer 403)."""
        with self.lock:
            self.state.get_dataset(dataset_id).enable_api = enabled

    # ------------------------------------------------------------------ request handling

    def _pick_fault(self, method: str, route: str | None, path: str) -> tuple[int | str | None, bool]:
        with self.lock:
            for fault in self._faults:
                if fault.matches(method, route, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault.status, fault.after_processing
            cfg = self.config
            if cfg.reset_rate and self._rng.random() < cfg.reset_rate:
                return "reset", False
            if cfg.fault_rate and self._rng.random() < cfg.fault_rate:
                return self._rng.choice(cfg.fault_statuses), False
        return None, False

    def _record(
        self, method: str, route: str | None, path: str, status: int, fault: str | None, at: float, body: bytes = b""
    ) -> None:
        with self.lock:
            self._calls.append(Call(method, route, path, status, fault, at, body))

    def _handle(self, handler: _Handler) -> None:
        """Serve one request. Calls are recorded before the answer leaves, so a client sees them at once."""
        arrived = self.state.now()
        method = handler.command.upper()
        split = urlsplit(handler.path)
        path = split.path
        headers = handler.headers
        length_header = headers.get("Content-Length")
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        try:
            length = int(length_header) if length_header else (None if chunked else 0)
        except ValueError:
            length = 0
        reader = BodyReader(handler.rfile, length, chunked)
        match = self.router.match(method, path, self.config.version_tuple)
        endpoint = match.endpoint if match else None
        route = endpoint.template if endpoint else None
        fault, after = self._pick_fault(method, route, path)
        if self.config.latency_seconds:
            time.sleep(self.config.latency_seconds)
        if fault == "reset" and not after:
            self._record(method, route, path, 0, "reset", arrived)
            handler.reset_connection()
            return
        try:
            if fault is not None and not after:
                reader.drain()
                response = _error_response(int(fault))
                self._record(method, route, path, response.status, "injected", arrived)
                handler.send_answer(response)
                return
            response, body = self._respond(match, endpoint, reader, method, path, split.query, headers)
        except BodyError:
            handler.close_connection = True
            self._record(method, route, path, 0, "client", arrived)
            return
        if fault == "reset":
            self._record(method, route, path, 0, "reset", arrived, body)
            handler.reset_connection()
            return
        if fault is not None:
            response = _error_response(int(fault))
        self._record(method, route, path, response.status, "injected" if fault is not None else None, arrived, body)
        handler.send_answer(response)

    def _respond(
        self,
        match: Match | None,
        endpoint: Endpoint | None,
        reader: BodyReader,
        method: str,
        path: str,
        query: str,
        headers: Any,
    ) -> tuple[Response, bytes]:
        """The answer to a request, and its body as read (empty for a multipart upload)."""
        if match is None:
            reader.drain()
            return Response(404, NOT_FOUND_HTML, content_type=HTML), b""
        if endpoint is None:
            reader.drain()
            if method == "OPTIONS":
                return Response(200, None, content_type=HTML, headers={"Allow": ", ".join(match.allowed)}), b""
            body = {
                "code": "method_not_allowed",
                "message": "The method is not allowed for the requested URL.",
                "status": 405,
            }
            return Response(405, body, headers={"Allow": ", ".join(match.allowed)}), b""
        request = Request(method, path, parse_qs(query, keep_blank_values=True), headers, params=match.params)
        boundary = boundary_of(headers.get("Content-Type") or "")
        if request.content_type == "multipart/form-data" and boundary:
            request.parts = parse_multipart(reader, boundary, self.config.upload_limit_bytes)
        else:
            request.body = reader.read_all(MAX_JSON_BODY)
        return self._dispatch(endpoint, request), request.body

    def _dispatch(self, endpoint: Endpoint, request: Request) -> Response:
        try:
            with self.lock:
                state = self.state
                now = state.now()
                state.tick(now)
                try:
                    ctx = Ctx(request, state, self.config, now, self.url)
                    if endpoint.auth:
                        self._authenticate(request)
                    dataset_id = request.params.get("dataset_id")
                    if dataset_id is not None:
                        ctx.ds = state.get_dataset(dataset_id)
                        if not ctx.ds.enable_api:
                            raise ApiError(403, "forbidden", "Dataset api access is not enabled.")
                    if endpoint.document_quota:
                        state.check_document_quota()
                    if endpoint.sandbox:
                        state.check_sandbox()
                    if endpoint.rate_limited:
                        state.check_rate_limit(now)
                    response = endpoint.handler(ctx)
                    if self._writers:
                        run_interference(self._writers, endpoint.template, request, state, now)
                    return response
                finally:
                    if request.method not in ("GET", "HEAD", "OPTIONS"):
                        state.bump()
        except ApiError as error:
            body = error.to_body()
            if error.status == 404 and error.body is None:
                body = {
                    **body,
                    "message": self.router.help_on_404(
                        error.message, request.path, self.config.version_tuple
                    ),
                }
            headers = dict(error.headers)
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return Response(error.status, body, headers=headers)
        except Exception:
            self.last_exception = traceback.format_exc()
            if "DIFY_EMULATOR_DEBUG" in os.environ:
                print(self.last_exception, file=sys.stderr)
            return Response(500, internal_error().to_body())

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization")
        if header is None or " " not in header:
            raise ApiError(
                401, "unauthorized", "Authorization header must be provided and start with 'Bearer'"
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError(401, "unauthorized", "Authorization scheme must be 'Bearer'")
        if not secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "unauthorized", "Access token is invalid")


__all__ = ["JSON", "Call", "DifyEmulator"]
