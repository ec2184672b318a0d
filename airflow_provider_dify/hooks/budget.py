"""
Spending a Dify workspace's knowledge rate limit: an adaptive per-process budget and an optional shared one.

Dify counts the rate-limited calls of a workspace in a sliding window (60 s) and refuses (HTTP 403) a call
when the window already holds the plan's limit; refused calls are counted too. Every worker of a deployment
spends the same window, so a client that counts only its own calls collects 403s, and each 403 costs a slot.

:class:`RateBudget` keeps a log of this process's calls and admits a call only while the calls of the last
window stay under its limit:

- A call occupies its place from the moment it is admitted; the place is dated when the answer arrives (the
  server counted the call at some moment before that), so a place reused one window later is already free
  on the server, whatever the latency.
- A 403 means the window is full. The limit then becomes the number of this process's calls the server
  accepted in the window: its share of the workspace's budget. With several workers, the shares of all of
  them add up to the budget, so reusing only one's own places keeps them all out of 403s.
- The next call waits until enough of the process's own calls (the refused ones included) have left the
  window: what the window actually needs, not a fixed minute.
- A process that knows its part of the budget (a shard of a sync: :meth:`RateBudget.part`) keeps to it from
  the start, and never goes above it: the parts of all shards add up to the limit, so shards on machines that
  share nothing draw no 403 from each other.
- A process held back by its limit, below the configured one, tries one call above it ("probe") two windows
  after a 403, timed just before its own oldest call leaves the window (so that a refused probe costs no other
  call a 403). An accepted probe raises the limit by one and the next may follow at once (so the places a
  finished worker leaves are taken up within seconds); a refused one triples the pause before the next.

:class:`MachineRateWindow` shares one sliding window between the processes of one machine (the tasks of a
LocalExecutor, the processes of a Celery worker) through a locked file: exact sharing with no infrastructure,
on by default when the workspace's limit is known. :class:`SharedRateBudget` shares one sliding window between
machines through a store of the ``limits`` library (Redis, the usual Celery broker), for exact sharing across
hosts.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

#: Dify's window, in seconds.
DIFY_WINDOW_SECONDS = 60.0
#: The pause before the first probe above a learnt limit, in windows; a refused probe multiplies it.
PROBE_PAUSE_WINDOWS = 2
PROBE_BACKOFF = 3
#: The longest pause between two probes, in windows.
MAX_PROBE_WINDOWS = 32
#: How long before this process's oldest call leaves the window a probe goes out, at least, in seconds.
PROBE_MARGIN_SECONDS = 0.02
#: How often a call waiting only on calls in flight looks again, in seconds.
IN_FLIGHT_POLL_SECONDS = 0.02


@dataclass
class BudgetSlot:
    """
    One admitted call.

    :param probe: admitted above the limit, to find out whether the workspace has room.
    :param sent_at: when the call may go out (the budget's clock).
    """

    probe: bool = False
    sent_at: float = 0.0


class RateBudget:
    """
    This process's share of one workspace's rate limit, learnt from the 403s it sees; shared by threads.

    :param per_window: the workspace's limit (``requests_per_minute`` of the connection) or ``None`` when it is
        not known (then it is learnt at the first 403).
    :param window: the length of the server's sliding window in seconds (Dify: 60).
    :param clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        per_window: int | None,
        *,
        window: float = DIFY_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_window is not None and per_window < 1:
            raise ValueError("requests_per_minute: must be a positive integer.")
        if window <= 0:
            raise ValueError("rate_limit_window: must be a positive number of seconds.")
        self.configured = per_window
        self.window = window
        self.limit: int | None = per_window
        self.refusals = 0
        self._clock = clock
        self._lock = threading.Lock()
        # (sent at, answered at, refused) of the calls answered in the last window, in the order answered.
        self._done: deque[tuple[float, float, bool]] = deque()
        self._in_flight = 0
        self._last_refusal = -math.inf
        self._latency = 0.0
        self._probing = False
        self._next_probe = 0.0
        self._probe_pause = PROBE_PAUSE_WINDOWS * window
        self._parts: list[int] = []
        self._before_parts: tuple[int | None, float] = (per_window, 0.0)

    @contextmanager
    def part(self, calls: int) -> Iterator[None]:
        """
        Keep this process to ``calls`` calls a window while in the block: its part of the workspace's limit.

        A shard of a sync takes the part of the limit its records are of the whole, so that the shards of one
        sync together keep to the limit on machines that share no window. No probe goes above the part: with
        every place of the window spent by the shards, a refused probe would cost a shard that reuses its own
        place a 403 of its own. Parts of blocks open at once (threads of one process) add up; after the last
        one the limit and the probes are what they were before.

        :param calls: this process's part of the workspace's limit, at least 1.
        """
        if calls < 1:
            raise ValueError("part: a process's part of the rate limit is at least one call a window.")
        with self._lock:
            if not self._parts:
                self._before_parts = (self.limit, self._next_probe)
            self._parts.append(calls)
            total = sum(self._parts)
            self.limit = total if self.configured is None else min(total, self.configured)
            self._next_probe = math.inf
        try:
            yield
        finally:
            with self._lock:
                self._parts.remove(calls)
                if self._parts:
                    self.limit = max(1, (self.limit or calls) - calls)
                else:
                    self.limit, self._next_probe = self._before_parts

    # -- admitting -------------------------------------------------------------------------------------------

    def try_acquire(self) -> tuple[BudgetSlot | None, float]:
        """
        Take a place for one call if one is free now or at a known moment.

        :return: ``(slot, delay)``: send the call after ``delay`` seconds; ``(None, delay)`` when no place can
            be promised yet (look again after ``delay``).
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            used = self._in_flight + len(self._done)
            if self.limit is None or used < self.limit:
                return self._admit(now, 0.0), 0.0
            # Places free up as the oldest answered calls leave the window; the (used - limit + 1)-th one frees
            # the place this call needs. Taking the place now (as in flight) makes the next caller wait for
            # the next one.
            needed = used - self.limit + 1
            free_at = self._done[needed - 1][1] + self.window if needed <= len(self._done) else math.inf
            probe_at = self._probe_time(now)
            if probe_at < free_at:
                if probe_at <= now:
                    self._probing = True
                    return self._admit(now, 0.0, probe=True), 0.0
                return None, min(probe_at - now, IN_FLIGHT_POLL_SECONDS if free_at == math.inf else math.inf)
            if free_at == math.inf:
                return None, IN_FLIGHT_POLL_SECONDS
            delay = max(0.0, free_at - now)
            return self._admit(now, delay), delay

    def acquire(self, sleep: Callable[[float], Any] = time.sleep) -> tuple[BudgetSlot, float]:
        """Block (through ``sleep``) until a call may be sent; return its slot and the seconds waited."""
        waited = 0.0
        while True:
            slot, delay = self.try_acquire()
            if delay > 0:
                sleep(delay)
                waited += delay
            if slot is not None:
                return slot, waited

    def release(self, slot: BudgetSlot, *, refused: bool) -> None:
        """
        Record the answer to an admitted call.

        :param refused: the server refused the call for its rate limit (a Dify 403).
        """
        with self._lock:
            now = self._clock()
            self._in_flight -= 1
            self._done.append((slot.sent_at, now, refused))
            self._latency = (
                max(0.0, now - slot.sent_at)
                if not self._latency
                else (0.8 * self._latency + 0.2 * max(0.0, now - slot.sent_at))
            )
            self._expire(now)
            if slot.probe:
                self._probing = False
            if not refused:
                if slot.sent_at < self._last_refusal and self.limit is not None and not slot.probe:
                    # Sent before the 403 and accepted after it: part of this process's share all along.
                    if self.configured is None or self.limit < self.configured:
                        self.limit += 1
                elif slot.probe and self.limit is not None:
                    self.limit += 1
                    self._next_probe = now  # there was room: look for more at once
                    self._probe_pause = PROBE_PAUSE_WINDOWS * self.window
                return
            self.refusals += 1
            if slot.probe:
                self._probe_pause = min(self._probe_pause * PROBE_BACKOFF, MAX_PROBE_WINDOWS * self.window)
                self._next_probe = now + self._probe_pause
                return
            self._last_refusal = now
            accepted = sum(1 for *_, was_refused in self._done if not was_refused)
            share = max(1, accepted)
            if self.limit is None or share < self.limit:
                log.info("Dify's rate-limit window is full: this worker keeps to %d calls a window", share)
                self.limit = share
            self._next_probe = max(self._next_probe, now + self._probe_pause)

    def seconds_until_free(self) -> float:
        """Seconds until a call could be admitted (0 when it could now)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            used = self._in_flight + len(self._done)
            if self.limit is None or used < self.limit:
                return 0.0
            needed = used - self.limit + 1
            if needed > len(self._done):
                return IN_FLIGHT_POLL_SECONDS
            return max(0.0, self._done[needed - 1][1] + self.window - now)

    # -- internals -------------------------------------------------------------------------------------------

    def _admit(self, now: float, delay: float, *, probe: bool = False) -> BudgetSlot:
        self._in_flight += 1
        return BudgetSlot(probe=probe, sent_at=now + delay)

    def _expire(self, now: float) -> None:
        done = self._done
        while done and now - done[0][1] >= self.window:
            done.popleft()

    def _probe_time(self, now: float) -> float:
        """
        When to send a probe, ``inf`` for none.

        A probe that is refused adds a call to the full window, and the next call to reuse a place is refused
        in its turn, so the probe goes just before this process's own oldest call leaves the window: then the
        process skips reusing that place, and the window is as full as before.
        """
        if (
            self._probing
            or self.limit is None
            or not self._done
            or (self.configured is not None and self.limit >= self.configured)
        ):
            return math.inf
        margin = max(PROBE_MARGIN_SECONDS, 2 * self._latency)
        return max(self._next_probe, self._done[0][0] + self.window - margin)


class SharedRateBudget:
    """
    One sliding window shared by every process through a ``limits`` storage (e.g. ``redis://host:6379/0``).

    The window is lengthened by a small margin: a call is counted by the shared store before it is sent and by
    Dify when it arrives, so a place reused exactly one window later could still be taken on the server.

    :param storage_uri: a ``limits`` storage URI.
    :param per_window: the workspace's limit.
    :param key: the workspace's key (not secret).
    :param window: the server's window in seconds.
    """

    def __init__(self, storage_uri: str, per_window: int, key: str, *, window: float = DIFY_WINDOW_SECONDS) -> None:
        try:
            from limits import RateLimitItemPerSecond
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ValueError(
                "rate_limit_storage needs the 'limits' library: pip install 'airflow-provider-dify[redis]'."
            ) from error
        self.per_window = per_window
        self.key = key
        self.window_seconds = shared_window_seconds(window)
        self._item = RateLimitItemPerSecond(per_window, self.window_seconds)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def acquire(self, sleep: Callable[[float], Any] = time.sleep) -> tuple[str, float]:
        """Block until the shared window has room for one call and count it; return a token and the wait."""
        waited = 0.0
        while not self._limiter.hit(self._item, "dify", self.key):
            reset_at = self._limiter.get_window_stats(self._item, "dify", self.key).reset_time
            delay = min(self.window_seconds, max(IN_FLIGHT_POLL_SECONDS, reset_at - time.time()))
            sleep(delay)
            waited += delay
        return "", waited

    def release(self, token: str) -> None:
        """Nothing to do: the store dated the call when it counted it (hence the lengthened window)."""

    @contextmanager
    def part(self, calls: int, sync: str = "") -> Iterator[None]:
        """Nothing to do: every worker counts its calls in this one window, so no shard needs a part of it."""
        yield


def shared_window_seconds(window: float) -> int:
    """The shared window's length: ``window`` plus a margin for the latency, in whole seconds (``limits``'s)."""
    return math.ceil(window + min(1.0, 0.05 * window))


#: Environment variable naming the directory of the machine-wide windows (default: a private one in the temp dir).
WINDOW_DIRECTORY_VARIABLE = "AIRFLOW_PROVIDER_DIFY_WINDOW_DIR"
#: A call still marked in flight this long after the window it was admitted in is taken as lost (its process
#: died mid-call), in seconds.
STALE_IN_FLIGHT_SECONDS = 600.0


def window_directory() -> str:
    """The directory of the machine-wide windows: ``$AIRFLOW_PROVIDER_DIFY_WINDOW_DIR`` or a private temp one."""
    configured = os.environ.get(WINDOW_DIRECTORY_VARIABLE)
    if configured:
        return configured
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"airflow-provider-dify-{user}")


