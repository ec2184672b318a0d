"""Record versions for change feeds: read a source's version column, order versions, keep them in Dify.

A record's version (``version_field``: ``updated_at``, a sequence number...) orders the versions of one record,
so that a backfill that runs an older interval after a newer one does not overwrite newer content. The version
written with a document is kept in its metadata field :data:`VERSION_FIELD` as canonical text, and read back in
the kind of the source's versions (numbers, dates, or date-times), so the comparison is the source's own order.

Nothing here talks to Dify.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The metadata field holding the version of the record a document was last written (or deleted) from.
VERSION_FIELD = "airflow_version"
#: The metadata field marking a remembered deletion: the UTC time of the deletion, or :data:`LIVE` when live.
DELETED_FIELD = "airflow_deleted"
#: The value of :data:`DELETED_FIELD` on a live document.
LIVE = "no"

KINDS = ("number", "date", "datetime")


@dataclass(frozen=True)
class Version:
    """
    One record's version, comparable with versions of the same kind.

    :param kind: ``number`` (int, float, Decimal), ``date``, or ``datetime`` (aware, UTC; naive values are read
        as UTC).
    :param value: a ``Decimal``, a ``date`` or an aware ``datetime``.
    """

    kind: str
    value: Any

    def __lt__(self, other: Version) -> bool:
        _same_kind(self, other)
        return bool(self.value < other.value)

    def __le__(self, other: Version) -> bool:
        _same_kind(self, other)
        return bool(self.value <= other.value)

    def __gt__(self, other: Version) -> bool:
        _same_kind(self, other)
        return bool(self.value > other.value)

    def __ge__(self, other: Version) -> bool:
        _same_kind(self, other)
        return bool(self.value >= other.value)

    @property
    def text(self) -> str:
        """The canonical text kept in Dify (read back by :func:`stored_version`)."""
        if self.kind == "number":
            return format(self.value.normalize(), "f") if self.value != 0 else "0"
        return str(self.value.isoformat())


def _same_kind(first: Version, second: Version) -> None:
    if first.kind != second.kind:
        raise ValueError(f"versions of different kinds cannot be ordered: {first.kind} and {second.kind}")


def parse_version(value: Any) -> Version:
    """
    A column value as a :class:`Version`.

    Accepts int, float, Decimal, ``date``, ``datetime`` (pendulum's too) and ISO-8601 text (a date, or a
    date-time with an optional offset or ``Z``). Anything else, a missing value, NaN, or a bool raises
    ``ValueError``.
    """
    if value is None or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a version (a number, a date, a date-time or ISO-8601 text)")
    if isinstance(value, (int, float, decimal.Decimal)):
        try:
            number = decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise ValueError(f"{value!r} is not a number that orders") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        return Version("number", number)
    if isinstance(value, datetime.datetime):
        return Version("datetime", _utc(value))
    if isinstance(value, datetime.date):
        return Version("date", value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                return Version("date", datetime.date.fromisoformat(text))
            except ValueError:
                pass
        try:
            return Version("datetime", _utc(datetime.datetime.fromisoformat(text)))
        except ValueError:
            raise ValueError(f"{value!r} is not ISO-8601 text (e.g. 2026-01-05 or 2026-01-05T10:00:00Z)") from None
    raise ValueError(f"{type(value).__name__} {value!r} is not a version (a number, a date, or a date-time)")


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def stored_version(values: Mapping[str, Any], kind: str, *, document: str) -> Version | None:
    """
    The version a document holds (its metadata ``values``), read in the source's ``kind``; ``None`` when it
    holds none.

    :raises ValueError: naming the document, when the stored text is not of the source's kind (the field was
        written by a source with another version column).
    """
    text = values.get(VERSION_FIELD)
    if text in (None, ""):
        return None
    try:
        version = parse_version(text if kind != "number" else decimal.Decimal(str(text)))
    except (ValueError, decimal.InvalidOperation):
        version = None
    if version is None or version.kind != kind:
        raise ValueError(
            f"version_field: document {document!r} holds version {text!r} in {VERSION_FIELD!r}, which is not a"
            f" {kind} like the source's versions; a knowledge base's documents must be versioned by one kind of"
            " column (sync them with the column that wrote them, or delete the documents)"
        )
    return version


def deleted_at(values: Mapping[str, Any]) -> str | None:
    """When a document was remembered as deleted (the :data:`DELETED_FIELD` text), or ``None`` when live."""
    text = values.get(DELETED_FIELD)
    return None if text in (None, "", LIVE) else str(text)


class VersionKinds:
    """
    The kind every version of one source has; the first record of another kind raises ``ValueError``.

    :param field: the version column (named in errors).
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self.kind: str | None = None
        self._first: str | None = None

    def read(self, record: Mapping[str, Any], key: str | None) -> Version:
        """The record's version, checked against the kind of the versions read before it."""
        if self.field not in record:
            columns = ", ".join(column for column in record if not column.startswith("_"))
            raise ValueError(f"version_field: the records have no column {self.field!r}; their columns are {columns}.")
        try:
            version = parse_version(record[self.field])
        except ValueError as error:
            raise ValueError(
                f"version_field: record {key!r} has {self.field} = {record[self.field]!r}, which cannot be"
                f" ordered: {error}; give every record a number, a date or a date-time there"
            ) from None
        if self.kind is None:
            self.kind, self._first = version.kind, key
        elif version.kind != self.kind:
            raise ValueError(
                f"version_field: record {key!r} has a {version.kind} in {self.field!r} ({record[self.field]!r})"
                f" but record {self._first!r} has a {self.kind}; a source's versions must be of one kind to be"
                " ordered (cast the column in the query)"
            )
        return version
