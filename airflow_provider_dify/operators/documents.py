"""Operators that create, update and delete documents of a Dify knowledge base."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyForbiddenError, DifyNotFoundError
from airflow_provider_dify.operators._base import (
    DifyBaseOperator,
    DifyIndexingWaitOperator,
    bad_arguments_fail_the_task,
    check_choice,
    check_dataset_and_document,
    check_mapping,
    check_process_rule,
    check_string,
    given,
    skip_check,
)
from airflow_provider_dify.operators._content import validate_metadata
from airflow_provider_dify.operators._documents import (
    DOC_FORMS,
    INDEXING_TECHNIQUES,
    MAX_DOCUMENT_NAME,
    ON_EXISTING,
    DocumentWrite,
    local_file,
    named_document,
    refuse_pipeline_knowledge_base,
    resolve_dataset,
    resolve_document,
    resolve_target,
    write_document,
)
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _check_content(text: Any, file: Any, *, build: bool) -> None:
    """``text`` xor ``file``: a non-blank string, or a local path / ``ObjectStoragePath`` / URL."""
    if (text is None) == (file is None):
        raise ValueError(
            "text or file: pass exactly one of them (text='...' or file='/path/report.md' / 's3://bucket/report.md')."
        )
    if text is not None and not skip_check(text, build) and (not isinstance(text, str) or not text.strip()):
        raise ValueError(f"text: must be a non-empty string (Dify would index an empty document), got {text!r}.")
    if text is not None and not skip_check(text, build):
        check_string(text, "text", text=True)
    if file is not None and not skip_check(file, build):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        if not isinstance(file, (str, os.PathLike, ObjectStoragePath)) or not str(file).strip():
            raise ValueError(
                f"file: pass a local path, an ObjectStoragePath or a URL such as s3://bucket/key, got {file!r}."
            )


def _check_document_name(name: Any, argument: str, *, from_file: bool) -> str:
    check_string(name, argument, max_length=MAX_DOCUMENT_NAME, single_line=True)
    if from_file and ("." not in name.strip(".") or "/" in name or "\\" in name):
        raise ValueError(
            f"{argument}: a document uploaded from a file is named like a file, with its extension and without"
            f" '/' (Dify picks the parser by extension), e.g. 'handbook.md'; got {name!r}."
        )
    return name


def _write_options(checked: Mapping[str, Any]) -> dict[str, Any]:
    """The checked arguments :func:`write_document` takes as they are (``None`` where not given)."""
    return {
        argument: checked.get(argument)
        for argument in ("metadata", "process_rule", "indexing_technique", "doc_form", "doc_language")
    }


@contextlib.contextmanager
def _content_source(file: Any) -> Iterator[tuple[str | None, str | None]]:
    """``(local path, file name)`` of ``file``, or ``(None, None)`` for a text document."""
    if file is None:
        yield None, None
        return
    with local_file(file) as (path, filename):
        yield path, filename


def document_manifest(
    dataset: Mapping[str, Any], result: DocumentWrite | None, url: str | None, **extra: Any
) -> dict[str, Any]:
    """What a document operator returns: ids, names, batch, the action taken, the console URL (never text)."""
    manifest: dict[str, Any] = {
        "dataset_id": dataset.get("id"),
        "dataset_name": dataset.get("name"),
    }
    if result is not None:
        manifest.update(
            {
                "document_id": result.document_id,
                "document_name": result.name,
                "document_ids": [result.document_id],
                "batch": result.batch,
                "action": result.action,
                "content_hash": result.content_hash,
            }
        )
        if result.repaired is not None:
            manifest["repaired"] = result.repaired  # the failed indexing state the document was rewritten from
    manifest.update(extra)
    manifest["console_url"] = url
    return manifest


class _DocumentWriteOperator(KnowledgeBaseLineageMixin, DifyIndexingWaitOperator):
    """The parts of the create and update operators that are the same."""

    def __init__(
        self,
        *,
        dataset_id: str | None,
        dataset_name: str | None,
        text: str | None,
        file: Any,
        process_rule: dict[str, Any] | None,
        doc_language: str | None,
        metadata: dict[str, Any] | None,
        wait_for_indexing: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.text = text
        self.file = file
        self.process_rule = process_rule
        self.doc_language = doc_language
        self.metadata = metadata
        self.wait_for_indexing = wait_for_indexing
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

    def _check_common(self, *, build: bool) -> dict[str, Any]:
        _check_content(self.text, self.file, build=build)
        if not build:
            self._check_local_upload()
        checked: dict[str, Any] = {}
        if not skip_check(self.process_rule, build):
            checked["process_rule"] = check_process_rule(self.process_rule)
        if not skip_check(self.metadata, build):
            checked["metadata"] = validate_metadata(check_mapping(self.metadata, "metadata"))
        if given(self.doc_language) and not skip_check(self.doc_language, build):
            checked["doc_language"] = check_string(self.doc_language, "doc_language")
        return checked

    def _check_local_upload(self) -> None:
        """A local file the server would refuse (size, extension) fails before the first request."""
        from airflow_provider_dify.hooks.validation import check_upload_allowed

        file = self.file
        if not isinstance(file, (str, os.PathLike)) or "://" in str(file) or not os.path.isfile(file):
            return  # remote files are checked once downloaded
        name = getattr(self, "name", None)
        filename = name if isinstance(name, str) and name.strip() else os.path.basename(file)
        check_upload_allowed(self.hook.settings, file, filename)

    def _finish(self, context: Context, dataset: Mapping[str, Any], result: DocumentWrite) -> dict[str, Any]:
        url = self.push_console_url(context, str(dataset["id"]), result.document_id)
        manifest = document_manifest(dataset, result, url)
        if self.wait_for_indexing:
            manifest["indexing"] = self.wait_until_indexed(
                context,
                dataset_id=str(dataset["id"]),
                batch=result.batch if result.indexing else None,
                document_ids=[result.document_id],
                manifest=manifest,
            )
        return self.report_knowledge_base(context, manifest)

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, manifest: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the indexing trigger: return the manifest with the indexing results."""
        return self.report_knowledge_base(context, self.resumed_manifest(context, event, manifest))


