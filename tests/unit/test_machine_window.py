"""The machine-wide rate window: one sliding window in a locked file, shared by the processes of one machine."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.hooks.budget import MachineRateWindow, machine_window
from airflow_provider_dify.hooks.connection import DifyConnectionSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _window(tmp_path: Path, clock: FakeClock, per_window: int = 3, window: float = 10.0) -> MachineRateWindow:
    return MachineRateWindow(per_window, "workspace", window=window, directory=str(tmp_path), clock=clock)


def test_a_window_admits_its_limit_then_waits_for_the_oldest_answer_to_leave(tmp_path: Path) -> None:
    clock = FakeClock()
    window = _window(tmp_path, clock)
    tokens = []
    for _ in range(3):
        token, waited = window.acquire(clock.sleep)
        assert waited == 0.0
        tokens.append(token)
        clock.now += 1.0
        window.release(token)  # answered at 1001, 1002, 1003
    token, waited = window.acquire(clock.sleep)
    assert clock.now == pytest.approx(1011.0)  # the first answer (1001) left the 10 s window
    assert waited == pytest.approx(8.0)


def test_two_clients_of_one_file_share_the_window_and_other_workspaces_do_not(tmp_path: Path) -> None:
    clock = FakeClock()
    first, second = _window(tmp_path, clock), _window(tmp_path, clock)  # two opens: as two processes would
    other = MachineRateWindow(3, "another", window=10.0, directory=str(tmp_path), clock=clock)
    for client in (first, second, first):
        client.release(client.acquire(clock.sleep)[0])
    assert other.acquire(clock.sleep)[1] == 0.0
    assert second.acquire(clock.sleep)[1] == pytest.approx(10.0)


def test_calls_in_flight_hold_their_place_until_answered(tmp_path: Path) -> None:
    clock = FakeClock()
    window = _window(tmp_path, clock, per_window=1)
    token, _ = window.acquire(clock.sleep)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds
        if len(waits) == 3:
            window.release(token)  # the answer arrives while the next caller waits

    window.acquire(sleep)
    answered = 1000.0 + sum(waits[:3])
    assert waits[:3] == [pytest.approx(0.02)] * 3  # polled while the call was in flight
    assert clock.now == pytest.approx(answered + 10.0)  # then a whole window after its answer


def test_calls_of_a_dead_process_and_torn_lines_are_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    window = _window(tmp_path, clock, per_window=1)
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    Path(window.path).write_text(f"{dead}-1 {clock.now!r} f\n{os.getpid()}-9 10")
    token, waited = window.acquire(clock.sleep)
    assert waited == 0.0
    assert Path(window.path).read_text().splitlines() == [f"{token} {clock.now!r} f"]


def test_threads_of_one_process_never_exceed_the_window(tmp_path: Path) -> None:
    import time

    window = MachineRateWindow(5, "threads", window=0.5, directory=str(tmp_path))
    admitted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            token, _ = window.acquire()
            with lock:
                admitted.append(time.monotonic())
            window.release(token)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(worker) for _ in range(4)]:
            future.result(timeout=30)
    assert len(admitted) == 20
    admitted.sort()
    # No 0.5 s span holds more than 5 admissions.
    assert all(admitted[i + 5] - admitted[i] >= 0.5 for i in range(len(admitted) - 5))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"requests_per_minute": 10}, "machine"),
        ({"requests_per_minute": 10, "rate_limit_storage": "machine"}, "machine"),
        ({"requests_per_minute": 10, "rate_limit_storage": "process"}, "process"),
        ({"rate_limit_storage": "process"}, None),
        ({}, None),
    ],
)
def test_the_window_is_shared_by_the_machine_by_default(extra: dict[str, Any], expected: str | None) -> None:
    settings = DifyConnectionSettings.from_fields(host="dify.local", password="k", extra=extra)
    assert settings.rate_limit_storage == expected


def test_a_machine_window_needs_the_limit() -> None:
    with pytest.raises(ValueError, match="needs 'requests_per_minute'"):
        DifyConnectionSettings.from_fields(host="dify.local", password="k", extra={"rate_limit_storage": "machine"})


def test_the_process_has_one_client_per_window_in_a_private_directory(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_PROVIDER_DIFY_WINDOW_DIR", str(tmp_path / "windows"))
    client = machine_window(10, "workspace", 60.0)
    assert client is not None and client is machine_window(10, "workspace", 60.0)
    assert Path(client.path).parent == tmp_path / "windows"
    assert (tmp_path / "windows").stat().st_mode & 0o777 == 0o700


def _no_wait(seconds: float) -> None:
    raise TimeoutError(f"would wait {seconds:.1f} s")


def _take(window: MachineRateWindow) -> int:
    """Take (and answer at once) every place the window has now; return how many."""
    taken = 0
    while True:
        try:
            token, _ = window.acquire(_no_wait)
        except TimeoutError:
            return taken
        window.release(token)
        taken += 1


def test_the_parts_of_the_shards_running_here_are_the_machines_limit(tmp_path: Path) -> None:
    clock = FakeClock()
    first, second = _window(tmp_path, clock, per_window=10), _window(tmp_path, clock, per_window=10)
    with second.part(3, "sync"):
        with first.part(2, "sync"), first.part(1, "other"):
            # Three shards on this machine, two of one sync: 2 + 3 + 1 places a window, whoever takes them.
            assert _take(first) + _take(second) == 6
            clock.now += 4.0
        # The first shard of the sync ended: its part stays with the sync while the second shard runs; the
        # other sync's part counts only while its calls leave the window.
        clock.now += 6.0
        assert _take(second) == 6
        clock.now += 10.0
        assert _take(second) == 5
    clock.now += 10.0
    assert _take(first) == 10  # no shard here: the machine's whole limit


def test_a_part_of_a_dead_process_is_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    window = _window(tmp_path, clock, per_window=10)
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    Path(window.path).write_text(f"{dead}-1 0.0 p 2 a\n{os.getpid()}-7 {clock.now - 1.0!r} e 4 b\n{dead}-2 0.0 p")
    assert _take(window) == 4  # the ended part (4) counts, the dead process's running one does not
