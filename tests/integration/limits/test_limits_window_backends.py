"""The window math of every store, with a clock the test moves: bursts, refunds, all-or-nothing,
hour and day boundaries, leases that expire, queue order and provider feedback."""

from __future__ import annotations

import random
import uuid
from typing import Any

from erp_agents.limits.backend import Waiter
from erp_agents.limits.tiers import Tier

RPM = Tier("provider:p", "requests", 5, 60.0, "rpm")
TPM = Tier("provider:p", "tokens", 1000, 60.0, "tpm")
SLOT = Tier("provider:p", "concurrency", 1, None, "concurrent")


def waiter(tiers: tuple[Tier, ...], tokens: int = 0, priority: int = 5, arrival: float = 0.0) -> Waiter:
    return Waiter(uuid.uuid4().hex, tiers, tokens, priority, "test", arrival)


def attempt(store: Any, w: Waiter, lease_s: float = 60.0, ttl: float = 10.0, stay: bool = False) -> Any:
    """One try; a refused waiter gives up (leaves the queue) unless it should ``stay``."""
    result = store.try_acquire(w, lease_s=lease_s, waiter_ttl_s=ttl)
    if not result.admitted and not stay:
        store.withdraw([w.id], sorted(w.scopes))
    return result


def test_burst_fills_the_window_then_waits_exactly_for_the_oldest_entry(backend: Any, clock: Any) -> None:
    assert all(attempt(backend, waiter((RPM,))).admitted for _ in range(5))
    refused = attempt(backend, waiter((RPM,)))
    assert not refused.admitted and refused.blocked_by == RPM.key
    assert abs(refused.retry_after_s - 61.0) < 1e-3  # 60 s window + 1 s margin
    clock.advance(30)
    assert attempt(backend, waiter((RPM,))).admitted is False
    clock.advance(30.99)
    assert attempt(backend, waiter((RPM,))).admitted is False
    clock.advance(0.01)
    assert [attempt(backend, waiter((RPM,))).admitted for _ in range(6)] == [True] * 5 + [False]
    assert backend.usage([RPM]) == {RPM.key: 5}


def test_settle_refunds_reserved_tokens_and_release_refunds_everything(backend: Any, clock: Any) -> None:
    first = waiter((RPM, TPM), tokens=600)
    assert attempt(backend, first).admitted
    assert not attempt(backend, waiter((RPM, TPM), tokens=500)).admitted
    backend.settle(first.id, first.tiers, 600, 100)
    assert backend.usage([RPM, TPM]) == {RPM.key: 1, TPM.key: 100}
    second = waiter((RPM, TPM), tokens=500)
    assert attempt(backend, second).admitted
    backend.release(second.id, second.tiers, keep_counts=False)
    assert backend.usage([RPM, TPM]) == {RPM.key: 1, TPM.key: 100}
    third = waiter((RPM, TPM), tokens=300)
    assert attempt(backend, third).admitted
    backend.release(third.id, third.tiers, keep_counts=True)  # sent: the provider may have counted it
    assert backend.usage([RPM, TPM]) == {RPM.key: 2, TPM.key: 400}


def test_settling_many_at_once_counts_as_settling_each(backend: Any, clock: Any) -> None:
    admitted = [waiter((RPM, TPM, SLOT), tokens=300) for _ in range(3)]
    assert attempt(backend, admitted[0]).admitted
    assert not attempt(backend, waiter((RPM, TPM, SLOT), tokens=1)).admitted  # the one slot is taken
    backend.settle_many([(admitted[0].id, admitted[0].tiers, 300, 50)])
    for w in admitted[1:]:
        assert attempt(backend, w).admitted
        backend.settle_many([(w.id, w.tiers, 300, 300)])
    backend.settle_many([("gone", (RPM, TPM, SLOT), 300, 999)])  # a lease no store knows changes nothing
    assert backend.usage([RPM, TPM, SLOT]) == {RPM.key: 3, TPM.key: 650, SLOT.key: 0}


def test_one_batch_of_many_settles_counts_as_settling_each_in_turn(backend: Any, clock: Any) -> None:
    rpm, tpm = Tier("provider:b", "requests", 50, 60.0, "rpm"), Tier("provider:b", "tokens", 10_000, 60.0, "tpm")
    slots = Tier("provider:b", "concurrency", 6, None, "concurrent")
    leases = [waiter((rpm, tpm, slots), tokens=500) for _ in range(6)]
    assert all(attempt(backend, w).admitted for w in leases)
    assert backend.usage([rpm, tpm, slots]) == {rpm.key: 6, tpm.key: 3000, slots.key: 6}
    used = [0, 10, 100, 500, 499, 1]
    backend.settle_many([*((w.id, w.tiers, 500, n) for w, n in zip(leases, used)),
                         ("gone", (rpm, tpm, slots), 500, 999),  # unknown: changes nothing
                         (leases[0].id, leases[0].tiers, 500, 7)])  # settled twice in one batch: the last counts
    assert backend.usage([rpm, tpm, slots]) == {rpm.key: 6, tpm.key: 7 + sum(used[1:]), slots.key: 0}
    clock.advance(61.0)  # every entry leaves the window with exactly what it was settled to
    assert attempt(backend, waiter((rpm, tpm), tokens=10_000)).admitted