class DifyCreateDocumentOperator(_DocumentWriteOperator):
    """
    Write one document to a knowledge base from text or from a file, once: re-runs write only what changed.

    The document's name is its identity. When no document has that name it is created (create-by-text or
    create-by-file). When one exists (the oldest, if several: the copy rule), the content hash kept in its Dify metadata
    (field ``airflow_content_hash``) tells whether the content changed: if not, nothing is written, so a
    retry, a cleared task or a backfill over unchanged data makes no write; if so, ``on_existing`` decides.
    The hash covers the text or the file's bytes plus the process rule and language. A document whose indexing
    ended in ``error``, ``paused`` or ``stopped`` is rewritten even when unchanged (Dify's same-name upsert: same
    id, new batch), and the manifest then holds ``repaired`` (that state).

    Returns (XCom) ``{dataset_id, dataset_name, document_id, document_name, document_ids, batch, action,
    content_hash, console_url}`` (plus ``indexing``, the per-document results, with ``wait_for_indexing``);
    ``action`` is ``created``, ``updated``, ``metadata_updated``, ``unchanged`` or ``skipped``. The text is
    never put in XCom.

    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param name: the document's name; defaults to the file's name for a file. A file's document name keeps
        the file's extension (Dify picks the parser by it).
    :param text: the document's text (or give ``file``).
    :param file: a local path, an ``ObjectStoragePath`` or a URL Airflow's object storage reads (``s3://``,
        ``gs://``, ``file://``...); remote files are downloaded to a temporary file in blocks, then streamed.
    :param process_rule: how Dify splits the document; default ``{"mode": "automatic"}``.
    :param indexing_technique: ``high_quality`` or ``economy``; only used while the knowledge base has none.
    :param doc_form: ``text_model``, ``hierarchical_model`` or ``qa_model``; only used while the knowledge base
        has none (the knowledge base's form is always sent).
    :param doc_language: the document's language (e.g. ``English``; matters for Q&A documents).
    :param metadata: metadata values ``{field: value}`` (fields are created when missing).
    :param on_existing: when a document with that name holds other content: ``update`` (default) replaces it,
        ``skip`` leaves it, ``error`` fails the task.
    :param wait_for_indexing: wait until Dify has indexed the document (see ``deferrable``).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for the indexing.
    :param poll_interval: seconds between polls of the indexing status.
    :param stall_timeout: seconds without progress before the wait fails (``None``: never).
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "name",
        "text",
        "file",
        "process_rule",
        "indexing_technique",
        "doc_form",
        "doc_language",
        "metadata",
        "on_existing",
        "dify_conn_id",
    )

    def __init__(
        self,
        *,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        name: str | None = None,
        text: str | None = None,
        file: Any = None,
        process_rule: dict[str, Any] | None = None,
        indexing_technique: str | None = None,
        doc_form: str | None = None,
        doc_language: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_existing: str = "update",
        wait_for_indexing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            dataset_id=dataset_id,
            dataset_name=dataset_name,
            text=text,
            file=file,
            process_rule=process_rule,
            doc_language=doc_language,
            metadata=metadata,
            wait_for_indexing=wait_for_indexing,
            **kwargs,
        )
        self.name = name
        self.indexing_technique = indexing_technique
        self.doc_form = doc_form
        self.on_existing = on_existing
        self._check(build=True)

    def _check(self, *, build: bool) -> dict[str, Any]:
        check_dataset_and_document(self, build=build, document=False)
        checked = self._check_common(build=build)
        if self.text is not None and not given(self.name):
            raise ValueError("name: a document written from text needs a name (its identity in the knowledge base).")
        if given(self.name) and not skip_check(self.name, build):
            checked["name"] = _check_document_name(self.name, "name", from_file=self.file is not None)
        for argument, allowed in (("indexing_technique", INDEXING_TECHNIQUES), ("doc_form", DOC_FORMS)):
            value = getattr(self, argument)
            if given(value) and not skip_check(value, build):
                checked[argument] = check_choice(value, allowed, argument)
        if not skip_check(self.on_existing, build) and self.on_existing not in ON_EXISTING:
            raise ValueError(f"on_existing: {self.on_existing!r} is not one of {', '.join(ON_EXISTING)}.")
        return checked

    def execute(self, context: Context) -> dict[str, Any]:
        """Create the document, update it if its content changed, or leave it; optionally wait for indexing."""
        with bad_arguments_fail_the_task():
            checked = self._check(build=False)
        hook = self.hook
        dataset = resolve_dataset(hook, dataset_id=self.dataset_id, dataset_name=self.dataset_name)
        dataset = refuse_pipeline_knowledge_base(dataset, type(self).__name__)
        with bad_arguments_fail_the_task(), _content_source(self.file) as (path, filename):
            name = checked.get("name") or _check_document_name(filename, "name", from_file=True)
            result = write_document(
                hook,
                dataset,
                name=name,
                text=self.text,
                file_path=path,
                existing=named_document(hook, str(dataset["id"]), name),
                on_existing=self.on_existing,
                **_write_options(checked),
            )
        return self._finish(context, dataset, result)


class DifyUpdateDocumentOperator(_DocumentWriteOperator):
    """
    Replace the text or file of an existing document (by id or by name), unless it already holds that content.

    Uses the same change detection as :class:`DifyCreateDocumentOperator`: when the content hash kept in the
    document's metadata matches, nothing is written. Dify updates only ``available`` documents: one that is
    still indexing, disabled or archived makes the task fail with a message saying which, before anything is
    sent. One whose indexing ended in ``error``, ``paused`` or ``stopped`` is rewritten (even when unchanged)
    through Dify's same-name upsert, unless it is being renamed; the manifest then holds ``repaired``. The
    document keeps its id; Dify re-indexes it and drops chunks added by hand.

    Returns (XCom) the same manifest as :class:`DifyCreateDocumentOperator` (``action`` ``updated``,
    ``metadata_updated`` or ``unchanged``).

    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param document_id: the document's id (or give ``document_name``).
    :param document_name: the document's exact name; of several documents of that name, the oldest is updated.
    :param text: the new text (or give ``file``).
    :param file: the new file: a local path, an ``ObjectStoragePath`` or a URL (see the create operator).
    :param name: a new name for the document; by default it keeps its name (a file is uploaded under it).
    :param process_rule: how Dify splits the document; default ``{"mode": "automatic"}``.
    :param doc_language: the document's language.
    :param metadata: metadata values ``{field: value}`` to set as well.
    :param wait_for_indexing: wait until Dify has re-indexed the document.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for the indexing.
    :param poll_interval: seconds between polls of the indexing status.
    :param stall_timeout: seconds without progress before the wait fails (``None``: never).
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "document_id",
        "document_name",
        "name",
        "text",
        "file",
        "process_rule",
        "doc_language",
        "metadata",
        "dify_conn_id",
    )

    def __init__(
        self,
        *,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        document_id: str | None = None,
        document_name: str | None = None,
        text: str | None = None,
        file: Any = None,
        name: str | None = None,
        process_rule: dict[str, Any] | None = None,
        doc_language: str | None = None,
        metadata: dict[str, Any] | None = None,
        wait_for_indexing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            dataset_id=dataset_id,
            dataset_name=dataset_name,
            text=text,
            file=file,
            process_rule=process_rule,
            doc_language=doc_language,
            metadata=metadata,
            wait_for_indexing=wait_for_indexing,
            **kwargs,
        )
        self.document_id = document_id
        self.document_name = document_name
        self.name = name
        self._check(build=True)

    def _check(self, *, build: bool) -> dict[str, Any]:
        check_dataset_and_document(self, build=build, document=True)
        checked = self._check_common(build=build)
        if given(self.name) and not skip_check(self.name, build):
            checked["name"] = _check_document_name(self.name, "name", from_file=self.file is not None)
        return checked

    def execute(self, context: Context) -> dict[str, Any]:
        """Update the document when its content differs; optionally wait for the re-indexing."""
        with bad_arguments_fail_the_task():
            checked = self._check(build=False)
        hook = self.hook
        dataset, document = resolve_target(hook, self)
        dataset = refuse_pipeline_knowledge_base(dataset, type(self).__name__)
        assert document is not None
        with bad_arguments_fail_the_task(), _content_source(self.file) as (path, _filename):
            name = checked.get("name") or _check_document_name(
                str(document.get("name")), "name", from_file=self.file is not None
            )
            result = write_document(
                hook,
                dataset,
                name=name,
                text=self.text,
                file_path=path,
                existing=document,
                on_existing="update",
                **_write_options(checked),
            )
        return self._finish(context, dataset, result)


