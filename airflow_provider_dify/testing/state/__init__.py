"""
The emulator's in-memory workspace and its state machine, one module a part.

Every method expects the caller to hold the emulator's lock and to pass the current time ``now``; indexing is
simulated by :meth:`EmulatorState.tick`, which the server calls at the start of every request: it starts and
finishes queued documents whose time has come (one document at a time, per workspace, like Dify's worker).

The parts: :mod:`.core` (the stores, the clock, shared constants), :mod:`.jobs`, :mod:`.indexing`, :mod:`.limits`,
:mod:`.datasets`, :mod:`.documents`, :mod:`.segments`, :mod:`.retrieval`, :mod:`.metadata` and :mod:`.tags`.
"""

from __future__ import annotations

from airflow_provider_dify.testing.state.core import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_EMBEDDING_PROVIDER,
    DOCUMENT_LIMIT_MESSAGE,
    NO_EMBEDDING_MODEL,
    NO_EMBEDDING_PROVIDER,
    OUTCOMES,
    RATE_LIMIT_MESSAGE,
    SANDBOX_MESSAGE,
    STATUS_ACTIONS,
    StateCore,
    like_pattern,
    new_id,
)
from airflow_provider_dify.testing.state.datasets import DatasetStore
from airflow_provider_dify.testing.state.documents import DocumentStore
from airflow_provider_dify.testing.state.indexing import IndexingEngine
from airflow_provider_dify.testing.state.jobs import Job, OutcomeRule
from airflow_provider_dify.testing.state.limits import WorkspaceLimits
from airflow_provider_dify.testing.state.metadata import MetadataStore
from airflow_provider_dify.testing.state.retrieval import Retrieval
from airflow_provider_dify.testing.state.segments import SegmentStore
from airflow_provider_dify.testing.state.tags import TagStore


class EmulatorState(
    IndexingEngine, WorkspaceLimits, DatasetStore, DocumentStore, SegmentStore, Retrieval, MetadataStore, TagStore
):
    """
    The workspace of one emulator: datasets, documents, chunks, metadata, tags, files and the indexing queue.

    :param config: the emulator's knobs (read live, so ``configure`` takes effect at once).
    """


__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_EMBEDDING_PROVIDER",
    "DOCUMENT_LIMIT_MESSAGE",
    "NO_EMBEDDING_MODEL",
    "NO_EMBEDDING_PROVIDER",
    "OUTCOMES",
    "RATE_LIMIT_MESSAGE",
    "SANDBOX_MESSAGE",
    "STATUS_ACTIONS",
    "EmulatorState",
    "Job",
    "OutcomeRule",
    "StateCore",
    "like_pattern",
    "new_id",
]
