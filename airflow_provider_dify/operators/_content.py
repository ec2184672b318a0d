"""Change detection shared by the document operators and the sync operators.

A document's identity is its name; whether its content changed is told by a hash kept in one Dify metadata
field of the knowledge base (``airflow_content_hash`` by default). Nothing is stored outside Dify, so any
worker, retry or backfill sees the same truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyValidationError
from airflow_provider_dify.hooks.validation import check_metadata_name, check_metadata_value, refuse

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook

#: The metadata field that holds the content hash of documents written by this provider.
HASH_FIELD = "airflow_content_hash"
_HASH_PREFIX = "sha256:"


def text_hash(text: str, settings: Mapping[str, Any] | None = None) -> str:
    """Hash of a text plus the settings that shape its indexing (a new process rule re-indexes too)."""
    digest = hashlib.sha256(text.encode("utf-8"))
    if settings:
        digest.update(b"\0" + json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    return _HASH_PREFIX + digest.hexdigest()


def file_hash(path: str | Path, settings: Mapping[str, Any] | None = None) -> str:
    """Hash of a file's bytes (read in blocks) plus the settings that shape its indexing."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    if settings:
        digest.update(b"\0" + json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    return _HASH_PREFIX + digest.hexdigest()


def metadata_values(document: Mapping[str, Any]) -> dict[str, Any]:
    """A document's custom metadata as ``{name: value}`` (list and detail responses carry ``doc_metadata``)."""
    values: dict[str, Any] = {}
    for item in document.get("doc_metadata") or []:
        if isinstance(item, Mapping) and item.get("id") != "built-in" and "name" in item:
            values[str(item["name"])] = item.get("value")
    return values


def stored_hash(document: Mapping[str, Any], field_name: str = HASH_FIELD) -> str | None:
    """The content hash recorded on a document, or ``None``."""
    value = metadata_values(document).get(field_name)
    return str(value) if value else None


def ensure_metadata_fields(
    hook: DifyHook,
    dataset_id: str,
    wanted: Mapping[str, str],
    existing: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """
    Make sure the knowledge base has the metadata fields ``{name: type}``; return every field by name.

    Creating a field that another worker just created answers 400 "Metadata name already exists."; the
    listing is read again then, so concurrent tasks converge on the same field.

    :param existing: the knowledge base's fields by name as the caller just listed them (listed here if not given).
    """
    if existing is None:
        fields = fields_by_name(hook, dataset_id)
    else:
        fields = {name: dict(field) for name, field in existing.items()}
    for name, field_type in wanted.items():
        if name in fields:
            if fields[name].get("type") != field_type:
                raise ValueError(
                    f"metadata: the knowledge base already has a field {name!r} of type "
                    f"{fields[name].get('type')!r}, not {field_type!r}; rename yours or change its type."
                )
            continue
        try:
            fields[name] = hook.create_metadata_field(dataset_id, name, field_type)  # type: ignore[arg-type]
        except DifyValidationError as error:
            if "already exists" not in error.message:
                raise
            fields = fields_by_name(hook, dataset_id)
            if name not in fields:
                raise
    return fields


def fields_by_name(hook: DifyHook, dataset_id: str) -> dict[str, dict[str, Any]]:
    """The knowledge base's metadata fields by name (one request)."""
    listing = hook.list_metadata_fields(dataset_id) or {}
    return {str(item["name"]): dict(item) for item in listing.get("doc_metadata") or []}


def metadata_type_of(value: Any) -> str:
    """The Dify metadata type for a Python value: numbers are ``number``, everything else ``string``."""
    if isinstance(value, bool):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def coerce_metadata(values: Mapping[str, Any], fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """
    ``values`` converted to the type of their field: text for ``string`` fields, numbers for ``number`` ones.

    :param fields: the knowledge base's metadata fields by name; every name of ``values`` must be among them.
    :raises ValueError: naming the metadata key whose value is not a number but its field holds numbers.
    """
    coerced: dict[str, Any] = {}
    for name, value in values.items():
        field_type = fields[name].get("type")
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and field_type == "number" and not is_number:
            try:
                number = float(str(value))
            except ValueError:
                raise ValueError(
                    f"metadata[{name!r}]: the knowledge base's field {name!r} holds numbers, got {value!r}."
                ) from None
            value = int(number) if number.is_integer() else number
        elif value is not None and field_type == "string" and not isinstance(value, str):
            value = str(value)
        coerced[name] = value
    return coerced


def metadata_operation(
    document_id: str, values: Mapping[str, Any], fields: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """One item of the document-metadata batch call, setting ``values`` (names must be in ``fields``)."""
    items = []
    for name, value in values.items():
        field = fields[name]
        if isinstance(value, bool) or (value is not None and not isinstance(value, (str, int, float))):
            value = str(value)
        items.append({"id": field["id"], "name": name, "value": value})
    return {"document_id": document_id, "metadata_list": items, "partial_update": True}


def validate_metadata(metadata: Any, argument: str = "metadata") -> dict[str, Any]:
    """Check a user's ``{name: value}`` metadata before anything is written."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        refuse(argument, f"pass a dict of metadata name -> value, got {type(metadata).__name__}.")
    for name, value in metadata.items():
        if not isinstance(name, str) or not name.strip():
            refuse(argument, f"metadata names must be non-empty strings, got {name!r}.")
        if name == HASH_FIELD:
            refuse(argument, f"{HASH_FIELD!r} is reserved for the provider's content hash.")
        check_metadata_name(name, f"{argument}[{name!r}]")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            refuse(f"{argument}[{name!r}]", f"values must be strings, numbers or None, got {value!r}.")
        check_metadata_value(value, f"{argument}[{name!r}]")
    return dict(metadata)
