"""Document-granularity sync: one Dify document per record, reconciled by name, content hash and scope.

:func:`plan_documents` is pure: the rendered records, the documents one listing pass found, the scope ->
what to create, update, leave alone and delete. :class:`DocumentSync` carries the plan out with a thread pool
sharing one :class:`~airflow_provider_dify.hooks.dify.DifyHook`, and writes the content hash and metadata of
the written documents in batches (the document-metadata call takes many documents at once).

Identity is the document name; whether the content changed is told by the hash in
:data:`~airflow_provider_dify.operators._content.HASH_FIELD`; which documents a sync owns is told by its scope
(a metadata value, or the name prefix). Nothing is kept outside Dify, so a retry or a backfill reads the same
truth and finishes the remainder without duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import (
    DifyDatasetNotFoundError,
    DifyDocumentNotReadyError,
    DifyError,
    DifyNotFoundError,
)
from airflow_provider_dify.operators._content import (
    HASH_FIELD,
    coerce_metadata,
    ensure_metadata_fields,
    fields_by_name,
    metadata_operation,
    metadata_type_of,
    metadata_values,
    stored_hash,
)
from airflow_provider_dify.operators._copies import document_survivor, usable_document
from airflow_provider_dify.operators._documents import FAILED_INDEXING, metadata_matches, write_document
from airflow_provider_dify.operators.sync._pool import AHEAD_PER_WORKER, completed_in_window

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook
    from airflow_provider_dify.operators.sync._records import RenderedRecord

log = logging.getLogger(__name__)

#: The metadata field that records which sync (scope) a document belongs to.
SCOPE_FIELD = "airflow_sync_scope"


def scope_of(document: Mapping[str, Any], scope_field: str = SCOPE_FIELD) -> str | None:
    """The scope a listed document carries, or ``None``."""
    value = metadata_values(document).get(scope_field)
    return None if value in (None, "") else str(value)


_usable = usable_document


@dataclass
class DocumentPlan:
    """
    What a sync has to do.

    :param create: records without a document.
    :param update: ``(record, document)`` pairs whose content changed (rewritten and re-indexed).
    :param metadata_only: pairs whose content is unchanged but whose metadata differs (no re-index).
    :param unchanged: pairs left untouched.
    :param delete: documents of the scope that no record wants any more (and extra same-name copies).
    :param failures: records that cannot be written as they are (a name owned by another scope, a disabled
        or archived document with new content).
    :param wanted: the names the source wants (a delete of one of them must be a true second copy).
    """

    create: list[RenderedRecord] = field(default_factory=list)
    update: list[tuple[RenderedRecord, dict[str, Any]]] = field(default_factory=list)
    metadata_only: list[tuple[RenderedRecord, dict[str, Any]]] = field(default_factory=list)
    unchanged: list[tuple[RenderedRecord, dict[str, Any]]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    wanted: set[str] = field(default_factory=set)

    @property
    def writes(self) -> int:
        """Documents to write, rewrite or delete."""
        return len(self.create) + len(self.update) + len(self.metadata_only) + len(self.delete)


def in_scope(document: Mapping[str, Any], *, scope: str | None, scope_field: str, name_prefix: str) -> bool:
    """
    Whether a listed document belongs to the sync.

    With a ``scope``: the documents carrying that scope value, whatever their name (one renamed by hand stays a
    member), and the documents carrying no scope value whose name starts with ``name_prefix`` (one whose scope
    value was deleted by hand); never one carrying another scope's value. Without a scope: the documents whose
    name starts with ``name_prefix``.
    """
    owner = scope_of(document, scope_field)
    named = bool(name_prefix) and str(document.get("name") or "").startswith(name_prefix)
    if scope is not None:
        return owner == scope or (owner is None and named)
    return named


def record_metadata(record: RenderedRecord, *, scope: str | None, scope_field: str) -> dict[str, Any]:
    """The metadata a synced document carries besides its content hash: the scope and the record's metadata."""
    values: dict[str, Any] = {scope_field: scope} if scope is not None else {}
    values.update(record.metadata)
    return values


