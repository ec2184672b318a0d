"""The operator that adds chunks ("segments") to a document, each exactly once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import (
    DifyConnectionError,
    DifyDocumentNotReadyError,
    DifyError,
    DifyIndexingError,
    DifyInvalidResponseError,
    DifyServerError,
)
from airflow_provider_dify.operators._base import (
    DifyIndexingWaitOperator,
    bad_arguments_fail_the_task,
    check_dataset_and_document,
    check_number,
    native_value,
    skip_check,
)
from airflow_provider_dify.operators._documents import (
    resolve_target,
)
from airflow_provider_dify.operators._input import check_chunk_texts
from airflow_provider_dify.operators._lineage import KnowledgeBaseLineageMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Chunks sent per add-segments request by default.
DEFAULT_BATCH_SIZE = 100
#: Keys a chunk may have.
CHUNK_KEYS = frozenset({"content", "answer", "keywords", "child_chunks"})
#: Add-chunk failures with an unknown outcome that one execution reconciles (by re-reading the chunks)
#: before it gives up and leaves the rest to a task retry.
MAX_UNKNOWN_OUTCOMES = 3
#: Errors after which the server may or may not have added the chunks (the hook never repeats the call then).
UNKNOWN_OUTCOME_ERRORS: tuple[type[DifyError], ...] = (DifyConnectionError, DifyServerError, DifyInvalidResponseError)


def chunk_key(content: str) -> str:
    """What identifies a chunk in a document: its content, without surrounding whitespace."""
    return content.strip()


def check_chunks(value: Any, argument: str = "segments") -> list[dict[str, Any]]:
    """
    A non-empty list of chunks ``{"content", "answer"?, "keywords"?, "child_chunks"?}`` with non-blank content.

    :raises ValueError: naming the chunk and key at fault.
    """
    value = native_value(value, argument)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{argument}: pass a list of chunks like [{{'content': '...'}}], got {type(value).__name__}.")
    if not value:
        raise ValueError(f"{argument}: the list of chunks is empty; pass at least one chunk.")
    chunks = []
    for index, chunk in enumerate(value):
        where = f"{argument}[{index}]"
        if not isinstance(chunk, Mapping):
            raise ValueError(f"{where}: each chunk is a dict with a 'content' key, got {type(chunk).__name__}.")
        unknown = sorted(set(chunk) - CHUNK_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; use {sorted(CHUNK_KEYS)}.")
        content = chunk.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"{where}['content']: must be a non-blank string, got {content!r}.")
        answer = chunk.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise ValueError(f"{where}['answer']: must be a string, got {answer!r}.")
        keywords = chunk.get("keywords")
        if keywords is not None and (
            isinstance(keywords, str)
            or not isinstance(keywords, Sequence)
            or not all(isinstance(word, str) and word.strip() for word in keywords)
        ):
            raise ValueError(f"{where}['keywords']: must be a list of non-empty strings, got {keywords!r}.")
        children = chunk.get("child_chunks")
        if children is not None and (
            isinstance(children, str)
            or not isinstance(children, Sequence)
            or not children
            or not all(isinstance(child, str) and child.strip() for child in children)
        ):
            raise ValueError(
                f"{where}['child_chunks']: must be a non-empty list of non-blank strings, got {children!r}."
            )
        chunks.append(dict(chunk))
    return chunks


def check_chunks_fit_form(
    chunks: Sequence[Mapping[str, Any]], doc_form: str | None, argument: str = "segments"
) -> None:
    """Q&A documents need an answer per chunk; only parent-child documents take child chunks."""
    for index, chunk in enumerate(chunks):
        if doc_form == "qa_model" and not (chunk.get("answer") or "").strip():
            raise ValueError(
                f"{argument}[{index}]['answer']: the document is a Q&A (qa_model) one; each chunk needs one."
            )
        if chunk.get("child_chunks") and doc_form != "hierarchical_model":
            raise ValueError(
                f"{argument}[{index}]['child_chunks']: only parent-child (hierarchical_model) documents have child"
                f" chunks; this document is {doc_form!r}."
            )


def _request_item(chunk: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"content": chunk["content"]}
    if chunk.get("answer") is not None:
        item["answer"] = chunk["answer"]
    if chunk.get("keywords"):
        item["keywords"] = list(chunk["keywords"])
    return item


class DifyAddSegmentsOperator(KnowledgeBaseLineageMixin, DifyIndexingWaitOperator):
    """
    Add chunks to a document, each exactly once, after waiting until the document is indexed.

    Idempotent: the document's chunks are read first and a chunk whose content is already there is not added
    again, so a re-run, a retry or a backfill adds only what is missing. Large lists are sent in batches of
    ``batch_size``. When a batch fails without knowing whether Dify added it (a timeout, a 5xx; the hook never
    repeats adding chunks), the operator reads the chunks again and continues with what is still missing.

    Dify refuses chunks until the document is indexed (404 "Document is not completed."), so the operator waits
    for that first, in the worker or, when ``deferrable``, in the triggerer. For parent-child
    (``hierarchical_model``) documents, a chunk's ``child_chunks`` become exactly its child chunks (Dify's
    automatic ones that are not listed are removed). Q&A documents need an ``answer`` per chunk.

    Returns (XCom) ``{dataset_id, dataset_name, document_id, document_name, action, requested, added,
    already_present, duplicates_ignored, child_chunks_added, child_chunks_removed, console_url}`` with
    ``action`` ``added`` or ``unchanged``; never chunk text.

    :param segments: the chunks: ``[{"content": ..., "answer"?: ..., "keywords"?: [...], "child_chunks"?: [...]}]``.
        A chunk listed twice is added once.
    :param dataset_id: the knowledge base's id (or give ``dataset_name``).
    :param dataset_name: the knowledge base's exact name (or give ``dataset_id``).
    :param document_id: the document's id (or give ``document_name``).
    :param document_name: the document's exact name (of several documents of that name, the oldest).
    :param batch_size: chunks per request (default 100).
    :param deferrable: wait for the indexing in the triggerer; defaults to ``[operators] default_deferrable``.
    :param indexing_timeout: seconds to wait for the document's indexing.
    :param poll_interval: seconds between polls of the indexing status.
    :param stall_timeout: seconds without progress before the wait fails (``None``: never).
    :param dify_conn_id: the ``dify`` connection.
    """

    template_fields: Sequence[str] = (
        "dataset_id",
        "dataset_name",
        "document_id",
        "document_name",
        "segments",
        "batch_size",
        "dify_conn_id",
    )

    def __init__(
        self,
        *,
        segments: list[dict[str, Any]] | str,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        document_id: str | None = None,
        document_name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.segments = segments
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.document_id = document_id
        self.document_name = document_name
        self.batch_size = batch_size
        self._check(build=True)
        self.declare_knowledge_base(dataset_name=dataset_name, dataset_id=dataset_id)

    def _check(self, *, build: bool) -> tuple[list[dict[str, Any]], int]:
        check_dataset_and_document(self, build=build, document=True)
        chunks: list[dict[str, Any]] = []
        if not skip_check(self.segments, build):
            chunks = check_chunks(self.segments)
            check_chunk_texts(chunks)
        batch_size = DEFAULT_BATCH_SIZE
        if not skip_check(self.batch_size, build):
            number = check_number(self.batch_size, "batch_size", minimum=1)
            if number is None or int(number) != number:
                raise ValueError(f"batch_size: must be a whole number >= 1, got {self.batch_size!r}.")
            batch_size = int(number)
        return chunks, batch_size

    def _resolve(self) -> tuple[dict[str, Any], dict[str, Any]]:
        hook = self.hook
        dataset, document = resolve_target(hook, self)
        assert document is not None
        return dataset, document

    def execute(self, context: Context) -> dict[str, Any]:
        """Wait until the document is indexed, then add the chunks that are not there yet."""
        with bad_arguments_fail_the_task():
            chunks, _ = self._check(build=False)
        dataset, document = self._resolve()
        with bad_arguments_fail_the_task():
            check_chunks_fit_form(chunks, document.get("doc_form") or dataset.get("doc_form"))
        dataset_id, document_id = str(dataset["id"]), str(document["id"])
        self.push_console_url(context, dataset_id, document_id)
        self._check_enabled(document)
        if document.get("indexing_status") != "completed":
            self.log.info(
                "Document %r (%s) is %s; waiting until it is indexed before adding chunks",
                document.get("name"),
                document_id,
                document.get("indexing_status"),
            )
            self.wait_until_indexed(
                context, dataset_id=dataset_id, batch=None, document_ids=[document_id], method_name="execute_complete"
            )
        return self._add(context, dataset, document, chunks)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        """Resume after the indexing trigger: add the chunks."""
        from airflow_provider_dify.hooks.indexing import indexing_results_from_event

        indexing_results_from_event(event)
        with bad_arguments_fail_the_task():
            chunks, _ = self._check(build=False)
        dataset, document = self._resolve()
        return self._add(context, dataset, document, chunks)

    def _check_enabled(self, document: Mapping[str, Any]) -> None:
        name, document_id = document.get("name"), document.get("id")
        if document.get("enabled") is False:
            raise DifyDocumentNotReadyError(
                f"Document {name!r} ({document_id}) is disabled, and Dify adds chunks only to enabled documents;"
                " enable it in the Dify console, then run the task again.",
                status=404,
            )
        if document.get("archived"):
            raise DifyDocumentNotReadyError(
                f"Document {name!r} ({document_id}) is archived; un-archive it in the Dify console first.", status=404
            )
        if document.get("indexing_status") in ("error", "paused"):
            raise DifyIndexingError(
                f"Document {name!r} ({document_id}) is in indexing status {document.get('indexing_status')!r}"
                f" ({document.get('error') or 'no error text'}); Dify adds chunks only to indexed documents.",
                document_id=str(document_id),
                indexing_status=document.get("indexing_status"),
            )

    def _present(self, dataset_id: str, document_id: str) -> dict[str, str]:
        """The document's chunks as ``{content key: segment id}`` (chunks replaced by a re-split excluded)."""
        return {
            chunk_key(str(segment.get("content") or "")): str(segment.get("id"))
            for segment in self.hook.iter_segments(dataset_id, document_id)
            if segment.get("status") != "re_segment"
        }

    def _add(
        self,
        context: Context,
        dataset: Mapping[str, Any],
        document: Mapping[str, Any],
        chunks: list[dict[str, Any]],
    ) -> dict[str, Any]:
        _, batch_size = self._check(build=False)
        dataset_id, document_id = str(dataset["id"]), str(document["id"])
        url = self.push_console_url(context, dataset_id, document_id)
        wanted: dict[str, dict[str, Any]] = {}
        for chunk in chunks:
            wanted.setdefault(chunk_key(chunk["content"]), chunk)
        duplicates = len(chunks) - len(wanted)
        if duplicates:
            self.log.warning("%d chunk(s) were listed more than once; each is added once", duplicates)
        present = self._present(dataset_id, document_id)
        present_at_start = sum(1 for key in wanted if key in present)
        unknown_outcomes = 0
        while True:
            missing = [chunk for key, chunk in wanted.items() if key not in present]
            if not missing:
                break
            try:
                for start in range(0, len(missing), batch_size):
                    batch = missing[start : start + batch_size]
                    created = self.hook.add_segments(dataset_id, document_id, [_request_item(c) for c in batch])
                    for segment in created:
                        present[chunk_key(str(segment.get("content") or ""))] = str(segment.get("id"))
                    for chunk in batch:  # the request succeeded: every chunk of the batch is there
                        present.setdefault(chunk_key(chunk["content"]), "")
                    self.log.info("Added %d chunk(s) (%d of %d)", len(batch), start + len(batch), len(missing))
                break
            except UNKNOWN_OUTCOME_ERRORS as error:
                unknown_outcomes += 1
                if unknown_outcomes > MAX_UNKNOWN_OUTCOMES:
                    raise
                self.log.warning(
                    "Adding chunks failed and Dify may have added them anyway (%s); reading the document's chunks"
                    " to continue with the missing ones",
                    error,
                )
                present = self._present(dataset_id, document_id)
            except DifyDocumentNotReadyError as error:
                raise DifyDocumentNotReadyError(
                    f"Dify refused chunks for document {document.get('name')!r} ({document_id}): {error.message}"
                    " It is being re-indexed or was disabled meanwhile; run the task again once it is available.",
                    status=error.status,
                    code=error.code,
                    method=error.method,
                    path=error.path,
                ) from error
        added = len(wanted) - present_at_start
        children_added, children_removed = self._sync_child_chunks(dataset_id, document_id, wanted)
        wrote = added or children_added or children_removed
        self.log.info(
            "Document %r (%s): %d chunk(s) added, %d already there",
            document.get("name"),
            document_id,
            added,
            present_at_start,
        )
        manifest = {
            "dataset_id": dataset_id,
            "dataset_name": dataset.get("name"),
            "document_id": document_id,
            "document_name": document.get("name"),
            "action": "added" if wrote else "unchanged",
            "requested": len(chunks),
            "added": added,
            "already_present": present_at_start,
            "duplicates_ignored": duplicates,
            "child_chunks_added": children_added,
            "child_chunks_removed": children_removed,
            "console_url": url,
        }
        return self.report_knowledge_base(context, manifest)

    def _sync_child_chunks(
        self, dataset_id: str, document_id: str, wanted: Mapping[str, Mapping[str, Any]]
    ) -> tuple[int, int]:
        """Make each chunk's child chunks exactly its ``child_chunks``; return ``(added, removed)``."""
        with_children = {key: chunk for key, chunk in wanted.items() if chunk.get("child_chunks")}
        if not with_children:
            return 0, 0
        hook = self.hook
        segment_ids = self._present(dataset_id, document_id)
        added = removed = 0
        for key, chunk in with_children.items():
            segment_id = segment_ids[key]
            children: list[str] = list(dict.fromkeys(child.strip() for child in chunk["child_chunks"]))
            existing = list(hook.iter_child_chunks(dataset_id, document_id, segment_id))
            have = {str(child.get("content") or "").strip() for child in existing}
            for child in existing:
                if str(child.get("content") or "").strip() not in children:
                    hook.delete_child_chunk(dataset_id, document_id, segment_id, str(child["id"]))
                    removed += 1
            for content in children:
                if content not in have:
                    hook.add_child_chunk(dataset_id, document_id, segment_id, content)
                    added += 1
        return added, removed
