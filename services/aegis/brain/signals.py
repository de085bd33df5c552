"""What happens to a signal after the strategy made it: stored, kept for ListSignals, streamed to subscribers.

* :class:`SignalWriter` — :meth:`~SignalWriter.submit` is synchronous, O(1) and never waits; the writer's task
  inserts pending signals in batches (``INSERT … ON CONFLICT (signal_id) DO NOTHING``, so a retried batch that
  had in fact been committed is harmless). While PostgreSQL is down it keeps every pending signal and retries
  with a capped backoff: nothing is lost while the process lives. The backlog is not capped — the strategy's
  cooldown bounds it to one signal per symbol per cooldown window — but a warning is logged when it passes
  ``warn_backlog``. A row PostgreSQL refuses (a CHECK) is logged and dropped, never retried forever.
  :meth:`~SignalWriter.stored` waits until a signal's row is committed (the executor's transactional outbox:
  a signal is executed only once its row is durable, so a kill can never leave a position without its signal);
  waiters ride on the batches, so the writer keeps its pace and a waiter waits one flush at most while
  PostgreSQL answers.
* :class:`RecentSignals` — the newest signals in memory, ordered by (created time, id).
* :class:`SignalStore` — reads from PostgreSQL, newest first, keyset-paged.
* :class:`SignalFanout` — StreamSignals: one bounded queue per subscriber. Publishing never waits; a subscriber
  whose queue is full is dropped and its stream ends with :class:`SubscriberTooSlow` (RESOURCE_EXHAUSTED), so a
  slow client can never hold the brain back.
* :class:`SignalHub` — the one object the brain calls: :meth:`~SignalHub.publish` a signal (memory, writer,
  subscribers, and the event bus), :meth:`~SignalHub.list_signals` (ListSignals), :meth:`~SignalHub.subscribe`
  (StreamSignals).

ListSignals pages are newest first. Each page merges PostgreSQL (older signals, other processes) with memory
(signals not written yet); when PostgreSQL does not answer, a page memory can fill alone is still served.

The ``signals`` table has no column for the trigger candle's open time: signals read back from PostgreSQL have
``candle_open_time_ms = None``.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import msgspec
from google.protobuf import timestamp_pb2

from aegis.brain import features as feat
from aegis.brain.market import decode_token, encode_token, page_size_of, parse_symbol, parse_timeframe
from aegis.brain.numeric import decimal_text
from aegis.brain.strategy import Signal
from aegis.brain.timeframes import INDEX_BY_NAME, TIMEFRAMES
from aegis.errors import AegisError, DependencyUnavailable, ValidationError
from aegis.v1 import common_pb2 as common_pb

if TYPE_CHECKING:
    from aegis.brain.events import EventBus
    from aegis.storage.postgres import Database

log = logging.getLogger("aegis.brain.signals")

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LIST_SIGNALS_DEFAULT = 100
LIST_SIGNALS_MAX = 1000

_STORAGE_ERRORS = (DependencyUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

SIDE_TO_DB = {"LONG": "BUY", "SHORT": "SELL"}
SIDE_FROM_DB = {db: side for side, db in SIDE_TO_DB.items()}

_COLUMNS = (
    "signal_id, symbol, side, timeframe, entry_price, sl_pct, tp_pct, confidence, predicted_return_pct, "
    "model_version, feature_schema_version, features, reasons, created_at"
)
INSERT_SQL = f"""
INSERT INTO signals ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
ON CONFLICT (signal_id) DO NOTHING
"""


class SubscriberTooSlow(AegisError):
    """A StreamSignals subscriber did not keep up; its stream was ended so the brain never waits for it."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


# ------------------------------------------------------------------------------------------- rows and times


