"""Keep a Dify knowledge base in step with a source of records: one document per record, or one chunk per record.

* :class:`DifySyncDocumentsOperator`: each record is a document (name from a key column, content hash and
  metadata in Dify metadata fields). Per-record metadata filtering works; Dify indexes documents one at a
  time per workspace, so large exports wait on its queue.
* :class:`DifySyncChunksOperator`: each record is a chunk of one document that stands for the scope (a table,
  a partition). Chunks are indexed within the add request, so thousands of rows go in within seconds.

Both read records the same way (a list from XCom, a callable, a SQL query, files under an object storage
prefix) and render them the same way (:mod:`airflow_provider_dify.operators._records`). See
docs/warehouse-sync.md for the choice between them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_dify.operators._base import (
    DifyIndexingWaitOperator,
    bad_arguments_fail_the_task,
    check_choice,
    check_dataset_and_document,
    check_process_rule,
    check_string,
    skip_check,
)
from airflow_provider_dify.operators._document_sync import SCOPE_FIELD
from airflow_provider_dify.operators._documents import (
    DOC_FORMS,
    INDEXING_TECHNIQUES,
    refuse_pipeline_knowledge_base,
    resolve_dataset,
)
from airflow_provider_dify.operators._input import check_uploads, literal_records, rendered_records
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators._records import RecordRenderer, RenderedRecord

#: Failures that need a fix in the source or the DAG, not a retry: a record that does not render, a planned
#: write that cannot be made as the knowledge base stands (a name owned by another scope, an archived document).
PERMANENT_OPERATIONS = frozenset({"render", "plan"})
#: The XCom key of the manifest of a sync that failed in part.
FAILED_MANIFEST_XCOM_KEY = "manifest"
#: Failures listed in the task's error message (all of them are in the manifest).
_FAILURES_SHOWN = 5


def _positive_int(value: Any, name: str, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (maximum and value > maximum):
        limit = f" and at most {maximum}" if maximum else ""
        raise ValueError(f"{name}: must be a whole number of at least 1{limit}, got {value!r}.")
    return value


class _RecordSyncOperator(KnowledgeBaseLineageMixin, DifyIndexingWaitOperator):
    """
    What both sync operators share: the record source, the rendering, the shared hook and the failure report.

    :param dataset_id: the knowledge base's id (templated; or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (templated; or give ``dataset_id``).
    :param records: the records: a list of dicts, passed as written (its values are never rendered as Jinja);
        a template string (``"{{ ti.xcom_pull(task_ids='extract') }}"``) or an ``XComArg``, rendered and read as
        the list it stands for (native objects, JSON or a Python literal); or a callable returning an iterable of
        dicts, called with the context variables it names (``ds``, ``params``...).
    :param sql: a query whose rows are the records (templated; ``.sql`` files are read).
    :param sql_conn_id: the Airflow SQL connection the query runs on (any common-sql ``DbApiHook``).
    :param parameters: the query's parameters (templated).
    :param path: an ``ObjectStoragePath`` or URL prefix (templated); each file under it is a record with the
        columns ``path`` (relative), ``name``, ``suffix``, ``size``, ``uri``.
    :param path_glob: which files under ``path`` (templated; default ``**/*``: all of them).
    :param key_field: the column holding each record's stable key.
    :param text_template: a Jinja template (the record's columns are variables, the record is ``record``) or a
        callable ``record -> str`` rendering the text; default: one ``column: value`` line per column.
    :param max_workers: parallel requests on one hook (its connection pool holds 32).
    :param indexing_technique: used while the knowledge base has none (its own is used otherwise).
    :param process_rule: Dify's chunking rule for the documents written (default ``{"mode": "automatic"}``).
    :param doc_form: used while the knowledge base has none; must match its form otherwise.
    :param allow_empty_source: let a source with no records delete every document or chunk of the scope
        (otherwise refused, so a broken query does not empty the knowledge base).
    :param shard: ``(index, count)``: sync only the records (and own only the documents or chunks) whose
        identity hashes to this shard, to split one sync over ``.expand(shard=shards(count))``
        (:mod:`airflow_provider_dify.operators.shards`).
    :param dify_conn_id: the ``dify`` connection.
    :param deferrable: wait for indexing in the triggerer; defaults to ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for indexing before failing.
    :param poll_interval: seconds between indexing polls.
    :param stall_timeout: seconds without indexing progress before failing (``None``: never).
    :param asset_alias: the asset alias the knowledge base's asset event goes through when the sync changed it
        (default ``dify:<dify_conn_id>``; see docs/assets.md).
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "records",
        "sql",
        "sql_conn_id",
        "parameters",
        "path",
        "path_glob",
        "dify_conn_id",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "records": "json", "parameters": "json"}
    ui_color = "#dbe7ff"

    def __init__(
        self,
        *,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        records: list[dict[str, Any]] | Callable[..., Any] | str | None = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        parameters: Any = None,
        path: Any = None,
        path_glob: str = "**/*",
        key_field: str | None = None,
        text_template: str | Callable[[dict[str, Any]], Any] | None = None,
        max_workers: int = 4,
        indexing_technique: str | None = None,
        process_rule: Mapping[str, Any] | None = None,
        doc_form: str | None = None,
        allow_empty_source: bool = False,
        shard: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_dify.operators._records import check_one_source
        from airflow_provider_dify.operators.shards import check_shard

        self.shard = check_shard(shard)

        check_one_source(records=records, sql=sql, path=path, sql_conn_id=sql_conn_id)
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        check_dataset_and_document(self, build=True, document=False)
        check_choice(indexing_technique, INDEXING_TECHNIQUES, "indexing_technique")
        check_choice(doc_form, DOC_FORMS, "doc_form")
        check_process_rule(process_rule)
        check_string(path_glob, "path_glob")
        self.records = literal_records(records)  # record values are data: never rendered as Jinja
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.parameters = parameters
        self.path = path
        self.path_glob = path_glob
        self.key_field = key_field
        self.text_template = text_template
        self.max_workers = _positive_int(max_workers, "max_workers", 32)
        self.indexing_technique = indexing_technique
        self.process_rule = dict(process_rule) if process_rule else None
        self.doc_form = doc_form
        self.allow_empty_source = bool(allow_empty_source)

    # -- shared steps ----------------------------------------------------------------------------------------

    def _renderer(self) -> RecordRenderer:
        raise NotImplementedError

    def _shared_hook(self) -> DifyHook:
        """The hook, with its settings and session made before the worker threads share it."""
        hook = self.hook
        _ = hook.settings, hook.session
        return hook

    def _dataset(self) -> dict[str, Any]:
        with bad_arguments_fail_the_task():
            check_dataset_and_document(self, build=False, document=False)
        dataset = resolve_dataset(self._shared_hook(), dataset_id=self.dataset_id, dataset_name=self.dataset_name)
        return refuse_pipeline_knowledge_base(dataset, type(self).__name__)

    def _read_records(self, context: Context | None) -> tuple[list[RenderedRecord], list[dict[str, Any]]]:
        """Read and render every record; a wrong argument fails the task here, before anything is written."""
        from airflow_provider_dify.operators._records import read_records, render_all

        with bad_arguments_fail_the_task():
            renderer = self._renderer()
            records = read_records(
                context,
                records=rendered_records(self.records),
                sql=self.sql,
                sql_conn_id=self.sql_conn_id,
                parameters=self.parameters,
                path=self.path,
                path_glob=self.path_glob,
                read_text=self.path is not None and not renderer.files_as_uploads,
            )
            rendered, failures = render_all(renderer, records)
        self.log.info("Read %d record(s) (%d could not be rendered)", len(rendered) + len(failures), len(failures))
        return rendered, failures

    def _owned(self, identity: str | None) -> bool:
        """Whether this sync's shard owns a document name or chunk key (always, without ``shard``)."""
        from airflow_provider_dify.operators.shards import owns

        return owns(self.shard, identity)

    def _document_options(self, dataset: Mapping[str, Any]) -> dict[str, Any]:
        """The options every document write sends (checked against the knowledge base)."""
        from airflow_provider_dify.operators._documents import document_options

        with bad_arguments_fail_the_task():
            document_options(
                dataset,
                indexing_technique=self.indexing_technique,
                doc_form=self.doc_form,
                process_rule=self.process_rule,
            )
        return {
            "process_rule": self.process_rule,
            "indexing_technique": self.indexing_technique,
            "doc_form": self.doc_form,
        }

    def _refuse_emptying(self, rendered: Sequence[Any], failures: Sequence[Any], deletes: int, what: str) -> None:
        if not rendered and not failures and deletes and not self.allow_empty_source:
            raise AirflowException(
                f"The source returned no records, so the sync would delete all {deletes} {what} of its scope;"
                " refusing. Pass allow_empty_source=True if an empty source is expected."
            )

    def _fail_if_dataset_gone(self, dataset: Mapping[str, Any]) -> None:
        """Fail with :class:`~airflow_provider_dify.exceptions.DifyDatasetNotFoundError` when the knowledge base
        was deleted while the task ran (the hook then sent nothing more to it)."""
        from airflow_provider_dify.exceptions import DifyDatasetNotFoundError

        dataset_id = str(dataset["id"])
        if self.hook.dataset_gone(dataset_id):
            raise DifyDatasetNotFoundError(
                f"knowledge base {dataset.get('name')!r} ({dataset_id}) was deleted while the sync ran; the sync"
                " stopped (recreate the knowledge base, then run the task again)",
                dataset_id=dataset_id,
                status=404,
                code="not_found",
            )

    def _finish(self, context: Context, manifest: dict[str, Any], what: str) -> dict[str, Any]:
        """Return the manifest, or push it to XCom (key ``manifest``) and fail when something failed."""
        self.report_knowledge_base(context, manifest)
        failed = manifest["failed"]
        if not failed:
            return manifest
        context["ti"].xcom_push(key=FAILED_MANIFEST_XCOM_KEY, value=manifest)
        shown = "; ".join(
            f"{failure.get('name') or failure.get('key') or failure.get('id') or ''} ({failure['operation']}):"
            f" {failure['error']}"
            for failure in failed[:_FAILURES_SHOWN]
        )
        more = f"; and {len(failed) - _FAILURES_SHOWN} more" if len(failed) > _FAILURES_SHOWN else ""
        if all(failure.get("permanent") or failure["operation"] in PERMANENT_OPERATIONS for failure in failed):
            # Nothing a retry could fix (records that do not render, files or values Dify refuses): fail for good.
            raise AirflowFailException(
                f"{manifest['counts']['failed']} {what} failed and a retry cannot fix them (the rest are done; the"
                f" manifest is in XCom {FAILED_MANIFEST_XCOM_KEY!r}); fix the records or the arguments: {shown}{more}"
            )
        raise AirflowException(
            f"{manifest['counts']['failed']} {what} failed (the rest are done; the manifest is in XCom"
            f" {FAILED_MANIFEST_XCOM_KEY!r}, and a retry finishes the remainder): {shown}{more}"
        )


class DifySyncDocumentsOperator(_RecordSyncOperator):
    """
    Make a knowledge base hold exactly the current records of a scope, one document per record.

    Reads the records (a list from XCom, a callable, a SQL query, or files under an object storage prefix),
    renders each into a document name, a text (or the file itself) and metadata, lists the knowledge base once,
    and then creates the new documents, rewrites the changed ones (told by the content hash kept in the
    metadata field ``airflow_content_hash``), writes the metadata of the ones whose only change is metadata,
    leaves the rest untouched (no request), and with ``delete_missing`` deletes the documents of the scope that
    the source no longer has. Writes run on ``max_workers`` threads sharing one hook (and the connection's
    ``requests_per_minute`` throttle); the hash and metadata are written ``metadata_batch_size`` documents a
    request. Each document is written by the provider's single-document write (the one
    :class:`~airflow_provider_dify.operators.documents.DifyCreateDocumentOperator` uses), so both agree on
    whether a document changed.

    A scope keeps DAGs and partitions from deleting each other's documents: with ``scope``, a document belongs
    to the sync whose scope value it carries in the metadata field ``scope_field`` (whatever its name), or,
    carrying no scope value, when its name starts with ``name_prefix``; without ``scope``, the documents whose
    name starts with ``name_prefix`` do. With ``scope`` and ``delete_missing`` the whole knowledge base is
    listed, so that members renamed by hand are found. Runs that overlap (a backfill with
    ``max_active_runs > 1``, another DAG, a colleague in the console) are safe: see docs/warehouse-sync.md.
    Names identify documents in a knowledge base, so give each scope its own ``name_prefix`` as well; a name
    that another scope owns is reported, never overwritten.

    A record that cannot be written is listed in the manifest and the task fails after the others are done
    (the manifest is then in XCom ``manifest``); a retry finishes the remainder: everything is read from Dify
    again, nothing is duplicated.

    Returns the manifest: ``{"granularity": "documents", "dataset_id", "dataset_name", "scope", "counts":
    {"records", "created", "updated", "unchanged", "deleted", "failed"}, "created": [{"key", "name", "id",
    "batch"}], "updated": [...], "deleted": [{"name", "id"}], "failed": [{"key", "name", "document_id",
    "operation", "error"}], "batches": [...], "requests": {"metadata"}, "indexing": {"documents", "completed",
    "chunks"} | None, "console_url"}``, never a document's text. ``updated`` entries with ``batch`` ``None``
    had only their metadata written.

    :param name_template: a Jinja template or a callable giving each document's name (default: ``name_prefix``
        + the key; for files, ``name_prefix`` + the relative path with ``/`` as ``__``).
    :param name_prefix: put before every name (templated).
    :param metadata_fields: columns that become Dify metadata: a list, or ``{column: metadata name}``.
    :param scope: the scope value (templated), e.g. ``"warehouse:products"``; ``None`` scopes by ``name_prefix``.
    :param scope_field: the metadata field holding the scope.
    :param delete_missing: delete the documents of the scope that no record wants.
    :param metadata_batch_size: documents per metadata request.
    :param wait_for_indexing: wait until the written documents are indexed (in the triggerer with
        ``deferrable``). Each poll reads every document still waited on.

    The other parameters are those of the record source, rendering and waiting: ``dataset_id``,
    ``dataset_name``, ``records``, ``sql``, ``sql_conn_id``, ``parameters``, ``path``, ``path_glob``,
    ``key_field``, ``text_template``, ``max_workers``, ``indexing_technique``, ``process_rule``, ``doc_form``,
    ``allow_empty_source``, ``dify_conn_id``, ``deferrable``, ``indexing_timeout``, ``poll_interval``,
    ``stall_timeout``.
    """

    template_fields: Sequence[str] = (*_RecordSyncOperator.template_fields, "name_prefix", "scope")

    def __init__(
        self,
        *,
        name_template: str | Callable[[dict[str, Any]], Any] | None = None,
        name_prefix: str = "",
        metadata_fields: Sequence[str] | Mapping[str, str] | None = None,
        scope: str | None = None,
        scope_field: str = SCOPE_FIELD,
        delete_missing: bool = False,
        metadata_batch_size: int = 100,
        wait_for_indexing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.key_field is None and name_template is None and self.path is None:
            raise ValueError(
                "key_field or name_template: each record needs a stable document name; pass the key column"
                " (key_field='id') or a name template."
            )
        if delete_missing and scope is None and not name_prefix:
            raise ValueError(
                "scope or name_prefix: delete_missing=True deletes the documents of the sync's scope, so give one"
                " (scope='my_dag:table' or name_prefix='table-'); without it every document would be in scope."
            )
        if self.text_template is not None and self.path is not None:
            raise ValueError(
                "text_template: files from path= are uploaded as they are (Dify extracts their text); drop"
                " text_template, or sync them with DifySyncChunksOperator to render text."
            )
        check_string(scope_field, "scope_field")
        self.name_template = name_template
        self.name_prefix = name_prefix
        self.metadata_fields = metadata_fields
        self.scope = scope
        self.scope_field = scope_field
        self.delete_missing = bool(delete_missing)
        self.metadata_batch_size = _positive_int(metadata_batch_size, "metadata_batch_size")
        self.wait_for_indexing = bool(wait_for_indexing)
        if not skip_check(name_prefix, True):
            self._renderer()  # check the templates and metadata columns when the DAG is built

    def _renderer(self) -> RecordRenderer:
        from airflow_provider_dify.operators._records import RecordRenderer

        return RecordRenderer(
            key_field=self.key_field,
            name_template=self.name_template,
            name_prefix=self.name_prefix if isinstance(self.name_prefix, str) else "",
            text_template=self.text_template,
            metadata_fields=self.metadata_fields,
            files_as_uploads=True,
        )

    def _scope(self) -> str | None:
        if self.scope is None:
            if self.delete_missing and not self.name_prefix:
                raise ValueError("scope or name_prefix: both rendered empty, and delete_missing=True needs one.")
            return None
        return check_string(str(self.scope), "scope").strip()

    def execute(self, context: Context) -> dict[str, Any]:
        """Sync the records; wait for indexing if asked; return the manifest."""
        from airflow_provider_dify.operators._document_sync import DocumentSync, needed_fields, plan_documents

        with bad_arguments_fail_the_task():
            scope = self._scope()
        rendered, failures = self._read_records(context)  # bad records fail here, before any request
        dataset = self._dataset()
        dataset_id = str(dataset["id"])
        hook = self._shared_hook()
        url = self.push_console_url(context, dataset_id)
        if self.shard is not None:
            rendered = [record for record in rendered if self._owned(record.name)]
            failures = [failure for failure in failures if self._owned(failure.get("name"))]
        check_uploads(hook, rendered)
        options = self._document_options(dataset)
        # With a scope and delete_missing the whole knowledge base is listed: a member renamed by hand is found by
        # its scope value. Otherwise the name prefix narrows the listing.
        keyword = None if scope is not None and self.delete_missing else self.name_prefix or None
        listed = list(hook.iter_documents(dataset_id, keyword=keyword))
        if self.shard is not None:  # the other shards' documents are neither planned nor deleted here
            listed = [document for document in listed if self._owned(document.get("name"))]
        hashes, hash_failures = self._hashes(rendered, dataset, options)
        failures += hash_failures
        writable = [record for record in rendered if record.name in hashes]
        plan = plan_documents(
            writable,
            hashes,
            listed,
            scope=scope,
            scope_field=self.scope_field,
            name_prefix=self.name_prefix,
            delete_missing=self.delete_missing,
            keep_names=[failure["name"] for failure in failures if failure.get("name")],
        )
        self.log.info(
            "Plan: %d to create, %d to update, %d metadata-only, %d unchanged, %d to delete (%d listed in Dify)",
            len(plan.create),
            len(plan.update),
            len(plan.metadata_only),
            len(plan.unchanged),
            len(plan.delete),
            len(listed),
        )
        self._refuse_emptying(rendered, failures, len(plan.delete), "documents")
        fields: dict[str, dict[str, Any]] = {}
        if plan.create or plan.update or plan.metadata_only:
            with bad_arguments_fail_the_task():
                fields = needed_fields(hook, dataset_id, writable, scope=scope, scope_field=self.scope_field)
        sync = DocumentSync(
            hook,
            dataset,
            options=options,
            scope=scope,
            scope_field=self.scope_field,
            max_workers=self.max_workers,
            metadata_batch_size=self.metadata_batch_size,
            name_prefix=self.name_prefix,
        )
        result = sync.run(plan, hashes, fields, on_progress=self._progress_logger())
        failed = failures + result.failed
        manifest = {
            "granularity": "documents",
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "scope": scope if scope is not None else self.name_prefix,
            "counts": {
                "records": len(rendered) + len(failures),
                "created": len(result.created),
                "updated": len(result.updated),
                "unchanged": len(plan.unchanged),
                "deleted": len(result.deleted),
                "failed": len(failed),
            },
            "created": result.created,
            "updated": result.updated,
            "deleted": result.deleted,
            "failed": failed,
            "batches": sorted({entry["batch"] for entry in result.created + result.updated if entry.get("batch")}),
            "requests": {"metadata": result.metadata_requests},
            "indexing": None,
            "console_url": url,
        }
        if self.shard is not None:
            manifest["shard"] = list(self.shard)
        self.log.info("Synced: %s", manifest["counts"])
        reindexed = [entry["id"] for entry in result.created + result.updated if entry.get("batch")]
        if self.wait_for_indexing and reindexed:
            results = self.wait_until_indexed(
                context, dataset_id=dataset_id, batch=None, document_ids=reindexed, manifest=manifest
            )
            manifest["indexing"] = _indexing_summary(results)
        return self._finish(context, manifest, "document(s)")

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, manifest: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the indexing trigger: add the indexing summary to the manifest and return it."""
        resumed = self.resumed_manifest(context, event, manifest)
        resumed["indexing"] = _indexing_summary(resumed["indexing"], (event or {}).get("counts"))
        return self._finish(context, resumed, "document(s)")

    def _hashes(
        self, rendered: list[RenderedRecord], dataset: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Content hashes by name (files are read on the worker threads); a file that cannot be read fails."""
        from concurrent.futures import ThreadPoolExecutor

        from airflow_provider_dify.operators._documents import content_settings, document_options

        settings = content_settings(document_options(dataset, **options))
        hashes: dict[str, str] = {}
        failures: list[dict[str, Any]] = []

        def compute(record: RenderedRecord) -> tuple[RenderedRecord, str | None, str | None]:
            try:
                return record, record.content_hash(settings), None
            except (OSError, ValueError) as error:
                return record, None, f"reading the file failed: {error}"

        if any(record.file is not None for record in rendered):
            with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="dify-hash") as pool:
                outcomes = list(pool.map(compute, rendered))
        else:
            outcomes = [compute(record) for record in rendered]
        for record, value, error in outcomes:
            if value is None:
                failures.append({"key": record.key, "name": record.name, "operation": "read", "error": error})
            else:
                hashes[record.name] = value
        return hashes, failures

    def _progress_logger(self) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if done % 100 == 0 or done == total:
                self.log.info("Wrote %d of %d document(s)", done, total)

        return report


class DifySyncChunksOperator(_RecordSyncOperator):
    """
    Make one document of a knowledge base hold exactly one chunk per current record.

    For exports that must not wait on Dify's indexing queue: the document (``document_name``, standing for the
    table or partition) is created once, empty unless ``document_header`` is given, and indexed; the records
    are chunks of it, which Dify indexes within the add request. Each run lists the document's chunks (paged),
    adds the missing ones ``batch_size`` a request, deletes the ones no longer wanted (``delete_missing``),
    leaves identical ones untouched, and after writing reads the chunks again to verify them. Nothing is kept
    outside Dify: a retry, a backfill and overlapping runs converge to the same set, each record exactly one
    chunk (surplus copies are removed by one survivor rule: enabled, then oldest, then smaller id).

    A chunk's content is exactly the record's rendered text, and that text is its identity (``key_field``
    only names records in the manifest and checks that keys are unique): a changed record is a delete plus
    an add, a changed answer or keyword list an update. Chunks written by earlier versions (ending with a
    ``[key: ...]`` line) are rewritten in place without that line on the next run. Dify extracts keywords
    from the content unless ``keywords_field`` gives them (they then replace Dify's). The header's chunks
    are never deleted, nor, while some records fail to render, any chunk that no record claims.

    Dify Cloud's Sandbox plan refuses chunk writes (403): the task then fails with
    :class:`~airflow_provider_dify.exceptions.DifyQuotaExceededError` suggesting
    :class:`DifySyncDocumentsOperator`. Per-record metadata filtering also needs documents.

    Returns the manifest: ``{"granularity": "chunks", "dataset_id", "dataset_name", "document_id",
    "document_name", "counts": {"records", "added", "updated", "unchanged", "deleted", "failed"}, "added":
    [{"key", "id"}], "updated": [...], "deleted": [...], "failed": [{"operation", "count", "keys", "error"}],
    "requests": {"add", "passes"}, "console_url"}``; ``counts`` also has ``duplicates`` (records sharing a
    text) and ``copies_removed`` (surplus copies deleted) when they are not 0.

    :param document_name: the document holding the chunks (templated), e.g. ``"warehouse: faq"``.
    :param document_header: the document's own text, written once when it is created (templated; default:
        none, so the document has no chunk of its own to compete with the records in retrieval).
    :param document_metadata: metadata of the document ``{name: value}`` (templated).
    :param keywords_field: a column (or callable) with each chunk's keywords, a list or comma-separated text.
    :param answer_template: a Jinja template or callable giving each chunk's answer (``qa_model`` documents).
    :param batch_size: chunks per add request (default 100).
    :param delete_missing: delete chunks that no record wants (default ``True``: the document is the sync's).
    :param repair_passes: times the chunks are read again and reconciled within the task after an add whose
        outcome is unknown (a 5xx or a lost answer: the hook never repeats an add, it could duplicate chunks).

    The other parameters are those of the record source, rendering and waiting: ``dataset_id``,
    ``dataset_name``, ``records``, ``sql``, ``sql_conn_id``, ``parameters``, ``path`` (each file's text is a
    chunk), ``path_glob``, ``key_field``, ``text_template``, ``max_workers``, ``indexing_technique``,
    ``process_rule``, ``doc_form``, ``allow_empty_source``, ``dify_conn_id``, ``deferrable`` (wait for a new
    document in the triggerer), ``indexing_timeout``, ``poll_interval``, ``stall_timeout``.
    """

    template_fields: Sequence[str] = (
        *_RecordSyncOperator.template_fields,
        "document_name",
        "document_header",
        "document_metadata",
    )

    def __init__(
        self,
        *,
        document_name: str,
        document_header: str | None = None,
        document_metadata: Mapping[str, Any] | None = None,
        keywords_field: str | Callable[[dict[str, Any]], Any] | None = None,
        answer_template: str | Callable[[dict[str, Any]], Any] | None = None,
        batch_size: int = 100,
        delete_missing: bool = True,
        repair_passes: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_string(document_name, "document_name")
        if document_header is not None:
            check_string(document_header, "document_header")
        if isinstance(repair_passes, bool) or not isinstance(repair_passes, int) or repair_passes < 0:
            raise ValueError(f"repair_passes: a whole number >= 0, got {repair_passes!r}.")
        self.document_name = document_name
        self.document_header = document_header
        self.document_metadata = document_metadata
        self.keywords_field = keywords_field
        self.answer_template = answer_template
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.delete_missing = bool(delete_missing)
        self.repair_passes = repair_passes
        self._renderer()

    def _renderer(self) -> RecordRenderer:
        from airflow_provider_dify.operators._records import RecordRenderer

        return RecordRenderer(
            key_field=self.key_field,
            text_template=self.text_template,
            keywords_field=self.keywords_field,
            answer_template=self.answer_template,
            names=False,
        )

    def _header(self) -> str:
        """The holder document's own text: empty unless ``document_header`` is given (then it is a chunk too)."""
        if self.document_header is None:
            return ""
        return check_string(self.document_header, "document_header").strip()

    def execute(self, context: Context) -> dict[str, Any]:
        """Find or create the document, wait until it is indexed, then reconcile its chunks."""
        from airflow_provider_dify.operators._content import validate_metadata

        with bad_arguments_fail_the_task():
            name = check_string(self.document_name, "document_name", max_length=200, single_line=True).strip()
            validate_metadata(self.document_metadata, "document_metadata")
            self._header()
        rendering = self._read_records(context)  # bad arguments fail here, before any request
        dataset = self._dataset()
        dataset_id = str(dataset["id"])
        self.push_console_url(context, dataset_id)
        document = self._document(dataset, name)
        if document.get("indexing_status") != "completed":
            self.log.info("Waiting for document %r (%s) to be indexed", name, document["id"])
            self.wait_until_indexed(
                context,
                dataset_id=dataset_id,
                batch=None,
                document_ids=[str(document["id"])],
                method_name="execute_document_ready",
            )
        return self._sync(context, dataset, document, rendering)

    def execute_document_ready(
        self, context: Context, event: Mapping[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        """Resume after the document was indexed in the triggerer: reconcile its chunks (records read again)."""
        from airflow_provider_dify.hooks.indexing import indexing_results_from_event

        [result] = indexing_results_from_event(event)
        dataset = self._dataset()
        document = self.hook.get_document(str(dataset["id"]), str(result["id"]), metadata="all")
        return self._sync(context, dataset, document, self._read_records(context))

    def _document(self, dataset: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The document holding the chunks: found by name, or created with the header text."""
        from airflow_provider_dify.operators._copies import document_survivor, usable_document
        from airflow_provider_dify.operators._documents import document_options

        hook, dataset_id = self.hook, str(dataset["id"])
        found = hook.find_documents_by_name(dataset_id, name)
        usable = [doc for doc in found if usable_document(doc)]
        if found and not usable:
            state = "archived" if found[0].get("archived") else "disabled"
            raise AirflowException(
                f"Document {name!r} ({found[0].get('id')}) is {state} in Dify, so chunks cannot be added to it;"
                f" {'un-archive' if state == 'archived' else 'enable'} it, or delete it to start over."
            )
        if usable:
            document, _others = document_survivor(usable)  # the one copy rule: every run picks the same holder
            assert document is not None
            if len(usable) > 1:
                self.log.warning("%d documents are named %r; using the oldest (%s)", len(usable), name, document["id"])
            if document.get("indexing_status") in ("error", "paused"):
                raise AirflowException(
                    f"Document {name!r} ({document.get('id')}) is {document.get('indexing_status')!r} in Dify"
                    f" ({document.get('error') or 'no error text'}); delete it (the next run creates it again) or"
                    " resume it in the Dify console."
                )
            return dict(document)
        if self.shard is not None:
            # Shards creating the same document at once would each re-index it (Dify upserts by name).
            raise AirflowException(
                f"Document {name!r} does not exist; a sharded chunk sync needs it first: run the same"
                " DifySyncChunksOperator without shard and with records=[] (allow_empty_source=True) upstream."
            )
        with bad_arguments_fail_the_task():
            options = document_options(
                dataset,
                indexing_technique=self.indexing_technique,
                doc_form=self.doc_form,
                process_rule=self.process_rule,
            )
        answer = hook.create_document_by_text(dataset_id, name, self._header(), **options)
        document = dict((answer or {}).get("document") or {})
        self.log.info("Created document %r (%s) to hold the chunks", name, document.get("id"))
        return document

    def _sync(
        self,
        context: Context,
        dataset: Mapping[str, Any],
        document: Mapping[str, Any],
        rendering: tuple[list[RenderedRecord], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        from airflow_provider_dify.exceptions import DifyDatasetNotFoundError
        from airflow_provider_dify.operators._chunk_sync import ChunkSync, chunk_content, plan_chunks, reconcile

        hook = self._shared_hook()
        dataset_id, document_id = str(dataset["id"]), str(document["id"])
        rendered, failures = rendering
        # Records that failed to render keep every shard from deleting chunks no record claims (which of them
        # was theirs cannot be told); each failure is reported by one shard.
        keep_keys = [failure["key"] for failure in failures if failure.get("key")]
        if self.shard is not None:  # a chunk's identity is its text: the shard owns the texts that hash to it
            rendered = [record for record in rendered if self._owned(chunk_content(record))]
            failures = [failure for failure in failures if self._owned(failure.get("key"))]
        url = self.push_console_url(context, dataset_id, document_id)
        self._write_document_metadata(dataset_id, document)
        texts = {text: text for text in map(chunk_content, rendered)}  # listed chunks share the records' texts
        sync = ChunkSync(
            hook,
            dataset_id,
            document_id,
            batch_size=self.batch_size,
            max_workers=self.max_workers,
            texts=texts,
            keywords=self.keywords_field is not None,
        )

        def plan(chunks: list[Any]) -> Any:
            if self.shard is not None:  # the other shards' chunks are neither planned nor deleted here
                from airflow_provider_dify.operators.shards import chunk_identity

                chunks = [chunk for chunk in chunks if self._owned(chunk_identity(chunk))]
            return plan_chunks(
                rendered,
                chunks,
                keyed=self.key_field is not None,
                header=self._header(),
                delete_missing=self.delete_missing,
                keep_keys=keep_keys,
            )

        try:
            first_plan, result = reconcile(
                sync,
                plan,
                repair_passes=self.repair_passes,
                check_first_plan=lambda plan: self._refuse_emptying(rendered, failures, len(plan.delete), "chunks"),
            )
        except DifyDatasetNotFoundError:
            self._fail_if_dataset_gone(dataset)
            raise
        self._fail_if_dataset_gone(dataset)
        passes = result.passes
        wanted = len(first_plan.add) + len(first_plan.update) + len(first_plan.unchanged)
        failed_writes = [{k: v for k, v in failure.items() if k != "unknown_outcome"} for failure in result.failed]
        failed_records = sum(int(f.get("count") or 1) for f in result.failed if f["operation"] != "delete")
        manifest = {
            "granularity": "chunks",
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "document_id": document_id,
            "document_name": document.get("name") or self.document_name,
            "counts": {
                "records": len(rendered) + len(failures),
                "added": len(result.added),
                "updated": len(result.updated),
                "unchanged": max(0, wanted - len(result.added) - len(result.updated) - failed_records),
                "deleted": len(result.deleted),
                "failed": len(failures) + sum(int(failure.get("count") or 1) for failure in result.failed),
            },
            "added": result.added,
            "updated": result.updated,
            "deleted": result.deleted,
            "failed": [dict(failure) for failure in failures] + failed_writes,
            "requests": {"add": result.add_requests, "passes": passes},
            "console_url": url,
        }
        if first_plan.duplicates:
            manifest["counts"]["duplicates"] = first_plan.duplicates
        if result.copies_removed:
            manifest["counts"]["copies_removed"] = result.copies_removed
        if self.shard is not None:
            manifest["shard"] = list(self.shard)
        self.log.info("Synced the chunks of %r: %s", manifest["document_name"], manifest["counts"])
        return self._finish(context, manifest, "chunk write(s)")

    def _write_document_metadata(self, dataset_id: str, document: Mapping[str, Any]) -> None:
        """Set ``document_metadata`` on the document when its values differ."""
        from airflow_provider_dify.operators._content import validate_metadata
        from airflow_provider_dify.operators._documents import metadata_matches, write_metadata

        wanted = validate_metadata(self.document_metadata, "document_metadata")
        if wanted and not metadata_matches(document, wanted):
            with bad_arguments_fail_the_task():
                write_metadata(self.hook, dataset_id, str(document["id"]), wanted)


def _indexing_summary(
    results: Sequence[Mapping[str, Any]], counts: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The indexing part of a manifest: documents waited on, completed, and their chunks (``counts``: the
    trigger event's, which covers documents its bounded list does not name)."""
    if counts:
        return {key: int(counts.get(key) or 0) for key in ("documents", "completed", "chunks")}
    return {
        "documents": len(results),
        "completed": sum(1 for result in results if result.get("indexing_status") == "completed"),
        "chunks": sum(int(result.get("total_segments") or 0) for result in results),
    }
