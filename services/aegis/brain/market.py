"""What MarketService answers, as plain Python: candle pages, market state, brain status.

The gRPC servicer only translates requests and responses (``aegis.brain.servicer``); the checks and the merging
of memory with PostgreSQL live here, where tests call them directly. Invalid arguments raise
:class:`aegis.errors.ValidationError` naming the field; an unknown symbol raises :class:`aegis.errors.NotFoundError`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

import aegis
from aegis.brain import timeframes as tfs
from aegis.brain.events import Candle
from aegis.errors import DependencyUnavailable, NotFoundError, ValidationError

if TYPE_CHECKING:
    from aegis.brain.candles import CandleBook
    from aegis.brain.consumer import RingConsumer
    from aegis.brain.events import EventBus
    from aegis.brain.execution import Executor
    from aegis.brain.model import ModelHook
    from aegis.brain.persistence import CandleStore, CandleWriter, Hydrator
    from aegis.brain.prices import PricePusher
    from aegis.brain.signals import SignalHub
    from aegis.brain.strategy import Strategy
    from aegis.brain.zones import SmcZone, StructurePoint

LIST_CANDLES_DEFAULT = 500
LIST_CANDLES_MAX = 1500
MARKET_STATE_DEFAULT = 100
MARKET_STATE_MAX = 1000
_TOKEN_VERSION = 1

INDICATOR_PERIODS: dict[str, float] = {
    "sma": 20,
    "ema": 20,
    "rsi": 14,
    "atr": 14,
    "macd_fast": 12,
    "macd_slow": 26,
    "macd_signal": 9,
    "bb": 20,
    "bb_nbdev": 2.0,
    "adx": 14,
}
"""The periods the strategy's ``StreamingIndicators`` use (its defaults, AEGIS's standard periods)."""
INDICATOR_COLUMNS = (
    "sma", "ema", "rsi", "atr", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "adx"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CandlePage:
    candles: list[Candle]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class IndicatorReading:
    """One indicator with its parameters and outputs at the candle opening at ``candle_open_time_ms``."""

    name: str
    params: dict[str, float]
    values: dict[str, float]
    candle_open_time_ms: int


@dataclass(frozen=True, slots=True)
class MarketState:
    symbol: str
    timeframe: str
    candles: list[Candle]
    last_price: float
    mark_price: float
    funding_rate: float
    next_funding_time_ms: int
    as_of_ms: int
    indicators: list[IndicatorReading] = field(default_factory=list)
    zones: list[SmcZone] = field(default_factory=list)
    structure: list[StructurePoint] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ShardStatus:
    shard_index: int
    lag_records: int
    lag_ns: int | None
    writer_epoch: int
    resync_count: int
    lost_records: int


@dataclass(frozen=True, slots=True)
class BrainStatus:
    shards: list[ShardStatus]
    ticks_per_second: float
    conflated_updates: int
    resync_count: int
    signals_total: int
    symbol_count: int
    timeframes: list[str]
    started_at: dt.datetime
    version: str
    active_model_version: str = ""
    model_loaded_ns: int | None = None
    last_signal_ns: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Everything else (records processed, candles closed, persistence backlog, ...): published to Redis."""


def indicator_readings(values: dict[str, float], periods: dict[str, Any], open_ms: int) -> list[IndicatorReading]:
    """Return the streaming indicators' values (named as ``StreamingIndicators.COLUMNS``) as API readings."""

    def one(name: str, params: dict[str, float], outputs: dict[str, str]) -> IndicatorReading:
        return IndicatorReading(name, params, {k: float(values[v]) for k, v in outputs.items()}, open_ms)

    return [
        one("SMA", {"period": periods["sma"]}, {"value": "sma"}),
        one("EMA", {"period": periods["ema"]}, {"value": "ema"}),
        one("RSI", {"period": periods["rsi"]}, {"value": "rsi"}),
        one("ATR", {"period": periods["atr"]}, {"value": "atr"}),
        one(
            "MACD",
            {"fast": periods["macd_fast"], "slow": periods["macd_slow"], "signal": periods["macd_signal"]},
            {"macd": "macd", "signal": "macd_signal", "hist": "macd_hist"},
        ),
        one(
            "BBANDS",
            {"period": periods["bb"], "nbdev": periods["bb_nbdev"]},
            {"upper": "bb_upper", "middle": "bb_middle", "lower": "bb_lower"},
        ),
        one("ADX", {"period": periods["adx"]}, {"value": "adx"}),
    ]


def parse_symbol(raw: str) -> str:
    symbol = raw.strip().upper()
    if not symbol:
        raise ValidationError("symbol", "is required (e.g. BTCUSDT)")
    if not symbol.isalnum() or not symbol.isascii() or len(symbol) > 32:
        raise ValidationError("symbol", f"{raw!r} is not a Binance symbol")
    return symbol


