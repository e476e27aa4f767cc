"""The cost ledger: reserve the worst case before a request, settle the real cost after it.

Every operation is one SQL transaction that locks the accounts it touches in key order (PostgreSQL
row locks; SQLite serializes with BEGIN IMMEDIATE), so concurrent triggerers and workers cannot
overrun a budget and cannot deadlock each other. A request's ``CallKey`` is the primary key of its
row: reserving or settling it twice changes nothing. A reservation whose holder died expires after
``reservation_ttl_s`` and its money returns to the accounts.

A request that fits an account once in-flight reservations settle waits for them (the budget is
not left idle because of worst cases); a request that cannot fit even then fails at once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity import Retrying

from erp_agents.costs.ledger_report import charges_of, spend_of
from erp_agents.batching import Coalescer
from erp_agents.costs.ledger_tables import accounts as accounts_t
from erp_agents.costs.ledger_tables import calls as calls_t
from erp_agents.costs.ledger_tables import metadata
from erp_agents.costs.ledger_types import (
    Account,
    AccountState,
    BudgetExceededError,
    CallKey,
    Charge,
    ChargeDetail,
    GovernanceStoreUnavailable,
    Reservation,
    SpendReport,
    budget_exceeded,
)
from erp_agents.store import engine_for

log = logging.getLogger(__name__)

__all__ = ["Ledger", "BudgetExceededError", "GovernanceStoreUnavailable"]

T = TypeVar("T")
_EXPIRY_EVERY_S = 1.0
_EXPIRY_BATCH = 200
_CREATE_LOCK_ID = 0x45525F4C  # advisory lock id that serializes CREATE TABLE across processes
_created: set[str] = set()


class _Blocked(Exception):
    """Fits once in-flight reservations settle: worth waiting for."""

    def __init__(self, account: str, refusal: BudgetExceededError) -> None:
        self.account = account
        self.refusal = refusal


@dataclass
class _Balance:
    """An account's row as a batch of reservations sees it, its own holds included."""

    budget: int
    spent: int
    reserved: int


class _Waiters:
    """One event loop's waiting requests: a line per blocking account, and a wake-up on every settle."""

    def __init__(self) -> None:
        self._lines: dict[str, asyncio.Lock] = {}
        self._changed = asyncio.Event()

    def line(self, account: str) -> asyncio.Lock:
        return self._lines.setdefault(account, asyncio.Lock())

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)