def test_all_tiers_or_none(backend: Any, clock: Any) -> None:
    model_rpm = Tier("model:p:m", "requests", 2, 60.0, "rpm")
    assert attempt(backend, waiter((RPM, TPM, model_rpm), tokens=900)).admitted
    refused = attempt(backend, waiter((RPM, TPM, model_rpm), tokens=200))
    assert not refused.admitted and refused.blocked_by == TPM.key
    assert backend.usage([RPM, TPM, model_rpm]) == {RPM.key: 1, TPM.key: 900, model_rpm.key: 1}
    assert attempt(backend, waiter((RPM, model_rpm), tokens=0)).admitted
    refused = attempt(backend, waiter((RPM, model_rpm)))
    assert refused.blocked_by == model_rpm.key
    assert backend.usage([RPM, model_rpm]) == {RPM.key: 2, model_rpm.key: 2}


def test_hour_and_day_boundaries(backend: Any, clock: Any) -> None:
    rph = Tier("provider:h", "requests", 3, 3600.0, "rph")
    tpd = Tier("provider:h", "tokens", 100, 86400.0, "tpd")
    for _ in range(3):
        assert attempt(backend, waiter((rph, tpd), tokens=30)).admitted
    clock.advance(1800)
    assert attempt(backend, waiter((rph,))).blocked_by == rph.key
    clock.advance(1800.5)
    assert not attempt(backend, waiter((rph,))).admitted
    clock.advance(0.5)
    assert attempt(backend, waiter((rph, tpd), tokens=10)).admitted  # the hour has passed, the day has room
    refused = attempt(backend, waiter((tpd,), tokens=20))
    assert refused.blocked_by == tpd.key and abs(refused.retry_after_s - (86401 - 3601)) < 1e-3
    clock.advance(86401 - 3601)
    assert attempt(backend, waiter((tpd,), tokens=90)).admitted
    assert backend.usage([tpd]) == {tpd.key: 100}


def test_concurrency_lease_of_a_dead_holder_expires(backend: Any, clock: Any) -> None:
    held = waiter((SLOT,))
    assert attempt(backend, held, lease_s=5).admitted
    assert attempt(backend, waiter((SLOT,)), lease_s=5).blocked_by == SLOT.key
    backend.renew([held.id], [SLOT], lease_s=5)
    clock.advance(4.9)
    assert not attempt(backend, waiter((SLOT,)), lease_s=5).admitted
    clock.advance(0.2)  # the holder died and stopped renewing
    assert attempt(backend, waiter((SLOT,)), lease_s=5).admitted


def test_waiters_are_served_by_priority_then_arrival(backend: Any, clock: Any) -> None:
    filler = waiter((SLOT,))
    assert attempt(backend, filler).admitted
    low_early = waiter((SLOT,), priority=1, arrival=1.0)
    high_late = waiter((SLOT,), priority=9, arrival=3.0)
    high_early = waiter((SLOT,), priority=9, arrival=2.0)
    for w in (low_early, high_late, high_early):
        assert not attempt(backend, w, stay=True).admitted
    backend.settle(filler.id, filler.tiers, 0, 0)
    assert attempt(backend, low_early, stay=True).blocked_by == "waiter"
    assert attempt(backend, high_late, stay=True).blocked_by == "waiter"
    served = attempt(backend, high_early)
    assert served.admitted
    backend.settle(high_early.id, high_early.tiers, 0, 0)
    assert not attempt(backend, low_early, stay=True).admitted
    assert attempt(backend, high_late).admitted


def test_a_queued_waiter_that_died_stops_blocking(backend: Any, clock: Any) -> None:
    filler = waiter((SLOT,))
    assert attempt(backend, filler).admitted
    ghost = waiter((SLOT,), priority=50)
    backend.register([ghost], waiter_ttl_s=3)
    backend.settle(filler.id, filler.tiers, 0, 0)
    assert attempt(backend, waiter((SLOT,))).blocked_by == "waiter"
    clock.advance(3.01)
    assert attempt(backend, waiter((SLOT,))).admitted
    backend.withdraw([ghost.id], ["provider:p"])


def test_provider_feedback_holds_back_until_its_reset(backend: Any, clock: Any) -> None:
    rpm10 = Tier("provider:f", "requests", 10, 60.0, "rpm")
    assert attempt(backend, waiter((rpm10,))).admitted
    backend.hold(rpm10, used_by_server=8, reset_s=20)  # another client shares the key
    assert backend.usage([rpm10]) == {rpm10.key: 8}
    assert [attempt(backend, waiter((rpm10,))).admitted for _ in range(3)] == [True, True, False]
    clock.advance(20.01)
    assert backend.usage([rpm10]) == {rpm10.key: 3}
    backend.hold(rpm10, used_by_server=2, reset_s=20)  # we already count more: nothing changes
    assert backend.usage([rpm10]) == {rpm10.key: 3}


def test_random_load_never_exceeds_any_window_and_fills_it(backend: Any, clock: Any) -> None:
    rng = random.Random(7)
    rpm = Tier("provider:r", "requests", 20, 60.0, "rpm")
    tpm = Tier("provider:r", "tokens", 2000, 60.0, "tpm")
    admitted: list[tuple[float, int]] = []
    for _ in range(900):
        clock.advance(rng.uniform(0.0, 0.6))
        tokens = rng.randint(10, 300)
        w = waiter((rpm, tpm), tokens=tokens)
        if attempt(backend, w).admitted:
            used = rng.randint(1, tokens)
            backend.settle(w.id, w.tiers, tokens, used)
            admitted.append((clock.now, used))
    assert admitted
    for start, _ in admitted:
        inside = [n for t, n in admitted if start <= t < start + 61.0]
        assert len(inside) <= 20 and sum(inside) <= 2000
    span = admitted[-1][0] - admitted[0][0]
    assert len(admitted) >= 0.9 * 20 * span / 61.0
