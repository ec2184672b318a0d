"""Finding knowledge bases and documents, and writing one document: shared by the operators and the sync operators.

* :func:`resolve_dataset` and :func:`resolve_document`: by id or by exact name (the oldest of same-named
  documents);
* :func:`document_options`: the ``indexing_technique``, ``doc_form`` and ``process_rule`` a write must send;
* :func:`local_file`: a local path for a local file or any ``ObjectStoragePath`` / fsspec URL;
* :func:`write_document`: create, update, leave alone or skip ONE document, change detection included, and
  :func:`write_metadata` / :func:`metadata_matches` for its metadata.

The argument checks and the operator base classes are in :mod:`airflow_provider_dify.operators._base`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyDocumentNotReadyError, DifyError, DifyNotFoundError
from airflow_provider_dify.hooks.validation import check_upload_allowed
from airflow_provider_dify.operators._base import check_string, given
from airflow_provider_dify.operators._content import (
    HASH_FIELD,
    coerce_metadata,
    ensure_metadata_fields,
    fields_by_name,
    file_hash,
    metadata_operation,
    metadata_type_of,
    metadata_values,
    stored_hash,
    text_hash,
    validate_metadata,
)

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook

log = logging.getLogger(__name__)

INDEXING_TECHNIQUES: tuple[str, ...] = ("high_quality", "economy")
DOC_FORMS: tuple[str, ...] = ("text_model", "hierarchical_model", "qa_model")
ON_EXISTING: tuple[str, ...] = ("update", "skip", "error")
#: What :func:`write_document` did.
ACTIONS: tuple[str, ...] = ("created", "updated", "metadata_updated", "unchanged", "skipped")
#: The process rule sent when none is given: Dify's automatic segmentation.
DEFAULT_PROCESS_RULE: dict[str, Any] = {"mode": "automatic"}
#: Indexing states that ended without an index: a document in one of them is rewritten even if unchanged.
FAILED_INDEXING: tuple[str, ...] = ("error", "paused", "stopped")
#: Dify keeps at most this many characters of a document name.
MAX_DOCUMENT_NAME = 200
#: Bytes copied at a time when a remote file is downloaded before its upload.
COPY_BLOCK_SIZE = 1024 * 1024


# -- finding knowledge bases and documents -------------------------------------------------------------------


def resolve_dataset(hook: DifyHook, *, dataset_id: str | None = None, dataset_name: str | None = None) -> dict:
    """
    The knowledge base given by id or by exact name.

    :raises DifyNotFoundError: when no knowledge base has that id or name.
    """
    if given(dataset_id):
        return dict(hook.get_dataset(str(dataset_id).strip()))
    dataset = hook.find_dataset_by_name(str(dataset_name))
    if dataset is None:
        raise DifyNotFoundError(
            f"dataset_name: no knowledge base is named {dataset_name!r} in this workspace; create it first"
            " (DifyCreateDatasetOperator) or check the name.",
            status=404,
        )
    return dict(dataset)


def resolve_document(
    hook: DifyHook,
    dataset_id: str,
    *,
    document_id: str | None = None,
    document_name: str | None = None,
    missing_ok: bool = False,
) -> dict | None:
    """
    The document given by id (its detail) or by exact name (its list entry; of same-named ones the oldest, by
    the copy rule).

    :param missing_ok: return ``None`` instead of raising when there is no such document.
    :raises DifyNotFoundError: when the document does not exist and ``missing_ok`` is false.
    """
    if given(document_id):
        try:
            return dict(hook.get_document(dataset_id, str(document_id).strip()))
        except DifyNotFoundError:
            if missing_ok:
                return None
            raise
    document = named_document(hook, dataset_id, str(document_name))
    if document is None and not missing_ok:
        raise DifyNotFoundError(
            f"document_name: knowledge base {dataset_id} has no document named {document_name!r}.", status=404
        )
    return document


def resolve_target(hook: DifyHook, target: Any, *, missing_ok: bool = False) -> tuple[dict, dict | None]:
    """
    The knowledge base and the document an operator names (see :func:`~._base.check_dataset_and_document`).

    :param target: an object with ``dataset_id``, ``dataset_name``, ``document_id`` and ``document_name``.
    :param missing_ok: the document is ``None`` instead of an error when it does not exist.
    :raises DifyNotFoundError: when the knowledge base (or, unless ``missing_ok``, the document) does not exist.
    """
    dataset = resolve_dataset(hook, dataset_id=target.dataset_id, dataset_name=target.dataset_name)
    document = resolve_document(
        hook,
        str(dataset["id"]),
        document_id=target.document_id,
        document_name=target.document_name,
        missing_ok=missing_ok,
    )
    return dataset, document


def named_document(hook: DifyHook, dataset_id: str, name: str) -> dict | None:
    """
    The document named exactly ``name``, or ``None``; of several, the survivor of the provider's one copy rule
    (:func:`~airflow_provider_dify.operators._copies.document_survivor`: the oldest usable one, which is also the
    one Dify's same-name upsert reuses), logged.
    """
    from airflow_provider_dify.operators._copies import document_survivor

    documents = hook.find_documents_by_name(dataset_id, name)
    survivor, others = document_survivor(documents)
    if survivor is None:
        return None
    if others:
        log.warning(
            "%d documents are named %r in knowledge base %s; using the oldest (%s), leaving %s",
            len(documents),
            name,
            dataset_id,
            survivor.get("id"),
            ", ".join(str(doc.get("id")) for doc in others),
        )
    return dict(survivor)


# -- what a write sends ------------------------------------------------------------------------------------------


def document_options(
    dataset: Mapping[str, Any],
    *,
    indexing_technique: str | None = None,
    doc_form: str | None = None,
    doc_language: str | None = None,
    process_rule: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    The settings a document create sends: the knowledge base's ``doc_form`` and ``indexing_technique``.

    ``indexing_technique`` is the knowledge base's when it has one, else the argument; ``doc_form`` is the
    knowledge base's, else the argument (a knowledge base takes its form from its first document), else
    ``text_model``. ``process_rule`` defaults to ``{"mode": "automatic"}``.

    :raises ValueError: naming the argument when the technique is unknown (Dify 1.13 answers 500 then), when
        ``doc_form`` contradicts the knowledge base's, or when a hierarchical knowledge base gets a
        non-hierarchical process rule.
    """
    name = dataset.get("name") or dataset.get("id")
    technique = dataset.get("indexing_technique") or indexing_technique
    if not technique:
        raise ValueError(
            f"indexing_technique: knowledge base {name!r} has no indexing technique yet (it was created without one"
            " and has no document), so pass indexing_technique='economy' or 'high_quality'."
        )
    if indexing_technique and dataset.get("indexing_technique") and indexing_technique != technique:
        log.info("Knowledge base %r indexes with %r, not indexing_technique=%r", name, technique, indexing_technique)
    form = dataset.get("doc_form") or doc_form or "text_model"
    if doc_form and dataset.get("doc_form") and doc_form != dataset["doc_form"]:
        raise ValueError(
            f"doc_form: knowledge base {name!r} holds {dataset['doc_form']!r} documents, not {doc_form!r}; a"
            " knowledge base has one document form. Leave doc_form unset to use the knowledge base's."
        )
    rule = dict(process_rule) if process_rule else dict(DEFAULT_PROCESS_RULE)
    if form == "hierarchical_model" and rule.get("mode") != "hierarchical":
        raise ValueError(
            f"process_rule: knowledge base {name!r} holds parent-child (hierarchical_model) documents, which need"
            " process_rule={'mode': 'hierarchical', 'rules': {...}} with parent_mode and subchunk_segmentation."
        )
    if rule.get("mode") == "hierarchical" and form != "hierarchical_model":
        raise ValueError(
            f"doc_form: a hierarchical process_rule makes parent-child chunks only in a hierarchical_model"
            f" knowledge base; {name!r} would hold {form!r} documents, which Dify splits ignoring the parent-child"
            " rules. Pass doc_form='hierarchical_model' (for a knowledge base with no document yet) or another rule."
        )
    options: dict[str, Any] = {"indexing_technique": technique, "doc_form": form, "process_rule": rule}
    if doc_language:
        options["doc_language"] = doc_language
    return options


def content_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """The settings hashed with a document's content (a new process rule or language re-indexes too)."""
    settings = {"process_rule": options.get("process_rule") or DEFAULT_PROCESS_RULE}
    if options.get("doc_language"):
        settings["doc_language"] = options["doc_language"]
    return settings


@contextlib.contextmanager
def local_file(file: Any) -> Iterator[tuple[str, str]]:
    """
    ``(local path, file name)`` of a file to upload.

    A local path (``str`` or ``os.PathLike`` without ``://``) is used as it is. Anything else, an
    ``ObjectStoragePath`` or a URL the installed Airflow can read (``s3://``, ``gs://``, ``file://``...), is
    downloaded in blocks to a temporary file, removed afterwards.

    :raises ValueError: naming ``file`` when it does not exist or is not a file.
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(file, (str, os.PathLike)) and not isinstance(file, ObjectStoragePath) and "://" not in str(file):
        path = Path(file)
        if not path.is_file():
            raise ValueError(f"file: {str(path)!r} does not exist or is not a file; pass the path of a readable file.")
        yield str(path), path.name
        return
    source = file if isinstance(file, ObjectStoragePath) else ObjectStoragePath(str(file))
    if not source.is_file():
        raise ValueError(f"file: {str(source)!r} does not exist or is not a file.")
    name = source.name
    with tempfile.TemporaryDirectory(prefix="dify-upload-") as directory:
        target = os.path.join(directory, name or "upload")
        with source.open("rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer, COPY_BLOCK_SIZE)
        log.info("Downloaded %s (%d bytes) for the upload", source, os.path.getsize(target))
        yield target, name


# -- metadata ------------------------------------------------------------------------------------------------------


def _same_value(current: Any, wanted: Any) -> bool:
    """Whether a stored metadata value equals the wanted one (document lists send values as strings)."""
    if wanted is None or wanted == "":
        return current is None or current == ""
    if current is None:
        return False
    if str(current) == str(wanted):
        return True
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return float(current) == float(wanted)
        except (TypeError, ValueError):
            return False
    return False


def metadata_matches(document: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether the document already holds every one of ``values`` (other fields are not compared)."""
    current = metadata_values(document)
    return all(_same_value(current.get(name), value) for name, value in values.items())


def metadata_fields_for(
    hook: DifyHook,
    dataset_id: str,
    values: Mapping[str, Any],
    fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """
    The knowledge base's metadata fields by name, with the fields of ``values`` created when missing.

    A missing field is created as ``number`` for a number and ``string`` otherwise. Each value is checked
    against its field's type, so a bad value fails before any document is written.

    :param fields: the fields already known (``{name: {id, name, type}}``); listed only when one is missing.
    :raises ValueError: naming the metadata key whose value does not fit its field.
    """
    if fields is None or any(name not in fields for name in values):
        known = fields_by_name(hook, dataset_id)
        missing = {
            name: "string" if name == HASH_FIELD else metadata_type_of(value)
            for name, value in values.items()
            if name not in known
        }
        fields = ensure_metadata_fields(hook, dataset_id, missing, known) if missing else known
    coerce_metadata(values, fields)
    return {name: dict(field) for name, field in fields.items()}


def write_metadata(
    hook: DifyHook,
    dataset_id: str,
    document_id: str,
    values: Mapping[str, Any],
    fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """
    Set ``values`` on one document in one call (a partial update: other fields keep their values).

    Missing fields are created (see :func:`metadata_fields_for`); each value is converted to its field's type.
    Pass ``fields`` to save the listing when writing many documents.

    :return: the knowledge base's metadata fields by name.
    """
    if not values:
        return dict(fields or {})
    fields = metadata_fields_for(hook, dataset_id, values, fields)
    operation = metadata_operation(document_id, coerce_metadata(values, fields), fields)
    hook.update_documents_metadata(dataset_id, [operation])
    return fields


# -- writing one document ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentWrite:
    """
    What :func:`write_document` did to one document.

    :param action: ``created``, ``updated`` (content written), ``metadata_updated`` (content unchanged, metadata
        set), ``unchanged`` (nothing written) or ``skipped`` (an existing document left alone, ``on_existing="skip"``).
    :param document_id: the document's id.
    :param name: the document's name.
    :param batch: the batch of the create or update call (``None`` when no content was written).
    :param content_hash: the hash of the content and its indexing settings.
    :param repaired: the indexing state (``error``, ``paused``, ``stopped``) of an existing document that was
        rewritten because its indexing had ended there, ``None`` otherwise.
    :param upload_file: the id of the file Dify stored the written content in (each content write stores a new
        one), ``None`` when no content was written or Dify did not say.
    """

    action: str
    document_id: str
    name: str
    batch: str | None
    content_hash: str
    repaired: str | None = None
    upload_file: str | None = None

    @property
    def indexing(self) -> bool:
        """Whether Dify (re-)indexes the document because of this write."""
        return self.action in ("created", "updated")

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for XCom)."""
        return asdict(self)


def upload_file_of(answer: Mapping[str, Any]) -> str | None:
    """The id of the file a create or update answer says the content went into (``data_source_info``)."""
    document = answer.get("document") if isinstance(answer.get("document"), Mapping) else answer
    info = (document or {}).get("data_source_info")
    return str(info["upload_file_id"]) if isinstance(info, Mapping) and info.get("upload_file_id") else None


def _not_available(document: Mapping[str, Any], name: str) -> DifyDocumentNotReadyError:
    status = document.get("display_status") or document.get("indexing_status")
    hints = {
        "queuing": "it is still waiting to be indexed; run the task again once Dify has indexed it",
        "indexing": "it is still being indexed; run the task again once Dify has indexed it",
        "paused": "its indexing is paused; resume it in the Dify console",
        "error": "its indexing failed; fix or delete it in the Dify console",
        "disabled": "it is disabled; enable it in the Dify console (or delete it)",
        "archived": "it is archived; un-archive it in the Dify console (or delete it)",
    }
    hint = hints.get(str(status), "Dify updates only available documents")
    return DifyDocumentNotReadyError(
        f"Document {name!r} ({document.get('id')}) is {status!r}, so it cannot be updated: {hint}.", status=400
    )


def write_document(
    hook: DifyHook,
    dataset: Mapping[str, Any],
    *,
    name: str,
    text: str | None = None,
    file_path: str | os.PathLike[str] | None = None,
    existing: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    on_existing: str = "update",
    process_rule: Mapping[str, Any] | None = None,
    indexing_technique: str | None = None,
    doc_form: str | None = None,
    doc_language: str | None = None,
    content_hash: str | None = None,
    metadata_fields: Mapping[str, Mapping[str, Any]] | None = None,
    set_metadata: bool = True,
    log_level: int = logging.INFO,
) -> DocumentWrite:
    """
    Write one document: create it, update it when its content changed, or leave it alone.

    ``write_document(hook, dataset, *, name, text=None, file_path=None, existing=None, metadata=None,
    on_existing="update", process_rule=None, indexing_technique=None, doc_form=None, doc_language=None,
    content_hash=None, metadata_fields=None, set_metadata=True, log_level=logging.INFO) -> DocumentWrite``

    * no ``existing`` document: create it by text or by file (``file_path`` uploaded as ``name``), then set its
      metadata and content hash in one metadata call: ``created``;
    * ``existing`` with the same content hash (kept in the ``airflow_content_hash`` metadata field) and name:
      ``unchanged`` with no write at all, or ``metadata_updated`` (one metadata call) when ``metadata`` differs;
    * ``existing`` with other content: ``on_existing="update"`` replaces its text or file (update-by-text or
      update-by-file, same id) then sets metadata and hash: ``updated``; ``"skip"`` leaves it: ``skipped``;
      ``"error"`` raises.
    * ``existing`` whose indexing ended in ``error``, ``paused`` or ``stopped`` (see :data:`FAILED_INDEXING`)
      is rewritten even when its content is unchanged (unless ``on_existing`` is ``skip``): through Dify's
      same-name upsert (same id, new batch), since Dify updates only available documents; the result's
      ``repaired`` names the state it was in.

    Everything is checked before the first request: text xor file, the technique and form (see
    :func:`document_options`), the metadata, and that an existing document is available for an update.

    :param hook: the sync hook.
    :param dataset: the knowledge base as Dify returns it (``id``, ``name``, ``indexing_technique``,
        ``doc_form``).
    :param name: the document's name (its identity).
    :param text: the text of the document (exclusive with ``file_path``).
    :param file_path: a local file to upload (see :func:`local_file` for remote ones).
    :param existing: the document of that name as Dify lists or shows it, ``None`` when there is none.
    :param metadata: metadata values ``{name: value}`` to set (partial update; missing fields are created).
    :param on_existing: ``update``, ``skip`` or ``error`` (see above).
    :param process_rule: the process rule (default ``{"mode": "automatic"}``); part of the content hash.
    :param indexing_technique: used when the knowledge base has none yet.
    :param doc_form: used when the knowledge base has none yet; must match the knowledge base's otherwise.
    :param doc_language: the document language (part of the content hash when given).
    :param content_hash: a precomputed hash (see :func:`content_settings`); computed from the content otherwise.
    :param metadata_fields: the knowledge base's metadata fields by name, to save a listing per document.
    :param set_metadata: ``False`` writes the content of a created or updated document but neither its metadata
        nor its content hash: the caller sets ``{**metadata, HASH_FIELD: result.content_hash}`` itself, many
        documents per metadata call (the sync operators do). A document whose hash is never set is rewritten by
        the next run, so nothing is lost.
    :param log_level: the level of the line that says what was done to the document: ``logging.DEBUG`` for a
        sync of many documents, which logs its progress instead.
    :raises ValueError: a bad argument, before anything is sent.
    :raises DifyDocumentNotReadyError: the existing document needs an update but is not available.
    """
    if (text is None) == (file_path is None):
        raise ValueError("text or file: pass exactly one of them.")
    if on_existing not in ON_EXISTING:
        raise ValueError(f"on_existing: {on_existing!r} is not one of {', '.join(ON_EXISTING)}.")
    check_string(name, "name", max_length=MAX_DOCUMENT_NAME)
    values = validate_metadata(metadata)
    options = document_options(
        dataset,
        indexing_technique=indexing_technique,
        doc_form=doc_form,
        doc_language=doc_language,
        process_rule=process_rule,
    )
    settings = content_settings(options)
    if content_hash is None:
        content_hash = text_hash(text, settings) if text is not None else file_hash(file_path, settings)  # type: ignore[arg-type]
    dataset_id = str(dataset["id"])
    with_hash = {**values, HASH_FIELD: content_hash}
    if file_path is not None:  # before the hash field is created: a refused file writes nothing
        check_upload_allowed(getattr(hook, "settings", None), file_path, name)

    if existing is None:
        fields = metadata_fields_for(hook, dataset_id, with_hash, metadata_fields)
        if text is not None:
            answer = hook.create_document_by_text(dataset_id, name, text, **options)
        else:
            answer = hook.create_document_by_file(dataset_id, file_path, filename=name, **options)  # type: ignore[arg-type]
        document = answer.get("document") or {}
        document_id = str(document["id"])
        if set_metadata:
            write_metadata(hook, dataset_id, document_id, with_hash, fields)
        log.log(log_level, "Created document %r (%s) in knowledge base %s", name, document_id, dataset_id)
        created_name = str(document.get("name") or name)
        return DocumentWrite(
            "created", document_id, created_name, answer.get("batch"), content_hash, upload_file=upload_file_of(answer)
        )

    document_id = str(existing["id"])
    failed = str(existing.get("indexing_status")) if existing.get("indexing_status") in FAILED_INDEXING else None
    same_content = stored_hash(existing) == content_hash and existing.get("name") == name and failed is None
    if same_content:
        if metadata_matches(existing, values):
            log.log(log_level, "Document %r (%s) is unchanged; nothing written", name, document_id)
            return DocumentWrite("unchanged", document_id, name, None, content_hash)
        if on_existing == "skip":
            log.log(
                log_level, "Document %r (%s) exists; on_existing='skip' leaves its metadata as it is", name, document_id
            )
            return DocumentWrite("skipped", document_id, name, None, content_hash)
        write_metadata(hook, dataset_id, document_id, values, metadata_fields)
        log.log(log_level, "Document %r (%s): content unchanged, metadata updated", name, document_id)
        return DocumentWrite("metadata_updated", document_id, name, None, content_hash)
    if on_existing == "skip":
        log.log(log_level, "Document %r (%s) exists; on_existing='skip' leaves it as it is", name, document_id)
        return DocumentWrite("skipped", document_id, name, None, content_hash)
    if on_existing == "error":
        raise DifyError(
            f"Knowledge base {dataset_id} already has a document named {name!r} ({document_id}) with other content"
            " (on_existing='error'); use on_existing='update' to replace it or 'skip' to keep it.",
            status=409,
        )
    if failed is not None and existing.get("name") == name and existing.get("enabled", True):
        if existing.get("archived"):
            raise _not_available(existing, name)
        # Dify updates only available documents; the same-name upsert rewrites this one (same id, new batch).
        fields = metadata_fields_for(hook, dataset_id, with_hash, metadata_fields)
        if text is not None:
            answer = hook.create_document_by_text(dataset_id, name, text, **options)
        else:
            answer = hook.create_document_by_file(dataset_id, file_path, filename=name, **options)  # type: ignore[arg-type]
        document_id = str((answer.get("document") or {}).get("id") or document_id)
        if set_metadata:
            write_metadata(hook, dataset_id, document_id, with_hash, fields)
        log.log(log_level, "Rewrote document %r (%s): its indexing had ended in %r", name, document_id, failed)
        return DocumentWrite(
            "updated",
            document_id,
            name,
            answer.get("batch"),
            content_hash,
            repaired=failed,
            upload_file=upload_file_of(answer),
        )
    status = existing.get("display_status")
    if status is not None and status != "available":
        raise _not_available(existing, name)
    update_options = {key: value for key, value in options.items() if key != "indexing_technique"}
    fields = metadata_fields_for(hook, dataset_id, with_hash, metadata_fields)
    try:
        if text is not None:
            answer = hook.update_document_by_text(dataset_id, document_id, name=name, text=text, **update_options)
        else:
            answer = hook.update_document_by_file(dataset_id, document_id, file_path, filename=name, **update_options)
    except DifyDocumentNotReadyError as error:
        raise DifyDocumentNotReadyError(
            f"Dify refused to update document {name!r} ({document_id}): {error.message}. Only available documents"
            " (indexed, enabled, not archived) can be updated; run the task again once it is available.",
            status=error.status,
            code=error.code,
            method=error.method,
            path=error.path,
        ) from error
    if set_metadata:
        write_metadata(hook, dataset_id, document_id, with_hash, fields)
    log.log(log_level, "Updated document %r (%s): its content changed", name, document_id)
    return DocumentWrite(
        "updated", document_id, name, answer.get("batch"), content_hash, upload_file=upload_file_of(answer)
    )


# -- knowledge bases that ingest through a knowledge pipeline ---------------------------------------------------

#: The ``runtime_mode`` of a knowledge base whose documents come through its knowledge pipeline.
PIPELINE_RUNTIME_MODE = "rag_pipeline"


def refuse_pipeline_knowledge_base(dataset: Mapping[str, Any], operator: str) -> dict[str, Any]:
    """
    The knowledge base, unless it ingests through a knowledge pipeline (``runtime_mode`` ``rag_pipeline``).

    Dify's create-by-text and create-by-file routes write such a knowledge base's documents without running its
    pipeline (langgenius/dify issue 26649): its datasource, extractor and chunker steps are skipped, so the
    documents differ from those the pipeline makes. The task fails (not retried) and names the operator to use.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    if dataset.get("runtime_mode") == PIPELINE_RUNTIME_MODE:
        name = dataset.get("name") or dataset.get("id")
        raise AirflowFailException(
            f"dataset: knowledge base {name!r} ingests through its knowledge pipeline (runtime_mode"
            f" 'rag_pipeline'); {operator} writes documents with create-by-text/create-by-file, which bypass the"
            " pipeline (langgenius/dify#26649). Run the pipeline instead with DifyRunPipelineOperator"
            " (airflow_provider_dify.operators.pipeline), or target a general knowledge base."
        )
    return dict(dataset)
