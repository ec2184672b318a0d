"""When to repeat a Dify request and how long to wait, plus the client-side request throttle.

One :class:`RetryPolicy` decides for both the sync hook (through ``tenacity.Retrying``) and the async trigger
client (through ``tenacity.AsyncRetrying``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dify.hooks.operations import ApiRequest

# The exceptions are imported where they are used: this module is imported by ``get_provider_info`` (through
# the connection settings), which Airflow may call while ``airflow_provider_dify.exceptions`` is still being
# imported; a top-level import here would then be circular.


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
    :param rate_limit_wait: seconds to wait after a rate-limit answer without ``Retry-After``. Dify counts a
        sliding 60-second window per workspace (rejected calls included), so the default is 60.
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

    def wait_seconds(self, error: BaseException | None, attempt: int) -> float:
        """Seconds to wait after ``attempt`` failed attempts (1 after the first failure)."""
        from airflow_provider_dify.exceptions import DifyRateLimitError

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
    ) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` applying this policy to ``request``."""
        import tenacity

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(error, state.attempt_number)

        arguments: dict[str, Any] = {
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": wait,
            "retry": tenacity.retry_if_exception(lambda error: self.should_retry(request, error)),
            "reraise": True,
        }
        if sleep is not None:
            arguments["sleep"] = sleep
        if before_sleep is not None:
            arguments["before_sleep"] = before_sleep
        return arguments


class RequestThrottle:
    """
    A client-side limit of ``per_minute`` requests in any sliding 60-second window, shared by threads.

    Dify Cloud plans allow 10, 100 or 1,000 knowledge requests a minute. Throttling before sending keeps a
    large sync under the limit instead of collecting 403s that each cost a 60-second back-off.

    :param per_minute: the most requests sent in any 60 seconds.
    :param clock: monotonic clock (injectable for tests).
    :param sleep: sleep function (injectable for tests).
    """

    window = 60.0

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("requests_per_minute: must be a positive integer.")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may be sent; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return waited
                delay = self.window - (now - self._sent[0])
            self._sleep(delay)
            waited += delay


_throttles: dict[tuple[str, int], RequestThrottle] = {}
_throttles_lock = threading.Lock()


def shared_throttle(key: str, per_minute: int) -> RequestThrottle:
    """The process-wide throttle for one Dify workspace (``key``), so that every hook using it shares it."""
    with _throttles_lock:
        throttle = _throttles.get((key, per_minute))
        if throttle is None:
            throttle = _throttles[(key, per_minute)] = RequestThrottle(per_minute)
        return throttle
