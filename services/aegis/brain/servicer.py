"""MarketService over gRPC: translate requests into :class:`aegis.brain.market.MarketQueries` and
:class:`aegis.brain.signals.SignalHub` calls and back.

Errors become status codes in one place (``aegis.server.abort_with``): ValidationError → INVALID_ARGUMENT naming
the field, NotFoundError → NOT_FOUND, DependencyUnavailable → UNAVAILABLE, SubscriberTooSlow (a StreamSignals
client that did not keep up) → RESOURCE_EXHAUSTED. The signal modules (numba, through the features) are imported
on the first signal call, never on the bind path.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from aegis.brain.events import Candle
from aegis.brain.numeric import price_text, volume_text
from aegis.brain.timeframes import INDEX_BY_NAME, TIMEFRAMES
from aegis.errors import AegisError, DependencyUnavailable, ValidationError
from aegis.server import Registration, abort_with, unimplemented_servicer
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import market_pb2 as market_pb
from aegis.v1 import market_pb2_grpc as market_grpc

if TYPE_CHECKING:
    from aegis.brain.market import MarketQueries
    from aegis.brain.signals import SignalHub
    from aegis.brain.zones import SmcZone, StructurePoint

SERVICE_NAME = "aegis.v1.MarketService"
IMPLEMENTED = ("GetMarketState", "ListCandles", "ListSignals", "StreamSignals", "GetBrainStatus")


def timestamp_ms(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def candle_to_pb(c: Candle) -> common_pb.Candle:
    return common_pb.Candle(
        symbol=c.symbol,
        timeframe=TIMEFRAMES[INDEX_BY_NAME[c.timeframe]].proto,
        open_time=timestamp_ms(c.open_time_ms),
        close_time=timestamp_ms(c.close_time_ms),
        open=price_text(c.open),
        high=price_text(c.high),
        low=price_text(c.low),
        close=price_text(c.close),
        volume=volume_text(c.volume),
        quote_volume=volume_text(c.quote_volume),
        trade_count=c.trade_count,
        taker_buy_volume=volume_text(c.taker_buy_volume),
        closed=c.closed,
    )


_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _ms(message: Any, name: str) -> int | None:
    if not message.HasField(name):
        return None
    try:
        ms = getattr(message, name).ToMilliseconds()
    except (ValueError, OverflowError):
        raise ValidationError(name, "is not a valid time (years 1 to 9999)") from None
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValidationError(name, "is not a valid time (years 1 to 9999)")
    return ms


_DIRECTIONS = {1: market_pb.DIRECTION_BULLISH, -1: market_pb.DIRECTION_BEARISH}
_STRUCTURE_KINDS = {
    "SWING_HIGH": market_pb.STRUCTURE_EVENT_KIND_SWING_HIGH,
    "SWING_LOW": market_pb.STRUCTURE_EVENT_KIND_SWING_LOW,
    "BOS": market_pb.STRUCTURE_EVENT_KIND_BOS,
    "CHOCH": market_pb.STRUCTURE_EVENT_KIND_CHOCH,
}


def zone_to_pb(z: SmcZone) -> market_pb.SmcZone:
    out = market_pb.SmcZone(
        zone_id=z.zone_id,
        kind=market_pb.SmcZoneKind.Value(f"SMC_ZONE_KIND_{z.kind}"),
        direction=_DIRECTIONS.get(z.direction, market_pb.DIRECTION_UNSPECIFIED),
        top=price_text(z.top),
        bottom=price_text(z.bottom),
        formed_time=timestamp_ms(z.formed_time_ms),
        mitigated=z.mitigated,
        strength=z.strength if math.isfinite(z.strength) else 0.0,
    )
    if z.mitigated_time_ms is not None:
        out.mitigated_time.CopyFrom(timestamp_ms(z.mitigated_time_ms))
    return out


def structure_to_pb(p: StructurePoint) -> market_pb.StructureEvent:
    return market_pb.StructureEvent(
        kind=_STRUCTURE_KINDS[p.kind],
        direction=_DIRECTIONS.get(p.direction, market_pb.DIRECTION_UNSPECIFIED),
        level=price_text(p.level),
        event_time=timestamp_ms(p.event_time_ms),
        confirmed_time=timestamp_ms(p.confirmed_time_ms),
    )


def _timestamp_ns(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


class Runtime:
    """Where the servicer finds the brain's queries and signal hub once the background start-up has built them."""

    queries: MarketQueries | None = None
    hub: SignalHub | None = None

    def require(self) -> MarketQueries:
        if self.queries is None:
            raise DependencyUnavailable("the brain is still starting (loading its candle engine); retry shortly")
        return self.queries

    def require_hub(self) -> SignalHub:
        if self.hub is None:
            raise DependencyUnavailable("the brain is still starting (loading its strategy); retry shortly")
        return self.hub


_Base = unimplemented_servicer(market_grpc.MarketServiceServicer, SERVICE_NAME, implemented=IMPLEMENTED)


