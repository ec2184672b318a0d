"""The emulator's workspace: its stores, its clock, and the constants and helpers every part of it shares."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import deque
from typing import Any

from airflow_provider_dify.testing.config import EmulatorConfig
from airflow_provider_dify.testing.models import (
    Dataset,
    Document,
    Tag,
    UploadFile,
)
from airflow_provider_dify.testing.state.jobs import Job, OutcomeRule
from airflow_provider_dify.testing.views import document_view

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_EMBEDDING_PROVIDER = "langgenius/openai/openai"
NO_EMBEDDING_MODEL = "Default model not found for text-embedding"
NO_EMBEDDING_PROVIDER = (
    "No Embedding Model available. Please configure a valid provider in the Settings -> Model Provider."
)
DOCUMENT_LIMIT_MESSAGE = "The number of documents has reached the limit of your subscription."
SANDBOX_MESSAGE = "To unlock this feature and elevate your Dify experience, please upgrade to a paid plan."
RATE_LIMIT_MESSAGE = "Sorry, you have reached the knowledge base request rate limit of your subscription."
STATUS_ACTIONS = ("enable", "disable", "archive", "un_archive")
OUTCOMES = ("error", "stall", "stuck", "paused")


def new_id() -> str:
    """A new lower-case UUID4 string."""
    return str(uuid.uuid4())


def like_pattern(keyword: str) -> re.Pattern[str]:
    """
    Dify's document-name filter: ``name LIKE '%<keyword>%'``, the keyword put in unescaped, as PostgreSQL reads
    it: ``%`` any run of characters, ``_`` any one, a backslash (the default escape character) takes the next
    character literally, so a keyword ending in a backslash escapes the closing ``%``. Match it with
    ``fullmatch``: LIKE matches the whole name.
    """
    pattern = f"%{keyword}%"
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


class StateCore:
    """
    The workspace's stores and clock, which every part of the state machine reads.

    :param config: the emulator's knobs (read live, so ``configure`` takes effect at once).
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.account_id = new_id()
        self.clock_offset = 0.0
        self.clear()

    def clear(self) -> None:
        """Forget everything (datasets, tags, files, queue, rate-limit window, outcome rules)."""
        self.datasets: dict[str, Dataset] = {}
        self.dataset_names: dict[str, str] = {}
        self.tags: dict[str, Tag] = {}
        self.tag_bindings: dict[str, set[str]] = {}
        self.files: dict[str, UploadFile] = {}
        self.queue: deque[Job] = deque()
        self.running: Job | None = None
        self.running_end = 0.0
        self.free_at = 0.0
        self.rate_hits: deque[float] = deque()
        self.outcome_rules: list[OutcomeRule] = []
        self.version = 0
        self._counts_cache: dict[str, tuple[int, tuple[int, int, int]]] = {}
        self._batch_rng = random.Random()

    def now(self) -> float:
        """The emulator's clock: wall time plus ``advance_time`` offsets."""
        return time.time() + self.clock_offset

    def bump(self) -> None:
        """Mark the state as changed (invalidates cached dataset counts)."""
        self.version += 1

    def new_batch(self, now: float) -> str:
        """A batch id like Dify's: ``YYYYmmddHHMMSS`` plus 6 random digits."""
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + f"{self._batch_rng.randrange(10**6):06d}"

    def find_document(self, document_id: str) -> tuple[Dataset, Document] | None:
        """The dataset and document of a document id, anywhere in the workspace."""
        for ds in self.datasets.values():
            doc = ds.documents.get(document_id)
            if doc is not None:
                return ds, doc
        return None

    def document_dicts(self, ds: Dataset, now: float) -> list[dict[str, Any]]:
        """Documents of a dataset as list views, oldest first, with their text."""
        return [{**document_view(ds, d, now), "text": d.text, "batch": d.batch} for d in ds.documents.values()]
