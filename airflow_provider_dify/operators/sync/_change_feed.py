"""Change feeds in the document sync: deletions in the source, versions, and a cost set by the changes.

* :class:`ChangeFeed` reads the source's deletion and version columns while the records are read: a record whose
  ``deleted_field`` is truthy becomes a :class:`Deletion` (never rendered, never created), and every record's
  version is read and checked to be of one kind (:mod:`._versions`), all before the first request.
* :meth:`ChangeFeed.judge` compares each record with the version Dify holds: an older write or deletion is
  ``stale`` (skipped, reported); a newer write over a remembered deletion re-enables the document first.
* :func:`regressed` tells, after the writes, which documents an overlapping older run overwrote.

The documents are found by :mod:`._lookups`; deletions are carried out by :mod:`._deletions`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_dify.operators._content import HASH_FIELD, metadata_values
from airflow_provider_dify.operators._copies import document_survivor, usable_document
from airflow_provider_dify.operators.sync._deletions import DEFAULT_RETENTION, Deletion, mark_revived
from airflow_provider_dify.operators.sync._versions import (
    DELETED_FIELD,
    LIVE,
    VERSION_FIELD,
    Version,
    VersionKinds,
    deleted_at,
    stored_version,
)

if TYPE_CHECKING:
    from airflow_provider_dify.operators.sync._records import RecordRenderer, RenderedRecord


@dataclass
class Judgement:
    """
    What the versions decided before the plan.

    :param records: the records still to write (the stale ones taken out).
    :param stale: manifest entries of the writes and deletions older than what Dify holds.
    :param revive: remembered deletions that a newer record brings back (enabled before the writes).
    :param deletions: ``(deletion, document or None)`` pairs still to carry out.
    :param purge: remembered deletions older than the retention (deleted for good).
    :param already_deleted: deletions Dify already holds at that version.
    :param busy: failures of records whose document is disabled without a remembered deletion (a retry reads
        them again).
    """

    records: list[RenderedRecord] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)
    revive: list[dict[str, Any]] = field(default_factory=list)
    deletions: list[tuple[Deletion, dict[str, Any] | None]] = field(default_factory=list)
    purge: list[dict[str, Any]] = field(default_factory=list)
    already_deleted: int = 0
    busy: list[dict[str, Any]] = field(default_factory=list)


def truthy(value: Any) -> bool:
    """Whether a deletion column's value marks a deletion (``true``, ``1``, ``yes``, ``t``, ``y`` as text too)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t", "y")
    return bool(value)


