"""Metadata fields and document metadata values, built-in fields included."""

from __future__ import annotations

from typing import Any

from airflow_provider_dify.testing.errors import invalid_param
from airflow_provider_dify.testing.models import (
    BUILT_IN_FIELDS,
    Dataset,
    MetadataField,
)
from airflow_provider_dify.testing.state.core import StateCore, new_id
from airflow_provider_dify.testing.views import builtin_values


class MetadataStore(StateCore):
    """
    Metadata fields and document metadata values, built-in fields included.

    A part of :class:`~airflow_provider_dify.testing.state.EmulatorState`.
    """

    def get_metadata_field(self, ds: Dataset, metadata_id: str) -> MetadataField:
        """A metadata field, or 400 "Metadata not found." (a ``ValueError`` in Dify)."""
        meta = ds.metadata.get(metadata_id)
        if meta is None:
            raise invalid_param("Metadata not found.")
        return meta

    def _check_metadata_name(self, ds: Dataset, name: str, exclude: str | None = None) -> None:
        if len(name) > 255:
            raise invalid_param("Metadata name cannot exceed 255 characters.")
        if name in dict(BUILT_IN_FIELDS):
            raise invalid_param("Metadata name already exists in Built-in fields.")
        if any(m.name == name and m.id != exclude for m in ds.metadata.values()):
            raise invalid_param("Metadata name already exists.")

    def create_metadata_field(self, ds: Dataset, kind: str, name: str) -> MetadataField:
        """Create a custom metadata field."""
        self._check_metadata_name(ds, name)
        meta = MetadataField(new_id(), name, kind)
        ds.metadata[meta.id] = meta
        return meta

    def rename_metadata_field(self, ds: Dataset, metadata_id: str, name: str) -> MetadataField:
        """Rename a custom metadata field (document values follow)."""
        meta = self.get_metadata_field(ds, metadata_id)
        self._check_metadata_name(ds, name, exclude=meta.id)
        meta.name = name
        return meta

    def delete_metadata_field(self, ds: Dataset, metadata_id: str) -> None:
        """Delete a custom metadata field and its document values."""
        meta = self.get_metadata_field(ds, metadata_id)
        del ds.metadata[meta.id]
        for doc in ds.documents.values():
            doc.metadata_values.pop(meta.id, None)

    def metadata_usage(self, ds: Dataset) -> dict[str, int]:
        """Documents bound to each custom field."""
        counts = dict.fromkeys(ds.metadata, 0)
        for doc in ds.documents.values():
            for field_id in doc.metadata_values:
                if field_id in counts:
                    counts[field_id] += 1
        return counts

    def toggle_built_in(self, ds: Dataset, enable: bool, now: float) -> None:
        """Enable (stamp values on completed, enabled documents) or disable the built-in fields."""
        ds.built_in_field_enabled = enable
        for doc in ds.documents.values():
            if enable and doc.indexing_status == "completed" and doc.enabled:
                doc.builtin_values = builtin_values(doc)
            elif not enable:
                doc.builtin_values = {}

    def set_document_metadata(self, ds: Dataset, operations: list[dict[str, Any]], now: float) -> None:
        """``POST /documents/metadata``: replace (or partially update) the metadata of documents."""
        for operation in operations:
            doc = ds.documents.get(str(operation["document_id"]))
            if doc is None:
                raise invalid_param("Document not found.")
            values = dict(doc.metadata_values) if operation.get("partial_update") else {}
            for item in operation["metadata_list"]:
                if item["id"] in ds.metadata:
                    values[item["id"]] = item.get("value")
            doc.metadata_values = values
            doc.updated_at = now
            doc.builtin_values = builtin_values(doc)
