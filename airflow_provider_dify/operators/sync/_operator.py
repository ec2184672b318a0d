"""The base of the sync operators: arguments, reading and rendering the records, the manifest and its failures."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_dify.operators._base import (
    DifyIndexingWaitOperator,
    bad_arguments_fail_the_task,
    check_choice,
    check_dataset_and_document,
    check_process_rule,
    check_string,
)
from airflow_provider_dify.operators._documents import (
    DOC_FORMS,
    INDEXING_TECHNIQUES,
    refuse_pipeline_knowledge_base,
    resolve_dataset,
)
from airflow_provider_dify.operators._input import literal_records, rendered_records
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._records import RecordRenderer, RenderedRecord


#: Failures that need a fix in the source or the DAG, not a retry: a record that does not render, a planned
#: write that cannot be made as the knowledge base stands (a name owned by another scope, an archived document).
PERMANENT_OPERATIONS = frozenset({"render", "plan"})
#: The XCom key of the manifest of a sync that failed in part.
FAILED_MANIFEST_XCOM_KEY = "manifest"
#: Failures listed in the task's error message (all of them are in the manifest).
_FAILURES_SHOWN = 5
#: The default delete guard: a run may delete at most half of its scope (see :func:`delete_limit`). A source
#: that returns only part of the records (a query filtered to the data interval, a broken join) deletes most of
#: the scope, while a full export rarely loses half of its records from one run to the next.
DEFAULT_MAX_DELETES = 0.5
#: The manifest key that says why a run deleted nothing although ``delete_missing`` was given.
DELETES_WITHHELD = "deletes_withheld"


def check_max_deletes(value: Any) -> int | float | None:
    """``max_deletes`` checked: ``None``, a whole number >= 0 (a count) or a fraction above 0 and at most 1."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and 0 < value <= 1:
        return value
    raise ValueError(
        f"max_deletes: pass a count of deletes (a whole number >= 0), a fraction of the scope (a float above 0"
        f" and at most 1.0, e.g. 0.5) or None (no limit), got {value!r}."
    )


def delete_limit(max_deletes: int | float | None, scope_size: int) -> int | None:
    """How many deletes ``max_deletes`` allows in a scope of ``scope_size`` (a fraction allows at least one)."""
    if max_deletes is None:
        return None
    if isinstance(max_deletes, float):
        return max(1, int(max_deletes * scope_size))
    return max_deletes