class DifyDeleteDocumentOperator(KnowledgeBaseLineageMixin, DifyBaseOperator):
    """
    Delete one document of a knowledge base, given by id or by name.

    Returns (XCom) ``{dataset_id, dataset_name, document_id, document_name, action, console_url}`` with
    ``action`` ``deleted`` or ``missing``. A missing document is a success (logged) unless
    ``ignore_missing=False``, so re-runs succeed. By name, the oldest document of that name is deleted (the
    others are logged). An archived document cannot be deleted: the task fails saying so.

    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param document_id: the document's id (or give ``document_name``).
    :param document_name: the document's exact name.
    :param ignore_missing: succeed when there is nothing to delete (default); ``False`` fails instead.
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = ("dataset_id", "dataset_name", "document_id", "document_name", "dify_conn_id")

    def __init__(
        self,
        *,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        document_id: str | None = None,
        document_name: str | None = None,
        ignore_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.document_id = document_id
        self.document_name = document_name
        self.ignore_missing = ignore_missing
        check_dataset_and_document(self, build=True, document=True)
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Look the document up, then delete it."""
        with bad_arguments_fail_the_task():
            check_dataset_and_document(self, build=False, document=True)
        hook = self.hook
        dataset = resolve_dataset(hook, dataset_id=self.dataset_id, dataset_name=self.dataset_name)
        dataset_id = str(dataset["id"])
        url = self.push_console_url(context, dataset_id)
        document = resolve_document(
            hook, dataset_id, document_id=self.document_id, document_name=self.document_name, missing_ok=True
        )
        wanted = self.document_id if given(self.document_id) else self.document_name
        if document is None:
            if not self.ignore_missing:
                raise DifyNotFoundError(
                    f"Document {wanted!r} does not exist in knowledge base {dataset_id} (ignore_missing=False).",
                    status=404,
                )
            self.log.info("Document %r does not exist in knowledge base %s; nothing to delete", wanted, dataset_id)
            return {
                "dataset_id": dataset_id,
                "dataset_name": dataset.get("name"),
                "document_id": self.document_id if given(self.document_id) else None,
                "document_name": self.document_name if given(self.document_name) else None,
                "action": "missing",
                "console_url": url,
            }
        document_id = str(document["id"])
        if document.get("archived"):
            raise DifyForbiddenError(
                f"Document {document.get('name')!r} ({document_id}) is archived, and Dify does not delete archived"
                " documents; un-archive it in the Dify console (or with DifyHook.update_document_status), then run"
                " the task again.",
                status=403,
                code="archived_document_immutable",
            )
        try:
            hook.delete_document(dataset_id, document_id)
            action = "deleted"
        except DifyNotFoundError:
            action = "missing"  # deleted by someone else since the lookup
        self.log.info("Document %r (%s): %s", document.get("name"), document_id, action)
        manifest = {
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "document_id": document_id,
            "document_name": document.get("name"),
            "action": action,
            "console_url": url,
        }
        return self.report_knowledge_base(context, manifest)
