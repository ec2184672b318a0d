"""Deletions from a change feed: deleted, or remembered as disabled documents carrying the deletion's version.

Without versions a deletion deletes its document (one never held costs nothing). With versions a deletion is
remembered: the document carries the deletion's version in :data:`~._versions.VERSION_FIELD` and its time in
:data:`~._versions.DELETED_FIELD`, and is disabled (out of retrieval), so that an older version arriving later is
``stale``; a record Dify never held gets such a document. Remembered deletions older than the retention are
deleted for good when a run finds them.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.exceptions import DifyDatasetNotFoundError, DifyError, DifyNotFoundError
from airflow_provider_dify.operators._content import metadata_operation, metadata_values
from airflow_provider_dify.operators.sync._versions import DELETED_FIELD, VERSION_FIELD, Version, deleted_at

if TYPE_CHECKING:
    from airflow_provider_dify.hooks.dify import DifyHook

log = logging.getLogger(__name__)

#: Seconds a remembered deletion waits for its document's indexing to finish before it can be disabled.
DISABLE_TIMEOUT = 120.0
#: The text of the document that remembers the deletion of a record Dify never held (it is disabled at once).
TOMBSTONE_TEXT = "This record was deleted in its source."
#: How long remembered deletions are kept by default.
DEFAULT_RETENTION = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Deletion:
    """
    A record the source marks as deleted.

    :param key: the record's key.
    :param name: the document name the record has.
    :param version: its version (``None`` without ``version_field``).
    """

    key: str | None
    name: str
    version: Version | None = None


class Deletions:
    """
    Carry out a run's deletions and purges.

    :param hook: the shared hook.
    :param dataset: the knowledge base.
    :param remember: keep deletions as disabled documents carrying their version (with ``version_field``);
        without it a deletion deletes the document.
    :param write_text: creates the document that remembers a deletion of a record Dify never held:
        ``name -> document id`` (the sync's single-document write).
    :param fields: the knowledge base's metadata fields by name (those of the versions among them).
    """

    def __init__(
        self,
        hook: DifyHook,
        dataset: Mapping[str, Any],
        *,
        remember: bool,
        write_text: Any = None,
        fields: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.hook = hook
        self.dataset_id = str(dataset["id"])
        self.remember = remember
        self.write_text = write_text
        self.fields = fields or {}

    def run(
        self, deletions: Sequence[tuple[Deletion, dict[str, Any] | None]], now: datetime.datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Carry out ``deletions``: ``(deleted entries, failures)``; one failing does not stop the others."""
        deleted: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for deletion, document in deletions:
            try:
                entry = self.delete(deletion, document, now)
            except DifyDatasetNotFoundError:
                raise
            except (DifyError, TimeoutError) as error:
                log.warning("deletion of document %r failed: %s", deletion.name, error)
                failed.append(
                    {
                        "key": deletion.key,
                        "name": deletion.name,
                        "document_id": (document or {}).get("id"),
                        "operation": "delete",
                        "error": str(error),
                    }
                )
                continue
            if entry is not None:
                deleted.append(entry)
        return deleted, failed

    def delete(self, deletion: Deletion, document: Mapping[str, Any] | None, now: datetime.datetime) -> dict | None:
        """One deletion: the deleted entry, or ``None`` when there was nothing to delete."""
        if not self.remember:
            if document is None:
                return None  # never held: costs nothing
            try:
                self.hook.delete_document(self.dataset_id, str(document["id"]))
            except DifyDatasetNotFoundError:
                raise
            except DifyNotFoundError:
                return None
            return {"key": deletion.key, "name": deletion.name, "id": str(document["id"])}
        assert deletion.version is not None
        document_id = self.write_text(deletion.name) if document is None else str(document["id"])
        values = {VERSION_FIELD: deletion.version.text, DELETED_FIELD: now.isoformat()}
        self.hook.update_documents_metadata(self.dataset_id, [metadata_operation(document_id, values, self.fields)])
        if document is None or document.get("enabled", True):
            self.change_status("disable", [document_id])
        return {"key": deletion.key, "name": deletion.name, "id": document_id}

    def change_status(self, action: str, document_ids: Sequence[str], timeout: float = DISABLE_TIMEOUT) -> None:
        """Enable or disable documents, waiting while Dify still indexes them ("not completed", "being indexed")."""
        from airflow_provider_dify.exceptions import DifyValidationError

        deadline = time.monotonic() + timeout
        wait = 0.05
        while True:
            try:
                self.hook.update_document_status(self.dataset_id, action, list(document_ids))  # type: ignore[arg-type]
                return
            except DifyValidationError as error:
                retry = "not completed" in error.message or "being indexed" in error.message
                if not retry or time.monotonic() + wait > deadline:
                    raise
            time.sleep(wait)
            wait = min(wait * 2, 2.0)

    def purge(self, documents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Delete remembered deletions for good (past the retention): their entries."""
        purged = []
        for document in documents:
            try:
                self.hook.delete_document(self.dataset_id, str(document["id"]))
            except DifyDatasetNotFoundError:
                raise
            except DifyError as error:
                log.info("remembered deletion %r not purged: %s", document.get("name"), error)
                continue
            purged.append({"name": document.get("name"), "id": str(document["id"])})
        return purged


def revive(deletions: Deletions, documents: Sequence[dict[str, Any]]) -> None:
    """Enable remembered deletions that a newer record brings back (see :func:`mark_revived`)."""
    if documents:
        deletions.change_status("enable", [str(document["id"]) for document in documents])


def mark_revived(documents: Sequence[dict[str, Any]]) -> None:
    """Let the plan see the remembered deletions a newer record brings back as the enabled documents they will be
    (:func:`revive` enables them before the plan's writes)."""
    for document in documents:
        document["enabled"] = True
        if document.get("display_status") == "disabled":
            document["display_status"] = "available"


def retention(value: datetime.timedelta | float) -> datetime.timedelta:
    """``deletion_retention`` as a ``timedelta`` (a number is days)."""
    if isinstance(value, datetime.timedelta):
        days = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        days = datetime.timedelta(days=value)
    else:
        raise ValueError(f"deletion_retention: pass a timedelta or a number of days, got {value!r}.")
    if days <= datetime.timedelta(0):
        raise ValueError(f"deletion_retention: must be positive, got {value!r}.")
    return days


def remembered_deletion(document: Mapping[str, Any]) -> bool:
    """Whether a listed document remembers a deletion (see :class:`Deletions`)."""
    return deleted_at(metadata_values(document)) is not None
