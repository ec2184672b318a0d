"""When to repeat a Dify request and how long to wait.

One :class:`RetryPolicy` decides for both the sync hook (through ``tenacity.Retrying``) and the async trigger
client (through ``tenacity.AsyncRetrying``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dify.hooks.operations import ApiRequest

# The exceptions are imported where they are used: this module is imported by ``get_provider_info`` (through
# the connection settings), which Airflow may call while ``airflow_provider_dify.exceptions`` is still being
# imported; a top-level import here would then be circular.


#: With a rate budget, how many times more attempts a call refused by Dify's window gets.
WINDOW_REFUSAL_ATTEMPTS = 4


@dataclass(frozen=True)
class RetryPolicy:
    """
    Which failures are repeated, how often and after how long.

    Repeated: connection errors and timeouts, 5xx, 429 and Dify's rate-limit 403, and the transient 400s
    ("is being indexed", "metadata operation is running"). Never repeated: other 4xx, quota 403s and TLS
    handshake failures. A failure after which the request may have reached the server (a read timeout, a reset
    after sending, a 5xx) is repeated only for requests marked ``idempotent``
    (see :mod:`airflow_provider_dify.hooks.operations`).

    :param max_attempts: attempts in all, the first one included (1 disables retries).
    :param backoff_initial: seconds before the second attempt; doubled for each further attempt.
    :param backoff_max: the longest wait between attempts for errors other than the rate limit.
    :param rate_limit_wait: seconds to wait after a rate-limit answer without ``Retry-After`` when the caller
        does not know the window (see :mod:`airflow_provider_dify.hooks.budget`, which waits for what Dify's
        sliding window needs). Dify's window is 60 seconds, so the default is 60.
    :param rng: source of jitter (injectable for tests).
    """

    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    rate_limit_wait: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_retries: must be 0 or more.")
        if self.backoff_initial < 0 or self.backoff_max < 0 or self.rate_limit_wait < 0:
            raise ValueError("retry waits must not be negative.")

    def should_retry(self, request: ApiRequest, error: BaseException) -> bool:
        """Whether ``error`` from ``request`` may be repeated."""
        from airflow_provider_dify.exceptions import (
            DifyConnectionError,
            DifyRateLimitError,
            DifyResourceBusyError,
            DifyServerError,
            DifyTLSError,
        )

        if isinstance(error, (DifyRateLimitError, DifyResourceBusyError)):
            return True  # refused before the server acted
        if isinstance(error, DifyTLSError):
            return False  # a certificate problem does not go away by repeating
        if isinstance(error, DifyConnectionError):
            return request.idempotent or not error.maybe_delivered
        if isinstance(error, DifyServerError):
            return request.idempotent
        return False

    def wait_seconds(self, error: BaseException | None, attempt: int, *, window_managed: bool = False) -> float:
        """
        Seconds to wait after ``attempt`` failed attempts (1 after the first failure).

        :param window_managed: the caller's rate budget waits for Dify's window before the next rate-limited
            call, so Dify's rate-limit 403 needs no wait of its own here.
        """
        from airflow_provider_dify.exceptions import DifyRateLimitError

        if isinstance(error, DifyRateLimitError) and window_managed and error.status == 403:
            return 0.0
        if isinstance(error, DifyRateLimitError):
            base = error.retry_after if error.retry_after is not None else self.rate_limit_wait
            return base + self.rng.uniform(0, min(5.0, base * 0.1))
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** max(0, attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def tenacity_arguments(
        self,
        request: ApiRequest,
        *,
        sleep: Callable[[float], Any] | None = None,
        before_sleep: Callable[[Any], Any] | None = None,
        window_managed: bool = False,
    ) -> dict[str, Any]:
        """
        Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` applying this policy to ``request``.

        :param window_managed: see :meth:`wait_seconds`.
        """
        import tenacity

        from airflow_provider_dify.exceptions import DifyRateLimitError

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(error, state.attempt_number, window_managed=window_managed)

        def stop(state: tenacity.RetryCallState) -> bool:
            # A 403 of Dify's window, with the budget waiting for room, is the budget's business rather than a
            # failure: such refusals get more attempts (several workers may draw a few while learning shares).
            error = state.outcome.exception() if state.outcome else None
            attempts = self.max_attempts
            if window_managed and isinstance(error, DifyRateLimitError) and error.status == 403:
                attempts = WINDOW_REFUSAL_ATTEMPTS * self.max_attempts
            return state.attempt_number >= attempts

        arguments: dict[str, Any] = {
            "stop": stop,
            "wait": wait,
            "retry": tenacity.retry_if_exception(lambda error: self.should_retry(request, error)),
            "reraise": True,
        }
        if sleep is not None:
            arguments["sleep"] = sleep
        if before_sleep is not None:
            arguments["before_sleep"] = before_sleep
        return arguments
