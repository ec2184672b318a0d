"""
What a change-feed sync must end with, and what it may write on the way: the checks the seeded trials and the
backfill tests (Airflow 3 and Airflow 2.11) share.

* :func:`assert_newest_versions`: the knowledge base holds each record's newest version exactly once, live, with
  its text and version, and no record whose newest version is a deletion is live.
* :func:`assert_no_write_older_than_held`: no write went back. It reads the emulator's request log
  (:attr:`~airflow_provider_dify.testing.DifyEmulator.calls`, in the order the emulator answered them) and, per
  record, the versions written: the ``airflow_version`` values of the metadata writes and, for the content
  writes (``create-by-text``, ``update-by-text``), the version of the source row whose text was written. Each
  must be at least the newest one written to that record before it. A final state can be right after a
  regression that a later run repaired; this check sees the regression. Records synced from files are not
  covered: the emulator keeps no body of a multipart upload, so their content writes are not seen (their
  ``airflow_version`` writes are).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_dify.operators._content import metadata_values
from airflow_provider_dify.operators.sync._deletions import TOMBSTONE_TEXT
from airflow_provider_dify.operators.sync._versions import VERSION_FIELD, Version, parse_version, stored_version

#: The routes whose body carries a document's content (``name`` and ``text``), and the metadata write's route.
CONTENT_ROUTES = ("/document/create-by-text", "/document/create_by_text", "/update-by-text", "/update_by_text")
METADATA_ROUTE = "/documents/metadata"


@dataclass(frozen=True)
class SourceRow:
    """
    One row of a change feed, as the sync turns it into a document.

    :param name: the record's document name.
    :param text: the document's text; ``None`` for a deletion.
    :param version: the row's version column (a number, a date, a date-time or ISO-8601 text).
    """

    name: str
    text: str | None
    version: Any

    @property
    def parsed(self) -> Version:
        """The version as the sync orders it."""
        return parse_version(self.version)


@dataclass(frozen=True)
class Write:
    """
    One version written to one record.

    :param position: the call's position in the emulator's request log.
    :param what: ``"text"`` (a content write) or ``"metadata"`` (an ``airflow_version`` value).
    :param version: the version written.
    """

    position: int
    what: str
    version: Version


def newest_rows(rows: Iterable[SourceRow]) -> dict[str, SourceRow]:
    """Each record's newest row by its version, by document name."""
    newest: dict[str, SourceRow] = {}
    for row in rows:
        if row.name not in newest or row.parsed > newest[row.name].parsed:
            newest[row.name] = row
    return newest


def assert_newest_versions(emulator: Any, dataset_id: str, rows: Iterable[SourceRow]) -> None:
    """
    Assert that the knowledge base holds each record's newest version once, live, and no deleted record live.

    :param emulator: the :class:`~airflow_provider_dify.testing.DifyEmulator` the syncs wrote to.
    :param dataset_id: the knowledge base.
    :param rows: every row of the change feed, of every run.
    """
    live: dict[str, list[dict[str, Any]]] = {}
    for document in emulator.documents(dataset_id):
        if document.get("enabled", True) and not document.get("archived"):
            live.setdefault(document["name"], []).append(document)
    wanted = {name: row for name, row in newest_rows(rows).items() if row.text is not None}
    assert sorted(live) == sorted(wanted), f"live documents {sorted(live)}, newest live records {sorted(wanted)}"
    for name, row in wanted.items():
        assert len(live[name]) == 1, f"{name} is live {len(live[name])} times"
        (document,) = live[name]
        assert document["text"] == row.text, f"{name} holds {document['text']!r}, its newest text is {row.text!r}"
        held = metadata_values(document).get(VERSION_FIELD)
        assert held == row.parsed.text, f"{name} holds version {held!r}, its newest is {row.parsed.text!r}"


def written_versions(
    calls: Iterable[Any], dataset_id: str, rows: Iterable[SourceRow], names: Mapping[str, str]
) -> dict[str, list[Write]]:
    """
    The versions written to each record, in the order the emulator answered the writes (pure).

    Only writes Dify carried out count: answered 2xx, without an injected fault. The text of the document that
    remembers a deletion of a record Dify never held carries no version of its own (its metadata write does).

    :param calls: the emulator's request log.
    :param dataset_id: the knowledge base.
    :param rows: every row of the change feed (a content write's version is its text's row's).
    :param names: document names by id (a metadata write names only the document's id).
    :raises AssertionError: a write of a text no row of its record holds, or to a document of unknown name.
    """
    rows = list(rows)
    kind = rows[0].parsed.kind if rows else "number"
    by_text = {(row.name, row.text): row.parsed for row in rows if row.text is not None}
    prefix = f"/v1/datasets/{dataset_id}/"
    writes: dict[str, list[Write]] = {}
    for position, call in enumerate(calls):
        if call.method != "POST" or not call.path.startswith(prefix) or call.fault or not 200 <= call.status < 300:
            continue
        body = call.json()
        if call.path.endswith(CONTENT_ROUTES) and isinstance(body, dict) and "text" in body:
            name, text = str(body["name"]), body["text"]
            if text == TOMBSTONE_TEXT:
                continue
            assert (name, text) in by_text, f"call {position} wrote {text!r} to {name}, which no row of it holds"
            writes.setdefault(name, []).append(Write(position, "text", by_text[name, text]))
        elif call.path.endswith(METADATA_ROUTE) and isinstance(body, dict):
            for operation in body.get("operation_data", []):
                values = {item["name"]: item.get("value") for item in operation.get("metadata_list", [])}
                if values.get(VERSION_FIELD) in (None, ""):
                    continue
                document_id = str(operation["document_id"])
                assert document_id in names, f"call {position} wrote metadata to document {document_id}, not found"
                name = names[document_id]
                version = stored_version(values, kind, document=name)
                assert version is not None
                writes.setdefault(name, []).append(Write(position, "metadata", version))
    return writes


def document_names(emulator: Any, dataset_id: str) -> dict[str, str]:
    """
    Document names by id: the knowledge base's documents now, and any that a content write by id
    (``update-by-text``) named before it was deleted.
    """
    names = {str(document["id"]): str(document["name"]) for document in emulator.documents(dataset_id)}
    for call in emulator.calls:
        body = call.json()
        if call.path.endswith(("/update-by-text", "/update_by_text")) and isinstance(body, dict) and body.get("name"):
            names.setdefault(call.path.split("/")[-2], str(body["name"]))
    return names


def assert_no_write_older_than_held(emulator: Any, dataset_id: str, rows: Iterable[SourceRow]) -> None:
    """
    Assert that no record was written a version older than one written to it before (see the module's doc).

    :param emulator: the :class:`~airflow_provider_dify.testing.DifyEmulator` the syncs wrote to; its request log
        must hold every call since the knowledge base was created.
    :param dataset_id: the knowledge base.
    :param rows: every row of the change feed, of every run.
    """
    writes = written_versions(emulator.calls, dataset_id, rows, document_names(emulator, dataset_id))
    backwards = []
    for name, sequence in sorted(writes.items()):
        newest: Write | None = None
        for write in sequence:
            if newest is not None and write.version < newest.version:
                backwards.append(
                    f"{name}: call {write.position} wrote {write.what} of version {write.version.text} after call"
                    f" {newest.position} wrote {newest.what} of version {newest.version.text}"
                )
            if newest is None or write.version > newest.version:
                newest = write
    assert writes, "no versioned write found in the emulator's request log"
    assert not backwards, "writes older than what Dify held:\n" + "\n".join(backwards)