def positive_int(value: Any, name: str, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (maximum and value > maximum):
        limit = f" and at most {maximum}" if maximum else ""
        raise ValueError(f"{name}: must be a whole number of at least 1{limit}, got {value!r}.")
    return value


class RecordSyncOperator(KnowledgeBaseLineageMixin, DifyIndexingWaitOperator):
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
    :param max_deletes: the delete guard: a run whose plan deletes more than this of its scope fails before
        its first write; a whole number is a count, a float a fraction of the scope (default ``0.5``: half of
        it, and at least one), ``None`` no limit. Surplus copies of a wanted document or chunk do not count.
    :param shard: ``(index, count)``: sync only the records (and own only the documents or chunks) whose
        identity hashes to this shard, to split one sync over ``.expand(shard=shards(count))``
        (:mod:`airflow_provider_dify.operators.shards`).
    :param dify_conn_id: the ``dify`` connection.
    :param deferrable: wait for indexing in the triggerer; defaults to ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for indexing before failing.
    :param poll_interval: seconds between indexing polls.
    :param stall_timeout: seconds without indexing progress before failing (``None``: never).
    :param asset_alias: the asset alias the knowledge base's asset event goes through when the sync changed it
        (default ``dify:<dify_conn_id>``), unless an outlet names the knowledge base: one declared in ``outlets``,
        or ``knowledge_base_named(dataset_name)``, which the operator declares itself for a ``dataset_name``
        written in the DAG file unless ``asset_alias`` is given. Then the event is that outlet's own
        (see docs/assets.md).
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
        max_deletes: int | float | None = DEFAULT_MAX_DELETES,
        shard: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_dify.operators.shards import check_shard
        from airflow_provider_dify.operators.sync._records import check_one_source

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
        self.max_workers = positive_int(max_workers, "max_workers", 32)
        self.indexing_technique = indexing_technique
        self.process_rule = dict(process_rule) if process_rule else None
        self.doc_form = doc_form
        self.allow_empty_source = bool(allow_empty_source)
        self.max_deletes = check_max_deletes(max_deletes)
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

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
        from airflow_provider_dify.operators.sync._records import read_records, render_all

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
            rendered, failures = render_all(renderer, self._take_changes(renderer, records))
        self.log.info("Read %d record(s) (%d could not be rendered)", len(rendered) + len(failures), len(failures))
        return rendered, failures

    def _take_changes(self, renderer: RecordRenderer, records: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """The records to render; a sync reading a change feed takes its deletions and versions out here."""
        return records

    def _owned(self, identity: str | None) -> bool:
        """Whether this sync's shard owns a document name or chunk key (always, without ``shard``)."""
        from airflow_provider_dify.operators.shards import owns

        return owns(self.shard, identity)

    def _shard_sizes(self, identities: Iterable[str | None]) -> list[int] | None:
        """How many records each shard owns (``identities``: every record's), or ``None`` without a shard."""
        from airflow_provider_dify.operators.shards import shard_sizes

        return None if self.shard is None else shard_sizes(identities, self.shard[1])

    @contextmanager
    def _rate_limit_part(self, sizes: Sequence[int] | None, sync: str) -> Iterator[None]:
        """
        Write within this shard's part of the workspace's rate limit: the limit split in proportion to the
        shards' records (``sizes``, :meth:`_shard_sizes`), which every shard counts alike, so that the parts add
        up to the limit (see ``DifyHook.rate_limit_part``; ``sync`` names what the shards write to). Without a
        shard or a known limit, nothing changes.
        """
        from airflow_provider_dify.operators.shards import rate_limit_part

        hook = self._shared_hook()
        limit = hook.settings.requests_per_minute
        if self.shard is None or sizes is None or limit is None:
            yield
            return
        index, count = self.shard
        part = rate_limit_part(limit, sizes, index)
        self.log.info(
            "Shard %d of %d keeps to %d of the workspace's %d requests a window (its part of the records)",
            index,
            count,
            part,
            limit,
        )
        with hook.rate_limit_part(part, f"{sync} {count}"):
            yield

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

    def _withhold_deletes(self, failures: Sequence[Mapping[str, Any]], identity: str, what: str) -> str | None:
        """
        Why this run deletes nothing (``None``: it may delete): with ``delete_missing``, a record that failed
        before its ``identity`` was known (a NULL key, a raising template) might be any document or chunk of the
        scope, so no delete of the run is made; the manifest says so under ``deletes_withheld``.
        """
        unknown = sum(1 for failure in failures if not failure.get(identity))
        if not self.delete_missing or not unknown:
            return None
        reason = (
            f"{unknown} record(s) failed before their {'name' if identity == 'name' else 'text'} was known (see"
            f" 'failed'), so any {what} of the scope might be theirs: no {what} was deleted; fix those records and"
            " the next run deletes what no record wants"
        )
        self.log.warning("Deletes withheld: %s", reason)
        return reason

    def _refuse_mass_delete(self, rendered: int, deletes: int, scope_size: int, what: str) -> None:
        """
        The delete guard: fail, before the first write, a plan deleting more of the scope than ``max_deletes``.

        ``deletes`` counts what no record wants (not surplus copies); an empty source that
        ``allow_empty_source`` lets through is not refused a second time.
        """
        limit = delete_limit(self.max_deletes, scope_size)
        if limit is None or deletes <= limit or (rendered == 0 and self.allow_empty_source):
            return
        share = f"{100 * deletes / scope_size:.0f}%" if scope_size else "all"
        raise AirflowFailException(
            f"max_deletes: the sync would delete {deletes} of the {scope_size} {what} of its scope ({share}), more"
            f" than max_deletes={self.max_deletes!r} allows ({limit}); refusing before any write (nothing was"
            f" written, so a rerun is safe). The source returned {rendered} record(s): a query filtered to a part of"
            " the records (a data interval, a WHERE clause) or a broken query with delete_missing=True deletes"
            " everything else. Fix the source, pass delete_missing=False for a partial source, or, if these deletes"
            " are expected, pass a higher max_deletes (a count, or a fraction of the scope) or max_deletes=None."
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


def indexing_summary(results: Sequence[Mapping[str, Any]], counts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The indexing part of a manifest: documents waited on, completed, and their chunks (``counts``: the
    trigger event's, which covers documents its bounded list does not name)."""
    if counts:
        return {key: int(counts.get(key) or 0) for key in ("documents", "completed", "chunks")}
    return {
        "documents": len(results),
        "completed": sum(1 for result in results if result.get("indexing_status") == "completed"),
        "chunks": sum(int(result.get("total_segments") or 0) for result in results),
    }
