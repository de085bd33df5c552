"""Closed candles to PostgreSQL and Redis without blocking the consumer, and history back at a cold start.

* :class:`CandleWriter` — the consumer hands it closed candles with :meth:`~CandleWriter.submit` (synchronous,
  O(1), never waits); its own task writes them in batches: one ``INSERT … SELECT FROM unnest(…) ON CONFLICT``
  statement per batch into ``candles``, and a pipelined ``HSET`` + ``EXPIRE`` of the latest candle per symbol and
  timeframe into Redis. While PostgreSQL (or Redis) is down it keeps every pending candle, retries with a capped
  backoff and counts; a candle is dropped only when a newer version of the same candle replaces it. The pending
  set is keyed by candle, so an outage costs memory in proportion to the candles closed during it (about one
  row per symbol per minute), not to the records read.
* :class:`CandleStore` — the reads: a time range (ListCandles), the last N per symbol and timeframe (hydration).
* :class:`Hydrator` — a cold start: the last N candles per symbol and timeframe from PostgreSQL, then what is
  missing since then from Binance REST (``GET /fapi/v1/klines``); when REST does not answer it logs once and
  carries on with what PostgreSQL had.

Upsert rules (the exchange wins): a row from the exchange (``stream``, ``rest``) or a replay replaces whatever is
stored; a trade-built row (``trades``) replaces only another trade-built row; a *partial* candle is inserted only
when nothing is stored for its key (``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import asyncpg
from redis.exceptions import RedisError

from aegis.brain.events import Candle
from aegis.brain.numeric import decimal_text, price_decimal, volume_decimal
from aegis.brain.timeframes import INDEX_BY_NAME, WIDTHS_MS, Clock, SystemClock
from aegis.errors import DependencyUnavailable, ExchangeError
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database

log = logging.getLogger("aegis.brain.persistence")

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_STORAGE_ERRORS = (DependencyUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

_COLUMNS = (
    "symbol, timeframe, open_time, close_time, open, high, low, close, volume, quote_volume, trade_count, "
    "taker_buy_volume, source"
)
_UNNEST = (
    "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::numeric[], "
    "$6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::bigint[], $12::numeric[], "
    "$13::text[])"
)
UPSERT_SQL = f"""
INSERT INTO candles AS c ({_COLUMNS})
{_UNNEST}
ON CONFLICT (symbol, timeframe, open_time) DO UPDATE SET
    close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
    trade_count = EXCLUDED.trade_count, taker_buy_volume = EXCLUDED.taker_buy_volume, source = EXCLUDED.source,
    inserted_at = now()
