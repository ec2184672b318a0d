"""Documents: create and update from text or files, same-name upserts, batches, listing, status changes, deletes."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from typing import Any

from airflow_provider_dify.testing.errors import ApiError, internal_error, invalid_param, not_found
from airflow_provider_dify.testing.models import (
    Dataset,
    Document,
    ProcessRule,
    UploadFile,
)
from airflow_provider_dify.testing.state.core import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_EMBEDDING_PROVIDER,
    NO_EMBEDDING_PROVIDER,
    STATUS_ACTIONS,
    StateCore,
    like_pattern,
    new_id,
)
from airflow_provider_dify.testing.text import (
    extract_text,
)


class DocumentStore(StateCore):
    """Documents: a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

    def get_document(self, ds: Dataset, document_id: str, message: str = "Document not found.") -> Document:
        """A document of the dataset, or 404 with ``message``."""
        doc = ds.documents.get(document_id)
        if doc is None:
            raise not_found(message)
        return doc

    def new_rule(self, ds: Dataset, process_rule: dict[str, Any]) -> ProcessRule:
        """Validate a ``process_rule`` like Dify and store it as the dataset's latest rule."""
        mode = process_rule.get("mode")
        if not mode:
            raise invalid_param("Process rule mode is required")
        if mode not in ("automatic", "custom", "hierarchical"):
            raise invalid_param("Process rule mode is invalid")
        rules = process_rule.get("rules")
        if mode == "automatic":
            rules = None
        else:
            if not rules:
                raise invalid_param("Process rule rules is required")
            if not isinstance(rules, dict):
                raise invalid_param("Process rule rules is invalid")
            pre = rules.get("pre_processing_rules")
            if pre is None:
                raise invalid_param("Process rule pre_processing_rules is required")
            if not isinstance(pre, list):
                raise invalid_param("Process rule pre_processing_rules is invalid")
            segmentation = rules.get("segmentation")
            if segmentation is None:
                raise invalid_param("Process rule segmentation is required")
            if not isinstance(segmentation, dict):
                raise invalid_param("Process rule segmentation is invalid")
            full_doc = mode == "hierarchical" and rules.get("parent_mode") == "full-doc"
            if not full_doc:
                if "separator" not in segmentation or not segmentation.get("separator"):
                    raise invalid_param("Process rule segmentation separator is required")
                if not isinstance(segmentation["separator"], str):
                    raise invalid_param("Process rule segmentation separator is invalid")
                if "max_tokens" not in segmentation or segmentation.get("max_tokens") is None:
                    raise invalid_param("Process rule segmentation max_tokens is required")
                if not isinstance(segmentation["max_tokens"], int) or isinstance(segmentation["max_tokens"], bool):
                    raise invalid_param("Process rule segmentation max_tokens is invalid")
        rule = ProcessRule(new_id(), ds.id, mode, rules)
        ds.latest_rule = rule
        return rule

    def _prepare_first_document(
        self, ds: Dataset, technique: str | None, doc_form: str, values: dict[str, Any]
    ) -> None:
        if technique == "high_quality" and not self.config.embedding_available:
            raise ApiError(400, "provider_not_initialize", NO_EMBEDDING_PROVIDER)
        if not ds.indexing_technique:
            ds.indexing_technique = technique
            if technique == "high_quality":
                ds.embedding_model = values.get("embedding_model") or DEFAULT_EMBEDDING_MODEL
                ds.embedding_model_provider = values.get("embedding_model_provider") or DEFAULT_EMBEDDING_PROVIDER
            if values.get("retrieval_model"):
                ds.retrieval_model.update(values["retrieval_model"])
        if ds.doc_form and ds.doc_form != doc_form:
            raise invalid_param("doc_form is different from the dataset doc_form.")
        if not ds.doc_form:
            ds.doc_form = doc_form
        ds.data_source_type = ds.data_source_type or "upload_file"

    def _store_file(self, name: str, extension: str, mime_type: str, data: bytes, now: float) -> UploadFile:
        upload = UploadFile(new_id(), name, len(data), extension, mime_type, self.account_id, now, data)
        self.files[upload.id] = upload
        return upload

    def _find_same_name(self, ds: Dataset, name: str) -> Document | None:
        for doc_id in ds.docs_by_name.get(name, ()):
            doc = ds.documents.get(doc_id)
            if doc is not None and doc.enabled:
                return doc
        return None

    def _move_batch(self, ds: Dataset, doc: Document, batch: str) -> None:
        old = ds.batches.get(doc.batch)
        if old is not None:
            old.discard(doc.id)
            if not old:
                del ds.batches[doc.batch]
        doc.batch = batch
        ds.batches.setdefault(batch, set()).add(doc.id)

    def _rename(self, ds: Dataset, doc: Document, name: str) -> None:
        if name == doc.name:
            return
        ids = ds.docs_by_name.get(doc.name, [])
        if doc.id in ids:
            ids.remove(doc.id)
            if not ids:
                del ds.docs_by_name[doc.name]
        doc.name = name
        ds.docs_by_name.setdefault(name, []).append(doc.id)

    def create_document(
        self,
        ds: Dataset,
        *,
        name: str,
        text: str,
        upload: UploadFile,
        values: dict[str, Any],
        allow_upsert: bool,
        now: float,
    ) -> tuple[Document, str]:
        """Create a document (or re-use the enabled document of the same name) and queue it for indexing."""
        doc_form = values.get("doc_form") or "text_model"
        technique = ds.indexing_technique or values.get("indexing_technique")
        self._prepare_first_document(ds, technique, doc_form, values)
        if values.get("process_rule"):
            rule = self.new_rule(ds, values["process_rule"])
        elif ds.latest_rule is not None:
            rule = ds.latest_rule
        else:
            raise invalid_param(values.get("_no_rule_message") or "No process rule found.")
        batch = self.new_batch(now)
        existing = self._find_same_name(ds, name) if allow_upsert else None
        if existing is not None:
            doc = existing
            self.files.pop(doc.upload_file.id, None)
            doc.upload_file = upload
            doc.text = text
            doc.process_rule = rule
            doc.updated_at = now
            doc.doc_language = values.get("doc_language") or doc.doc_language
            self._move_batch(ds, doc, batch)
            self.enqueue(doc, now, keep_progress=True)
            return doc, batch
        doc = Document(
            id=new_id(),
            dataset_id=ds.id,
            position=ds.next_position,
            name=name,
            text=text,
            upload_file=upload,
            process_rule=rule,
            created_from="api",
            created_by=self.account_id,
            created_at=now,
            updated_at=now,
            batch=batch,
            doc_form=doc_form,
            doc_language=values.get("doc_language") or "English",
        )
        ds.next_position += 1
        ds.documents[doc.id] = doc
        ds.docs_by_name.setdefault(name, []).append(doc.id)
        ds.batches.setdefault(batch, set()).add(doc.id)
        self.enqueue(doc, now, keep_progress=False)
        return doc, batch

    def create_text_document(self, ds: Dataset, values: dict[str, Any], now: float) -> tuple[Document, str]:
        """``POST /document/create-by-text``."""
        if not ds.indexing_technique and not values.get("indexing_technique"):
            raise internal_error()  # what Dify 1.13.2 answers (a server bug)
        name, text = values["name"], values["text"]
        upload = self._store_file(name, "txt", "text/plain", text.encode("utf-8"), now)
        return self.create_document(ds, name=name, text=text, upload=upload, values=values, allow_upsert=True, now=now)

    def check_upload(self, filename: str, size: int, *, for_update: bool) -> str:
        """Check an upload's extension and size; return the extension."""
        if "/" in filename or "\\" in filename:
            raise invalid_param("Filename contains invalid characters")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if extension not in self.config.allowed_extensions:
            if for_update:
                raise ApiError(415, "unsupported_file_type", "File type not allowed.")
            raise invalid_param("")
        limit = self.config.upload_limit_bytes
        if size > limit:
            if for_update:
                raise ApiError(413, "file_too_large", f"File size exceeded. {size} > {limit}")
            raise invalid_param("")
        return extension

    def store_upload(self, filename: str, data: bytes, *, for_update: bool, now: float) -> tuple[UploadFile, str]:
        """Store an uploaded file (after :meth:`check_upload`); return it with its extracted text."""
        filename = filename[:200]
        extension = self.check_upload(filename, len(data), for_update=for_update)
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        upload = self._store_file(filename, extension, mime, data, now)
        return upload, extract_text(filename, extension, data)

    def create_file_document(
        self, ds: Dataset, values: dict[str, Any], filename: str, data: bytes, size: int, now: float
    ) -> tuple[Document, str]:
        """``POST /document/create-by-file`` (after the multipart checks)."""
        technique = values.get("indexing_technique") or ds.indexing_technique
        if not technique:
            raise invalid_param("indexing_technique is required.")
        values = {**values, "indexing_technique": technique, "_no_rule_message": "process_rule is required."}
        if not values.get("doc_form"):
            values["doc_form"] = ds.doc_form or "text_model"
        self.check_upload(filename[:200], size, for_update=False)
        upload, text = self.store_upload(filename, data, for_update=False, now=now)
        allow_upsert = values.get("duplicate", True) is not False
        return self.create_document(
            ds, name=upload.name, text=text, upload=upload, values=values, allow_upsert=allow_upsert, now=now
        )

    def _require_available(self, doc: Document, now: float) -> None:
        if doc.display_status(now) != "available":
            raise invalid_param("Document is not available")

    def update_document(
        self,
        ds: Dataset,
        doc: Document,
        *,
        name: str | None,
        text: str | None,
        upload: UploadFile | None,
        values: dict[str, Any],
        now: float,
    ) -> tuple[Document, str]:
        """Update a document's content or settings and re-index it (same id, same batch)."""
        doc_form = values.get("doc_form") or ds.doc_form or "text_model"
        if ds.doc_form and doc_form != ds.doc_form:
            raise invalid_param("doc_form is different from the dataset doc_form.")
        if values.get("process_rule"):
            doc.process_rule = self.new_rule(ds, values["process_rule"])
        if upload is not None and text is not None:
            self.files.pop(doc.upload_file.id, None)
            doc.upload_file = upload
            doc.text = text
        if name:
            self._rename(ds, doc, name)
        doc.doc_language = values.get("doc_language") or doc.doc_language
        doc.created_from = "web"
        doc.updated_at = now
        for seg in doc.segments.values():
            seg.status = "re_segment"
        self.enqueue(doc, now, keep_progress=False)
        return doc, doc.batch

    def update_text_document(
        self, ds: Dataset, doc: Document, values: dict[str, Any], now: float
    ) -> tuple[Document, str]:
        """``POST /documents/{id}/update-by-text``."""
        self._require_available(doc, now)
        text = values.get("text")
        name = values.get("name")
        if text is not None and not name:
            raise invalid_param("name is required when text is provided")
        upload = None
        if text is not None:
            upload = self._store_file(name, "txt", "text/plain", text.encode("utf-8"), now)
        return self.update_document(ds, doc, name=name, text=text, upload=upload, values=values, now=now)

    def update_file_document(
        self,
        ds: Dataset,
        doc: Document,
        values: dict[str, Any],
        file: tuple[str, bytes, int] | None,
        now: float,
    ) -> tuple[Document, str]:
        """``PATCH /documents/{id}`` and ``POST /documents/{id}/update-by-file``."""
        self._require_available(doc, now)
        upload = text = name = None
        if file is not None:
            filename, data, size = file
            self.check_upload(filename[:200], size, for_update=True)
            upload, text = self.store_upload(filename, data, for_update=True, now=now)
            name = upload.name
        return self.update_document(ds, doc, name=name, text=text, upload=upload, values=values, now=now)

    def list_documents(self, ds: Dataset, keyword: str | None, status: str | None, now: float) -> list[Document]:
        """Documents, newest first, filtered by name keyword and display status.

        Dify filters with ``name LIKE '%<keyword>%'`` (PostgreSQL: case-sensitive) and does not escape the
        keyword, so ``%`` in it matches any run of characters and ``_`` any one character.
        """
        docs: Iterable[Document] = reversed(ds.documents.values())
        if keyword:
            pattern = like_pattern(keyword)
            docs = (d for d in docs if pattern.fullmatch(d.name))
        if status:
            docs = (d for d in docs if d.display_status(now) == status)
        return list(docs)

    def delete_document(self, ds: Dataset, document_id: str, now: float) -> None:
        """Delete a document (not while it is being indexed, not when archived)."""
        doc = self.get_document(ds, document_id, "Document Not Exists.")
        if doc.archived:
            raise ApiError(403, "archived_document_immutable", "The archived document is not editable.")
        if doc.phase(now) in ("parsing", "cleaning", "splitting", "indexing"):
            raise ApiError(400, "document_indexing", "Cannot delete document during indexing.")
        doc.deleted = True
        del ds.documents[doc.id]
        if doc.position == ds.next_position - 1:  # Dify numbers a new document max(position) + 1
            ds.next_position = max((d.position for d in ds.documents.values()), default=0) + 1
        ids = ds.docs_by_name.get(doc.name, [])
        if doc.id in ids:
            ids.remove(doc.id)
            if not ids:
                del ds.docs_by_name[doc.name]
        batch = ds.batches.get(doc.batch)
        if batch is not None:
            batch.discard(doc.id)
            if not batch:
                del ds.batches[doc.batch]
        self.files.pop(doc.upload_file.id, None)

    def batch_documents(self, ds: Dataset, batch: str) -> list[Document]:
        """The documents of a batch, or 404 "Documents not found."."""
        ids = ds.batches.get(batch)
        if not ids:
            raise not_found("Documents not found.")
        return sorted((ds.documents[i] for i in ids if i in ds.documents), key=lambda d: d.position)

    def change_status(self, ds: Dataset, action: str, document_ids: list[str], now: float) -> None:
        """``PATCH /documents/status/{action}``."""
        if action not in STATUS_ACTIONS:
            raise ApiError(400, "invalid_action", f"Invalid action: {action}. Must be one of {list(STATUS_ACTIONS)}")
        lock_seconds = self.config.status_change_seconds
        for document_id in document_ids:
            doc = ds.documents.get(str(document_id))
            if doc is None:
                continue
            if doc.status_lock_until > now:
                raise ApiError(400, "invalid_action", f"Document:{doc.name} is being indexed, please try again later")
            completed = doc.indexing_status == "completed"
            if action == "enable":
                if doc.enabled:
                    continue
                doc.enabled = True
                doc.disabled_at = None
                doc.disabled_by = None
            elif action == "disable":
                if not doc.enabled:
                    continue
                if not completed:
                    raise ApiError(400, "invalid_action", f"Document: {doc.name} is not completed.")
                doc.enabled = False
                doc.disabled_at = now
                doc.disabled_by = self.account_id
            elif action == "archive":
                if doc.archived:
                    continue
                if not completed:
                    raise ApiError(400, "invalid_action", f"Document: {doc.name} is not completed.")
                doc.archived = True
            else:
                if not doc.archived:
                    continue
                doc.archived = False
            doc.updated_at = now
            if action in ("enable", "disable"):  # the recorded server let un_archive follow archive at once
                doc.status_lock_until = now + lock_seconds
