"""
Splitting one sync over mapped tasks: shard arguments, the ownership rule, and the summary of the shards.

A sync with ``shard=(i, n)`` takes the records whose identity hashes to ``i`` of ``n`` (a document's name, a
chunk's text) and owns exactly the documents or chunks of its scope whose identity does too, so its
``delete_missing`` never touches another shard's part. The hash is stable across processes and Python
versions (SHA-256), so every worker agrees on who owns what::

    from airflow_provider_dify.operators.shards import merge_sync_manifests, shards

    sync = DifySyncDocumentsOperator.partial(
        task_id="sync", dataset_name="kb", sql="SELECT * FROM products", sql_conn_id="wh",
        key_field="id", scope="warehouse:products", delete_missing=True,
    ).expand(shard=shards(4))
    summary = PythonOperator(task_id="summary", python_callable=merge_sync_manifests, op_args=[sync.output])

A shard that fails is retried alone (each mapped task instance has its own retries); the summary adds up the
counts of all shards. To split by the source's own partitions instead (a SQL ``WHERE``, an object-storage
sub-prefix), expand over the source argument and give each partition its own ``scope``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Failures listed in a summary at most (the shards' own manifests list them all).
SUMMARY_FAILURES_SHOWN = 20


def shards(count: int) -> list[list[int]]:
    """The ``shard`` values of ``count`` shards, for ``.expand(shard=shards(count))``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"shards: the number of shards must be a positive integer, got {count!r}.")
    return [[index, count] for index in range(count)]


def check_shard(shard: Any) -> tuple[int, int] | None:
    """``shard`` as ``(index, count)``, or ``None``; a ``ValueError`` naming the fix when it is malformed."""
    if shard is None:
        return None
    if (
        isinstance(shard, (str, bytes, Mapping))
        or not isinstance(shard, Sequence)
        or len(shard) != 2
        or not all(isinstance(part, int) and not isinstance(part, bool) for part in shard)
    ):
        raise ValueError(f"shard: pass (index, count), e.g. (0, 4), or use .expand(shard=shards(4)); got {shard!r}.")
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard: the index must be in 0..count-1 and count at least 1, got {shard!r}.")
    return index, count


def shard_of(identity: str, count: int) -> int:
    """Which of ``count`` shards owns ``identity`` (a document name or a chunk's text)."""
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def owns(shard: tuple[int, int] | None, identity: str | None) -> bool:
    """Whether ``shard`` owns ``identity``; without a shard, everything. Nothing owns a missing identity but
    shard 0 (so exactly one shard reports a record without a name or key)."""
    if shard is None:
        return True
    index, count = shard
    if identity is None:
        return index == 0
    return shard_of(identity, count) == index


def chunk_identity(chunk: Mapping[str, Any]) -> str:
    """
    A listed chunk's identity as the chunk sync matches it: its text (without the ``[key: ...]`` line that
    earlier versions added), which is also the identity of the record it stands for.
    """
    from airflow_provider_dify.operators.sync._chunk_sync import text_of_legacy_chunk

    return text_of_legacy_chunk(str(chunk.get("content") or ""))


def shard_sizes(identities: Iterable[str | None], count: int) -> list[int]:
    """How many of ``identities`` each of ``count`` shards owns (every shard reads the whole source, so every
    shard counts the same)."""
    sizes = [0] * count
    for identity in identities:
        sizes[0 if identity is None else shard_of(identity, count)] += 1
    return sizes


def rate_limit_part(limit: int, sizes: Sequence[int], index: int) -> int:
    """
    Shard ``index``'s part of a workspace's rate limit: ``limit`` split in proportion to the shards' records.

    Parts are whole calls, by largest remainders (ties to the lower index), so they add up to ``limit``; a
    shard's part is at least 1 (then the parts of more shards than calls add up to more).

    :param limit: the workspace's limit, calls a window.
    :param sizes: the records of every shard (:func:`shard_sizes`).
    :param index: this shard.
    """
    count, total = len(sizes), sum(sizes)
    weights = list(sizes) if total else [1] * count
    whole = sum(weights)
    shares = [limit * weight // whole for weight in weights]
    by_remainder = sorted(range(count), key=lambda shard: (-(limit * weights[shard] % whole), shard))
    for shard in by_remainder[: limit - sum(shares)]:
        shares[shard] += 1
    return max(1, shares[index])


def merge_sync_manifests(manifests: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """
    The summary of the shards of one sync: the counts added up, the shards seen, the first failures.

    :param manifests: the manifests the shards returned (``sync.output`` of the mapped task).
    """
    counts: dict[str, int] = {}
    seen: list[list[int]] = []
    failed: list[dict[str, Any]] = []
    granularity = None
    for manifest in manifests:
        if not manifest:
            continue
        granularity = granularity or manifest.get("granularity")
        for name, value in (manifest.get("counts") or {}).items():
            counts[name] = counts.get(name, 0) + int(value or 0)
        if manifest.get("shard") is not None:
            seen.append(list(manifest["shard"]))
        failed.extend(manifest.get("failed") or [])
    return {
        "granularity": granularity,
        "shards": sorted(seen),
        "counts": counts,
        "failed": failed[:SUMMARY_FAILURES_SHOWN],
    }