WHERE EXCLUDED.source <> 'trades' OR c.source = 'trades'
"""
INSERT_IF_ABSENT_SQL = f"""
INSERT INTO candles ({_COLUMNS})
{_UNNEST}
ON CONFLICT (symbol, timeframe, open_time) DO NOTHING
"""
_SELECT = (
    "SELECT symbol, timeframe, open_time, open, high, low, close, volume, quote_volume, trade_count, "
    "taker_buy_volume, source FROM candles"
)


def ms_to_datetime(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def datetime_to_ms(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def candle_row(c: Candle) -> tuple[Any, ...]:
    """Return the ``candles`` row of ``c`` (prices exact, volumes rounded to 8 decimals: see aegis.brain.numeric)."""
    return (
        c.symbol,
        c.timeframe,
        ms_to_datetime(c.open_time_ms),
        ms_to_datetime(c.close_time_ms),
        price_decimal(c.open),
        price_decimal(c.high),
        price_decimal(c.low),
        price_decimal(c.close),
        volume_decimal(c.volume),
        volume_decimal(c.quote_volume),
        c.trade_count,
        volume_decimal(c.taker_buy_volume),
        c.source,
    )


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def candle_from_record(record: asyncpg.Record) -> Candle:
    open_ms = datetime_to_ms(record["open_time"])
    width = WIDTHS_MS[INDEX_BY_NAME[record["timeframe"]]]
    return Candle(
        symbol=record["symbol"],
        timeframe=record["timeframe"],
        open_time_ms=open_ms,
        close_time_ms=open_ms + width - 1,
        open=float(record["open"]),
        high=float(record["high"]),
        low=float(record["low"]),
        close=float(record["close"]),
        volume=float(record["volume"]),
        quote_volume=float(record["quote_volume"]),
        trade_count=int(record["trade_count"]),
        taker_buy_volume=float(record["taker_buy_volume"]),
        source=record["source"],
    )


def redis_fields(c: Candle) -> dict[str, str]:
    """Return the Redis hash of the latest candle (decimal strings, times in Unix ms)."""
    return {
        "symbol": c.symbol,
        "timeframe": c.timeframe,
        "open_time": str(c.open_time_ms),
        "close_time": str(c.close_time_ms),
        "open": decimal_text(price_decimal(c.open)),
        "high": decimal_text(price_decimal(c.high)),
        "low": decimal_text(price_decimal(c.low)),
        "close": decimal_text(price_decimal(c.close)),
        "volume": decimal_text(volume_decimal(c.volume)),
        "quote_volume": decimal_text(volume_decimal(c.quote_volume)),
        "trade_count": str(c.trade_count),
        "taker_buy_volume": decimal_text(volume_decimal(c.taker_buy_volume)),
        "source": c.source,
        "closed": "1" if c.closed else "0",
        "partial": "1" if c.partial else "0",
    }


class CandleWriter:
    """Write closed candles to PostgreSQL (batched upserts) and the latest per symbol/timeframe to Redis."""

    def __init__(
        self,
        db: Database | None,
        cache: Cache | None,
        *,
        batch_rows: int = 1000,
        interval_s: float = 0.2,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        ttl_s: int = keys.LATEST_OHLCV_TTL_S,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._cache = cache
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.ttl_s = ttl_s
        self._clock = clock or SystemClock()
        self._pending: dict[tuple[str, str, int], Candle] = {}
        self._inflight = 0
        self._latest: dict[tuple[str, str], Candle] = {}  # to write to Redis
        self._latest_open: dict[tuple[str, str], int] = {}  # newest open time submitted per symbol/timeframe
        self._wake = asyncio.Event()
        self._pg_down_since: float | None = None
        self._redis_down_since: float | None = None
        self.rows_written = 0
        self.rows_rejected = 0
        self.pg_failures = 0
        self.pg_retries = 0
        self.redis_written = 0
        self.redis_failures = 0
        self.last_error = ""

    # -- producer side (the consumer loop) -------------------------------------------------------------------

    def submit(self, candle: Candle) -> None:
        """Queue a closed candle for PostgreSQL and (if it is the newest of its series) for Redis. Never waits."""
        if self._db is not None:
            self._pending[(candle.symbol, candle.timeframe, candle.open_time_ms)] = candle
        series = (candle.symbol, candle.timeframe)
        if self._cache is not None and candle.open_time_ms >= self._latest_open.get(series, -1):
            self._latest_open[series] = candle.open_time_ms
            self._latest[series] = candle
        self._wake.set()

    def submit_all(self, candles: Iterable[Candle]) -> None:
        for candle in candles:
            self.submit(candle)

    @property
    def backlog(self) -> int:
        """Closed candles not yet in PostgreSQL (pending + being written)."""
        return len(self._pending) + self._inflight

    @property
    def redis_backlog(self) -> int:
        return len(self._latest)

    def stats(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "redis_backlog": self.redis_backlog,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "pg_failures": self.pg_failures,
            "pg_retries": self.pg_retries,
            "redis_written": self.redis_written,
            "redis_failures": self.redis_failures,
            "postgres_down": self._pg_down_since is not None,
            "redis_down": self._redis_down_since is not None,
            "last_error": self.last_error,
        }

    # -- writer task -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Write forever: gather for ``interval_s``, write, back off while storage is down."""
        delay = self.retry_initial_s
        while True:
            if not self._pending and not self._latest:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self.interval_s)  # let a minute's closes (every symbol, every timeframe) gather
            ok = await self.flush_once()
            if ok:
                delay = self.retry_initial_s
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Write everything pending now (shutdown, tests); return True when nothing is left."""
        deadline = time.monotonic() + timeout_s
        delay = self.retry_initial_s
        while self._pending or self._latest:
            if not await self.flush_once():
                if time.monotonic() + delay > deadline:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
        return True

    async def flush_once(self) -> bool:
        """Write one PostgreSQL batch and the Redis latest values; return False if either failed."""
        redis_ok = await self._write_redis()
        pg_ok = await self._write_postgres()
        return redis_ok and pg_ok

    async def _write_postgres(self) -> bool:
        if not self._pending or self._db is None:
            return True
        keys_now = list(self._pending)[: self.batch_rows]
        batch = [c for c in (self._pending.pop(key) for key in keys_now) if self._valid(c)]
        self._inflight = len(batch)
        try:
            await self._insert(batch)
        except _DATA_ERRORS as exc:
            # One bad row must not block every later candle: write them one by one and drop the bad ones.
            log.error("a candle batch was refused (%s): writing its rows one by one", exc)
            try:
                await self._insert_one_by_one(batch)
            except _STORAGE_ERRORS as again:
                self._failed(batch, again)
                return False
        except _STORAGE_ERRORS as exc:
            self._failed(batch, exc)
            if self._db is not None:
                await self._db.expire_connections()  # connections may have died with the server
            return False
        except BaseException:
            self._requeue(batch)  # cancelled at shutdown: keep them for the final flush
            raise
        finally:
            self._inflight = 0
        self.rows_written += len(batch)
        if self._pg_down_since is not None:
            log.info(
                "PostgreSQL writes work again after %.1f s; %d candles still pending",
                time.monotonic() - self._pg_down_since,
                len(self._pending),
            )
            self._pg_down_since = None
        return True

    def _valid(self, candle: Candle) -> bool:
        try:
            candle_row(candle)
        except ValueError as exc:
            self.rows_rejected += 1
            log.error("dropped a candle that cannot be stored: %s (%s)", candle, exc)
            return False
        return True

    async def _insert(self, batch: Sequence[Candle]) -> None:
        complete = [candle_row(c) for c in batch if not c.partial]
        partial = [candle_row(c) for c in batch if c.partial]
        assert self._db is not None
        async with self._db.connection() as conn, conn.transaction():
            if complete:
                await conn.execute(UPSERT_SQL, *_columns(complete))
            if partial:
                await conn.execute(INSERT_IF_ABSENT_SQL, *_columns(partial))

    async def _insert_one_by_one(self, batch: Sequence[Candle]) -> None:
        for candle in batch:
            try:
                await self._insert([candle])
            except _DATA_ERRORS as exc:
                self.rows_rejected += 1
                log.error("dropped a candle PostgreSQL refuses: %s (%s)", candle, exc)

    def _failed(self, batch: Sequence[Candle], exc: BaseException) -> None:
        self._requeue(batch)
        self.pg_failures += 1
        self.last_error = f"postgres: {type(exc).__name__}: {exc}"
        if self._pg_down_since is None:
            self._pg_down_since = time.monotonic()
            log.warning("cannot write candles to PostgreSQL (%s): keeping them and retrying", exc)
        else:
            self.pg_retries += 1

    def _requeue(self, batch: Sequence[Candle]) -> None:
        for candle in batch:
            # A newer version submitted meanwhile wins over the one that failed.
            self._pending.setdefault((candle.symbol, candle.timeframe, candle.open_time_ms), candle)

    async def _write_redis(self) -> bool:
        if not self._latest or self._cache is None:
            return True
        latest, self._latest = self._latest, {}
        try:
            pipe = self._cache.client.pipeline(transaction=False)
            for (symbol, timeframe), candle in latest.items():
                key = keys.latest_ohlcv(symbol, timeframe)
                pipe.hset(key, mapping=redis_fields(candle))
                pipe.expire(key, self.ttl_s)
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            for series, candle in latest.items():
                self._latest.setdefault(series, candle)
            self.redis_failures += 1
            self.last_error = f"redis: {type(exc).__name__}: {exc}"
            if self._redis_down_since is None:
                self._redis_down_since = time.monotonic()
                log.warning("cannot write the latest candles to Redis (%s): retrying", exc)
            return False
        except BaseException:
            for series, candle in latest.items():
                self._latest.setdefault(series, candle)
            raise
        self.redis_written += len(latest)
        if self._redis_down_since is not None:
            log.info("Redis writes work again")
            self._redis_down_since = None
        return True


class CandleStore:
    """Candle reads from PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def range(self, symbol: str, timeframe: str, start_ms: int, end_ms: int, limit: int) -> list[Candle]:
        """Return up to ``limit`` candles with ``start_ms <= open_time < end_ms``, oldest first."""
        async with self._db.connection() as conn:
            records = await conn.fetch(
                f"{_SELECT} WHERE symbol = $1 AND timeframe = $2 AND open_time >= $3 AND open_time < $4 "
                "ORDER BY open_time LIMIT $5",
                symbol,
                timeframe,
                ms_to_datetime(start_ms),
                ms_to_datetime(end_ms),
                limit,
            )
        return [candle_from_record(r) for r in records]

    async def last(self, symbols: Sequence[str], timeframes: Sequence[str], count: int) -> list[Candle]:
        """Return the last ``count`` candles of every symbol and timeframe (one index-driven query)."""
        if not symbols or not timeframes:
            return []
        async with self._db.connection() as conn:
            records = await conn.fetch(
                "SELECT c.* FROM unnest($1::text[]) AS s(symbol) CROSS JOIN unnest($2::text[]) AS t(timeframe) "
                f"CROSS JOIN LATERAL ({_SELECT} WHERE candles.symbol = s.symbol AND candles.timeframe = t.timeframe "
                "ORDER BY open_time DESC LIMIT $3) AS c",
                list(symbols),
                list(timeframes),
                count,
            )
        return [candle_from_record(r) for r in records]

    async def has_symbol(self, symbol: str) -> bool:
        async with self._db.connection() as conn:
            return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM candles WHERE symbol = $1)", symbol))


