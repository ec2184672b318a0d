"""DifySyncChunksOperator: one chunk per record, in one document that stands for the scope."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_dify.operators._base import (
    bad_arguments_fail_the_task,
    check_string,
)
from airflow_provider_dify.operators.sync._chunk_sync import HOLDER_FIELD, HOLDER_MARK, upload_file_of
from airflow_provider_dify.operators.sync._operator import DELETES_WITHHELD, RecordSyncOperator, positive_int

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_dify.operators.sync._records import RecordRenderer, RenderedRecord


class DifySyncChunksOperator(RecordSyncOperator):
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
    :param take_over_document: let the sync take a document of ``document_name`` that it did not make (an
        uploaded file, a hand-made document) as its holder: it then carries the holder mark, and its chunks no
        record wants are deleted with ``delete_missing`` (within ``max_deletes``). Without it such a document is
        refused before any write.
    :param deleted_field: refused: the chunk sync is a snapshot (see the document sync's ``deleted_field``).
    :param version_field: refused: the chunk sync is a snapshot (see the document sync's ``version_field``).

    The other parameters are those of the record source, rendering and waiting: ``dataset_id``,
    ``dataset_name``, ``records``, ``sql``, ``sql_conn_id``, ``parameters``, ``path`` (each file's text is a
    chunk), ``path_glob``, ``key_field``, ``text_template``, ``max_workers``, ``indexing_technique``,
    ``process_rule``, ``doc_form``, ``allow_empty_source``, ``max_deletes``, ``dify_conn_id``, ``deferrable``
    (wait for a new document in the triggerer), ``indexing_timeout``, ``poll_interval``, ``stall_timeout``.
    """

    template_fields: Sequence[str] = (
        *RecordSyncOperator.template_fields,
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
        take_over_document: bool = False,
        deleted_field: str | None = None,
        version_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for value, argument in ((deleted_field, "deleted_field"), (version_field, "version_field")):
            if value is not None:
                raise ValueError(
                    f"{argument}: the chunk sync is a snapshot of its document (a chunk's identity is its content,"
                    " so a change feed cannot find a record's previous chunk); sync a change feed with"
                    f" DifySyncDocumentsOperator(..., {argument}={value!r}), one document per record."
                )
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
        self.batch_size = positive_int(batch_size, "batch_size")
        self.delete_missing = bool(delete_missing)
        self.repair_passes = repair_passes
        self.take_over_document = bool(take_over_document)
        self._renderer()

    def _renderer(self) -> RecordRenderer:
        from airflow_provider_dify.operators.sync._records import RecordRenderer

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
            self._refuse_foreign_holder(document, name)
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

    def _refuse_foreign_holder(self, document: Mapping[str, Any], name: str) -> None:
        """Refuse, before any write, a document of the holder's name that this sync did not make (unless
        ``take_over_document``): its chunks are someone else's, and ``delete_missing`` would delete them."""
        from airflow_provider_dify.operators.sync._chunk_sync import is_sync_holder

        if self.take_over_document or is_sync_holder(document, name, self._header()):
            return
        source = upload_file_of(document)
        made = f"an upload of {source.get('name')!r}" if source.get("extension") not in (None, "txt") else "a document"
        raise AirflowFailException(
            f"document_name: document {name!r} ({document.get('id')}) is {made} that DifySyncChunksOperator did not"
            f" make (it has no {HOLDER_FIELD!r} metadata), so the sync does not take it over: its chunks would be"
            " deleted. Give the sync another document_name, or, to hand this document over to it, pass"
            " take_over_document=True once (or set the metadata field"
            f" {HOLDER_FIELD!r} to {HOLDER_MARK!r} on it in Dify); nothing was written."
        )

    def _sync(
        self,
        context: Context,
        dataset: Mapping[str, Any],
        document: Mapping[str, Any],
        rendering: tuple[list[RenderedRecord], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        from airflow_provider_dify.exceptions import DifyDatasetNotFoundError
        from airflow_provider_dify.operators.sync._chunk_sync import (
            ChunkPlan,
            ChunkSync,
            chunk_content,
            manifest_entries,
            plan_chunks,
            reconcile,
        )

        hook = self._shared_hook()
        dataset_id, document_id = str(dataset["id"]), str(document["id"])
        rendered, failures = rendering
        # Records that failed to render keep every shard from deleting chunks no record claims (which of them
        # was theirs cannot be told); each failure is reported by one shard.
        keep_keys = [failure["key"] for failure in failures if failure.get("key")]
        # A chunk's identity is its text: a record that failed to render might be any chunk no record claims.
        withheld = self._withhold_deletes(failures, "text", "chunk")
        sizes = self._shard_sizes(chunk_content(record) for record in rendered)
        if self.shard is not None:  # a chunk's identity is its text: the shard owns the texts that hash to it
            rendered = [record for record in rendered if self._owned(chunk_content(record))]
            failures = [failure for failure in failures if self._owned(failure.get("key"))]
        url = self.push_console_url(context, dataset_id, document_id)
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
                delete_missing=self.delete_missing and withheld is None,
                keep_keys=keep_keys,
            )

        try:
            with self._rate_limit_part(sizes, f"chunks {dataset_id} {document_id}"):


                def before_writes(plan: ChunkPlan) -> None:
                    """The refusals, then the holder's metadata: nothing is written when a refusal fails the run."""
                    self._refuse_emptying(rendered, failures, len(plan.delete), "chunks")
                    records = len(rendered) + len(failures)
                    self._refuse_mass_delete(records, len(plan.delete) - plan.copies, plan.listed, "chunks")
                    self._write_document_metadata(dataset_id, document)

                first_plan, result = reconcile(
                    sync, plan, repair_passes=self.repair_passes, check_first_plan=before_writes
                )
        except DifyDatasetNotFoundError:
            self._fail_if_dataset_gone(dataset)
            raise
        self._fail_if_dataset_gone(dataset)
        del sync, texts  # the listed chunks' shared texts: not needed for the manifest
        passes = result.passes
        wanted = first_plan.add + first_plan.update + first_plan.unchanged
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
            "added": manifest_entries(result.added),
            "updated": manifest_entries(result.updated),
            "deleted": manifest_entries(result.deleted),
            "failed": [dict(failure) for failure in failures] + failed_writes,
            "requests": {"add": result.add_requests, "passes": passes},
            "console_url": url,
        }
        if first_plan.duplicates:
            manifest["counts"]["duplicates"] = first_plan.duplicates
        if result.copies_removed:
            manifest["counts"]["copies_removed"] = result.copies_removed
        if withheld is not None:
            manifest[DELETES_WITHHELD] = withheld
        if self.shard is not None:
            manifest["shard"] = list(self.shard)
        self.log.info("Synced the chunks of %r: %s", manifest["document_name"], manifest["counts"])
        return self._finish(context, manifest, "chunk write(s)")

    def _write_document_metadata(self, dataset_id: str, document: Mapping[str, Any]) -> None:
        """Set the holder mark and ``document_metadata`` on the document when its values differ."""
        from airflow_provider_dify.operators._content import validate_metadata
        from airflow_provider_dify.operators._documents import metadata_matches, write_metadata

        wanted = {HOLDER_FIELD: HOLDER_MARK, **validate_metadata(self.document_metadata, "document_metadata")}
        if not metadata_matches(document, wanted):
            with bad_arguments_fail_the_task():
                write_metadata(self.hook, dataset_id, str(document["id"]), wanted)
