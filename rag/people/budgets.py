"""Rate-limit budgets that every replica shares: the work spent per caller, counted in the database.

With RAG_DATABASE_URL set, N replicas behind a load balancer must not give a caller N budgets, nor a guesser
of tokens N times the tries. Work is counted in buckets of BUCKET seconds (one row per caller and bucket),
and a budget is what the buckets of the last 60 seconds hold. A caller's check and spend are one transaction
under a PostgreSQL advisory lock on that caller, so two replicas cannot both spend its last unit. Old buckets
are deleted as they pass. Without a database server the in-process limiter (server/guard.py) does the job:
one process is the whole service.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .database import Database, Session

BUCKET = 5  # seconds: a budget frees in steps of this, never later than 5 s after the in-process limiter's
WINDOW = 60
_LOCK_CLASS = 0x72616762  # "ragb": advisory locks of budgets, one per caller (hashtext of its key)
_SWEEP_EVERY = 60.0  # seconds between deletions of every caller's expired buckets


class Budget:
    """At most `per_minute` units of work per key in any minute: the calls the service makes, whoever counts
    (this process's RateLimiter in server/guard.py, or the replicas' SharedLimiter)."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock

    def retry_after(self, key: str, cost: int = 1) -> int | None:
        """Spend `cost` units; None when the work may go ahead, else the whole seconds to wait (nothing spent)."""
        return self._wait(key, cost, spend=True)

    def waiting(self, key: str) -> int | None:
        """The seconds until one more unit may be spent, or None; spends nothing."""
        return self._wait(key, 1, spend=False)

    def _wait(self, key: str, cost: int, spend: bool) -> int | None:
        if not self.per_minute:
            return None
        cost = min(max(cost, 0), self.per_minute)  # more than a minute's budget waits for an empty window
        return self._counted(key, cost, spend, self._clock())

    def _counted(self, key: str, cost: int, spend: bool, now: float) -> int | None:
        raise NotImplementedError


class SharedLimiter(Budget):
    """A Budget across every process using `database`; the clock is the wall clock, which replicas keep in
    step."""

    def __init__(self, database: Database, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        super().__init__(per_minute, clock)
        self.db = database
        self._swept = 0.0

    def _counted(self, key: str, cost: int, spend: bool, now: float) -> int | None:
        # A bucket counts until WINDOW seconds after its end.
        current, oldest = int(now // BUCKET), int((now - WINDOW) // BUCKET)
        with self.db.begin() as db:
            db.execute("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:key))", lock_class=_LOCK_CLASS, key=key)
            db.execute("DELETE FROM spent WHERE key = :key AND bucket < :oldest", key=key, oldest=oldest)
            buckets = db.execute("SELECT bucket, units FROM spent WHERE key = :key ORDER BY bucket",
                                 key=key).fetchall()
            wait = seconds_to_free([((bucket + 1) * BUCKET + WINDOW, units) for bucket, units in buckets],
                                   cost - self.per_minute, now)
            if wait is None and spend and cost:
                db.execute("INSERT INTO spent (key, bucket, units) VALUES (:key, :bucket, :units) ON CONFLICT "
                           "(key, bucket) DO UPDATE SET units = spent.units + excluded.units",
                           key=key, bucket=current, units=cost)
            self._sweep(db, now, oldest)
        return wait

    def _sweep(self, db: Session, now: float, oldest: int) -> None:
        """Now and then, the expired buckets of callers who stopped calling."""
        if now - self._swept >= _SWEEP_EVERY:
            self._swept = now
            db.execute("DELETE FROM spent WHERE bucket < :oldest", oldest=oldest)


def seconds_to_free(spent: list[tuple[float, int]], cost_over_budget: int, now: float) -> int | None:
    """None when the units spent, oldest first as (when they leave the window, units), plus the cost fit the
    budget (`cost_over_budget` is the cost less the budget); else the whole seconds until enough have left."""
    over = sum(units for _, units in spent) + cost_over_budget
    if over <= 0:
        return None
    freed = 0
    for leaves, units in spent:
        freed += units
        if freed >= over:
            return max(1, math.ceil(leaves - now))
    return WINDOW  # not reached: the cost is capped at the budget, so the spent units cover what is over