class Ledger:
    """Budgets in SQL; sync SQL runs in the ledger's own threads so an event loop never blocks."""

    def __init__(
        self,
        engine_or_url: Engine | str,
        *,
        reservation_ttl_s: float = 900.0,
        wait_for_in_flight_s: float = 120.0,
        threads: int = 8,
    ) -> None:
        self.engine = engine_for(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        self.reservation_ttl_s = reservation_ttl_s
        self.wait_for_in_flight_s = wait_for_in_flight_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="erp-ledger")
        self._known_accounts: set[str] = set()
        self._next_expiry = 0.0
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiters] = weakref.WeakKeyDictionary()
        self._background: set[asyncio.Task[None]] = set()
        # Requests that start or finish together reserve or settle in one transaction each: their
        # accounts locked once, one commit (the run's account is the row every agent of a run locks).
        self._reserves: Coalescer[tuple[CallKey, tuple[Account, ...], int], Reservation] = Coalescer(
            lambda batch: self._run(lambda: self._reserve_all(batch)), executor=self._executor)
        self._settles: Coalescer[tuple[Reservation, int, ChargeDetail], None] = Coalescer(
            lambda batch: self._run(lambda: self._settle_all(batch)), executor=self._executor)
        self._run(self._create_tables)

    # ---- async API -------------------------------------------------------------------------------

    async def reserve(
        self, key: CallKey, accounts: Sequence[Account], amount_micros: int, *, wait_s: float | None = None
    ) -> Reservation:
        """Hold ``amount_micros`` on every account or on none; raises BudgetExceededError.

        Blocked only by in-flight reservations, it waits up to ``wait_s`` in line with this process's
        other waiters on the same account (first come, first served; one of them polls the store)."""
        if amount_micros < 0:
            raise ValueError("a reservation cannot be negative")
        deadline = time.monotonic() + (self.wait_for_in_flight_s if wait_s is None else wait_s)
        attempt = functools.partial(self._reserves.submit, (key, tuple(accounts), amount_micros),
                                    abandoned=self._release_abandoned)
        try:
            return await attempt()
        except _Blocked as blocked:
            if time.monotonic() >= deadline:
                raise blocked.refusal from None
            line = self._waiters().line(blocked.account)
        async with line:
            pause = 0.01
            while True:
                await self._waiters().wait(min(pause, max(0.0, deadline - time.monotonic())))
                try:
                    return await attempt()
                except _Blocked as blocked:
                    if time.monotonic() >= deadline:
                        raise blocked.refusal from None
                pause = min(pause * 2, 0.5)

    async def settle(self, reservation: Reservation, actual_micros: int, detail: ChargeDetail) -> None:
        """Charge the real cost and free the rest; a second settle of the same key does nothing."""
        await self._settles.submit((reservation, actual_micros, detail))
        self._notify()

    async def release(self, reservation: Reservation) -> None:
        """The request failed before costing anything: free its reservation."""
        await self._in_thread(self._release_sync, reservation)
        self._notify()

    def _release_abandoned(self, reservation: Reservation) -> None:
        """A reserve whose caller was cancelled while its batch was in the store landed anyway: free
        it now instead of holding the budget until the reservation expires. A key an earlier
        execution holds (``existing``) is that execution's, and stays."""
        if reservation.existing:
            return
        task = asyncio.get_running_loop().create_task(self.release(reservation), name="erp-ledger-release")
        self._background.add(task)
        task.add_done_callback(self._release_done)

    def _release_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("ledger: an abandoned reservation stays held until it expires: %s", task.exception())

    # ---- sync API (reports, CLI) -----------------------------------------------------------------

    def spend(self, *, dag_id: str | None = None, run_id: str | None = None, since: datetime | None = None) -> SpendReport:
        return self._run(lambda: spend_of(self.engine, dag_id=dag_id, run_id=run_id, since=since))

    def charges(self, dag_id: str, run_id: str) -> list[Charge]:
        return self._run(lambda: charges_of(self.engine, dag_id, run_id))

    def read(self, query: Callable[[Engine], T]) -> T:
        """Run a read-only ``query`` on the ledger's engine; an unreachable store raises GovernanceStoreUnavailable."""
        return self._run(lambda: query(self.engine))

    def account_state(self, key: str) -> AccountState | None:
        def read() -> AccountState | None:
            with self._connect() as conn:
                row = conn.execute(select(accounts_t).where(accounts_t.c.key == key)).first()
            return None if row is None else _state(row)

        return self._run(read)

    def expire_now(self) -> int:
        """Release every reservation past its expiry; returns how many."""
        return self._run(lambda: self._expire(time.time()))

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # ---- transactions ----------------------------------------------------------------------------

    def _reserve_all(self, asks: Sequence[tuple[CallKey, tuple[Account, ...], int]]) -> list[Reservation | Exception]:
        """Each ask's reservation, or its refusal (``BudgetExceededError``) or ``_Blocked``, in order."""
        now = time.time()
        if now >= self._next_expiry:
            self._expire(now)
        outcomes = self._reserve_batch(asks, now)
        refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, (BudgetExceededError, _Blocked))]
        if refused and self._expire(now):  # only a released expired hold can change those answers now
            for i, outcome in zip(refused, self._reserve_batch([asks[i] for i in refused], now)):
                outcomes[i] = outcome
        return outcomes

    def _reserve_batch(self, asks: Sequence[tuple[CallKey, tuple[Account, ...], int]],
                       now: float) -> list[Reservation | Exception]:
        """One transaction for many asks: the accounts they share are locked once, in key order, then
        their calls in one query, and each ask sees the holds of the asks before it. The new holds are
        written in one batch (a batch of 256 had been a locking SELECT and an INSERT per call, one
        round trip each, while the run's account row stayed locked)."""
        self._ensure_accounts(tuple({a.key: a for _, accounts, _ in asks for a in accounts}.values()))
        keys = sorted({a.key for _, accounts, _ in asks for a in accounts})
        with self._begin() as conn:
            rows = {row.key: _Balance(row.budget_micros, row.spent_micros, row.reserved_micros)
                    for row in _lock_accounts(conn, keys)}
            held_before = {k: balance.reserved for k, balance in rows.items()}
            calls: dict[str, Any] = dict(_lock_calls(conn, sorted({key.text() for key, _, _ in asks})))
            writes = _HoldWrites()
            outcomes = [self._reserve_in(conn, key, accounts, amount, now, rows, calls, writes)
                        for key, accounts, amount in asks]
            writes.apply(conn)
            for k in keys:
                if rows[k].reserved != held_before[k]:
                    conn.execute(update(accounts_t).where(accounts_t.c.key == k).values(reserved_micros=rows[k].reserved))
        return outcomes

    def _reserve_in(self, conn: Connection, key: CallKey, accounts: tuple[Account, ...], amount: int, now: float,
                    balances: dict[str, _Balance], calls: dict[str, Any], writes: _HoldWrites) -> Reservation | Exception:
        call = calls.get(key.text())
        if call is not None and call.state in ("held", "settled"):
            return _reservation(key, call)
        budgets = {a.key: a.budget_micros for a in accounts}
        keys = sorted(budgets)
        blocked: _Blocked | None = None
        for k in keys:
            balance, budget = balances[k], budgets[k]
            if balance.budget != budget:
                conn.execute(update(accounts_t).where(accounts_t.c.key == k).values(budget_micros=budget))
                balance.budget = budget
            if balance.spent + balance.reserved + amount <= budget:
                continue
            refusal = budget_exceeded(k, budget, balance.spent, balance.reserved, amount)
            if balance.spent + amount > budget:
                return refusal
            blocked = blocked or _Blocked(k, refusal)
        if blocked is not None:
            return blocked
        for k in keys:
            balances[k].reserved += amount
        values = dict(
            state="held", accounts=json.dumps(keys), reserved_micros=amount, holder=self.holder,
            created_at=now, expires_at=now + self.reservation_ttl_s,
        )
        writes.hold(key, values, existing=call is not None)
        calls[key.text()] = SimpleNamespace(**values)  # a second ask for this call in the batch finds it held
        return Reservation(key, tuple(keys), amount, now + self.reservation_ttl_s)

    def _settle_all(self, settles: Sequence[tuple[Reservation, int, ChargeDetail]]) -> None:
        """Charge real costs and free the rest, for many calls in one transaction; a call already
        settled is left as it is (a second settle of the same key does nothing).

        The batch's calls are locked in one query and each account is updated once with the batch's
        sums: every agent of a run charges the run's account, and one UPDATE of that row per call
        (hundreds per batch in a fan-out) made the batch, and every request waiting for it, as slow as
        the row's lock allowed."""
        now = time.time()
        with self._begin() as conn:
            if conn.dialect.name == "postgresql":
                # A charge is money the provider has billed: its commit waits for the WAL flush even on
                # a server whose default is not to (the embedded one, tuned for Airflow's own writes).
                conn.exec_driver_sql("SET LOCAL synchronous_commit = on")
            _lock_accounts(conn, sorted({k for reservation, _, _ in settles for k in reservation.accounts}))
            calls = _lock_calls(conn, sorted({reservation.key.text() for reservation, _, _ in settles}))
            spent: Counter[str] = Counter()
            freed: Counter[str] = Counter()
            changed: list[dict[str, Any]] = []
            added: list[dict[str, Any]] = []
            charged: set[str] = set()  # a second settle of the same key in this batch does nothing
            for reservation, actual, detail in settles:
                call_key = reservation.key.text()
                call = calls.get(call_key)
                if call_key in charged or (call is not None and call.state == "settled"):
                    continue
                charged.add(call_key)
                held = call.reserved_micros if call is not None and call.state == "held" else 0
                for key in json.loads(call.accounts) if call is not None else reservation.accounts:
                    spent[key] += actual
                    freed[key] += held
                values = _charge_columns(actual, detail, now)
                if call is None:  # reserved elsewhere and lost, or never reserved: the cost still counts
                    added.append(dict(
                        call_key=call_key, **_key_columns(reservation.key),
                        accounts=json.dumps(sorted(reservation.accounts)), reserved_micros=0,
                        holder=self.holder, created_at=now, expires_at=now, **values,
                    ))
                else:
                    changed.append({_KEY_PARAM: call_key, **values})
            for key in sorted(spent):
                conn.execute(
                    update(accounts_t)
                    .where(accounts_t.c.key == key)
                    .values(
                        spent_micros=accounts_t.c.spent_micros + spent[key],
                        reserved_micros=accounts_t.c.reserved_micros - freed[key],
                    )
                )
            if added:
                conn.execute(calls_t.insert(), added)
            _update_calls(conn, changed)

    def _release_sync(self, reservation: Reservation) -> None:
        with self._begin() as conn:
            _lock_accounts(conn, sorted(reservation.accounts))
            call = _lock_call(conn, reservation.key)
            if call is None or call.state != "held":
                return
            _free(conn, json.loads(call.accounts), call.reserved_micros)
            conn.execute(update(calls_t).where(calls_t.c.call_key == call.call_key).values(state="released"))

    def _expire(self, now: float) -> int:
        """Return expired holds to their accounts; accounts are locked before calls, as everywhere."""
        self._next_expiry = now + _EXPIRY_EVERY_S
        with self._connect() as conn:
            found = conn.execute(
                select(calls_t.c.call_key, calls_t.c.accounts)
                .where(calls_t.c.state == "held", calls_t.c.expires_at < now)
                .limit(_EXPIRY_BATCH)
            ).all()
            conn.rollback()
        if not found:
            return 0
        keys = sorted({k for row in found for k in json.loads(row.accounts)})
        expired = 0
        with self._begin() as conn:
            _lock_accounts(conn, keys)
            rows = conn.execute(
                select(calls_t)
                .where(calls_t.c.call_key.in_([r.call_key for r in found]))
                .order_by(calls_t.c.call_key)
                .with_for_update()
            ).all()
            for call in rows:
                if call.state != "held" or call.expires_at >= now:
                    continue
                _free(conn, json.loads(call.accounts), call.reserved_micros)
                conn.execute(update(calls_t).where(calls_t.c.call_key == call.call_key).values(state="expired"))
                expired += 1
        return expired

    def _ensure_accounts(self, accounts: tuple[Account, ...]) -> None:
        """Create missing accounts in their own short transaction, so the reserve only locks rows."""
        missing = sorted((a for a in accounts if a.key not in self._known_accounts), key=lambda a: a.key)
        if not missing:
            return
        with self._begin() as conn:
            for account in missing:
                stmt = _insert(conn)(accounts_t).values(
                    key=account.key, kind=account.kind, budget_micros=account.budget_micros,
                    spent_micros=0, reserved_micros=0,
                )
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        self._known_accounts.update(a.key for a in missing)

    def _create_tables(self) -> None:
        url = self.engine.url.render_as_string(hide_password=False)
        if url in _created:
            return
        with self._begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _CREATE_LOCK_ID})
            metadata.create_all(conn)
        _created.add(url)

    # ---- plumbing --------------------------------------------------------------------------------

    def _begin(self) -> Any:
        return self.engine.begin()

    def _connect(self) -> Connection:
        return self.engine.connect()

    def _run(self, fn: Callable[[], T]) -> T:
        """Retry what a reconnect can fix; then fail closed with the reason."""
        try:
            for attempt in Retrying(
                retry=retry_if_exception(_transient), stop=stop_after_attempt(3),
                wait=wait_exponential_jitter(initial=0.05, max=0.5), reraise=True,
            ):
                with attempt:
                    return fn()
        except DBAPIError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise GovernanceStoreUnavailable(f"cost ledger at {where} unavailable: {exc.orig}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self._run(lambda: fn(*args)))

    def _waiters(self) -> _Waiters:
        loop = asyncio.get_running_loop()
        waiters = self._loops.get(loop)
        if waiters is None:
            waiters = self._loops[loop] = _Waiters()
        return waiters

    def _notify(self) -> None:
        """Wake this process's waiters at once; other processes find out by polling."""
        waiters = self._loops.get(asyncio.get_running_loop())
        if waiters is not None:
            waiters.notify()


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _lock_accounts(conn: Connection, keys: Sequence[str]) -> list[Row[Any]]:
    if not keys:
        return []
    stmt = select(accounts_t).where(accounts_t.c.key.in_(keys)).order_by(accounts_t.c.key).with_for_update()
    return list(conn.execute(stmt).all())


class _HoldWrites:
    """The holds a reserve batch takes, written together once every ask is decided."""

    def __init__(self) -> None:
        self.new: list[dict[str, Any]] = []
        self.renewed: list[dict[str, Any]] = []

    def hold(self, key: CallKey, values: dict[str, Any], *, existing: bool) -> None:
        """``existing``: a released or expired call of this key is held again (same row)."""
        if existing:
            self.renewed.append({_KEY_PARAM: key.text(), **values})
        else:
            self.new.append({"call_key": key.text(), **_key_columns(key), **values})

    def apply(self, conn: Connection) -> None:
        if self.new:
            conn.execute(calls_t.insert(), self.new)
        _update_calls(conn, self.renewed)


# The parameter naming a call in the rows ``_update_calls`` is given (not a column: SQLAlchemy keeps
# a column's own name for its new value).
_KEY_PARAM = "the_call_key"


def _update_calls(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Set each row's columns on its call (``_KEY_PARAM``), all rows in one executemany; the rows
    share their columns."""
    if not rows:
        return
    columns = [column for column in rows[0] if column != _KEY_PARAM]
    conn.execute(update(calls_t).where(calls_t.c.call_key == bindparam(_KEY_PARAM))
                 .values({column: bindparam(column) for column in columns}), rows)


def _lock_calls(conn: Connection, call_keys: Sequence[str]) -> dict[str, Row[Any]]:
    """Lock the calls of a batch, in key order (as every writer locks them), by call key."""
    if not call_keys:
        return {}
    stmt = select(calls_t).where(calls_t.c.call_key.in_(call_keys)).order_by(calls_t.c.call_key).with_for_update()
    return {row.call_key: row for row in conn.execute(stmt).all()}


def _lock_call(conn: Connection, key: CallKey) -> Row[Any] | None:
    return _lock_calls(conn, [key.text()]).get(key.text())


def _free(conn: Connection, keys: Sequence[str], amount: int) -> None:
    if keys and amount:
        conn.execute(
            update(accounts_t)
            .where(accounts_t.c.key.in_(list(keys)))
            .values(reserved_micros=accounts_t.c.reserved_micros - amount)
        )


def _key_columns(key: CallKey) -> dict[str, Any]:
    return dict(
        dag_id=key.dag_id, run_id=key.run_id, task_id=key.task_id, map_index=key.map_index,
        try_number=key.try_number, call_no=key.call,
    )


def _charge_columns(actual: int, detail: ChargeDetail, now: float) -> dict[str, Any]:
    return dict(
        state="settled", actual_micros=actual, settled_at=now,
        day=datetime.fromtimestamp(now, UTC).date().isoformat(),
        module=detail.module, provider=detail.provider, model=detail.model,
        input_tokens=detail.input_tokens, output_tokens=detail.output_tokens,
        cached_tokens=detail.cached_tokens, cache_write_tokens=detail.cache_write_tokens,
        price_source=detail.price_source,
        price_date=detail.price_date.isoformat() if detail.price_date else None,
        latency_s=detail.latency_s, retries=detail.retries, limiter_wait_s=detail.limiter_wait_s,
    )


def _reservation(key: CallKey, call: Row[Any]) -> Reservation:
    return Reservation(
        key, tuple(json.loads(call.accounts)), call.reserved_micros, call.expires_at,
        settled=call.state == "settled", existing=True,
    )


def _state(row: Row[Any]) -> AccountState:
    return AccountState(row.key, row.kind, row.budget_micros, row.spent_micros, row.reserved_micros)