class MarketServicer(_Base):  # type: ignore[misc,valid-type]
    """The thin translator (STYLE habit 1)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def ListCandles(
        self, request: market_pb.ListCandlesRequest, context: grpc.aio.ServicerContext
    ) -> market_pb.ListCandlesResponse:
        try:
            page = await self._runtime.require().list_candles(
                request.symbol,
                request.timeframe,
                _ms(request, "start_time"),
                _ms(request, "end_time"),
                request.page_size,
                request.page_token,
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return market_pb.ListCandlesResponse(
            candles=[candle_to_pb(c) for c in page.candles], next_page_token=page.next_page_token
        )

    async def GetMarketState(
        self, request: market_pb.GetMarketStateRequest, context: grpc.aio.ServicerContext
    ) -> market_pb.GetMarketStateResponse:
        try:
            state = await self._runtime.require().market_state(request.symbol, request.timeframe, request.limit)
        except AegisError as exc:
            await abort_with(context, exc)
        response = market_pb.GetMarketStateResponse(
            symbol=state.symbol,
            timeframe=TIMEFRAMES[INDEX_BY_NAME[state.timeframe]].proto,
            candles=[candle_to_pb(c) for c in state.candles],
            last_price=price_text(state.last_price),
            mark_price=price_text(state.mark_price),
            funding_rate=price_text(state.funding_rate),
            as_of_time=timestamp_ms(state.as_of_ms),
            indicators=[
                market_pb.IndicatorValue(
                    name=r.name,
                    params=r.params,
                    values=r.values,
                    candle_open_time=timestamp_ms(r.candle_open_time_ms),
                )
                for r in state.indicators
            ],
            zones=[zone_to_pb(z) for z in state.zones],
            structure_events=[structure_to_pb(p) for p in state.structure],
        )
        if state.next_funding_time_ms > 0:
            response.next_funding_time.CopyFrom(timestamp_ms(state.next_funding_time_ms))
        return response

    async def ListSignals(
        self, request: market_pb.ListSignalsRequest, context: grpc.aio.ServicerContext
    ) -> market_pb.ListSignalsResponse:
        from aegis.brain.signals import signal_to_pb

        try:
            page = await self._runtime.require_hub().list_signals(
                symbol=request.symbol if request.HasField("symbol") else None,
                timeframe=request.timeframe,
                start_ms=_ms(request, "start_time"),
                end_ms=_ms(request, "end_time"),
                model_version=request.model_version if request.HasField("model_version") else None,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return market_pb.ListSignalsResponse(
            signals=[signal_to_pb(s, request.include_features) for s in page.signals],
            next_page_token=page.next_page_token,
        )

    async def StreamSignals(
        self, request: market_pb.StreamSignalsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[market_pb.StreamSignalsResponse]:
        from aegis.brain.signals import signal_to_pb

        try:
            subscription = self._runtime.require_hub().subscribe(
                request.symbols, request.min_confidence if request.HasField("min_confidence") else None
            )
        except AegisError as exc:
            await abort_with(context, exc)
        try:
            async for signal in subscription:
                yield market_pb.StreamSignalsResponse(signal=signal_to_pb(signal, request.include_features))
        except AegisError as exc:  # SubscriberTooSlow: RESOURCE_EXHAUSTED, never a wait in the brain
            await abort_with(context, exc)
        finally:
            subscription.close()

    async def GetBrainStatus(
        self, request: market_pb.GetBrainStatusRequest, context: grpc.aio.ServicerContext
    ) -> market_pb.GetBrainStatusResponse:
        try:
            status = self._runtime.require().brain_status()
        except AegisError as exc:
            await abort_with(context, exc)
        start = timestamp_pb2.Timestamp()
        start.FromDatetime(status.started_at.astimezone(dt.UTC).replace(tzinfo=None))
        shards = []
        for shard in status.shards:
            entry = market_pb.BrainShardStatus(
                shard_index=shard.shard_index,
                lag_records=shard.lag_records,
                writer_epoch=shard.writer_epoch,
                resync_count=shard.resync_count,
                lost_records=shard.lost_records,
            )
            if shard.lag_ns is not None:
                entry.lag.CopyFrom(duration_pb2.Duration(seconds=shard.lag_ns // 10**9, nanos=shard.lag_ns % 10**9))
            shards.append(entry)
        return market_pb.GetBrainStatusResponse(
            shards=shards,
            ticks_per_second=status.ticks_per_second,
            conflated_updates=status.conflated_updates,
            active_model_version=status.active_model_version,
            resync_count=status.resync_count,
            signals_total=status.signals_total,
            symbol_count=status.symbol_count,
            timeframes=[TIMEFRAMES[INDEX_BY_NAME[name]].proto for name in status.timeframes],
            start_time=start,
            version=status.version,
            model_loaded_time=_timestamp_ns(status.model_loaded_ns) if status.model_loaded_ns else None,
            last_signal_time=_timestamp_ns(status.last_signal_ns) if status.last_signal_ns else None,
        )


def registration(runtime: Runtime) -> Registration:
    return Registration(market_grpc.add_MarketServiceServicer_to_server, MarketServicer(runtime), SERVICE_NAME)