#: The kinds of line of a machine's window file (``token time kind``, then calls and sync for a part): a call
#: answered at a time, a call in flight since a time, a running shard's part of the limit, and a part whose
#: shard ended at a time.
ANSWERED, IN_FLIGHT, PART, ENDED_PART = "d", "f", "p", "e"
_ENTRY_STATES = frozenset({ANSWERED, IN_FLIGHT, PART, ENDED_PART})


class _Entry(NamedTuple):
    """One line of a machine's window file."""

    token: str
    at: float
    state: str
    calls: int = 0
    sync: str = ""

    @property
    def pid(self) -> str:
        return self.token.split("-", 1)[0]

    def line(self) -> str:
        part = f" {self.calls} {self.sync}" if self.state in (PART, ENDED_PART) else ""
        return f"{self.token} {self.at!r} {self.state}{part}\n"


class MachineRateWindow:
    """
    One sliding window of a workspace shared by every process of this machine, kept in a locked file.

    The file lists the workspace's calls of the last window, each dated when its answer arrived (Dify counted it
    before that, so a place reused one window later is free on the server too) or marked in flight. A call is
    admitted while the file holds fewer than the machine's limit of them; otherwise it waits until the oldest
    answered one leaves the window. The machine's limit is ``per_window``, or, while shards of a sync run here,
    the sum of their parts (:meth:`part`). Calls and parts of a process that died are dropped. Each process
    opens the file itself (after a fork too), so ``flock`` keeps the processes apart; a lock keeps the threads of
    one process apart.

    :param per_window: the workspace's limit.
    :param key: the workspace's key (not secret; it names the file).
    :param window: the server's window in seconds.
    :param directory: where the file lives (default :func:`window_directory`).
    :param clock: a clock shared by the processes of the machine (``time.monotonic`` is, on Linux and macOS).
    """

    def __init__(
        self,
        per_window: int,
        key: str,
        *,
        window: float = DIFY_WINDOW_SECONDS,
        directory: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import fcntl  # noqa: F401 - POSIX only: fail here, where the caller falls back

        self.per_window = per_window
        self.window = window
        directory = directory or window_directory()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, f"{key}.window")
        self._clock = clock
        self._lock = threading.Lock()
        self._file: Any = None
        self._pid = -1

    def acquire(self, sleep: Callable[[float], Any] = time.sleep) -> tuple[str, float]:
        """Block until the machine's window has room for one call and take it; return its token and the wait."""
        waited = 0.0
        while True:
            with self._locked() as entries:
                now = self._clock()
                live = self._live(entries, now)
                parts = [entry.calls for entry in live if entry.state in (PART, ENDED_PART)]
                limit = min(self.per_window, sum(parts)) if parts else self.per_window
                calls = [entry for entry in live if entry.state in (ANSWERED, IN_FLIGHT)]
                if len(calls) < limit:
                    token = f"{os.getpid()}-{next(_tokens)}"
                    live.append(_Entry(token, now, IN_FLIGHT))
                    entries[:] = live
                    return token, waited
                entries[:] = live
                answered = sorted(entry.at for entry in calls if entry.state == ANSWERED)
                needed = len(calls) - limit + 1
                free_at = answered[needed - 1] + self.window if needed <= len(answered) else now
            delay = max(IN_FLIGHT_POLL_SECONDS, free_at - now)
            sleep(delay)
            waited += delay

    def release(self, token: str) -> None:
        """Date the call ``token`` by its answer (now): it leaves the window one window from now."""
        with self._locked() as entries:
            now = self._clock()
            entries[:] = [entry for entry in entries if entry.token != token]
            entries.append(_Entry(token, now, ANSWERED))

    @contextmanager
    def part(self, calls: int, sync: str = "") -> Iterator[None]:
        """
        While in the block, count ``calls`` (a shard's part of the workspace's limit) towards the machine's limit.

        The machine then admits, in a window, the sum of the parts of the shards running here (at most
        ``per_window``): shards spread over machines that share nothing keep, machine by machine, to the parts of
        the shards each runs, and all shards of a sync on this machine share the whole limit exactly. The shards
        of one machine take its places as they come, so they do not end together: the part of a shard that
        ended still counts while a shard of the same sync runs here (its places stay with the sync, whose parts
        add up to the limit), and for one window at least (while its calls leave the window).

        :param calls: the shard's part, at least 1.
        :param sync: what the shards of one sync share (and no other sync does), without spaces.
        """
        if calls < 1:
            raise ValueError("part: a shard's part of the rate limit is at least one call a window.")
        token = f"{os.getpid()}-{next(_tokens)}"
        with self._locked() as entries:
            entries.append(_Entry(token, 0.0, PART, calls, sync))
        try:
            yield
        finally:
            with self._locked() as entries:
                entries[:] = [entry for entry in entries if entry.token != token]
                entries.append(_Entry(token, self._clock(), ENDED_PART, calls, sync))

    def _live(self, entries: list[_Entry], now: float) -> list[_Entry]:
        """The entries that still count: calls and ended parts of the last window, and the parts and calls in
        flight of live processes."""
        parts = [entry for entry in entries if entry.state == PART and _process_alive(entry.pid)]
        running = {entry.sync for entry in parts}
        live = []
        for entry in entries:
            if entry.state == ANSWERED:
                if now - entry.at < self.window:
                    live.append(entry)
            elif entry.state == ENDED_PART:
                if now - entry.at < self.window or entry.sync in running:
                    live.append(entry)
            elif entry.state == PART:
                if entry in parts:
                    live.append(entry)
            elif now - entry.at < self.window + STALE_IN_FLIGHT_SECONDS and _process_alive(entry.pid):
                live.append(entry)
        return live

    def _open(self) -> Any:
        if self._file is None or self._pid != os.getpid():
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._file = os.fdopen(descriptor, "r+", encoding="ascii")
            self._pid = os.getpid()
        return self._file

    @contextmanager
    def _locked(self) -> Iterator[list[_Entry]]:
        """The file's entries, read under an exclusive lock and written back when the block ends without error."""
        import fcntl

        with self._lock:
            handle = self._open()
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                entries = []
                for line in handle.read().splitlines():
                    try:
                        token, at, state, *part = line.split(" ")
                        if state in _ENTRY_STATES:
                            calls, sync = (int(part[0]), part[1]) if state in (PART, ENDED_PART) else (0, "")
                            entries.append(_Entry(token, float(at), state, calls, sync))
                    except (ValueError, IndexError):  # a line cut short by a process killed while writing
                        continue
                yield entries
                handle.seek(0)
                handle.truncate()
                handle.write("".join(entry.line() for entry in entries))
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_tokens = itertools.count(1)


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