def wanted_metadata(record: RenderedRecord, content_hash: str, *, scope: str | None, scope_field: str) -> dict:
    """All the metadata a synced document carries: the content hash, the scope and the record's metadata."""
    return {HASH_FIELD: content_hash, **record_metadata(record, scope=scope, scope_field=scope_field)}


def plan_documents(
    records: Sequence[RenderedRecord],
    hashes: Mapping[str, str],
    listed: Iterable[Mapping[str, Any]],
    *,
    scope: str | None,
    scope_field: str = SCOPE_FIELD,
    name_prefix: str = "",
    delete_missing: bool = False,
    keep_names: Iterable[str] = (),
) -> DocumentPlan:
    """
    Compare the records with the documents found; decide every write (pure, no I/O).

    :param records: the rendered records (unique names).
    :param hashes: the content hash of each record, by name.
    :param listed: the documents of the knowledge base (list responses, with ``doc_metadata``).
    :param scope: the scope value kept in ``scope_field``; ``None`` scopes by ``name_prefix``.
    :param delete_missing: delete documents of the scope that no record wants.
    :param keep_names: names never deleted (records that failed to render but still exist in the source).
    """
    wanted_names = {record.name for record in records} | set(keep_names)
    plan = DocumentPlan(wanted=wanted_names)
    by_name: dict[str, list[dict[str, Any]]] = {}
    seen_ids: set[str] = set()
    for document in listed:
        document_id = str(document.get("id") or "")
        if document_id and document_id in seen_ids:
            continue  # one document seen twice (a page shift) is not a second copy
        seen_ids.add(document_id)
        by_name.setdefault(str(document.get("name") or ""), []).append(dict(document))

    for record in records:
        documents = by_name.get(record.name) or []
        if not documents:
            plan.create.append(record)
            continue
        # Every run keeps the same copy (see _copies.survivor_key): the oldest usable one, which Dify's
        # same-name upsert reuses; the other copies are extra.
        current, extras = document_survivor(documents)
        assert current is not None
        owner = scope_of(current, scope_field)
        if scope is not None and owner is not None and owner != scope:
            plan.failures.append(
                _failure(
                    record,
                    current,
                    "plan",
                    f"document {record.name!r} belongs to scope {owner!r}, not {scope!r}; give each scope its own"
                    " name_prefix (names identify documents in a knowledge base)",
                )
            )
            continue
        if delete_missing:
            # Extra copies of the name (made outside the sync): removed unless another scope owns them.
            plan.delete.extend(extra for extra in extras if _owned_or_unowned(extra, scope, scope_field))
        content_hash = hashes[record.name]
        metadata = wanted_metadata(record, content_hash, scope=scope, scope_field=scope_field)
        content_same = stored_hash(current) == content_hash and current.get("indexing_status") not in FAILED_INDEXING
        if content_same:
            if metadata_matches(current, metadata):
                plan.unchanged.append((record, current))
            else:
                plan.metadata_only.append((record, current))
        elif not _usable(current):
            state = "archived" if current.get("archived") else "disabled"
            plan.failures.append(
                _failure(
                    record,
                    current,
                    "plan",
                    f"document {record.name!r} is {state} in Dify and its content changed; "
                    + ("un-archive" if state == "archived" else "enable")
                    + " it (or delete it) so that the sync can update it",
                )
            )
        else:
            plan.update.append((record, current))

    if delete_missing:
        for name, documents in by_name.items():
            if name in wanted_names:
                continue
            for document in documents:
                if in_scope(document, scope=scope, scope_field=scope_field, name_prefix=name_prefix):
                    plan.delete.append(document)
    return plan


def _owned_or_unowned(document: Mapping[str, Any], scope: str | None, scope_field: str) -> bool:
    owner = scope_of(document, scope_field)
    return scope is None or owner is None or owner == scope


