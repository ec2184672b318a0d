"""The progress snapshot a wait carries from one poll to the next: plain JSON of bounded size."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_dify.hooks.indexing.results import COMPLETED, RESULT_KEYS, DocumentResult, _as_int, _as_number

#: The shape of the snapshot :func:`evaluate_poll` writes. Earlier versions kept one entry per document (with
#: the results of the completed ones); :func:`read_snapshot` still reads them.
SNAPSHOT_VERSION = 2
#: Documents of a batch a wait without ``document_ids`` remembers, so that it can follow them once the batch
#: answers 404 (after a same-name upsert). Above it, such a wait asks for ``document_ids``.
FOLLOWED_DOCUMENT_LIMIT = 100


def _progress_key(entry: Mapping[str, Any]) -> str:
    """What counts as a document's progress: its status and chunk counts, just ``completed`` once completed."""
    status = entry.get("indexing_status")
    if status == COMPLETED:
        return COMPLETED
    return f"{status}/{entry.get('completed_segments')}/{entry.get('total_segments')}"


def progress_digest(keys: Iterable[tuple[str, str]]) -> str:
    """A digest of ``(document id, progress key)`` pairs, whatever their order: equal digests mean nothing moved."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for doc_id, key in sorted(keys):
        digest.update(f"{doc_id}\t{key}\n".encode())
    return digest.hexdigest()


def _pack_flags(flags: Sequence[bool]) -> str | None:
    """One bit a document, compressed, as ASCII (``None`` when no flag is set)."""
    if not any(flags):
        return None
    import base64
    import zlib

    bits = bytearray((len(flags) + 7) // 8)
    for index, flag in enumerate(flags):
        if flag:
            bits[index >> 3] |= 1 << (index & 7)
    return base64.b64encode(zlib.compress(bytes(bits), 9)).decode("ascii")


def _unpack_flags(packed: Any, count: int) -> list[bool]:
    """The first ``count`` flags of :func:`_pack_flags`'s text; all unset when it is missing or unreadable."""
    if not isinstance(packed, str) or not packed:
        return [False] * count
    import base64
    import binascii
    import zlib

    try:
        bits = zlib.decompress(base64.b64decode(packed, validate=True))
    except (ValueError, binascii.Error, zlib.error):
        return [False] * count
    return [index >> 3 < len(bits) and bool(bits[index >> 3] >> (index & 7) & 1) for index in range(count)]


def _id_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return value
    return None


def read_snapshot(progress: Mapping[str, Any] | None) -> dict[str, Any]:
    """
    The progress snapshot of a wait in the current shape, from what an earlier poll (of any version) returned.

    The snapshot holds no per-document entry, so its size does not grow with the number of documents:

    * ``documents``, ``completed``: how many documents the last poll that answered judged, and how many of
      them were completed (``0`` before any poll answered);
    * ``digest``: :func:`progress_digest` of every document's status and chunk counts; ``moved_at``: when it
      last changed (stall detection needs only these two);
    * ``settled``: one bit per document in the order of the poll's documents (``document_ids`` first), set for
      those completed, compressed: later polls do not read them again until all are completed, when their
      results are read once;
    * ``followed``: without ``document_ids``, the ids of the batch's documents (at most
      :data:`FOLLOWED_DOCUMENT_LIMIT`), to follow once the batch answers 404;
    * ``batch_missing``, ``failed_polls``, ``document_list_pages``.

    A snapshot of the previous version (``documents`` was a mapping of per-document entries, written by a
    running deferral or reschedule before an upgrade) keeps its ``moved_at`` and progress digest, so that stall
    detection carries over; the results it kept are read again at the end. Anything else starts afresh.
    """
    progress = progress if isinstance(progress, Mapping) else {}
    moved_at = _as_number(progress.get("moved_at"))
    pages = _as_int(progress.get("document_list_pages"))
    snapshot: dict[str, Any] = {
        "version": SNAPSHOT_VERSION,
        "documents": 0,
        "completed": 0,
        "digest": None,
        "moved_at": moved_at,
        "settled": None,
        "followed": None,
        "batch_missing": progress.get("batch_missing") is True,
        "failed_polls": max(_as_int(progress.get("failed_polls")) or 0, 0),
        "document_list_pages": pages if pages is not None and pages > 0 else None,
    }
    documents = progress.get("documents")
    if isinstance(documents, Mapping):  # the previous version: one entry per document
        keys = []
        for doc_id, info in documents.items():
            signature = info.get("signature") if isinstance(info, Mapping) else None
            if isinstance(doc_id, str) and isinstance(signature, list) and len(signature) == 3:
                status, done, total = signature
                key = _progress_key({"indexing_status": status, "completed_segments": done, "total_segments": total})
                keys.append((doc_id, key))
        snapshot["documents"] = len(keys)
        snapshot["completed"] = sum(1 for _, key in keys if key == COMPLETED)
        snapshot["digest"] = progress_digest(keys) if keys else None
        if len(keys) <= FOLLOWED_DOCUMENT_LIMIT:
            snapshot["followed"] = [doc_id for doc_id, _ in keys] or None
        return snapshot
    if progress.get("version") != SNAPSHOT_VERSION:
        return snapshot
    count = _as_int(documents)
    digest = progress.get("digest")
    if count is not None and count > 0 and isinstance(digest, str):
        snapshot["documents"] = count
        snapshot["completed"] = min(max(_as_int(progress.get("completed")) or 0, 0), count)
        snapshot["digest"] = digest
        snapshot["settled"] = progress.get("settled") if isinstance(progress.get("settled"), str) else None
        followed = _id_list(progress.get("followed"))
        snapshot["followed"] = followed[:FOLLOWED_DOCUMENT_LIMIT] if followed else None
    return snapshot


def known_document_ids(progress: Mapping[str, Any] | None) -> list[str]:
    """The ids of the batch's documents a wait without ``document_ids`` follows (see :func:`read_snapshot`)."""
    return list(read_snapshot(progress)["followed"] or [])


def settled_document_ids(progress: Mapping[str, Any] | None, document_ids: Sequence[str]) -> set[str]:
    """
    Those of ``document_ids`` (the wait's documents, in the order of its polls) an earlier poll saw ``completed``.

    :func:`plan_poll` does not read them again until every document is completed.
    """
    snapshot = read_snapshot(progress)
    flags = _unpack_flags(snapshot["settled"], len(document_ids))
    return {doc_id for doc_id, flag in zip(document_ids, flags, strict=True) if flag}


def group_snapshot(progress: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """
    The snapshot a trigger waiting on one group of a wait's documents starts from, made from the whole wait's.

    What holds for every document of the wait is kept: that a poll of the wait has answered (``documents``;
    such a poll read every document, so a document of the group that answers 404 later was deleted while
    waited on, as a single trigger judges it, not an id that never existed), ``batch_missing`` and
    ``failed_polls``. What describes the whole list is left out: ``settled`` (one bit per document of the
    wait, in its order), ``followed``, ``document_list_pages``; the wait's ``digest`` stays, so the group's
    first poll counts as movement and its stall clock starts there. Of bounded size (a few hundred bytes
    however many documents the wait has), fit for a trigger's stored arguments. ``None`` without a snapshot.
    """
    if not progress:
        return None
    return {
        **read_snapshot(progress),
        "completed": 0,
        "settled": None,
        "followed": None,
        "document_list_pages": None,
    }


def settled_entry(document_id: str) -> DocumentResult:
    """The result of a document an earlier poll saw completed, until its full result is read again."""
    return {**dict.fromkeys(RESULT_KEYS), "id": document_id, "indexing_status": COMPLETED}
