"""The workspace's limits: the rate limit's sliding window, the document quota and the sandbox plan."""

from __future__ import annotations

from airflow_provider_dify.testing.errors import forbidden
from airflow_provider_dify.testing.state.core import (
    DOCUMENT_LIMIT_MESSAGE,
    RATE_LIMIT_MESSAGE,
    SANDBOX_MESSAGE,
    StateCore,
)


class WorkspaceLimits(StateCore):
    """The workspace's limits: a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

    def check_rate_limit(self, now: float) -> None:
        """Count one rate-limited request; 403 when the window holds more than the limit."""
        limit = self.config.rate_limit_per_minute
        if limit is None:
            return
        window = self.config.rate_limit_window_seconds
        hits = self.rate_hits
        hits.append(now)
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) > limit:
            raise forbidden(RATE_LIMIT_MESSAGE)

    def check_document_quota(self) -> None:
        """403 when the workspace holds ``document_limit`` documents."""
        limit = self.config.document_limit
        if limit is None:
            return
        total = sum(len(ds.documents) for ds in self.datasets.values())
        if 0 <= limit <= total:
            raise forbidden(DOCUMENT_LIMIT_MESSAGE)

    def check_sandbox(self) -> None:
        """403 on chunk writes when the Sandbox plan is emulated."""
        if self.config.sandbox_plan:
            raise forbidden(SANDBOX_MESSAGE)