def parse_timeframe(value: int) -> str:
    """Return the name of a tracked ``aegis.v1.Timeframe`` value."""
    if value == 0:
        raise ValidationError("timeframe", f"is required; tracked: {', '.join(tfs.TIMEFRAME_NAMES)}")
    index = tfs.INDEX_BY_PROTO.get(value)
    if index is None:
        tracked = ", ".join(tfs.TIMEFRAME_NAMES)
        raise ValidationError("timeframe", f"{value} is not tracked by the brain; tracked: {tracked}")
    return tfs.TIMEFRAMES[index].name


def page_size_of(value: int, default: int, maximum: int, name: str) -> int:
    if value < 0:
        raise ValidationError(name, "must not be negative")
    return default if value == 0 else min(value, maximum)


def encode_token(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([_TOKEN_VERSION, *parts])).decode().rstrip("=")


def decode_token(token: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parts = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValidationError("page_token", "is not a token this server issued") from None
    if not isinstance(parts, list) or not parts or parts[0] != _TOKEN_VERSION:
        raise ValidationError("page_token", "is not a token this server issued")
    return parts[1:]


class MarketQueries:
    """The brain's read side over its candle book, PostgreSQL, the consumer and the writer."""

    def __init__(
        self,
        book: CandleBook,
        store: CandleStore | None,
        *,
        consumer: RingConsumer | None = None,
        bus: EventBus | None = None,
        writer: CandleWriter | None = None,
        hydrator: Hydrator | None = None,
        configured_symbols: tuple[str, ...] = (),
        clock: tfs.Clock | None = None,
        shard_index: int = 0,
        started_at: dt.datetime | None = None,
        strategy: Strategy | None = None,
        hub: SignalHub | None = None,
        executor: Executor | None = None,
        prices: PricePusher | None = None,
        model: ModelHook | None = None,
        engine_counts: dict[str, int] | None = None,
    ) -> None:
        self.book = book
        self.store = store
        self.consumer = consumer
        self.bus = bus
        self.writer = writer
        self.hydrator = hydrator
        self.configured_symbols = frozenset(configured_symbols)
        self._clock = clock or tfs.SystemClock()
        self.shard_index = shard_index
        self.started_at = started_at or dt.datetime.now(dt.UTC)
        self.strategy = strategy
        self.hub = hub
        self.executor = executor
        self.prices = prices
        self.model = model
        self.engine_counts = engine_counts if engine_counts is not None else {}

    def _now_ms(self) -> int:
        return self._clock.time_ns() // 1_000_000

    async def _require_symbol(self, symbol: str) -> None:
        if self.book.has_symbol(symbol) or symbol in self.configured_symbols:
            return
        if self.store is not None:
            try:
                if await self.store.has_symbol(symbol):
                    return
            except DependencyUnavailable:
                raise
            except Exception as exc:
                raise DependencyUnavailable(f"PostgreSQL does not answer: {exc}") from exc
        raise NotFoundError(f"symbol {symbol} is not followed by this brain")

    # -- ListCandles -----------------------------------------------------------------------------------------

    async def list_candles(
        self,
        symbol: str,
        timeframe: int,
        start_ms: int | None,
        end_ms: int | None,
        page_size: int = 0,
        page_token: str = "",
    ) -> CandlePage:
        """Return one page of candles, oldest first: PostgreSQL for what is stored, memory on top of it.

        Memory wins for a candle both hold (it has the newest correction and the forming candle), unless memory's
        is partial and PostgreSQL's is complete.
        """
        symbol = parse_symbol(symbol)
        name = parse_timeframe(timeframe)
        size = page_size_of(page_size, LIST_CANDLES_DEFAULT, LIST_CANDLES_MAX, "page_size")
        if start_ms is not None and start_ms < 0:
            raise ValidationError("start_time", "must not be before 1970")
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise ValidationError("end_time", "must be after start_time")
        await self._require_symbol(symbol)
        request = [symbol, name, start_ms, end_ms]
        if page_token:
            parts = decode_token(page_token)
            if len(parts) != 6 or parts[:4] != request:
                raise ValidationError("page_token", "belongs to a different request (symbol, timeframe or range)")
            until, cursor = int(parts[4]), int(parts[5])
        else:
            until = end_ms if end_ms is not None else self._now_ms() + 1  # "unset = now", fixed for every page
            cursor = start_ms if start_ms is not None else 0
        merged: dict[int, Candle] = {}
        if self.store is not None:
            try:
                for candle in await self.store.range(symbol, name, cursor, until, size + 1):
                    merged[candle.open_time_ms] = candle
            except Exception as exc:
                oldest = self.book.oldest_open_ms(symbol, name)
                if oldest is None or cursor < oldest:
                    raise DependencyUnavailable(
                        f"PostgreSQL does not answer ({type(exc).__name__}) and memory does not hold candles that old"
                    ) from exc
        for candle in self.book.candles(symbol, name, cursor, until):
            stored = merged.get(candle.open_time_ms)
            if stored is None or not candle.partial or stored.partial:
                merged[candle.open_time_ms] = candle
        ordered = [merged[t] for t in sorted(merged)]
        token = ""
        if len(ordered) > size:
            token = encode_token([*request, until, ordered[size].open_time_ms])
            ordered = ordered[:size]
        return CandlePage(ordered, token)

    # -- GetMarketState --------------------------------------------------------------------------------------

    async def market_state(self, symbol: str, timeframe: int, limit: int = 0) -> MarketState:
        """Return the recent candles (the last may be forming), indicators, SMC zones and structure, and prices.

        Indicators come from the strategy's streaming state after the last closed candle of the timeframe, for the
        timeframes the strategy follows (the trigger timeframe, 15m, 1h, 1d); SMC zones and structure from its
        detectors, which run on the trigger timeframe and 15m. Elsewhere those lists are empty: no value is made up.
        Zones: the active ones, plus those mitigated within the returned candles.
        """
        symbol = parse_symbol(symbol)
        name = parse_timeframe(timeframe)
        count = page_size_of(limit, MARKET_STATE_DEFAULT, MARKET_STATE_MAX, "limit")
        await self._require_symbol(symbol)
        prices = self.book.prices(symbol) or {}
        nan = float("nan")
        candles = self.book.recent(symbol, name, count)
        indicators: list[IndicatorReading] = []
        zones: list[SmcZone] = []
        structure: list[StructurePoint] = []
        if self.strategy is not None:
            snapshot = self.strategy.indicator_snapshot(symbol, name)
            if snapshot is not None and snapshot.candle_open_time_ms >= 0:
                values = {column: snapshot[column] for column in INDICATOR_COLUMNS}
                indicators = indicator_readings(values, INDICATOR_PERIODS, snapshot.candle_open_time_ms)
            view = self.strategy.smc_view(symbol, name)
            if view is not None:
                since = candles[0].open_time_ms if candles else None
                zones = view.zones(mitigated_since_ms=since)
                structure = view.structure()
        return MarketState(
            symbol=symbol,
            timeframe=name,
            candles=candles,
            last_price=float(prices.get("last_price", nan)),
            mark_price=float(prices.get("mark_price", nan)),
            funding_rate=float(prices.get("funding_rate", nan)),
            next_funding_time_ms=int(prices.get("next_funding_time_ms", 0)),
            as_of_ms=self._now_ms(),
            indicators=indicators,
            zones=zones,
            structure=structure,
        )

    # -- GetBrainStatus --------------------------------------------------------------------------------------

    def brain_status(self) -> BrainStatus:
        """Return lag, throughput and counters; ``details`` holds what the API has no field for yet."""
        ring = self.consumer.status() if self.consumer is not None else {"state": "not started"}
        shards = []
        if "writer_epoch" in ring:
            shards.append(
                ShardStatus(
                    shard_index=self.shard_index,
                    lag_records=int(ring["lag_records"]),
                    lag_ns=ring["lag_ns"],
                    writer_epoch=int(ring["writer_epoch"]),
                    resync_count=int(ring["resyncs"]),
                    lost_records=int(ring["records_lost"]),
                )
            )
        bus = self.bus.stats() if self.bus is not None else {}
        book = self.book.stats()
        details: dict[str, Any] = {
            "ring": ring,
            "candles": book,
            "candles_closed": self.book.candles_closed,
            "bus": bus,
            "persistence": self.writer.stats() if self.writer is not None else {},
            "hydration": self.hydrator.stats() if self.hydrator is not None else {},
            "engine": dict(self.engine_counts),
        }
        if self.strategy is not None:
            details["strategy"] = self.strategy.stats()
        if self.hub is not None:
            details["signals"] = self.hub.stats()
        if self.executor is not None:
            details["execution"] = self.executor.stats_snapshot()
        if self.prices is not None:
            details["prices"] = self.prices.stats()
        if self.model is not None:
            details["model"] = self.model.stats()
        return BrainStatus(
            shards=shards,
            ticks_per_second=float(ring.get("ticks_per_second", 0.0)),
            conflated_updates=self.book.conflated + int(bus.get("conflated", 0)),
            resync_count=sum(s.resync_count for s in shards),
            signals_total=int(bus.get("signals", 0)),
            symbol_count=len(self.book.symbols),
            timeframes=list(self.book.names),
            started_at=self.started_at,
            version=aegis.__version__,
            active_model_version=self.model.version if self.model is not None else "",
            model_loaded_ns=self.model.loaded_at_ns if self.model is not None else None,
            last_signal_ns=self.hub.last_signal_ns if self.hub is not None else None,
            details=details,
        )
