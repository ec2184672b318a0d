"""DifyHook: the Knowledge API over a ``dify`` Airflow connection, one typed method per operation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_dify.exceptions import (
    DifyAuthenticationError,
    DifyConnectionError,
    DifyDatasetNotFoundError,
    DifyError,
    DifyInvalidResponseError,
    DifyNotFoundError,
    DifyRateLimitError,
    DifyUnsupportedEndpointError,
)
from airflow_provider_dify.hooks import operations as ops
from airflow_provider_dify.hooks.budget import (
    RateBudget,
    SharedWindow,
    machine_window,
    shared_budget,
    workspace_budget,
)
from airflow_provider_dify.hooks.connection import (
    CONN_TYPE,
    CONNECTION_EXTRAS,
    DEFAULT_CONN_ID,
    MACHINE_STORAGE,
    PROCESS_STORAGE,
    DifyConnectionSettings,
)
from airflow_provider_dify.hooks.operations import MAX_PAGE_SIZE, ApiRequest, FileUpload
from airflow_provider_dify.hooks.paging import PageGuard
from airflow_provider_dify.hooks.responses import connection_error, dataset_id_of, read_response

if TYPE_CHECKING:
    import os

    import requests

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


def user_agent() -> str:
    """The User-Agent sent with every request."""
    from airflow_provider_dify import __version__

    return f"airflow-provider-dify/{__version__}"


def connection_ui_behaviour() -> dict[str, Any]:
    """Labels, hidden fields and placeholders of the ``dify`` connection form."""
    return {
        "hidden_fields": ["schema", "port", "login"],
        "relabeling": {"host": "API base URL", "password": "API key"},
        "placeholders": {
            "host": "https://api.dify.ai/v1",
            "password": "dataset-...",
            "extra": '{"timeout": 60, "requests_per_minute": 100}',
        },
    }


class DifyHook(BaseHook):
    """
    Talks to Dify's Knowledge Base ("dataset") API with the key of a ``dify`` connection.

    One ``requests.Session`` per hook (connections are reused), ``Authorization: Bearer <key>``, explicit
    timeouts, retries with exponential back-off and jitter for the failures worth repeating (see
    :class:`~airflow_provider_dify.hooks.retries.RetryPolicy`), and the
    rate budget of the workspace (:mod:`~airflow_provider_dify.hooks.budget`). Every error is raised as a
    :class:`~airflow_provider_dify.exceptions.DifyError` subclass.

    Writes that may be repeated after a failure whose outcome is unknown (a read timeout, a reset after
    sending, a 5xx) are the idempotent ones: reads, retrieve, deletes, updates, status and metadata changes,
    and the creates that Dify upserts by name (create-by-text, create-by-file unless ``duplicate=False``,
    create dataset, which answers 409 on a repeat). Adding chunks or child chunks is never repeated then;
    the operators reconcile such a call by reading what exists.

    :param dify_conn_id: the Airflow connection id (type ``dify``): host = API base URL, password = API key.
    """

    conn_name_attr = "dify_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Dify"

    def __init__(self, dify_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.dify_conn_id = dify_conn_id
        #: Sleep function used between retries (tests replace it to avoid real waits).
        self.sleep: Callable[[float], Any] = time.sleep
        self._use_alias: set[str] = set()
        #: Knowledge bases that answered 404 "Dataset not found." to this hook: later requests fail at once.
        self._missing_datasets: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dify_conn_id={self.dify_conn_id!r})"

    # -- connection ------------------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: relabel host and password, hide fields Dify does not use."""
        return connection_ui_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Connection form widgets for the extras (Airflow < 3.2; newer ones read ``conn-fields``)."""
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import BooleanField, StringField
        except ImportError:  # Airflow 3 has no Flask form stack: the provider info's conn-fields serve.
            return {}
        widgets: dict[str, Any] = {}
        for name, description in CONNECTION_EXTRAS.items():
            if name == "verify_ssl":
                widgets[name] = BooleanField(lazy_gettext(name), default=True, description=description)
            else:
                widgets[name] = StringField(lazy_gettext(name), widget=BS3TextFieldWidget(), description=description)
        return widgets

    @cached_property
    def settings(self) -> DifyConnectionSettings:
        """The parsed connection (base URL, key, timeouts, retry policy, rate limit, console URL)."""
        from airflow.providers.common.compat.sdk import mask_secret

        conn = self.get_connection(self.dify_conn_id)
        settings = DifyConnectionSettings.from_connection(conn)
        mask_secret(settings.api_key)
        return settings

    @cached_property
    def session(self) -> requests.Session:
        """The hook's HTTP session (created on first use)."""
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(
            {
                "Authorization": f"Bearer {self.settings.api_key}",
                "User-Agent": user_agent(),
                "Accept": "application/json",
            }
        )
        session.verify = self.settings.verify
        return session

    @cached_property
    def rate_budget(self) -> RateBudget:
        """This process's budget of the workspace's rate limit (shared by every hook of the process)."""
        settings = self.settings
        return workspace_budget(settings.workspace_key, settings.requests_per_minute, settings.rate_limit_window)

    @cached_property
    def _shared_budget(self) -> SharedWindow | None:
        settings = self.settings
        storage = settings.rate_limit_storage
        if storage is None or storage == PROCESS_STORAGE or settings.requests_per_minute is None:
            return None
        if storage == MACHINE_STORAGE:
            return machine_window(settings.requests_per_minute, settings.workspace_key, settings.rate_limit_window)
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(settings.rate_limit_storage)
        return shared_budget(
            settings.rate_limit_storage,
            settings.requests_per_minute,
            settings.workspace_key,
            settings.rate_limit_window,
        )

    @contextmanager
    def rate_limit_part(self, calls: int, sync: str) -> Iterator[None]:
        """
        While in the block, keep this worker to ``calls`` requests a window: its part of the workspace's limit.

        A shard of a sync takes the part its records are of the whole, so that shards on machines that share no
        window keep together to the limit. With the machine's window (the default) the part counts towards the
        machine's limit, so the shards of a sync on one machine still share the whole limit exactly; with a
        shared store (Redis) every worker counts in one window and the part changes nothing.

        :param calls: the part, in requests a window (at least 1).
        :param sync: names the sync the shard is part of (the same in all its shards, and only in them).
        """
        import hashlib

        shared = self._shared_budget
        if shared is None:
            with self.rate_budget.part(calls):
                yield
            return
        with shared.part(calls, hashlib.sha256(sync.encode()).hexdigest()[:16]):
            yield

    def get_conn(self) -> requests.Session:
        """Return the configured ``requests.Session``."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def test_connection(self) -> tuple[bool, str]:
        """List one knowledge base: ``(True, message)`` when the key works, ``(False, reason)`` otherwise."""
        try:
            base_url = self.settings.base_url
            page = self.list_datasets(limit=1)
        except DifyAuthenticationError as error:
            return False, f"Dify refused the API key (HTTP 401: {error.message}). Use a knowledge API key."
        except DifyConnectionError as error:
            return False, f"Cannot reach Dify at {self.settings.base_url}: {error.message}"
        except (DifyUnsupportedEndpointError, DifyInvalidResponseError) as error:
            return False, (
                f"{self.settings.base_url} does not answer like a Dify API ({error.message}); the host must be the"
                " API base URL, e.g. https://api.dify.ai/v1 or http://<your-dify-host>/v1."
            )
        except (DifyError, ValueError) as error:
            return False, str(error)
        return True, f"Connected to {base_url}: {page.get('total', 0)} knowledge base(s) visible."

    # -- sending ---------------------------------------------------------------------------------------------

    def send(self, request: ApiRequest) -> Any:
        """
        Send a request description with retries, the rate budget and the route alias fallback.

        :param request: a description from :mod:`airflow_provider_dify.hooks.operations`.
        :return: the decoded JSON body (``None`` for empty bodies).
        """
        import tenacity

        self._refuse_missing_dataset(request)
        policy = self.settings.retry
        retrying = tenacity.Retrying(
            **policy.tenacity_arguments(
                request,
                sleep=self._sleep_if_positive,
                before_sleep=self._log_retry,
                window_managed=request.rate_limited,
            )
        )
        for attempt in retrying:
            with attempt:
                try:
                    return self._send_choosing_route(request)
                except DifyNotFoundError as error:
                    if isinstance(error, DifyDatasetNotFoundError) and error.dataset_id:
                        self._missing_datasets.add(error.dataset_id)
                    if request.missing_is_success_on_retry and attempt.retry_state.attempt_number > 1:
                        log.info("%s: already gone after an earlier attempt; treated as done", request.operation)
                        return None
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    def dataset_gone(self, dataset_id: str) -> bool:
        """Whether a request of this hook to knowledge base ``dataset_id`` was answered 404 "Dataset not found."."""
        return str(dataset_id) in self._missing_datasets

    def _refuse_missing_dataset(self, request: ApiRequest) -> None:
        dataset_id = dataset_id_of(request.path)
        if dataset_id is not None and dataset_id in self._missing_datasets:
            raise DifyDatasetNotFoundError(
                f"knowledge base {dataset_id} does not exist any more (an earlier request of this task answered"
                " 'Dataset not found.'; was it deleted while the task ran?); request not sent",
                dataset_id=dataset_id,
                status=404,
                code="not_found",
                method=request.method,
                path=request.path,
            )

    def _send_choosing_route(self, request: ApiRequest) -> Any:
        if request.alias is not None and request.operation in self._use_alias:
            return self._send_once(request.with_alias())
        try:
            return self._send_once(request)
        except DifyUnsupportedEndpointError:
            if request.alias is None:
                raise
            log.info(
                "%s %s is not known to this Dify server; using %s %s", request.method, request.path, *request.alias
            )
        try:
            result = self._send_once(request.with_alias())
        except DifyError as error:
            if error.status is not None and not isinstance(error, DifyUnsupportedEndpointError):
                self._use_alias.add(request.operation)  # the older route answered, so it exists
            raise
        self._use_alias.add(request.operation)
        return result

    def _sleep_if_positive(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)

    def _send_once(self, request: ApiRequest) -> Any:
        if not request.rate_limited:
            return self._send_now(request)
        budget = self.rate_budget
        slot, waited = budget.acquire(self.sleep)
        refused = False
        shared = self._shared_budget
        token: str | None = None
        try:
            if shared is not None:
                token, shared_waited = shared.acquire(self.sleep)
                waited += shared_waited
            if waited:
                log.info("Waited %.1f s for a place in Dify's rate-limit window", waited)
            return self._send_now(request)
        except DifyRateLimitError as error:
            refused = error.status == 403
            raise
        finally:
            if token is not None and shared is not None:
                shared.release(token)
            budget.release(slot, refused=refused)

    def _send_now(self, request: ApiRequest) -> Any:
        import requests

        settings = self.settings
        kwargs: dict[str, Any] = {"params": list(request.params) or None, "timeout": settings.timeout}
        if request.is_multipart:
            body = request.multipart_body()
            kwargs["data"] = body
            kwargs["headers"] = {"Content-Type": body.content_type}
        elif request.json_body is not None:
            kwargs["json"] = request.json_body
        started = time.monotonic()
        key = settings.api_key
        try:
            response = self.session.request(request.method, settings.base_url + request.path, **kwargs)
        except requests.ConnectTimeout as error:
            raise connection_error(request, error, maybe_delivered=False, secret=key) from None
        except requests.ConnectionError as error:
            raise connection_error(request, error, maybe_delivered=not _never_connected(error), secret=key) from None
        except (requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            # Timed out waiting for, or cut off while reading, the response: the server may have acted.
            raise connection_error(request, error, maybe_delivered=True, secret=key) from None
        except (requests.RequestException, ValueError, UnicodeError) as error:
            # Anything else requests raises (an invalid header or URL...) is refused before sending; its text
            # may quote a header, so the key is taken out.
            raise connection_error(request, error, maybe_delivered=False, secret=key) from None
        log.debug(
            "%s %s -> %s (%.0f ms)",
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return read_response(
            request, response.status_code, response.headers, response.content, base_url=settings.base_url
        )

    def _log_retry(self, state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        if wait:
            log.warning("Attempt %d failed (%s); retrying in %.1f s", state.attempt_number, error, wait)
        else:
            log.warning(
                "Attempt %d failed (%s); retrying when the rate-limit window has room", state.attempt_number, error
            )

    def _paginate(self, make_request: Callable[[int, int], ApiRequest], page_size: int) -> Iterator[JsonDict]:
        """
        Yield every item of a paged list once (by ``id``); see :class:`~.paging.PageGuard`.

        ``has_more`` is not trusted (Dify sets it when a page is full). Items another writer shifts between
        pages are yielded once; when the list's ``total`` moved while it was read, it is read again for the
        items a delete may have shifted out of sight. A server that ignores ``page``/``limit`` ends the listing
        with its complete answer, or with :class:`~airflow_provider_dify.exceptions.DifyPaginationError`.
        """
        guard = PageGuard(page_size)
        while guard.start_pass():
            page = 1
            while True:
                request = make_request(page, page_size)
                response = self.send(request) or {}
                fresh, more = guard.read(page, response, request)
                yield from fresh
                if not more:
                    break
                page += 1

    # -- datasets --------------------------------------------------------------------------------------------

    def create_dataset(self, name: str, **fields: Any) -> JsonDict:
        """
        Create an empty knowledge base.

        :param name: 1-40 characters, unique in the workspace (409 ``dataset_name_duplicate`` otherwise).
        :param fields: ``description``, ``indexing_technique``, ``permission``, ``embedding_model``,
            ``embedding_model_provider``, ``retrieval_model``...
        """
        return self.send(ops.create_dataset(name, **fields))

    def list_datasets(
        self,
        *,
        page: int = 1,
        limit: int = 20,
        keyword: str | None = None,
        include_all: bool | None = None,
        tag_ids: Sequence[str] | None = None,
    ) -> JsonDict:
        """One page of knowledge bases: ``{data, has_more, limit, total, page}``."""
        return self.send(
            ops.list_datasets(page=page, limit=limit, keyword=keyword, include_all=include_all, tag_ids=tag_ids)
        )

    def iter_datasets(
        self,
        *,
        keyword: str | None = None,
        include_all: bool | None = None,
        tag_ids: Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[JsonDict]:
        """Every knowledge base, page by page."""
        return self._paginate(
            lambda page, limit: ops.list_datasets(
                page=page, limit=limit, keyword=keyword, include_all=include_all, tag_ids=tag_ids
            ),
            page_size,
        )

    def find_dataset_by_name(self, name: str) -> JsonDict | None:
        """The knowledge base named exactly ``name`` (names are unique per workspace), or ``None``."""
        for dataset in self.iter_datasets(keyword=name, include_all=True):
            if dataset.get("name") == name:
                return dataset
        return None

    def get_dataset(self, dataset_id: str) -> JsonDict:
        """One knowledge base."""
        return self.send(ops.get_dataset(dataset_id))

    def update_dataset(self, dataset_id: str, **changes: Any) -> JsonDict:
        """Change the given fields of a knowledge base (name, description, permission, retrieval_model...)."""
        return self.send(ops.update_dataset(dataset_id, **changes))

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a knowledge base and its documents (409 ``dataset_in_use`` while apps use it)."""
        self.send(ops.delete_dataset(dataset_id))

    # -- documents -------------------------------------------------------------------------------------------

    def create_document_by_text(self, dataset_id: str, name: str, text: str, **options: Any) -> JsonDict:
        """
        Create a document from text: ``{document, batch}``.

        Dify reuses an enabled document with the same name (same id, new batch, re-indexed).

        :param options: ``indexing_technique``, ``doc_form``, ``doc_language``, ``process_rule``,
            ``retrieval_model``, ``embedding_model``, ``embedding_model_provider``.
        """
        return self.send(ops.create_document_by_text(dataset_id, name, text, **options))

    def create_document_by_file(
        self,
        dataset_id: str,
        file_path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        **options: Any,
    ) -> JsonDict:
        """
        Create a document from a local file, streamed from disk: ``{document, batch}``.

        :param file_path: the file to upload (checked before anything is sent).
        :param filename: the document name (defaults to the file's name); Dify reuses a document of that name
            unless ``duplicate=False`` is passed.
        :param options: as :meth:`create_document_by_text`, plus ``duplicate``.
        """
        upload = FileUpload.from_path(file_path, filename)
        self._check_upload(upload)
        return self.send(ops.create_document_by_file(dataset_id, upload, **options))

    def update_document_by_text(self, dataset_id: str, document_id: str, **fields: Any) -> JsonDict:
        """Replace a document's text (``name`` with ``text``) or settings: ``{document, batch}``."""
        return self.send(ops.update_document_by_text(dataset_id, document_id, **fields))

    def update_document_by_file(
        self,
        dataset_id: str,
        document_id: str,
        file_path: str | os.PathLike[str] | None = None,
        *,
        filename: str | None = None,
        **options: Any,
    ) -> JsonDict:
        """Replace a document's file and/or settings (PATCH, or POST update-by-file on Dify < 1.15)."""
        upload = FileUpload.from_path(file_path, filename) if file_path is not None else None
        if upload is not None:
            self._check_upload(upload)
        return self.send(ops.update_document_by_file(dataset_id, document_id, upload, **options))

    def _check_upload(self, upload: FileUpload) -> None:
        """Refuse a file the server would refuse (size, extension), by the connection's upload limits."""
        from airflow_provider_dify.hooks.validation import check_upload_allowed

        check_upload_allowed(self.settings, upload.path, upload.filename)

    def list_documents(
        self,
        dataset_id: str,
        *,
        page: int = 1,
        limit: int = 20,
        keyword: str | None = None,
        status: str | None = None,
    ) -> JsonDict:
        """One page of documents, newest first: ``{data, has_more, limit, total, page}``."""
        return self.send(ops.list_documents(dataset_id, page=page, limit=limit, keyword=keyword, status=status))

    def iter_documents(
        self,
        dataset_id: str,
        *,
        keyword: str | None = None,
        status: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[JsonDict]:
        """Every document of a knowledge base (optionally filtered by name keyword or display status)."""
        return self._paginate(
            lambda page, limit: ops.list_documents(dataset_id, page=page, limit=limit, keyword=keyword, status=status),
            page_size,
        )

    def find_documents_by_name(self, dataset_id: str, name: str) -> list[JsonDict]:
        """Documents named exactly ``name``, newest first (Dify's keyword filter is a substring match)."""
        return [
            doc for doc in self.iter_documents(dataset_id, keyword=ops.like_literal(name)) if doc.get("name") == name
        ]

    def get_document(self, dataset_id: str, document_id: str, *, metadata: ops.MetadataMode = "all") -> JsonDict:
        """One document in detail; ``metadata`` is ``all``, ``only`` or ``without``."""
        return self.send(ops.get_document(dataset_id, document_id, metadata=metadata))

    def delete_document(self, dataset_id: str, document_id: str) -> None:
        """Delete a document (403 when archived, 400 while indexing)."""
        self.send(ops.delete_document(dataset_id, document_id))

    def get_indexing_status(self, dataset_id: str, batch: str) -> list[JsonDict]:
        """The indexing status of every document of a batch (404 for an unknown or superseded batch)."""
        return (self.send(ops.get_indexing_status(dataset_id, batch)) or {}).get("data", [])

    def update_document_status(
        self, dataset_id: str, action: ops.DocumentAction, document_ids: Sequence[str]
    ) -> JsonDict:
        """Enable, disable, archive or un_archive documents."""
        return self.send(ops.update_document_status(dataset_id, action, document_ids))

    def get_upload_file(self, dataset_id: str, document_id: str) -> JsonDict:
        """The uploaded file behind a document (legacy route, absent on some servers)."""
        return self.send(ops.get_upload_file(dataset_id, document_id))

    def get_document_download_url(self, dataset_id: str, document_id: str) -> str:
        """A signed URL to a document's original file (Dify >= 1.13)."""
        return (self.send(ops.get_document_download_url(dataset_id, document_id)) or {}).get("url", "")

    # -- segments --------------------------------------------------------------------------------------------

    def add_segments(self, dataset_id: str, document_id: str, segments: Sequence[Mapping[str, Any]]) -> list[JsonDict]:
        """
        Add chunks to a completed, enabled document (404 "Document is not completed." otherwise).

        Not repeated after a failure whose outcome is unknown: a repeat would add the chunks twice.

        :param segments: ``[{"content": ..., "answer"?: ..., "keywords"?: [...]}]``.
        """
        return (self.send(ops.add_segments(dataset_id, document_id, segments)) or {}).get("data", [])

    def list_segments(
        self,
        dataset_id: str,
        document_id: str,
        *,
        page: int = 1,
        limit: int = 20,
        keyword: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> JsonDict:
        """One page of a document's chunks."""
        return self.send(
            ops.list_segments(dataset_id, document_id, page=page, limit=limit, keyword=keyword, status=status)
        )

    def iter_segments(
        self,
        dataset_id: str,
        document_id: str,
        *,
        keyword: str | None = None,
        status: str | Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[JsonDict]:
        """Every chunk of a document."""
        return self._paginate(
            lambda page, limit: ops.list_segments(
                dataset_id, document_id, page=page, limit=limit, keyword=keyword, status=status
            ),
            page_size,
        )

    def get_segment(self, dataset_id: str, document_id: str, segment_id: str) -> JsonDict:
        """One chunk."""
        return (self.send(ops.get_segment(dataset_id, document_id, segment_id)) or {}).get("data", {})

    def update_segment(self, dataset_id: str, document_id: str, segment_id: str, **fields: Any) -> JsonDict:
        """Change a chunk: ``content``, ``answer``, ``keywords``, ``enabled``, ``regenerate_child_chunks``."""
        return (self.send(ops.update_segment(dataset_id, document_id, segment_id, fields)) or {}).get("data", {})

    def delete_segment(self, dataset_id: str, document_id: str, segment_id: str) -> None:
        """Delete a chunk."""
        self.send(ops.delete_segment(dataset_id, document_id, segment_id))

    # -- child chunks ----------------------------------------------------------------------------------------

    def list_child_chunks(
        self,
        dataset_id: str,
        document_id: str,
        segment_id: str,
        *,
        page: int = 1,
        limit: int = 20,
        keyword: str | None = None,
    ) -> JsonDict:
        """One page of a chunk's child chunks (hierarchical documents)."""
        return self.send(
            ops.list_child_chunks(dataset_id, document_id, segment_id, page=page, limit=limit, keyword=keyword)
        )

    def iter_child_chunks(
        self, dataset_id: str, document_id: str, segment_id: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[JsonDict]:
        """Every child chunk of a chunk."""
        return self._paginate(
            lambda page, limit: ops.list_child_chunks(dataset_id, document_id, segment_id, page=page, limit=limit),
            page_size,
        )

    def add_child_chunk(self, dataset_id: str, document_id: str, segment_id: str, content: str) -> JsonDict:
        """Add a child chunk (not repeated after an unknown outcome)."""
        return (self.send(ops.add_child_chunk(dataset_id, document_id, segment_id, content)) or {}).get("data", {})

    def update_child_chunk(
        self, dataset_id: str, document_id: str, segment_id: str, child_chunk_id: str, content: str
    ) -> JsonDict:
        """Replace a child chunk's content."""
        request = ops.update_child_chunk(dataset_id, document_id, segment_id, child_chunk_id, content)
        return (self.send(request) or {}).get("data", {})

    def delete_child_chunk(self, dataset_id: str, document_id: str, segment_id: str, child_chunk_id: str) -> None:
        """Delete a child chunk."""
        self.send(ops.delete_child_chunk(dataset_id, document_id, segment_id, child_chunk_id))

    # -- retrieval -------------------------------------------------------------------------------------------

    def retrieve(
        self,
        dataset_id: str,
        query: str | None = None,
        *,
        retrieval_model: Mapping[str, Any] | None = None,
        external_retrieval_model: Mapping[str, Any] | None = None,
        attachment_ids: Sequence[str] | None = None,
    ) -> JsonDict:
        """
        Search a knowledge base: ``{query: {content}, records: [...]}``.

        Economy knowledge bases need ``retrieval_model={"search_method": "keyword_search", ...}``; without one
        Dify tries semantic search and fails (see :func:`default_retrieval_model`).

        :param query: the search text (at most 250 characters); optional when ``attachment_ids`` are given.
        :param attachment_ids: ids of uploaded files to search by (multimodal knowledge bases).
        """
        return self.send(
            ops.retrieve(
                dataset_id,
                query,
                retrieval_model=retrieval_model,
                external_retrieval_model=external_retrieval_model,
                attachment_ids=attachment_ids,
            )
        )

    # -- documents: several files at once --------------------------------------------------------------------

    def download_documents_zip(
        self, dataset_id: str, document_ids: Sequence[str], destination: str | os.PathLike[str] | None = None
    ) -> bytes:
        """
        The original files of 1-100 documents in one ZIP archive (Dify >= 1.13; 404 when one is not a file).

        :param document_ids: the documents (Dify adds " (n)" to repeated file names inside the archive).
        :param destination: also write the archive to this path.
        :return: the archive's bytes.
        """
        archive = self.send(ops.download_documents_zip(dataset_id, document_ids)) or b""
        if destination is not None:
            from pathlib import Path

            Path(destination).write_bytes(archive)
        return archive

    # -- knowledge pipeline ----------------------------------------------------------------------------------

    def upload_pipeline_file(
        self, file_path: str | os.PathLike[str], *, filename: str | None = None
    ) -> JsonDict:
        """
        Upload a file for a knowledge pipeline: ``{id, name, size, extension, mime_type, created_by, created_at}``.

        The ``id`` is the ``reference`` of a ``local_file`` item of :meth:`run_pipeline`.
        """
        return self.send(ops.upload_pipeline_file(FileUpload.from_path(file_path, filename)))

    def list_pipeline_datasource_plugins(self, dataset_id: str, *, is_published: bool = True) -> list[JsonDict]:
        """The datasource nodes of a pipeline knowledge base (``node_id``, ``datasource_type``, ``title``...)."""
        return self.send(ops.list_pipeline_datasource_plugins(dataset_id, is_published=is_published)) or []

    def run_pipeline_datasource_node(
        self,
        dataset_id: str,
        node_id: str,
        *,
        inputs: Mapping[str, Any],
        datasource_type: ops.PipelineDatasourceType,
        is_published: bool = True,
        credential_id: str | None = None,
    ) -> list[Any]:
        """Run one datasource node of the pipeline; the events Dify streams back (decoded JSON payloads)."""
        body = self.send(
            ops.run_pipeline_datasource_node(
                dataset_id,
                node_id,
                inputs=inputs,
                datasource_type=datasource_type,
                is_published=is_published,
                credential_id=credential_id,
            )
        )
        return ops.parse_event_stream(body or b"")

    def run_pipeline(
        self,
        dataset_id: str,
        *,
        inputs: Mapping[str, Any],
        datasource_type: ops.PipelineDatasourceType,
        datasource_info_list: Sequence[Mapping[str, Any]],
        start_node_id: str,
        is_published: bool = True,
    ) -> JsonDict:
        """
        Run the knowledge pipeline (blocking): a published run answers ``{batch, dataset, documents}`` at once,
        with one document per datasource item, and indexes them in the background.

        Not repeated after a failure whose outcome is unknown: a repeat would create the documents again.
        """
        return self.send(
            ops.run_pipeline(
                dataset_id,
                inputs=inputs,
                datasource_type=datasource_type,
                datasource_info_list=datasource_info_list,
                start_node_id=start_node_id,
                is_published=is_published,
                response_mode="blocking",
            )
        )

    # -- metadata --------------------------------------------------------------------------------------------

    def create_metadata_field(self, dataset_id: str, name: str, type: ops.MetadataType = "string") -> JsonDict:
        """Create a metadata field: ``{id, name, type}``."""
        return self.send(ops.create_metadata_field(dataset_id, name, type))

    def list_metadata_fields(self, dataset_id: str) -> JsonDict:
        """``{doc_metadata: [{id, name, type, count}], built_in_field_enabled}``."""
        return self.send(ops.list_metadata_fields(dataset_id))

    def update_metadata_field(self, dataset_id: str, metadata_id: str, name: str) -> JsonDict:
        """Rename a metadata field."""
        return self.send(ops.update_metadata_field(dataset_id, metadata_id, name))

    def delete_metadata_field(self, dataset_id: str, metadata_id: str) -> None:
        """Delete a metadata field and its values."""
        self.send(ops.delete_metadata_field(dataset_id, metadata_id))

    def list_built_in_metadata_fields(self, dataset_id: str) -> list[JsonDict]:
        """The built-in fields (document_name, uploader, upload_date, last_update_date, source)."""
        return (self.send(ops.list_built_in_metadata_fields(dataset_id)) or {}).get("fields", [])

    def set_built_in_metadata(self, dataset_id: str, enabled: bool) -> None:
        """Turn the built-in metadata fields on or off."""
        self.send(ops.set_built_in_metadata(dataset_id, enabled))

    def update_documents_metadata(self, dataset_id: str, operation_data: Sequence[Mapping[str, Any]]) -> None:
        """Set metadata values of documents in one call (see :func:`~.operations.update_documents_metadata`)."""
        self.send(ops.update_documents_metadata(dataset_id, operation_data))

    # -- knowledge tags --------------------------------------------------------------------------------------

    def list_tags(self) -> list[JsonDict]:
        """Every knowledge tag of the workspace."""
        return self.send(ops.list_tags()) or []

    def create_tag(self, name: str) -> JsonDict:
        """Create a knowledge tag."""
        return self.send(ops.create_tag(name))

    def update_tag(self, tag_id: str, name: str) -> JsonDict:
        """Rename a knowledge tag."""
        return self.send(ops.update_tag(tag_id, name))

    def delete_tag(self, tag_id: str) -> None:
        """Delete a knowledge tag (knowledge bases are kept)."""
        self.send(ops.delete_tag(tag_id))

    def bind_tags(self, dataset_id: str, tag_ids: Sequence[str]) -> None:
        """Bind tags to a knowledge base."""
        self.send(ops.bind_tags(dataset_id, tag_ids))

    def unbind_tag(self, dataset_id: str, tag_id: str) -> None:
        """Unbind a tag from a knowledge base."""
        self.send(ops.unbind_tag(dataset_id, tag_id))

    def list_dataset_tags(self, dataset_id: str) -> list[JsonDict]:
        """The tags bound to a knowledge base."""
        return (self.send(ops.list_dataset_tags(dataset_id)) or {}).get("data", [])

    # -- models ----------------------------------------------------------------------------------------------

    def list_models(self, model_type: ops.ModelType = "text-embedding") -> list[JsonDict]:
        """Models available to the workspace, by provider (``embedding_model`` = a ``models[].model``)."""
        return (self.send(ops.list_models(model_type)) or {}).get("data", [])


def default_retrieval_model(dataset: Mapping[str, Any], *, top_k: int = 3) -> dict[str, Any]:
    """
    A retrieval model that works for the knowledge base: keyword search on economy ones (Dify's default,
    semantic search, fails there), semantic search otherwise.
    """
    method = "keyword_search" if dataset.get("indexing_technique") == "economy" else "semantic_search"
    return {
        "search_method": method,
        "reranking_enable": False,
        "top_k": top_k,
        "score_threshold_enabled": False,
    }


def _never_connected(error: Exception) -> bool:
    """Whether a ``requests.ConnectionError`` happened before anything was sent (refused, DNS failure)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError  # NameResolutionError subclasses it

    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)