class ChangeFeed:
    """
    The deletion and version columns of one run's source.

    :param renderer: renders a deletion's key and document name as a live record's.
    :param deleted_field: the column whose truthy value marks a deletion (``None``: no deletions).
    :param version_field: the column ordering a record's versions (``None``: no versions).
    :param retention: how long a remembered deletion is kept.
    """

    def __init__(
        self,
        renderer: RecordRenderer,
        *,
        deleted_field: str | None,
        version_field: str | None,
        retention: datetime.timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.renderer = renderer
        self.deleted_field = deleted_field
        self.version_field = version_field
        self.retention = retention
        self.deletions: list[Deletion] = []
        self.versions: dict[str | None, Version] = {}
        self._kinds = VersionKinds(version_field) if version_field else None
        self._deleted_keys: set[str | None] = set()

    @property
    def kind(self) -> str | None:
        """The kind of the source's versions (``None`` before any or without ``version_field``)."""
        return self._kinds.kind if self._kinds else None

    def take(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Pass the live records on; keep the deletions and every record's version."""
        for record in records:
            key = self.renderer.key_of(record)
            version = self._kinds.read(record, key) if self._kinds else None
            if self.deleted_field is not None:
                if self.deleted_field not in record:
                    columns = ", ".join(column for column in record if not column.startswith("_"))
                    raise ValueError(
                        f"deleted_field: the records have no column {self.deleted_field!r}; their columns are"
                        f" {columns}."
                    )
                if truthy(record[self.deleted_field]):
                    if key in self._deleted_keys or key in self.versions:
                        raise ValueError(
                            f"key_field: record {key!r} appears twice in the source (deleted and again); keys must"
                            " be unique in a run (keep each record's newest row in the query)"
                        )
                    self._deleted_keys.add(key)
                    self.deletions.append(Deletion(key, self.renderer.name_of(record, key), version))
                    continue
            if key in self._deleted_keys:
                raise ValueError(
                    f"key_field: record {key!r} appears twice in the source (deleted and again); keys must be"
                    " unique in a run (keep each record's newest row in the query)"
                )
            if version is not None:
                self.versions[key] = version
            yield record

    def stamp(self, records: Sequence[RenderedRecord]) -> list[RenderedRecord]:
        """The records with their version (and the live mark) in their metadata, when versions are kept."""
        if self._kinds is None:
            return list(records)
        return [
            replace(
                record, metadata={**record.metadata, VERSION_FIELD: self.versions[record.key].text, DELETED_FIELD: LIVE}
            )
            for record in records
        ]

    def judge(
        self, records: Sequence[RenderedRecord], listed: Sequence[Mapping[str, Any]], now: datetime.datetime
    ) -> Judgement:
        """
        Compare the records and deletions with the documents found (no I/O; the listed copies of the documents
        to enable again are marked enabled, see :func:`mark_revived`).

        :raises ValueError: when a document holds a version of another kind than the source's.
        """
        by_name: dict[str, list[dict[str, Any]]] = {}
        for document in listed:
            by_name.setdefault(str(document.get("name") or ""), []).append(document)  # type: ignore[arg-type]
        judgement = Judgement()
        kind = self.kind
        # A versioned document disabled without a remembered deletion was disabled by an older run's deletion that
        # landed after a newer write: it is enabled again (and the listed copy marked so) before anything is decided.
        for name in {record.name for record in records} | {deletion.name for deletion in self.deletions}:
            current = _current(by_name.get(name))
            if (
                current is not None
                and not usable_document(current)
                and not current.get("archived")
                and deleted_at(metadata_values(current)) is None
                and _held(current, kind) is not None
            ):
                judgement.revive.append(current)
                mark_revived([current])
        for record in records:
            current = _current(by_name.get(record.name))
            held = _held(current, kind)
            unmarked = current is not None and deleted_at(metadata_values(current)) is None
            if current is not None and not usable_document(current) and unmarked and held is None:
                # disabled (or archived) without a remembered deletion: another run is remembering a deletion of
                # it right now, or someone disabled it; a retry reads it again
                judgement.busy.append(
                    {
                        "key": record.key,
                        "name": record.name,
                        "document_id": str(current.get("id")),
                        "operation": "write",
                        "error": f"document {record.name!r} is disabled or archived without a remembered deletion"
                        " (another run is deleting it, or someone disabled it); a retry reads it again",
                    }
                )
                continue
            if held is not None and current is not None:
                mine = self.versions[record.key]
                if mine < held:
                    judgement.stale.append(_stale_entry(record.key, record.name, current, mine, held, "write"))
                    continue
                if deleted_at(metadata_values(current)) is not None:
                    if mine == held:  # the deletion of this version is what Dify holds
                        judgement.stale.append(_stale_entry(record.key, record.name, current, mine, held, "write"))
                        continue
                    judgement.revive.append(current)
            judgement.records.append(record)
        revived = {str(document["id"]) for document in judgement.revive}
        for deletion in self.deletions:
            current = _current(by_name.get(deletion.name))
            held = _held(current, kind)
            if current is not None and held is not None and deletion.version is not None:
                if deletion.version < held:
                    judgement.stale.append(
                        _stale_entry(deletion.key, deletion.name, current, deletion.version, held, "delete")
                    )
                    continue
                if deletion.version == held and deleted_at(metadata_values(current)) is not None:
                    judgement.already_deleted += 1
                    continue
            judgement.deletions.append((deletion, current))
        deleting = {str(document["id"]) for _deletion, document in judgement.deletions if document is not None}
        for documents in by_name.values():
            for document in documents:
                when = deleted_at(metadata_values(document))
                identity = str(document.get("id"))
                if when is None or identity in revived or identity in deleting:
                    continue
                if _older_than(when, now - self.retention):
                    judgement.purge.append(document)
        return judgement


def _current(documents: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The copy whose version counts: the survivor by the copy rule, unless only other copies carry a version
    (a remembered deletion is disabled, so the rule passes it over for a live copy made without versions)."""
    if not documents:
        return None
    survivor, _extras = document_survivor(documents)
    versioned = [document for document in documents if metadata_values(document).get(VERSION_FIELD)]
    if not versioned or survivor in versioned:
        return survivor
    return versioned[0]


def _held(document: Mapping[str, Any] | None, kind: str | None) -> Version | None:
    if document is None or kind is None:
        return None
    return stored_version(metadata_values(document), kind, document=str(document.get("name")))


def _older_than(text: str, limit: datetime.datetime) -> bool:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when < limit


def _stale_entry(
    key: str | None, name: str, document: Mapping[str, Any], mine: Version, held: Version, operation: str
) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "id": str(document.get("id")),
        "operation": operation,
        "version": mine.text,
        "held": held.text,
    }


def regressed(
    expected: Mapping[str, tuple[Version, str | None, str | None]], found: Sequence[Mapping[str, Any]], kind: str
) -> list[str]:
    """
    The names whose document no longer holds what the run wrote, nor a newer version (pure).

    :param expected: ``{name: (version, content hash, upload file)}`` of what the run wrote; the hash is
        ``None`` for a deletion the run remembered; the upload file (the file Dify stored the content in, new with
        every content write) is ``None`` when the run wrote no content. A document holding this version must be
        live with this hash (or remembered as deleted) and, when the run wrote content, hold the run's upload
        file: an older run's content that landed between this run's content write and its metadata write leaves
        this run's version and hash on another run's content, which only the upload file tells.
    :param found: the documents of those names, read after the run.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for document in found:
        by_name.setdefault(str(document.get("name") or ""), []).append(dict(document))
    lost = []
    for name, (mine, content_hash, upload_file) in expected.items():
        current = _current(by_name.get(name))
        held = _held(current, kind)
        if current is None or held is None or held < mine:
            lost.append(name)
        elif held == mine:
            values = metadata_values(current)
            remembered = deleted_at(values) is not None
            wrote_deletion = content_hash is None
            if wrote_deletion:
                intact = remembered
            else:
                intact = (
                    not remembered
                    and values.get(HASH_FIELD) == content_hash
                    and usable_document(current)
                    and (upload_file is None or _upload_file(current) in (None, upload_file))
                )
            if not intact:
                lost.append(name)
    return sorted(lost)


def _upload_file(document: Mapping[str, Any]) -> str | None:
    info = document.get("data_source_info")
    return str(info["upload_file_id"]) if isinstance(info, Mapping) and info.get("upload_file_id") else None