#: A window shared between processes: ``acquire`` blocks until it has room and returns a token for ``release``.
SharedWindow = MachineRateWindow | SharedRateBudget

_budgets: dict[tuple[str, int | None, float], RateBudget] = {}
_shared: dict[tuple[str, str, int, float], SharedRateBudget] = {}
_machine: dict[tuple[str, str, int, float], MachineRateWindow] = {}
_budgets_lock = threading.Lock()


def workspace_budget(key: str, per_window: int | None, window: float = DIFY_WINDOW_SECONDS) -> RateBudget:
    """The process-wide budget of one workspace (``key``), so that every hook of the process shares it."""
    with _budgets_lock:
        budget = _budgets.get((key, per_window, window))
        if budget is None:
            budget = _budgets[(key, per_window, window)] = RateBudget(per_window, window=window)
        return budget


def shared_budget(storage_uri: str, per_window: int, key: str, window: float = DIFY_WINDOW_SECONDS) -> SharedRateBudget:
    """The process's client of the shared window of one workspace in ``storage_uri``."""
    with _budgets_lock:
        budget = _shared.get((storage_uri, key, per_window, window))
        if budget is None:
            budget = _shared[(storage_uri, key, per_window, window)] = SharedRateBudget(
                storage_uri, per_window, key, window=window
            )
        return budget


def machine_window(per_window: int, key: str, window: float = DIFY_WINDOW_SECONDS) -> MachineRateWindow | None:
    """The process's client of this machine's window of one workspace; ``None`` where files cannot be locked."""
    directory = window_directory()
    with _budgets_lock:
        found = _machine.get((directory, key, per_window, window))
        if found is None:
            try:
                found = _machine[(directory, key, per_window, window)] = MachineRateWindow(
                    per_window, key, window=window, directory=directory
                )
            except (ImportError, OSError) as error:
                log.warning("No machine-wide rate window (%s); this process keeps its own budget only", error)
                return None
        return found