def _failure(
    record: RenderedRecord | None, document: Mapping[str, Any] | None, operation: str, error: str | BaseException
) -> dict:
    """A failed record for the manifest; ``permanent`` when the error is one a retry cannot fix."""
    failure = {
        "key": record.key if record else None,
        "name": record.name if record else (document or {}).get("name"),
        "document_id": (document or {}).get("id"),
        "operation": operation,
        "error": str(error),
    }
    if is_permanent(error):
        failure["permanent"] = True
    return failure


def is_permanent(error: str | BaseException) -> bool:
    """Whether an error cannot succeed on a retry: a refused key, quota, validation, a rejected file, a bad
    argument (the provider's errors that are ``AirflowFailException``) or a value the provider refused."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    return isinstance(error, (AirflowFailException, ValueError))


def metadata_field_types(
    records: Sequence[RenderedRecord], existing: Mapping[str, Mapping[str, Any]], *, scope: str | None, scope_field: str
) -> dict[str, str]:
    """
    The metadata fields the sync needs, ``{name: type}``: a field that exists keeps its type; a new one is
    ``number`` when every value given is a number, ``string`` otherwise.
    """
    types: dict[str, str] = {HASH_FIELD: "string"}
    if scope is not None:
        types[scope_field] = "string"
    seen: dict[str, set[str]] = {}
    for record in records:
        for name, value in record.metadata.items():
            kinds = seen.setdefault(name, set())
            if value is not None:
                kinds.add(metadata_type_of(value))
    for name, kinds in seen.items():
        if name in existing:
            types[name] = str(existing[name].get("type") or "string")
        else:
            types[name] = "number" if kinds == {"number"} else "string"
    for name in (HASH_FIELD, scope_field):
        if name in existing and name in types:
            types[name] = str(existing[name].get("type") or "string")
    return types


@dataclass
class DocumentSyncResult:
    """The outcome of carrying out a :class:`DocumentPlan` (plain data for the manifest)."""

    created: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    metadata_requests: int = 0


def rewrite_in_place(document: Mapping[str, Any]) -> bool:
    """
    Whether a changed document is updated by id (update-by-text/-file): only ``available`` documents can be.

    One still queued, indexing, or whose indexing failed is rewritten through Dify's same-name upsert instead
    (a create with its name reuses it: same id, new batch), which Dify accepts in those states.
    """
    return document.get("display_status") in (None, "available")


class DocumentSync:
    """
    Carry out a :class:`DocumentPlan`: content writes and deletes on a thread pool sharing ``hook``, then the
    content hash and metadata of the written documents, ``metadata_batch_size`` documents a call.

    Each document is written by :func:`~airflow_provider_dify.operators._documents.write_document` (the one
    single-document write of the provider) with ``set_metadata=False``; the hash is written only after the
    content write succeeded, so a document whose metadata write failed is rewritten by the next run (it
    converges; nothing is duplicated).

    :param hook: the hook shared by the workers (its session pool is sized for a few of them).
    :param dataset: the knowledge base as Dify returns it.
    :param options: the document options (``process_rule``, ``indexing_technique``, ``doc_form``,
        ``doc_language``) passed to every write.
    :param scope: the scope value, kept in ``scope_field``.
    :param max_workers: parallel writes.
    :param metadata_batch_size: documents per metadata call.
    :param name_prefix: the sync's name prefix (scope membership of a document without a scope value).

    Other runs and people may write the same knowledge base meanwhile. A document another run is re-indexing
    ("Document is not available"), or one that vanished, is read again and written within the task (up to
    :data:`WRITE_ATTEMPTS` times); a document that vanished is dropped from its metadata batch, the rest of the
    batch is written, and its record is written again. What the plan deletes is checked first (see
    :meth:`delete_checked`). A knowledge base that disappears stops the run at the first 404 that says so.
    """

    def __init__(
        self,
        hook: DifyHook,
        dataset: Mapping[str, Any],
        *,
        options: Mapping[str, Any],
        scope: str | None,
        scope_field: str = SCOPE_FIELD,
        max_workers: int = 4,
        metadata_batch_size: int = 100,
        name_prefix: str = "",
    ) -> None:
        self.hook = hook
        self.name_prefix = name_prefix
        self._hashes: Mapping[str, str] = {}
        self._fields: Mapping[str, Mapping[str, Any]] = {}
        self.dataset = dict(dataset)
        self.dataset_id = str(dataset["id"])
        self.options = dict(options)
        self.scope = scope
        self.scope_field = scope_field
        self.max_workers = max_workers
        self.metadata_batch_size = metadata_batch_size
        #: The file each content write stored its content in, by name (a later read tells whose content is there).
        self.upload_files: dict[str, str] = {}

    def _write(
        self,
        record: RenderedRecord,
        existing: Mapping[str, Any] | None,
        content_hash: str,
        fields: Mapping[str, Mapping[str, Any]],
    ) -> Any:
        if existing is not None and not rewrite_in_place(existing):
            existing = None  # the same-name upsert (see rewrite_in_place)
        arguments = {
            "name": record.name,
            "existing": existing,
            "metadata": record_metadata(record, scope=self.scope, scope_field=self.scope_field),
            "content_hash": content_hash,
            "metadata_fields": fields,
            "set_metadata": False,
            "log_level": logging.DEBUG,  # one line per document only at DEBUG; the operator logs progress
            **self.options,
        }
        if record.file is not None:
            with record.file.local_copy() as local:
                return write_document(self.hook, self.dataset, file_path=local, **arguments)
        return write_document(self.hook, self.dataset, text=record.text or "", **arguments)

    def run(
        self,
        plan: DocumentPlan,
        hashes: Mapping[str, str],
        fields: Mapping[str, Mapping[str, Any]],
        *,
        on_progress: Callable[[int, int], Any] | None = None,
    ) -> DocumentSyncResult:
        """Write the plan; every failure is collected, none stops the others."""
        result = DocumentSyncResult(failed=list(plan.failures))
        pending: list[tuple[dict[str, Any], RenderedRecord, str, dict[str, Any]]] = []  # (op, record, kind, entry)
        self._hashes, self._fields = hashes, fields
        metadata_for = self._metadata_for

        for record, document in plan.metadata_only:
            entry = {"key": record.key, "name": record.name, "id": str(document["id"]), "batch": None}
            try:
                operation = metadata_for(record, entry["id"])
            except ValueError as error:  # a value that does not fit its field's type
                result.failed.append(_failure(record, document, "metadata", error))
                continue
            pending.append((operation, record, "updated", entry))

        total = len(plan.create) + len(plan.update) + len(plan.delete)
        done = 0
        operations = chain(
            (("created", record, None) for record in plan.create),
            (("updated", record, document) for record, document in plan.update),
            (("deleted", None, document) for document in plan.delete),
        )

        def carry_out(operation: tuple[str, Any, Any]) -> Any:
            kind, record, document = operation
            if kind == "deleted":
                return self.delete_checked(document, plan.wanted)
            return self.write_converging(record, document)

        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="dify-sync") as pool:
            # An error leaving the loop drops the iterator, which cancels the writes not started yet: the pool
            # then waits for at most one window of them.
            window = self.max_workers * AHEAD_PER_WORKER
            for (kind, record, document), future in completed_in_window(pool, carry_out, operations, window=window):
                done += 1
                try:
                    written = future.result()
                except DifyDatasetNotFoundError as error:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise self._dataset_gone(error) from error
                except (DifyError, OSError, ValueError) as error:
                    operation = {"created": "create", "updated": "update", "deleted": "delete"}[kind]
                    result.failed.append(_failure(record, document, operation, error))
                    name = record.name if record is not None else (document or {}).get("name")
                    log.warning("%s of document %r failed: %s", operation, name, error)
                else:
                    if kind == "deleted":
                        if written is not None:
                            result.deleted.append({"name": document.get("name"), "id": str(document["id"])})
                    else:
                        entry = {
                            "key": record.key,
                            "name": record.name,
                            "id": written.document_id,
                            "batch": written.batch,
                        }
                        if written.upload_file:
                            self.upload_files[record.name] = written.upload_file
                        pending.append((metadata_for(record, written.document_id), record, kind, entry))
                if len(pending) >= self.metadata_batch_size:
                    self._flush(pending, result)
                if on_progress is not None:
                    on_progress(done, total)
        self._flush(pending, result)
        return result

    def _metadata_for(self, record: RenderedRecord, document_id: str) -> dict[str, Any]:
        values = wanted_metadata(record, self._hashes[record.name], scope=self.scope, scope_field=self.scope_field)
        return metadata_operation(document_id, coerce_metadata(values, self._fields), self._fields)

    def write_converging(self, record: RenderedRecord, existing: Mapping[str, Any] | None) -> Any:
        """
        Write one record's document, riding out what other runs do to it meanwhile.

        A document that another run re-queued ("Document is not available") or that vanished is read again (by
        id, then by name with the copy rule) and the write is repeated against what is there now, up to
        :data:`WRITE_ATTEMPTS` times. When the document read again already holds the record's content (another
        run wrote it), no content is written: only the metadata, as for every written document.
        """
        from airflow_provider_dify.operators._documents import DocumentWrite

        content_hash = self._hashes[record.name]
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return self._write(record, existing, content_hash, self._fields)
            except DifyDatasetNotFoundError:
                raise
            except (DifyDocumentNotReadyError, DifyNotFoundError) as error:
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.info("Document %r changed under the sync (%s); reading it again", record.name, error.message)
                existing = self.current_document(record.name, existing)
                if existing is not None and not _usable(existing):
                    raise
                same = existing is not None and existing.get("name") == record.name
                if same and stored_hash(existing) == content_hash:
                    return DocumentWrite("updated", str(existing["id"]), record.name, None, content_hash)
        raise AssertionError("unreachable")  # pragma: no cover

    def current_document(self, name: str, known: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The document of ``name`` as it is now: ``known`` read again by id, else the survivor of the name."""
        if known is not None:
            try:
                return dict(self.hook.get_document(self.dataset_id, str(known["id"]), metadata="all"))
            except DifyDatasetNotFoundError:
                raise
            except DifyNotFoundError:
                pass
        survivor, _extras = document_survivor(self.hook.find_documents_by_name(self.dataset_id, name))
        return dict(survivor) if survivor is not None else None

    def delete_checked(self, document: Mapping[str, Any], wanted: set[str]) -> dict[str, Any] | None:
        """
        Delete a document the plan deletes, after checking it again; return it, or ``None`` when it is kept.

        The document is read by id (gone already: nothing to do). One whose name the source wants is deleted
        only when it is a true second copy: the name, listed again, has a survivor by the copy rule with
        another id. One whose name is not wanted is deleted only while it still belongs to the scope.
        """
        document_id = str(document["id"])
        try:
            fresh = dict(self.hook.get_document(self.dataset_id, document_id, metadata="all"))
        except DifyDatasetNotFoundError:
            raise
        except DifyNotFoundError:
            log.info("Document %r (%s) is already gone", document.get("name"), document_id)
            return None
        name = str(fresh.get("name") or document.get("name") or "")
        owner = scope_of(fresh, self.scope_field)
        if name in wanted:
            survivor, _extras = document_survivor(self.hook.find_documents_by_name(self.dataset_id, name))
            if survivor is None or str(survivor.get("id")) == document_id:
                log.info("Document %r (%s) is the copy the sync keeps; not deleted", name, document_id)
                return None
            if self.scope is not None and owner is not None and owner != self.scope:
                return None
        elif not in_scope(fresh, scope=self.scope, scope_field=self.scope_field, name_prefix=self.name_prefix):
            log.info("Document %r (%s) left the sync's scope meanwhile; not deleted", name, document_id)
            return None
        try:
            self.hook.delete_document(self.dataset_id, document_id)
        except DifyDatasetNotFoundError:
            raise
        except DifyNotFoundError:
            return None  # deleted by another run meanwhile
        return fresh

    def _dataset_gone(self, error: DifyDatasetNotFoundError) -> DifyDatasetNotFoundError:
        return DifyDatasetNotFoundError(
            f"knowledge base {self.dataset.get('name')!r} ({self.dataset_id}) was deleted while the sync ran:"
            f" {error.message}; the sync stopped (recreate the knowledge base, then run the task again)",
            dataset_id=self.dataset_id,
            status=error.status,
            code=error.code,
            method=error.method,
            path=error.path,
        )

    def _flush(
        self, pending: list[tuple[dict[str, Any], RenderedRecord, str, dict[str, Any]]], result: DocumentSyncResult
    ) -> None:
        while pending:
            batch = pending[: self.metadata_batch_size]
            del pending[: self.metadata_batch_size]
            self._write_batch(batch, result, WRITE_ATTEMPTS)

    def _write_batch(
        self,
        batch: list[tuple[dict[str, Any], RenderedRecord, str, dict[str, Any]]],
        result: DocumentSyncResult,
        attempts: int,
    ) -> None:
        """One metadata call; a document that vanished is dropped from it and its record written again."""
        try:
            self.hook.update_documents_metadata(self.dataset_id, [operation for operation, *_ in batch])
        except DifyDatasetNotFoundError as error:
            result.metadata_requests += 1
            raise self._dataset_gone(error) from error
        except DifyError as error:
            result.metadata_requests += 1
            if attempts > 1 and _document_missing(error):
                self._without_vanished(batch, result, attempts - 1)
                return
            for _operation, record, _kind, entry in batch:
                result.failed.append(
                    _failure(record, {"id": entry["id"]}, "metadata", f"writing the content hash failed: {error}")
                )
            return
        result.metadata_requests += 1
        for _operation, _record, kind, entry in batch:
            (result.created if kind == "created" else result.updated).append(entry)

    def _without_vanished(
        self,
        batch: list[tuple[dict[str, Any], RenderedRecord, str, dict[str, Any]]],
        result: DocumentSyncResult,
        attempts: int,
    ) -> None:
        present, again = [], []
        for item in batch:
            _operation, record, kind, entry = item
            try:
                self.hook.get_document(self.dataset_id, entry["id"], metadata="without")
            except DifyDatasetNotFoundError as error:
                raise self._dataset_gone(error) from error
            except DifyNotFoundError:
                log.info("Document %r (%s) vanished before its metadata was written", record.name, entry["id"])
                try:
                    written = self.write_converging(record, self.current_document(record.name, None))
                except DifyDatasetNotFoundError as error:
                    raise self._dataset_gone(error) from error
                except (DifyError, OSError, ValueError) as error:
                    result.failed.append(_failure(record, {"id": entry["id"]}, "update", error))
                    continue
                entry = {**entry, "id": written.document_id, "batch": written.batch or entry.get("batch")}
                again.append((self._metadata_for(record, written.document_id), record, kind, entry))
            else:
                present.append(item)
        if present or again:
            self._write_batch(present + again, result, attempts)


#: Times one record's write is tried while other runs re-index or delete its document meanwhile.
WRITE_ATTEMPTS = 3


def _document_missing(error: DifyError) -> bool:
    """Whether a metadata call failed because one of its documents does not exist (any more)."""
    return isinstance(error, DifyNotFoundError) or "document not found" in (error.message or "").lower()


def needed_fields(
    hook: DifyHook,
    dataset_id: str,
    records: Sequence[RenderedRecord],
    *,
    scope: str | None,
    scope_field: str,
) -> dict[str, dict[str, Any]]:
    """Create the metadata fields the sync writes (content hash, scope, record metadata); return all by name."""
    existing = fields_by_name(hook, dataset_id)
    types = metadata_field_types(records, existing, scope=scope, scope_field=scope_field)
    return ensure_metadata_fields(hook, dataset_id, types, existing)