def candle_from_rest(symbol: str, timeframe: str, row: Sequence[Any]) -> Candle:
    """Return a Binance REST kline array ``[openTime, "o", "h", "l", "c", "v", closeTime, "q", n, "V", …]``."""
    return Candle(
        symbol=symbol,
        timeframe=timeframe,
        open_time_ms=int(row[0]),
        close_time_ms=int(row[6]),
        open=float(row[1]),
        high=float(row[2]),
        low=float(row[3]),
        close=float(row[4]),
        volume=float(row[5]),
        quote_volume=float(row[7]),
        trade_count=int(row[8]),
        taker_buy_volume=float(row[9]),
        source="rest",
    )


class KlineSource(Protocol):
    """What the hydrator needs from Binance REST (``aegis.exchange.rest.BinanceRest`` has it)."""

    async def klines(
        self, symbol: str, interval: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 500
    ) -> list[list[Any]]: ...


class Hydrator:
    """Load the last ``count`` candles per symbol and timeframe: PostgreSQL first, then Binance REST for the rest.

    Every loaded candle goes into ``load`` (the book); candles REST adds, and wider candles that the loaded
    history completes (``rebuild``), go to the writer so that PostgreSQL has them next time.
    """

    def __init__(
        self,
        store: CandleStore | None,
        rest: KlineSource | None,
        writer: CandleWriter,
        load: Callable[[Iterable[Candle]], int],
        rebuild: Callable[[str], list[Any]],
        *,
        timeframes: Sequence[str],
        count: int,
        clock: Clock | None = None,
        rest_url: str = "",
        concurrency: int = 4,
    ) -> None:
        self._store = store
        self._rest = rest
        self._writer = writer
        self._load = load
        self._rebuild = rebuild
        self.timeframes = tuple(timeframes)
        self.count = count
        self._clock = clock or SystemClock()
        self._rest_url = rest_url
        self._concurrency = concurrency
        self.hydrated: set[str] = set()
        self._claimed: set[str] = set()
        self.from_postgres = 0
        self.from_rest = 0
        self.rebuilt = 0
        self.rest_failures = 0
        self.postgres_failures = 0
        self.postgres_loaded = asyncio.Event()
        """Set once the first PostgreSQL read finished (or failed): readiness waits for it, not for REST."""

    def stats(self) -> dict[str, Any]:
        return {
            "symbols": len(self.hydrated),
            "from_postgres": self.from_postgres,
            "from_rest": self.from_rest,
            "rebuilt": self.rebuilt,
            "rest_failures": self.rest_failures,
            "postgres_failures": self.postgres_failures,
        }

    async def hydrate(self, symbols: Iterable[str]) -> None:
        """Load history for the symbols not hydrated yet."""
        todo = [s for s in dict.fromkeys(symbols) if s not in self._claimed]
        self._claimed.update(todo)
        if not todo:
            self.postgres_loaded.set()
            return
        t0 = time.monotonic()
        newest: dict[tuple[str, str], int] = {}
        if self._store is not None:
            try:
                stored = await self._store.last(todo, self.timeframes, self.count)
            except _STORAGE_ERRORS as exc:
                self.postgres_failures += 1
                log.warning("cannot read candle history from PostgreSQL (%s): starting without it", exc)
                stored = []
            self.from_postgres += self._load(stored)
            for c in stored:
                series = (c.symbol, c.timeframe)
                newest[series] = max(newest.get(series, -1), c.open_time_ms)
        self.postgres_loaded.set()
        if self._rest is not None:
            await self._from_rest(todo, newest)
        for symbol in todo:
            closed = self._rebuild(symbol)
            self.rebuilt += len(closed)
            self._writer.submit_all(event.candle for event in closed)
            self.hydrated.add(symbol)
        log.info(
            "history loaded for %d symbols in %.2f s (%d candles from PostgreSQL, %d from REST, %d rolled up)",
            len(todo),
            time.monotonic() - t0,
            self.from_postgres,
            self.from_rest,
            self.rebuilt,
        )

    async def _from_rest(self, symbols: Sequence[str], newest: dict[tuple[str, str], int]) -> None:
        now_ms = self._clock.time_ns() // 1_000_000
        jobs: list[tuple[str, str, int | None, int]] = []
        for symbol in symbols:
            for timeframe in self.timeframes:
                width = WIDTHS_MS[INDEX_BY_NAME[timeframe]]
                last_open = newest.get((symbol, timeframe))
                if last_open is None:
                    jobs.append((symbol, timeframe, None, self.count))
                    continue
                missing = (now_ms - (last_open + width)) // width  # closed candles after the newest stored one
                if missing >= 1:
                    jobs.append((symbol, timeframe, last_open + width, min(self.count, missing + 1)))
        if not jobs:
            return
        unreachable = asyncio.Event()
        semaphore = asyncio.Semaphore(self._concurrency)

        async def fetch(symbol: str, timeframe: str, start_ms: int | None, limit: int) -> None:
            if unreachable.is_set():
                return
            async with semaphore:
                if unreachable.is_set():
                    return
                assert self._rest is not None
                try:
                    rows = await self._rest.klines(symbol, timeframe, start_ms=start_ms, limit=limit)
                except ExchangeError as exc:
                    self.rest_failures += 1
                    if not unreachable.is_set():
                        unreachable.set()
                        log.warning(
                            "Binance REST %s does not answer (%s): continuing with the history PostgreSQL had",
                            self._rest_url or "",
                            exc,
                        )
                    return
            closed = [
                candle_from_rest(symbol, timeframe, row) for row in rows if int(row[6]) < now_ms and len(row) >= 10
            ]
            self.from_rest += self._load(closed)
            self._writer.submit_all(closed)

        await asyncio.gather(*(fetch(*job) for job in jobs))
