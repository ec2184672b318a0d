"""The rate budget on a fake clock: places in the window, what a 403 teaches, probes, and the connection extras."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dify.hooks.budget import PROBE_MARGIN_SECONDS, RateBudget, workspace_budget
from airflow_provider_dify.hooks.connection import DifyConnectionSettings
from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import BASE_URL, DATASET_ID, FakeClock, dify_error_body, set_dify_connection

RATE_LIMIT = "Sorry, you have reached the knowledge base request rate limit of your subscription."
RETRIEVE_URL = f"{BASE_URL}/datasets/{DATASET_ID}/retrieve"


def _call(budget: RateBudget, clock: FakeClock, *, refused: bool = False, latency: float = 0.0) -> float:
    """One admitted call answered ``latency`` seconds after it was sent; return the seconds it waited."""
    slot, waited = budget.acquire(clock.sleep)
    clock.now += latency
    budget.release(slot, refused=refused)
    return waited


def test_a_window_at_once_then_places_free_up_a_window_after_each_answer() -> None:
    clock = FakeClock()
    budget = RateBudget(3, window=60, clock=clock)
    assert [_call(budget, clock, latency=1.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # answered at 1001, 1002, 1003
    # The first place is free a window after its answer arrived (not after it was sent): 1061.
    assert _call(budget, clock) == pytest.approx(58.0)
    assert clock.now == pytest.approx(1061.0)
    assert budget.refusals == 0 and budget.limit == 3


def test_threads_waiting_at_once_take_successive_places() -> None:
    clock = FakeClock()
    budget = RateBudget(2, window=10, clock=clock)
    for _ in range(2):
        _call(budget, clock, latency=1.0)  # answered at 1001 and 1002
    first, first_delay = budget.try_acquire()
    second, second_delay = budget.try_acquire()
    assert first is not None and second is not None
    assert (first_delay, second_delay) == (pytest.approx(9.0), pytest.approx(10.0))


def test_a_403_makes_the_accepted_calls_the_share_and_waits_for_the_refused_ones_to_leave() -> None:
    clock = FakeClock()
    budget = RateBudget(10, window=60, clock=clock)
    for _ in range(4):  # accepted at 1000..1003 (another worker spends the rest of the window)
        _call(budget, clock, latency=1.0)
    _call(budget, clock, refused=True)  # at 1004
    assert budget.limit == 4 and budget.refusals == 1
    # Five own calls in the window (the refused one counts on the server too): two must leave, the second at 1062.
    assert budget.seconds_until_free() == pytest.approx(58.0)
    assert _call(budget, clock) == pytest.approx(58.0)


def test_an_unknown_limit_is_learnt_at_the_first_403() -> None:
    clock = FakeClock()
    budget = RateBudget(None, window=60, clock=clock)
    for _ in range(7):
        _call(budget, clock)
    assert budget.limit is None
    _call(budget, clock, refused=True)
    assert budget.limit == 7


def test_probes_above_a_learnt_share_raise_it_while_accepted_and_back_off_when_refused() -> None:
    clock = FakeClock()
    budget = RateBudget(10, window=60, clock=clock)
    for _ in range(3):
        _call(budget, clock)
    _call(budget, clock, refused=True)
    assert budget.limit == 3
    clock.now += 120  # two windows after the 403 the share is used up again
    assert [_call(budget, clock) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Held back by its share: one call above it, just before its own oldest call leaves the window (1180).
    slot, delay = budget.try_acquire()
    assert slot is None and delay == pytest.approx(60 - PROBE_MARGIN_SECONDS)
    clock.now += delay
    probe, delay = budget.try_acquire()
    assert probe is not None and probe.probe and delay == 0.0
    other, delay = budget.try_acquire()  # one probe at a time: the next caller waits for a place
    assert other is not None and not other.probe and delay == pytest.approx(PROBE_MARGIN_SECONDS)
    budget.release(probe, refused=False)
    assert budget.limit == 4
    budget.release(other, refused=False)
    again, _ = budget.try_acquire()  # room was found: the next probe follows at once
    assert again is not None and again.probe
    budget.release(again, refused=True)
    assert budget.limit == 4  # a refused probe keeps the share; the pause before the next one is tripled
    assert budget._next_probe == pytest.approx(clock.now + 3 * 120)


def test_the_budget_never_goes_above_the_configured_limit() -> None:
    clock = FakeClock()
    budget = RateBudget(2, window=60, clock=clock)
    _call(budget, clock)
    _call(budget, clock, refused=True)
    assert budget.limit == 1
    clock.now += 120
    _call(budget, clock)
    clock.now += 60 - PROBE_MARGIN_SECONDS
    probe, _ = budget.try_acquire()
    assert probe is not None and probe.probe
    budget.release(probe, refused=False)
    assert budget.limit == 2
    slot, delay = budget.try_acquire()
    assert slot is not None and not slot.probe and delay > 0  # at the configured limit: wait, never probe


def test_one_budget_per_workspace_limit_and_window() -> None:
    assert workspace_budget("w1", 10) is workspace_budget("w1", 10)
    assert workspace_budget("w1", 10) is not workspace_budget("w2", 10)
    assert workspace_budget("w1", 10) is not workspace_budget("w1", 10, 6.0)


def test_the_hook_spends_the_budget_only_on_rate_limited_routes(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any
) -> None:
    # This process's own budget alone (the machine's window is tested in test_machine_window.py).
    set_dify_connection(monkeypatch, extra={"requests_per_minute": 2, "rate_limit_storage": "process"})
    hook = DifyHook()
    hook.sleep = (sleeps := []).append
    requests_mock.get(f"{BASE_URL}/datasets/{DATASET_ID}", json={"id": DATASET_ID})
    requests_mock.post(RETRIEVE_URL, json={"query": {"content": "q"}, "records": []})
    for _ in range(5):
        hook.get_dataset(DATASET_ID)  # reads are not under Dify's knowledge rate limit
    assert sleeps == []
    for _ in range(3):
        hook.retrieve(DATASET_ID, "q")
    assert len(sleeps) == 1 and 59 < sleeps[0] <= 60
    assert hook.rate_budget is workspace_budget(hook.settings.workspace_key, 2)
    assert hook.settings.api_key not in hook.settings.workspace_key


def test_the_hook_learns_its_share_from_a_403(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    set_dify_connection(monkeypatch)
    hook = DifyHook()
    hook.sleep = (sleeps := []).append
    limited = {"status_code": 403, "content": dify_error_body(403, "forbidden", RATE_LIMIT)}
    ok = {"json": {"query": {"content": "q"}, "records": []}}
    requests_mock.post(RETRIEVE_URL, [ok, ok, limited, ok])
    hook.retrieve(DATASET_ID, "q")
    hook.retrieve(DATASET_ID, "q")
    hook.retrieve(DATASET_ID, "q")  # refused once, then sent when two of its three calls left the window
    assert hook.rate_budget.limit == 2
    assert len(sleeps) == 1 and 59 < sleeps[0] <= 60
    assert requests_mock.call_count == 4


def test_rate_limit_extras() -> None:
    settings = DifyConnectionSettings.from_fields(
        host="dify.local",
        password="dataset-secret",
        extra={"requests_per_minute": 100, "rate_limit_window": "6", "rate_limit_storage": "redis://:pw@r:6379/0"},
    )
    assert (settings.requests_per_minute, settings.rate_limit_window) == (100, 6.0)
    assert settings.rate_limit_storage == "redis://:pw@r:6379/0"
    assert "pw" not in repr(settings)
    assert DifyConnectionSettings.from_fields(host="dify.local", password="k", extra={}).rate_limit_storage is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"requests_per_minute": 10, "rate_limit_storage": "localhost"}, "storage URI"),
        ({"rate_limit_storage": "redis://r:6379/0"}, "needs 'requests_per_minute'"),
        ({"rate_limit_window": 0}, "'rate_limit_window' must be at least"),
    ],
)
def test_rate_limit_extras_are_checked(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DifyConnectionSettings.from_fields(host="dify.local", password="k", extra=extra)


def test_a_part_caps_the_budget_without_probes_and_ends_as_it_began() -> None:
    clock = FakeClock()
    budget = RateBudget(10, window=60, clock=clock)
    with budget.part(3):
        assert budget.limit == 3
        assert [_call(budget, clock) for _ in range(3)] == [0.0, 0.0, 0.0]
        clock.now += 600  # long after any probe pause: still no call above the part
        for _ in range(3):
            _call(budget, clock)
        slot, delay = budget.try_acquire()
        assert slot is not None and not slot.probe and delay == pytest.approx(60.0)
        budget.release(slot, refused=False)
    assert budget.limit == 10 and budget.refusals == 0


def test_parts_open_at_once_add_up() -> None:
    budget = RateBudget(10, window=60, clock=FakeClock())
    with budget.part(3):
        with budget.part(4):
            assert budget.limit == 7
        assert budget.limit == 3
    assert budget.limit == 10
    with budget.part(8), budget.part(8):
        assert budget.limit == 10  # never above the configured limit
    with pytest.raises(ValueError, match="at least one call"), budget.part(0):
        pass