def ns_to_datetime(ns: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=ns // 1000)


def datetime_to_ns(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(microseconds=1) * 1000


def _number(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def signal_row(s: Signal) -> tuple[Any, ...]:
    """Return the ``signals`` row of ``s`` (percentages as the exact decimal of their float)."""
    return (
        uuid.UUID(s.signal_id),
        s.symbol,
        SIDE_TO_DB[s.side],
        s.timeframe,
        s.entry_price,
        _number(s.sl_pct),
        _number(s.tp_pct),
        s.confidence,
        s.predicted_return_pct if math.isfinite(s.predicted_return_pct) else None,
        s.model_version or None,
        s.feature_schema_version,
        list(s.features),
        msgspec.json.encode(list(s.reasons)).decode(),
        ns_to_datetime(s.created_time_ns),
    )


def signal_from_record(r: asyncpg.Record) -> Signal:
    reasons = r["reasons"]
    return Signal(
        signal_id=str(r["signal_id"]),
        symbol=r["symbol"],
        timeframe=r["timeframe"],
        side=SIDE_FROM_DB[r["side"]],
        entry_price=r["entry_price"],
        sl_pct=float(r["sl_pct"]),
        tp_pct=float(r["tp_pct"]),
        confidence=float(r["confidence"]),
        predicted_return_pct=math.nan if r["predicted_return_pct"] is None else float(r["predicted_return_pct"]),
        model_version=r["model_version"] or "",
        feature_schema_version=int(r["feature_schema_version"]),
        features=tuple(float(v) for v in r["features"]),
        reasons=tuple(msgspec.json.decode(reasons) if isinstance(reasons, str | bytes) else reasons),
        created_time_ns=datetime_to_ns(r["created_at"]),
        candle_open_time_ms=None,
    )


def _key(s: Signal) -> tuple[int, str]:
    """Sort key of ListSignals (newest = largest); the id breaks ties the way PostgreSQL orders uuids."""
    return (s.created_time_ns, s.signal_id)


# ------------------------------------------------------------------------------------------------ writer


class SignalWriter:
    """Insert signals into PostgreSQL in batches without ever making the caller wait (see the module doc)."""

    def __init__(
        self,
        db: Database | None,
        *,
        batch_rows: int = 500,
        interval_s: float = 0.2,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        warn_backlog: int = 10_000,
    ) -> None:
        self._db = db
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.warn_backlog = warn_backlog
        self._pending: deque[Signal] = deque()
        self._unwritten: set[str] = set()
        """Ids of the signals submitted and not yet committed (or refused)."""
        self._waiters: dict[str, asyncio.Future[bool]] = {}
        self._inflight = 0
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        """Set while an executor waits on :meth:`stored`: the next batch goes out now, not after ``interval_s``."""
        self._down_since: float | None = None
        self._warned = False
        self.rows_written = 0
        self.rows_rejected = 0
        self.failures = 0
        self.retries = 0
        self.last_error = ""

    def submit(self, signal: Signal) -> None:
        """Queue ``signal`` for PostgreSQL. Never waits, never drops."""
        if self._db is None:
            return
        self._pending.append(signal)
        self._unwritten.add(signal.signal_id)
        if len(self._pending) > self.warn_backlog and not self._warned:
            self._warned = True
            log.warning("%d signals wait for PostgreSQL (kept in memory until it answers)", len(self._pending))
        self._wake.set()

    async def stored(self, signal_id: str) -> bool:
        """Wait until ``signal_id``'s row is committed; True once it is (or when there is no PostgreSQL, or the
        signal was never submitted here: read from the table), False when PostgreSQL refused the row."""
        if signal_id not in self._unwritten:
            return True
        waiter = self._waiters.get(signal_id)
        if waiter is None:
            waiter = self._waiters[signal_id] = asyncio.get_running_loop().create_future()
        self._urgent.set()  # an order waits on this row: write it now (what is pending goes in the same batch)
        return await asyncio.shield(waiter)

    def _settle(self, batch: list[Signal], refused: set[str]) -> None:
        for signal in batch:
            self._unwritten.discard(signal.signal_id)
            waiter = self._waiters.pop(signal.signal_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(signal.signal_id not in refused)

    @property
    def backlog(self) -> int:
        """Signals not yet in PostgreSQL (pending + being written)."""
        return len(self._pending) + self._inflight

    def stats(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "failures": self.failures,
            "retries": self.retries,
            "postgres_down": self._down_since is not None,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        """Write forever: gather for ``interval_s``, write a batch, back off while PostgreSQL is down.

        An executor waiting on :meth:`stored` cuts the gathering short, so an order waits for one insert, not for
        ``interval_s`` more: signals that arrive while a batch is being written still go together in the next."""
        delay = self.retry_initial_s
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            if not self._urgent.is_set():
                try:
                    await asyncio.wait_for(self._urgent.wait(), self.interval_s)
                except TimeoutError:
                    pass
            self._urgent.clear()
            if await self.flush_once():
                delay = self.retry_initial_s
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Write everything pending now (shutdown, tests); return True when nothing is left."""
        deadline = time.monotonic() + timeout_s
        delay = self.retry_initial_s
        while self._pending:
            if not await self.flush_once():
                if time.monotonic() + delay > deadline:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
        return True

    async def flush_once(self) -> bool:
        """Write one batch; return False when PostgreSQL failed (the batch is kept, in order)."""
        if not self._pending or self._db is None:
            return True
        batch = [self._pending.popleft() for _ in range(min(self.batch_rows, len(self._pending)))]
        self._inflight = len(batch)
        refused: set[str] = set()
        try:
            try:
                await self._insert(batch)
            except _DATA_ERRORS as exc:
                log.error("a signal batch was refused (%s): writing its rows one by one", exc)
                refused = await self._insert_one_by_one(batch)
        except _STORAGE_ERRORS as exc:
            self._failed(batch, exc)
            await self._db.expire_connections()  # connections may have died with the server
            return False
        except BaseException:
            self._pending.extendleft(reversed(batch))  # cancelled at shutdown: keep them for the final flush
            raise
        finally:
            self._inflight = 0
        self._settle(batch, refused)
        self.rows_written += len(batch) - len(refused)
        self.rows_rejected += len(refused)
        if self._down_since is not None:
            log.info("PostgreSQL takes signals again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
        if len(self._pending) <= self.warn_backlog:
            self._warned = False
        return True

    async def _insert(self, batch: list[Signal]) -> None:
        rows = [signal_row(s) for s in batch]
        assert self._db is not None
        async with self._db.connection() as conn, conn.transaction():
            await conn.executemany(INSERT_SQL, rows)

    async def _insert_one_by_one(self, batch: list[Signal]) -> set[str]:
        """Insert row by row; return the ids of the rows PostgreSQL refused (logged and dropped)."""
        rejected: set[str] = set()
        for signal in batch:
            try:
                await self._insert([signal])
            except _DATA_ERRORS as exc:
                rejected.add(signal.signal_id)
                log.error("dropped a signal PostgreSQL refuses: %s (%s)", signal.signal_id, exc)
        return rejected

    def _failed(self, batch: list[Signal], exc: BaseException) -> None:
        self._pending.extendleft(reversed(batch))
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("cannot write signals to PostgreSQL (%s): keeping them and retrying", exc)
        else:
            self.retries += 1


# -------------------------------------------------------------------------------------------- the queries


@dataclass(frozen=True, slots=True)
class SignalFilter:
    """What ListSignals selects; times in Unix ns, ``start`` inclusive and ``end`` exclusive."""

    symbol: str | None = None
    timeframe: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    model_version: str | None = None

    def matches(self, s: Signal) -> bool:
        return (
            (self.symbol is None or s.symbol == self.symbol)
            and (self.timeframe is None or s.timeframe == self.timeframe)
            and (self.start_ns is None or s.created_time_ns >= self.start_ns)
            and (self.end_ns is None or s.created_time_ns < self.end_ns)
            and (self.model_version is None or s.model_version == self.model_version)
        )


@dataclass(frozen=True, slots=True)
class SignalPage:
    signals: list[Signal]
    next_page_token: str


class RecentSignals:
    """The newest ``capacity`` signals, in (created time, id) order.

    The oldest are dropped in chunks: the lists keep a dead prefix of up to ``capacity`` entries (skipped by every
    read) and cut it off at once, so a signal costs O(log n) to place, not the O(n) move of deleting the list's
    first element every time once full (~10 µs a signal at 10,000 kept).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._keys: list[tuple[int, str]] = []
        self._signals: list[Signal] = []
        self._start = 0
        """Entries before this index are dropped (not yet cut off)."""

    def __len__(self) -> int:
        return len(self._signals) - self._start

    def add(self, signal: Signal) -> None:
        key = _key(signal)
        keys = self._keys
        at = bisect.bisect_left(keys, key, self._start)
        if at < len(keys) and keys[at] == key:
            return
        if at == self._start and len(self) >= self.capacity:
            return  # older than every kept signal of a full store: it would be the one dropped
        keys.insert(at, key)
        self._signals.insert(at, signal)
        if len(self) > self.capacity:
            self._start += 1
            if self._start >= self.capacity:
                del keys[: self._start], self._signals[: self._start]
                self._start = 0

    def newest(self, where: SignalFilter, before: tuple[int, str] | None, limit: int) -> list[Signal]:
        """Return up to ``limit`` signals matching ``where`` older than ``before`` (None = all), newest first."""
        end = len(self._keys) if before is None else bisect.bisect_left(self._keys, before, self._start)
        out: list[Signal] = []
        for i in range(end - 1, self._start - 1, -1):
            if len(out) >= limit:
                break
            if where.matches(self._signals[i]):
                out.append(self._signals[i])
        return out


class SignalStore:
    """Signal reads from PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def newest(self, where: SignalFilter, before: tuple[int, str] | None, limit: int) -> list[Signal]:
        """Return up to ``limit`` stored signals matching ``where`` older than ``before``, newest first."""
        clauses: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.symbol is not None:
            clauses.append(f"symbol = {arg(where.symbol)}")
        if where.timeframe is not None:
            clauses.append(f"timeframe = {arg(where.timeframe)}")
        if where.start_ns is not None:
            clauses.append(f"created_at >= {arg(ns_to_datetime(where.start_ns))}")
        if where.end_ns is not None:
            clauses.append(f"created_at < {arg(ns_to_datetime(where.end_ns))}")
        if where.model_version is not None:
            clauses.append(f"model_version = {arg(where.model_version)}")
        if before is not None:
            at = arg(ns_to_datetime(before[0]))
            clauses.append(f"(created_at, signal_id) < ({at}, {arg(uuid.UUID(before[1]))})")
        sql = (
            f"SELECT {_COLUMNS} FROM signals {'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
            f"ORDER BY created_at DESC, signal_id DESC LIMIT {arg(limit)}"
        )
        async with self._db.connection() as conn:
            records = await conn.fetch(sql, *args)
        return [signal_from_record(r) for r in records]

    async def unexecuted(
        self, symbols: Iterable[str], since_ns: int, learning: str, trading: str, limit: int
    ) -> list[tuple[Signal, bool]]:
        """Return the stored signals of ``symbols`` created at ``since_ns`` or later that have no position on the
        ``learning`` account, oldest first, each with whether ``trading`` has no position of it either."""
        sql = (
            f"SELECT {_COLUMNS}, NOT EXISTS (SELECT 1 FROM positions p WHERE p.account_id = $4 "
            "AND p.signal_id = s.signal_id) AS untraded FROM signals s "
            "WHERE s.symbol = ANY($1::text[]) AND s.created_at >= $2 AND NOT EXISTS "
            "(SELECT 1 FROM positions p WHERE p.account_id = $3 AND p.signal_id = s.signal_id) "
            "ORDER BY s.created_at, s.signal_id LIMIT $5"
        )
        async with self._db.connection() as conn:
            records = await conn.fetch(sql, list(symbols), ns_to_datetime(since_ns), learning, trading, limit)
        return [(signal_from_record(r), bool(r["untraded"])) for r in records]


# ----------------------------------------------------------------------------------------------- fan-out


class Subscription:
    """One StreamSignals subscriber: iterate it (``async for signal in subscription``); :meth:`close` when done.

    The iteration raises :class:`SubscriberTooSlow` once the subscriber has been dropped.
    """

    def __init__(self, fanout: SignalFanout, symbols: frozenset[str], min_confidence: float | None, size: int):
        self._fanout = fanout
        self.symbols = symbols
        self.min_confidence = min_confidence
        self.size = size
        self._items: deque[Signal] = deque()
        self._ready = asyncio.Event()
        self.dropped: str | None = None
        """Why the subscriber was dropped, or None."""
        self.closed = False
        self.delivered = 0

    def wants(self, signal: Signal) -> bool:
        return (not self.symbols or signal.symbol in self.symbols) and (
            self.min_confidence is None or signal.confidence >= self.min_confidence
        )

    def offer(self, signal: Signal) -> bool:
        """Queue ``signal``; return False (and queue nothing) when the queue is full."""
        if len(self._items) >= self.size:
            return False
        self._items.append(signal)
        self._ready.set()
        return True

    def drop(self, reason: str) -> None:
        self.dropped = reason
        self._items.clear()
        self._ready.set()

    def close(self) -> None:
        """Stop receiving (the client went away)."""
        self.closed = True
        self._fanout.unsubscribe(self)
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Signal]:
        return self

    async def __anext__(self) -> Signal:
        while True:
            if self.dropped is not None:
                raise SubscriberTooSlow(self.dropped)
            if self._items:
                self.delivered += 1
                return self._items.popleft()
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()


class SignalFanout:
    """Hand every new signal to each subscriber's bounded queue; drop subscribers that fall behind."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: list[Subscription] = []
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(
        self, symbols: Iterable[str] = (), min_confidence: float | None = None, queue_size: int | None = None
    ) -> Subscription:
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise ValidationError("min_confidence", f"must be from 0 to 1, got {min_confidence}")
        wanted = frozenset(parse_symbol(s) for s in symbols)
        subscription = Subscription(self, wanted, min_confidence, queue_size or self.queue_size)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, signal: Signal) -> None:
        """Queue ``signal`` for every subscriber that wants it. Never waits."""
        for subscription in list(self._subscribers):
            if subscription.wants(signal) and not subscription.offer(signal):
                self._subscribers.remove(subscription)
                self.dropped += 1
                subscription.drop(
                    f"the subscriber did not keep up: {subscription.size} signals were waiting; "
                    "reconnect and read older ones with ListSignals"
                )
                log.warning("dropped a slow StreamSignals subscriber (%d signals waiting)", subscription.size)


# --------------------------------------------------------------------------------------------------- hub


class SignalHub:
    """The brain's signal side: publish, list, stream (see the module doc)."""

    def __init__(
        self,
        db: Database | None,
        *,
        bus: EventBus | None = None,
        memory: int = 10_000,
        queue_size: int = 256,
        writer: SignalWriter | None = None,
    ) -> None:
        self.writer = writer or SignalWriter(db)
        self.store = SignalStore(db) if db is not None else None
        self.recent = RecentSignals(memory)
        self.fanout = SignalFanout(queue_size)
        self.bus = bus
        self.published = 0
        self.last_signal_ns: int | None = None

    def publish(self, signal: Signal) -> None:
        """Keep, store (in the background), stream and announce ``signal``. Never waits."""
        self.recent.add(signal)
        self.writer.submit(signal)
        self.fanout.publish(signal)
        if self.bus is not None:
            self.bus.publish(signal.to_event())
        self.published += 1
        self.last_signal_ns = signal.created_time_ns

    def publish_all(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            self.publish(signal)

    def subscribe(
        self, symbols: Iterable[str] = (), min_confidence: float | None = None, queue_size: int | None = None
    ) -> Subscription:
        """Start a StreamSignals subscription (no history is replayed)."""
        return self.fanout.subscribe(symbols, min_confidence, queue_size)

    async def run(self) -> None:
        """The writer's task."""
        await self.writer.run()

    async def stop(self, timeout_s: float = 3.0) -> bool:
        """Write what is pending within ``timeout_s``; return True when nothing is left."""
        done = await self.writer.flush(timeout_s)
        if not done:
            log.error("stopping with %d signals not written to PostgreSQL", self.writer.backlog)
        return done

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "in_memory": len(self.recent),
            "subscribers": self.fanout.subscribers,
            "subscribers_dropped": self.fanout.dropped,
            "persistence": self.writer.stats(),
        }

    async def list_signals(
        self,
        symbol: str | None = None,
        timeframe: int = 0,
        start_ms: int | None = None,
        end_ms: int | None = None,
        model_version: str | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> SignalPage:
        """Return one ListSignals page, newest first (``timeframe``: an ``aegis.v1.Timeframe``, 0 = all)."""
        where = SignalFilter(
            symbol=parse_symbol(symbol) if symbol is not None else None,
            timeframe=parse_timeframe(timeframe) if timeframe else None,
            start_ns=start_ms * 1_000_000 if start_ms is not None else None,
            end_ns=end_ms * 1_000_000 if end_ms is not None else None,
            model_version=model_version,
        )
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise ValidationError("end_time", "must be after start_time")
        size = page_size_of(page_size, LIST_SIGNALS_DEFAULT, LIST_SIGNALS_MAX, "page_size")
        request = [where.symbol, where.timeframe, where.start_ns, where.end_ns, where.model_version]
        before: tuple[int, str] | None = None
        if page_token:
            parts = decode_token(page_token)
            if len(parts) != 7 or parts[:5] != request:
                raise ValidationError("page_token", "belongs to a different request (filters changed)")
            before = (int(parts[5]), str(parts[6]))
        merged = {s.signal_id: s for s in self.recent.newest(where, before, size + 1)}
        if self.store is not None:
            try:
                for s in await self.store.newest(where, before, size + 1):
                    merged.setdefault(s.signal_id, s)
            except _STORAGE_ERRORS as exc:
                if len(merged) <= size:
                    raise DependencyUnavailable(
                        f"PostgreSQL does not answer ({type(exc).__name__}) and memory does not hold that page"
                    ) from exc
        ordered = sorted(merged.values(), key=_key, reverse=True)
        token = ""
        if len(ordered) > size:
            ordered = ordered[:size]
            last = ordered[-1]
            token = encode_token([*request, last.created_time_ns, last.signal_id])
        return SignalPage(ordered, token)


# ------------------------------------------------------------------------------------------------ protos


def _timestamp_ns(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def signal_to_pb(s: Signal, include_features: bool = False) -> common_pb.Signal:
    """Return the ``aegis.v1.Signal`` of ``s`` (the feature vector only when asked: it is large)."""
    message = common_pb.Signal(
        signal_id=s.signal_id,
        symbol=s.symbol,
        timeframe=TIMEFRAMES[INDEX_BY_NAME[s.timeframe]].proto,
        side=common_pb.POSITION_SIDE_LONG if s.side == "LONG" else common_pb.POSITION_SIDE_SHORT,
        entry_price=decimal_text(s.entry_price),
        sl_pct=s.sl_pct,
        tp_pct=s.tp_pct,
        confidence=s.confidence,
        predicted_return_pct=s.predicted_return_pct,
        model_version=s.model_version,
        created_time=_timestamp_ns(s.created_time_ns),
        reasons=list(s.reasons),
    )
    if s.candle_open_time_ms is not None:
        message.candle_open_time.FromMilliseconds(s.candle_open_time_ms)
    if include_features:
        message.features.CopyFrom(
            common_pb.FeatureVector(
                schema_version=str(s.feature_schema_version),
                names=list(feat.names_of(s.feature_schema_version)),
                values=list(s.features),
            )
        )
    return message
