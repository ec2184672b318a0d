"""Run many calls on a thread pool while only a bounded window of them is queued at a time.

``ThreadPoolExecutor.submit`` for every write at once keeps one future (a condition, locks, a waiter list:
about 1 KB) per write until the last one is done; 100,000 documents would hold 100 MB of futures.
:func:`completed_in_window` submits at most ``window`` calls ahead and yields each as it finishes, so what a
sync keeps per record is only what it reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any, TypeVar

Item = TypeVar("Item")

#: Calls queued ahead per worker thread: enough to keep every worker busy while results are handled.
AHEAD_PER_WORKER = 4


def completed_in_window(
    pool: Executor, call: Callable[[Item], Any], items: Iterable[Item], *, window: int
) -> Iterator[tuple[Item, Future[Any]]]:
    """
    Submit ``call(item)`` for each of ``items``, at most ``window`` not yet handled at a time; yield
    ``(item, future)`` as each finishes (in completion order).

    Closing the iterator early (an exception in the loop that consumes it) cancels the calls not started yet.

    :param pool: the executor running the calls.
    :param call: the function called with each item.
    :param items: the items (read lazily, as room in the window frees up).
    :param window: how many calls may be submitted and not yet yielded (at least 1).
    """
    pending: dict[Future[Any], Item] = {}
    source = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < max(1, window):
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(call, item)] = item
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future
    finally:
        for future in pending:
            future.cancel()
