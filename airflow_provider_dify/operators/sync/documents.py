"""DifySyncDocumentsOperator: one Dify document per record."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.hooks.operations import like_literal
from airflow_provider_dify.operators._base import (
    bad_arguments_fail_the_task,
    check_string,
    skip_check,
)
from airflow_provider_dify.operators._input import check_uploads
from airflow_provider_dify.operators.sync._deletions import DEFAULT_RETENTION, retention
from airflow_provider_dify.operators.sync._document_sync import SCOPE_FIELD
from airflow_provider_dify.operators.sync._operator import (
    DELETES_WITHHELD,
    RecordSyncOperator,
    indexing_summary,
    positive_int,
)

#: A sync logs its progress every this many written documents...
PROGRESS_EVERY = 100
#: ... or when this many seconds passed since its last progress line, whichever comes first.
PROGRESS_SECONDS = 10.0

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dify.operators.sync._change_feed import ChangeFeed
    from airflow_provider_dify.operators.sync._records import RecordRenderer, RenderedRecord


class DifySyncDocumentsOperator(RecordSyncOperator):
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
    "chunks"} | None, "console_url"}``, never a document's text; ``deletes_withheld`` says why nothing was
    deleted when records failed before their name was known. ``updated`` entries with ``batch`` ``None``
    had only their metadata written. ``found_by`` says how the documents were found (``listing``, ``lookups`` by
    name, or ``empty``); with ``version_field`` the counts hold ``stale`` and ``stale`` lists the skipped writes
    and deletions ``[{"key", "name", "id", "operation", "version", "held"}]``.

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
    :param deleted_field: a column (templated) whose truthy value marks the record as deleted in the source (a
        change feed's soft delete): its document is deleted (or, with ``version_field``, remembered as deleted)
        and never created.
    :param version_field: a column (templated) ordering each record's versions (``updated_at``; numbers, dates,
        date-times or ISO-8601 text, one kind per source). The version is kept in the metadata field
        ``airflow_version``; a write or deletion older than what Dify holds is skipped and reported as
        ``stale``, so backfills in any order end with each record's newest version. A deletion is then
        remembered: the document is disabled and marked in ``airflow_deleted``.
    :param deletion_retention: how long a remembered deletion is kept (a ``timedelta`` or days) before a run
        that finds it deletes it for good; a backfill older than that may bring the record back.
    With ``version_field`` the task runs one instance at a time across the DAG's runs
    (``max_active_tis_per_dag=1`` unless given), so backfills with ``max_active_runs > 1`` never overlap in it;
    put syncs of one scope from different DAGs in one pool of one slot.

    :param verify_versions: with ``version_field``, read the written documents again after the writes; one that an
        overlapping older run overwrote meanwhile fails the task so that its retry rewrites it (give the task
        ``retries``). Costs a lookup per written record (see docs/warehouse-sync.md).

    The other parameters are those of the record source, rendering and waiting: ``dataset_id``,
    ``dataset_name``, ``records``, ``sql``, ``sql_conn_id``, ``parameters``, ``path``, ``path_glob``,
    ``key_field``, ``text_template``, ``max_workers``, ``indexing_technique``, ``process_rule``, ``doc_form``,
    ``allow_empty_source``, ``max_deletes``, ``dify_conn_id``, ``deferrable``, ``indexing_timeout``, ``poll_interval``,
    ``stall_timeout``.
    """

    template_fields: Sequence[str] = (
        *RecordSyncOperator.template_fields,
        "name_prefix",
        "scope",
        "deleted_field",
        "version_field",
    )

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
        deleted_field: str | None = None,
        version_field: str | None = None,
        deletion_retention: datetime.timedelta | float = DEFAULT_RETENTION,
        verify_versions: bool = True,
        **kwargs: Any,
    ) -> None:
        if version_field is not None:
            # Dify has no compare-and-swap: the runs of a versioned sync are serialised (see docs/warehouse-sync.md)
            kwargs.setdefault("max_active_tis_per_dag", 1)
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
        self.metadata_batch_size = positive_int(metadata_batch_size, "metadata_batch_size")
        self.wait_for_indexing = bool(wait_for_indexing)
        for value, argument in ((deleted_field, "deleted_field"), (version_field, "version_field")):
            if value is not None:
                check_string(value, argument)
        self.deleted_field = deleted_field
        self.version_field = version_field
        self.deletion_retention = retention(deletion_retention)
        self.verify_versions = bool(verify_versions)
        self._feed: ChangeFeed | None = None
        if not skip_check(name_prefix, True):
            self._renderer()  # check the templates and metadata columns when the DAG is built

    def _renderer(self) -> RecordRenderer:
        from airflow_provider_dify.operators.sync._records import RecordRenderer

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
        from airflow_provider_dify.operators.sync._deletions import mark_revived, remembered_deletion, revive
        from airflow_provider_dify.operators.sync._document_sync import (
            DocumentSync,
            in_scope,
            needed_fields,
            plan_documents,
        )
        from airflow_provider_dify.operators.sync._lookups import find_documents

        with bad_arguments_fail_the_task():
            scope = self._scope()
        rendered, failures = self._read_records(context)  # bad records fail here, before any request
        now = datetime.datetime.now(datetime.UTC)
        dataset = self._dataset()
        dataset_id = str(dataset["id"])
        hook = self._shared_hook()
        url = self.push_console_url(context, dataset_id)
        sizes = self._shard_sizes(record.name for record in rendered)
        withheld = self._withhold_deletes(failures, "name", "document")  # before the shards split the failures
        feed = self._feed
        if feed is not None:
            rendered = feed.stamp(rendered)
        if self.shard is not None:
            rendered = [record for record in rendered if self._owned(record.name)]
            failures = [failure for failure in failures if self._owned(failure.get("name"))]
            if feed is not None:
                feed.deletions = [deletion for deletion in feed.deletions if self._owned(deletion.name)]
        check_uploads(hook, rendered)
        options = self._document_options(dataset)
        # With a scope and delete_missing the whole knowledge base is listed: a member renamed by hand is found by
        # its scope value. Otherwise the name prefix narrows the listing.
        keyword = None if scope is not None and self.delete_missing else like_literal(self.name_prefix or "") or None
        # Without delete_missing only the records' own documents matter: found by name when that reads less.
        names = (
            [record.name for record in rendered]
            + [deletion.name for deletion in (feed.deletions if feed else [])]
            + [failure["name"] for failure in failures if failure.get("name")]
        )
        listed, found_by = find_documents(hook, dataset_id, names, keyword=keyword, listing=self.delete_missing)
        self.log.info("Found %d document(s) by %s", len(listed), found_by)
        if self.shard is not None:  # the other shards' documents are neither planned nor deleted here
            listed = [document for document in listed if self._owned(document.get("name"))]
        hashes, hash_failures = self._hashes(rendered, dataset, options)
        failures += hash_failures
        writable = [record for record in rendered if record.name in hashes]
        judgement = None
        if feed is not None:
            with bad_arguments_fail_the_task():  # a version Dify holds in another kind fails before any write
                judgement = feed.judge(writable, listed, now)
            writable = judgement.records
            mark_revived(judgement.revive)
            if judgement.stale:
                self.log.info("%d record(s) older than what Dify holds are skipped (stale)", len(judgement.stale))
        kept = [entry["name"] for entry in judgement.stale] if judgement else []
        kept += [deletion.name for deletion in feed.deletions] if feed else []
        if self.version_field is not None:  # a remembered deletion is kept from delete_missing: it is a memory
            kept += [str(document.get("name")) for document in listed if remembered_deletion(document)]
        plan = plan_documents(
            writable,
            hashes,
            listed,
            scope=scope,
            scope_field=self.scope_field,
            name_prefix=self.name_prefix,
            delete_missing=self.delete_missing and withheld is None,
            keep_names=[failure["name"] for failure in failures if failure.get("name")] + kept,
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
        self._refuse_mass_delete(
            len(rendered) + len(failures),
            sum(1 for document in plan.delete if document.get("name") not in plan.wanted),
            sum(
                1
                for document in listed
                if in_scope(document, scope=scope, scope_field=self.scope_field, name_prefix=self.name_prefix)
            ),
            "documents",
        )
        fields: dict[str, dict[str, Any]] = {}
        deletions = None
        with self._rate_limit_part(sizes, f"documents {dataset_id} {scope or self.name_prefix}"):
            if judgement is not None:
                deletions = self._deletions(hook, dataset, options, judgement)
                revive(deletions, judgement.revive)
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
            if deletions is not None and judgement is not None:
                result.failed += judgement.busy
                if withheld is None:  # a record that failed before its name was known may be one of these
                    deleted, deletion_failures = deletions.run(judgement.deletions, now)
                    result.deleted += deleted
                    result.failed += deletion_failures
                    result.deleted += deletions.purge(judgement.purge)
                if self.version_field is not None and self.verify_versions:
                    result.failed += self._verify(hook, dataset_id, keyword, feed, result, hashes, sync.upload_files)
        unchanged = len(plan.unchanged)
        del plan, listed, writable, hashes, sync  # what the manifest does not need goes before it is made
        written = result.created + result.updated
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
                "unchanged": unchanged,
                "deleted": len(result.deleted),
                "failed": len(failed),
            },
            "created": result.created,
            "updated": result.updated,
            "deleted": result.deleted,
            "failed": failed,
            "batches": sorted({entry["batch"] for entry in written if entry.get("batch")}),
            "requests": {"metadata": result.metadata_requests},
            "found_by": found_by,
            "indexing": None,
            "console_url": url,
        }
        if withheld is not None:
            manifest[DELETES_WITHHELD] = withheld
        if judgement is not None and self.version_field is not None:
            manifest["counts"]["stale"] = len(judgement.stale)
            manifest["stale"] = judgement.stale
        if self.shard is not None:
            manifest["shard"] = list(self.shard)
        self.log.info("Synced: %s", manifest["counts"])
        reindexed = [entry["id"] for entry in written if entry.get("batch")]
        del written
        if self.wait_for_indexing and reindexed:
            results = self.wait_until_indexed(
                context, dataset_id=dataset_id, batch=None, document_ids=reindexed, manifest=manifest
            )
            manifest["indexing"] = indexing_summary(results)
        return self._finish(context, manifest, "document(s)")

    def _take_changes(self, renderer: RecordRenderer, records: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """Take the deletions and versions out of a change feed (see :class:`._change_feed.ChangeFeed`)."""
        from airflow_provider_dify.operators.sync._change_feed import ChangeFeed

        self._feed = None
        if self.deleted_field is None and self.version_field is None:
            return records
        self._feed = ChangeFeed(
            renderer,
            deleted_field=self.deleted_field,
            version_field=self.version_field,
            retention=self.deletion_retention,
        )
        return self._feed.take(records)

    def _verify(
        self,
        hook: Any,
        dataset_id: str,
        keyword: str | None,
        feed: ChangeFeed,
        result: Any,
        hashes: Any,
        upload_files: Mapping[str, str],
    ) -> list[dict[str, Any]]:
        """
        Read the written documents again: one that an overlapping older run overwrote meanwhile (it holds an
        older version, or this version with other content) is a failure a retry fixes (the retry reads Dify again
        and rewrites it). Costs the lookups of the written names, or the listing when that reads less.
        """
        from airflow_provider_dify.operators.sync._change_feed import regressed
        from airflow_provider_dify.operators.sync._lookups import find_documents

        expected: dict[str, Any] = {}
        for entry in result.created + result.updated:
            expected[entry["name"]] = (
                feed.versions[entry["key"]],
                hashes[entry["name"]],
                upload_files.get(entry["name"]) if entry.get("batch") else None,
            )
        deletions = {deletion.name: deletion for deletion in feed.deletions}
        for entry in result.deleted:
            remembered = "key" in entry  # a purge's entry has none: it is gone on purpose
            if remembered and entry.get("name") in deletions and deletions[entry["name"]].version is not None:
                expected[entry["name"]] = (deletions[entry["name"]].version, None, None)
        if not expected or feed.kind is None:
            return []
        found, _how = find_documents(hook, dataset_id, list(expected), keyword=keyword, listing=False)
        lost = regressed(expected, found, feed.kind)
        if lost:
            self.log.warning("%d document(s) were overwritten by an older run meanwhile: %s", len(lost), lost[:5])
        return [
            {
                "key": None,
                "name": name,
                "document_id": None,
                "operation": "verify",
                "error": "an overlapping run wrote an older version after this run's write; a retry rewrites it",
            }
            for name in lost
        ]

    def _deletions(self, hook: Any, dataset: Mapping[str, Any], options: Mapping[str, Any], judgement: Any) -> Any:
        """The carrier of a run's deletions (the version fields made first when deletions are remembered)."""
        from airflow_provider_dify.operators._content import ensure_metadata_fields
        from airflow_provider_dify.operators._documents import write_document
        from airflow_provider_dify.operators.sync._deletions import TOMBSTONE_TEXT, Deletions
        from airflow_provider_dify.operators.sync._versions import DELETED_FIELD, VERSION_FIELD

        remember = self.version_field is not None
        fields: dict[str, dict[str, Any]] = {}
        if remember and (judgement.deletions or judgement.revive):
            with bad_arguments_fail_the_task():
                fields = ensure_metadata_fields(
                    hook, str(dataset["id"]), {VERSION_FIELD: "string", DELETED_FIELD: "string"}
                )

        def write_tombstone(name: str) -> str:
            written = write_document(hook, dataset, name=name, text=TOMBSTONE_TEXT, set_metadata=False, **options)
            return written.document_id

        return Deletions(hook, dataset, remember=remember, write_text=write_tombstone, fields=fields)

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, manifest: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the indexing trigger: add the indexing summary to the manifest and return it."""
        resumed = self.resumed_manifest(context, event, manifest)
        resumed["indexing"] = indexing_summary(resumed["indexing"], (event or {}).get("counts"))
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
        """One line every :data:`PROGRESS_EVERY` documents or :data:`PROGRESS_SECONDS` seconds, and at the end.

        The line per document is logged at DEBUG (``write_document``'s ``log_level``).
        """
        last = time.monotonic()

        def report(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done % PROGRESS_EVERY == 0 or done == total or now - last >= PROGRESS_SECONDS:
                last = now
                self.log.info("Wrote %d of %d document(s)", done, total)

        return report
