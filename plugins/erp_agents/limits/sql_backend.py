"""Limiter store on SQL (PostgreSQL for deployments, SQLite for ``airflow dags test``).

Each tier has a row holding its live total; admitted requests leave one entry per window tier and
one lease per concurrency tier. An acquisition locks the tier rows it touches (``FOR UPDATE`` in
key order on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), drops expired entries, checks the queue of
waiters and every limit, and writes all or nothing in one transaction. Time is the database's
clock on PostgreSQL (one clock for every host) and the host's on SQLite (one host by nature).
"""

from __future__ import annotations

import contextlib

import time
from collections.abc import Callable, Sequence
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from erp_agents.limits.backend import Waiter
from erp_agents.limits.tiers import Tier
from erp_agents.limits.window import DEFAULT_MARGIN_S, Attempt, cutoff, rank, seconds_until_fits

metadata = sa.MetaData()
_CREATE_LOCK_ID = 0x45524C4D  # advisory lock id that serializes the limiter's CREATE TABLE across processes
tier_table = sa.Table(
    "erp_limits_tier", metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False, server_default="0"),
)
entry_table = sa.Table(
    "erp_limits_entry", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False),
    sa.Column("lease_id", sa.String(100), nullable=False),
    sa.Column("t", sa.Float(53), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Index("ix_erp_limits_entry_key_t", "key", "t"),
    sa.Index("ix_erp_limits_entry_lease", "lease_id"),
)
lease_table = sa.Table(
    "erp_limits_lease", metadata,
    sa.Column("lease_id", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float(53), nullable=False),
    sa.Index("ix_erp_limits_lease_key", "key", "expires_at"),
)
waiter_table = sa.Table(
    "erp_limits_waiter", metadata,
    sa.Column("waiter_id", sa.String(100), primary_key=True),
    sa.Column("scope", sa.String(400), primary_key=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("arrival", sa.Float(53), nullable=False),
    sa.Column("expires_at", sa.Float(53), nullable=False),
    sa.Index("ix_erp_limits_waiter_scope", "scope", "priority", "arrival"),
)


def _settled_to(used: int) -> Callable[[Tier, int], int | None]:
    """A settle's new amount per tier: real tokens on token tiers, the rest as admitted."""
    return lambda tier, old: max(used, 0) if tier.kind == "tokens" else old


def _rows(result: Any) -> list[tuple[Any, ...]]:
    """Rows as plain tuples (the tables here are untyped Core tables)."""
    return [tuple(row) for row in result]


def make_engine(url: str) -> sa.Engine:
    """The shared governance engine when available, else one set up the same way."""
    try:
        from erp_agents.store import engine_for
    except ImportError:  # a tree without the governance store module
        pass
    else:
        return engine_for(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: object) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class SqlBackend:
    """Limiter store in the governance database; tables are created on first use."""

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """One transaction. On PostgreSQL its commit does not wait for the WAL flush: window entries are
        worth seconds, a server crash that lost the last few only lets a window admit a little early,
        and every request's commit no longer queues behind a disk flush (the ledger keeps its own)."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield conn

    def __init__(self, engine: sa.Engine | str, *, namespace: str = "erp_agents",
                 margin_s: float = DEFAULT_MARGIN_S, clock: Callable[[], float] | None = None) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        self.namespace = namespace
        self.margin_s = margin_s
        self._pg = self.engine.dialect.name == "postgresql"
        self._clock = clock
        self._create_tables()

    def _create_tables(self) -> None:
        """Create the tables once, even when several processes start on a new database together:
        ``create_all`` checks, then creates, and two triggerers doing that at once on PostgreSQL had
        one fail on the other's table type (UniqueViolation on ``pg_type``); an advisory lock held
        for the transaction orders them, and the second sees the tables and creates nothing."""
        with self.engine.begin() as conn:
            if self._pg:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _CREATE_LOCK_ID})
            metadata.create_all(conn, checkfirst=True)

    # -- helpers -------------------------------------------------------------------------------
    def _key(self, tier: Tier) -> str:
        return f"{self.namespace}:{tier.key}"

    def _scope(self, scope: str) -> str:
        return f"{self.namespace}:{scope}"

    def _now(self, conn: sa.Connection) -> float:
        if self._clock is not None:
            return self._clock()
        if self._pg:
            return float(conn.execute(sa.text("SELECT extract(epoch from clock_timestamp())")).scalar_one())
        return time.time()

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    def _lock(self, conn: sa.Connection, keys: list[str]) -> dict[str, int]:
        """Lock the tier rows (creating missing ones) and return their totals."""
        query = sa.select(tier_table.c.key, tier_table.c.total).where(tier_table.c.key.in_(keys)).order_by(
            tier_table.c.key)
        if self._pg:
            query = query.with_for_update()
        totals = {str(k): int(v) for k, v in _rows(conn.execute(query))}
        if len(totals) < len(keys):
            conn.execute(self._insert(tier_table).on_conflict_do_nothing(),
                         [{"key": k, "total": 0} for k in keys if k not in totals])
            totals = {str(k): int(v) for k, v in _rows(conn.execute(query))}
        return totals

    def _expire(self, conn: sa.Connection, tiers: Sequence[Tier], totals: dict[str, int], now: float) -> None:
        windowed = [t for t in tiers if t.window_s is not None]
        if not windowed:
            return
        cond = sa.or_(*(sa.and_(entry_table.c.key == self._key(t),
                                entry_table.c.t <= cutoff(now, t.window_s or 0.0, self.margin_s)) for t in windowed))
        gone = conn.execute(entry_table.delete().where(cond).returning(entry_table.c.key, entry_table.c.amount))
        changed: set[str] = set()
        for key, amount in _rows(gone):
            totals[str(key)] -= int(amount)
            changed.add(str(key))
        self._save(conn, totals, changed)

    def _save(self, conn: sa.Connection, totals: dict[str, int], keys: set[str]) -> None:
        if keys:
            conn.execute(tier_table.update().where(tier_table.c.key == sa.bindparam("k")).values(
                total=sa.bindparam("v")), [{"k": k, "v": max(totals[k], 0)} for k in sorted(keys)])

    def _slots(self, conn: sa.Connection, tiers: Sequence[Tier], now: float) -> dict[str, int]:
        keys = [self._key(t) for t in tiers if t.kind == "concurrency"]
        if not keys:
            return {}
        conn.execute(lease_table.delete().where(lease_table.c.key.in_(keys), lease_table.c.expires_at <= now))
        rows = conn.execute(sa.select(lease_table.c.key, sa.func.count()).where(
            lease_table.c.key.in_(keys)).group_by(lease_table.c.key))
        held = {k: 0 for k in keys}
        held.update({str(k): int(n) for k, n in _rows(rows)})
        return held

    def _register(self, conn: sa.Connection, waiters: Sequence[Waiter], expires_at: float) -> None:
        rows = [{"waiter_id": wt.id, "scope": self._scope(s), "priority": wt.priority, "arrival": wt.arrival,
                 "expires_at": expires_at} for wt in waiters for s in sorted(wt.scopes)]
        if rows:
            stmt = self._insert(waiter_table)
            conn.execute(stmt.on_conflict_do_update(index_elements=["waiter_id", "scope"],
                                                    set_={"expires_at": stmt.excluded.expires_at}), rows)

    def _wait_hint(self, conn: sa.Connection, tier: Tier, total: int, amount: int, now: float) -> float | None:
        rows = conn.execute(sa.select(entry_table.c.t, entry_table.c.amount).where(
            entry_table.c.key == self._key(tier)).order_by(entry_table.c.t).limit(5000))
        return seconds_until_fits(((float(t), int(n)) for t, n in _rows(rows)), total, amount, tier.limit,
                                  tier.window_s or 0.0, self.margin_s, now)

    # -- LimiterBackend ------------------------------------------------------------------------
    def try_acquire(self, waiter: Waiter, *, lease_s: float, waiter_ttl_s: float) -> Attempt:
        return self.try_acquire_many([waiter], lease_s=lease_s, waiter_ttl_s=waiter_ttl_s)[0]

    def _best_foreign(self, conn: sa.Connection, waiters: Sequence[Waiter], now: float) -> dict[str, tuple[Any, ...]]:
        """Per scope, the best-ranked live waiter that is not in this batch (another process's)."""
        w = waiter_table.c
        scopes = sorted({self._scope(s) for wt in waiters for s in wt.scopes})
        conn.execute(waiter_table.delete().where(w.scope.in_(scopes), w.expires_at <= now))
        mine = [wt.id for wt in waiters]
        best: dict[str, tuple[Any, ...]] = {}
        for scope in scopes:
            row = conn.execute(sa.select(w.priority, w.arrival, w.waiter_id).where(
                w.scope == scope, w.waiter_id.not_in(mine)).order_by(
                w.priority.desc(), w.arrival, w.waiter_id).limit(1)).first()
            if row is not None:
                best[scope] = rank(int(row[0]), float(row[1]), str(row[2]))
        return best

    def try_acquire_many(self, waiters: Sequence[Waiter], *, lease_s: float,
                         waiter_ttl_s: float) -> list[Attempt]:
        """Waiters in serving order, in one transaction; one behind a blocked waiter of its scope is skipped."""
        tiers = list({t.key: t for wt in waiters for t in wt.tiers}.values())
        keys = sorted({self._key(t) for t in tiers})
        results: list[Attempt] = []
        with self._transaction() as conn:
            totals = self._lock(conn, keys)
            now = self._now(conn)
            self._expire(conn, tiers, totals, now)
            held = self._slots(conn, tiers, now)
            best = self._best_foreign(conn, waiters, now)
            blocked: set[str] = set()
            entries: list[dict[str, Any]] = []
            leases: list[dict[str, Any]] = []
            admitted: list[str] = []
            refused: list[Waiter] = []
            for waiter in waiters:
                if waiter.scopes & blocked:
                    results.append(Attempt(False, None, "skipped", now))
                    continue
                mine = rank(waiter.priority, waiter.arrival, waiter.id)
                verdict: Attempt | None = None
                if any(best.get(self._scope(s), mine) < mine for s in waiter.scopes):
                    verdict = Attempt(False, None, "waiter", now)
                for tier in waiter.tiers if verdict is None else ():
                    key = self._key(tier)
                    if tier.kind == "concurrency":
                        if held[key] >= tier.limit:
                            verdict = Attempt(False, None, tier.key, now)
                            break
                        continue
                    amount = tier.amount(waiter.tokens)
                    if totals[key] + amount > tier.limit:
                        verdict = Attempt(False, self._wait_hint(conn, tier, totals[key], amount, now), tier.key, now)
                        break
                if verdict is not None:
                    blocked |= waiter.scopes
                    refused.append(waiter)
                    results.append(verdict)
                    continue
                for tier in waiter.tiers:
                    key = self._key(tier)
                    if tier.kind == "concurrency":
                        held[key] += 1
                        leases.append({"lease_id": waiter.id, "key": key, "holder": waiter.holder,
                                       "expires_at": now + lease_s})
                    else:
                        amount = tier.amount(waiter.tokens)
                        totals[key] += amount
                        entries.append({"key": key, "lease_id": waiter.id, "t": now, "amount": amount})
                admitted.append(waiter.id)
                results.append(Attempt(True, 0.0, None, now))
            if entries:
                conn.execute(entry_table.insert(), entries)
                self._save(conn, totals, {e["key"] for e in entries})
            if leases:
                conn.execute(lease_table.insert(), leases)
            if admitted:
                conn.execute(waiter_table.delete().where(waiter_table.c.waiter_id.in_(admitted)))
            self._register(conn, refused, now + waiter_ttl_s)
        return results

    def register(self, waiters: Sequence[Waiter], *, waiter_ttl_s: float) -> None:
        with self._transaction() as conn:
            self._register(conn, waiters, self._now(conn) + waiter_ttl_s)

    def withdraw(self, waiter_ids: Sequence[str], scopes: Sequence[str]) -> None:
        with self._transaction() as conn:
            conn.execute(waiter_table.delete().where(waiter_table.c.waiter_id.in_(list(waiter_ids))))

    def _adjust(self, lease_id: str, tiers: Sequence[Tier], new_amount: Callable[[Tier, int], int | None]) -> None:
        """Change (or with None delete) this lease's entries, keeping tier totals in step."""
        self._adjust_all([(lease_id, tiers, new_amount)])

    def _adjust_all(self, leases: Sequence[tuple[str, Sequence[Tier], Callable[[Tier, int], int | None]]]) -> None:
        """``_adjust`` for many leases in one transaction: their tier rows are locked once, their entries
        read in one query and written in one batch per kind (a batch of 256 settles had been a SELECT
        and an UPDATE per lease and tier, one round trip each, while every tier row stayed locked)."""
        with self._transaction() as conn:
            keys = sorted({self._key(t) for _, tiers, _ in leases for t in tiers if t.window_s is not None})
            lease_ids = sorted({lease_id for lease_id, _, _ in leases})
            totals: dict[str, int] = {}
            found: dict[tuple[str, str], int] = {}
            if keys:
                totals = self._lock(conn, keys)
                found = {(str(key), str(lease)): int(amount) for key, lease, amount in _rows(conn.execute(
                    sa.select(entry_table.c.key, entry_table.c.lease_id, entry_table.c.amount)
                    .where(entry_table.c.lease_id.in_(lease_ids), entry_table.c.key.in_(keys))))}
            now_held: dict[tuple[str, str], int | None] = dict(found)
            changed: set[str] = set()
            for lease_id, tiers, new_amount in leases:
                for tier in (t for t in tiers if t.window_s is not None):
                    key = self._key(tier)
                    old = now_held.get((key, lease_id))
                    if old is None:
                        continue  # left the window (subtracted then) or removed earlier in this batch
                    new = new_amount(tier, old)
                    totals[key] += (0 if new is None else new) - old
                    now_held[(key, lease_id)] = new
                    changed.add(key)
            gone = [{"k": k, "l": lease} for (k, lease), amount in now_held.items() if amount is None]
            moved = [{"k": k, "l": lease, "a": amount} for (k, lease), amount in now_held.items()
                     if amount is not None and amount != found[(k, lease)]]
            same_entry = sa.and_(entry_table.c.key == sa.bindparam("k"), entry_table.c.lease_id == sa.bindparam("l"))
            if gone:
                conn.execute(entry_table.delete().where(same_entry), gone)
            if moved:
                conn.execute(entry_table.update().where(same_entry).values(amount=sa.bindparam("a")), moved)
            self._save(conn, totals, changed)
            conn.execute(lease_table.delete().where(lease_table.c.lease_id.in_(lease_ids)))

    def settle(self, lease_id: str, tiers: Sequence[Tier], reserved: int, used: int) -> None:
        self.settle_many([(lease_id, tiers, reserved, used)])

    def settle_many(self, settles: Sequence[tuple[str, Sequence[Tier], int, int]]) -> None:
        """Settle many leases in one transaction (``RateLimiter`` batches what finishes together)."""
        self._adjust_all([(lease_id, [t for t in tiers if t.kind != "requests"], _settled_to(used))
                          for lease_id, tiers, _reserved, used in settles])

    def release(self, lease_id: str, tiers: Sequence[Tier], *, keep_counts: bool) -> None:
        self._adjust(lease_id, [] if keep_counts else tiers, lambda tier, old: None)

    def renew(self, lease_ids: Sequence[str], tiers: Sequence[Tier], *, lease_s: float) -> None:
        if not lease_ids:
            return
        with self._transaction() as conn:
            now = self._now(conn)
            conn.execute(lease_table.update().where(lease_table.c.lease_id.in_(list(lease_ids))).values(
                expires_at=now + lease_s))

    def hold(self, tier: Tier, *, used_by_server: int, reset_s: float) -> None:
        if tier.window_s is None:
            return
        key = self._key(tier)
        with self._transaction() as conn:
            totals = self._lock(conn, [key])
            now = self._now(conn)
            self._expire(conn, [tier], totals, now)
            extra = min(used_by_server, tier.limit) - totals[key]
            if extra <= 0:
                return
            t = now + min(max(reset_s, 0.0), tier.window_s) - tier.window_s - self.margin_s
            conn.execute(entry_table.insert().values(key=key, lease_id="observed", t=t, amount=extra))
            totals[key] += extra
            self._save(conn, totals, {key})

    def usage(self, tiers: Sequence[Tier]) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._transaction() as conn:
            now = self._now(conn)
            for tier in tiers:
                key = self._key(tier)
                if tier.kind == "concurrency":
                    q = sa.select(sa.func.count()).where(lease_table.c.key == key, lease_table.c.expires_at > now)
                else:
                    q = sa.select(sa.func.coalesce(sa.func.sum(entry_table.c.amount), 0)).where(
                        entry_table.c.key == key, entry_table.c.t > cutoff(now, tier.window_s or 0.0, self.margin_s))
                out[tier.key] = int(conn.execute(q).scalar_one())
        return out

    def close(self) -> None:
        return None
