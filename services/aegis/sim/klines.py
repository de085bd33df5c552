"""Klines: 1m bars from trades, roll-ups to longer intervals, and Binance's wire shapes for both.

Everything here is pure: bars in, bars or JSON-ready lists out. Prices and volumes stay ``Decimal`` so that a bar
summed from trades prints exactly like Binance prints it (``"0.006"`` + ``"0.120"`` = ``"0.126"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

MINUTE_MS = 60_000

INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
    "3d": 3 * 1440 * MINUTE_MS,
}
"""Intervals served, each aligned on multiples of its length since the Unix epoch (UTC), as Binance aligns them.
``1w`` (Monday-aligned) and ``1M`` (calendar months) are not served."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One kline. ``first_trade_id``/``last_trade_id`` are -1 when no trade is known (empty bar or CSV)."""

    open_time: int
    interval_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal
    first_trade_id: int = -1
    last_trade_id: int = -1

    @property
    def close_time(self) -> int:
        return self.open_time + self.interval_ms - 1


@dataclass(frozen=True, slots=True)
class Trade:
    """A recorded trade as the kline aggregation needs it."""

    trade_id: int
    time_ms: int
    price: Decimal
    qty: Decimal
    buyer_is_maker: bool


def minute_of(time_ms: int) -> int:
    return time_ms - time_ms % MINUTE_MS


@dataclass(frozen=True, slots=True)
class Precision:
    """Decimal places Binance prints for a symbol: price (``pricePrecision``), quantity, and quote volume."""

    price: Decimal = Decimal("0.01")
    qty: Decimal = Decimal("0.001")

    @property
    def quote(self) -> Decimal:
        return self.price * self.qty

    @classmethod
    def of(cls, price_decimals: int, qty_decimals: int) -> Precision:
        return cls(Decimal(1).scaleb(-price_decimals), Decimal(1).scaleb(-qty_decimals))


def bar_from_trades(open_time: int, trades: Sequence[Trade], previous_close: Decimal | None = None) -> Bar:
    """Aggregate ``trades`` (all inside the minute at ``open_time``) into a 1m bar.

    With no trades the bar is flat at ``previous_close`` with zero volume, as Binance shows an empty minute.
    """
    if not trades:
        if previous_close is None:
            raise ValueError("an empty bar needs the previous close")
        zero = Decimal(0)
        return Bar(
            open_time,
            MINUTE_MS,
            previous_close,
            previous_close,
            previous_close,
            previous_close,
            zero,
            zero,
            0,
            zero,
            zero,
        )
    volume = quote = taker_volume = taker_quote = None
    high = low = trades[0].price
    for trade in trades:
        notional = trade.price * trade.qty
        volume = trade.qty if volume is None else volume + trade.qty
        quote = notional if quote is None else quote + notional
        if not trade.buyer_is_maker:  # the taker bought
            taker_volume = trade.qty if taker_volume is None else taker_volume + trade.qty
            taker_quote = notional if taker_quote is None else taker_quote + notional
        high = max(high, trade.price)
        low = min(low, trade.price)
    assert volume is not None and quote is not None
    return Bar(
        open_time=open_time,
        interval_ms=MINUTE_MS,
        open=trades[0].price,
        high=high,
        low=low,
        close=trades[-1].price,
        volume=volume,
        quote_volume=quote,
        trades=len(trades),
        taker_buy_volume=taker_volume if taker_volume is not None else Decimal(0),
        taker_buy_quote_volume=taker_quote if taker_quote is not None else Decimal(0),
        first_trade_id=trades[0].trade_id,
        last_trade_id=trades[-1].trade_id,
    )


def merge_bars(open_time: int, interval_ms: int, bars: Sequence[Bar]) -> Bar:
    """Roll consecutive bars up into one bar of ``interval_ms`` starting at ``open_time``."""
    first, last = bars[0], bars[-1]
    traded = [b for b in bars if b.first_trade_id >= 0]
    return Bar(
        open_time=open_time,
        interval_ms=interval_ms,
        open=first.open,
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
        close=last.close,
        volume=_sum(b.volume for b in bars),
        quote_volume=_sum(b.quote_volume for b in bars),
        trades=sum(b.trades for b in bars),
        taker_buy_volume=_sum(b.taker_buy_volume for b in bars),
        taker_buy_quote_volume=_sum(b.taker_buy_quote_volume for b in bars),
        first_trade_id=traded[0].first_trade_id if traded else -1,
        last_trade_id=traded[-1].last_trade_id if traded else -1,
    )


def _sum(values: Iterable[Decimal]) -> Decimal:
    total: Decimal | None = None
    for value in values:
        total = value if total is None else total + value
    return total if total is not None else Decimal(0)


def rollup(bars_1m: Sequence[Bar], interval_ms: int) -> list[Bar]:
    """Group time-ordered 1m bars into bars of ``interval_ms`` on UTC-aligned boundaries."""
    if interval_ms == MINUTE_MS:
        return list(bars_1m)
    out: list[Bar] = []
    group: list[Bar] = []
    group_start = None
    for bar in bars_1m:
        start = bar.open_time - bar.open_time % interval_ms
        if start != group_start and group:
            out.append(merge_bars(group_start, interval_ms, group))  # type: ignore[arg-type]
            group = []
        group_start = start
        group.append(bar)
    if group:
        out.append(merge_bars(group_start, interval_ms, group))  # type: ignore[arg-type]
    return out


def select(bars: Sequence[Bar], start_time: int | None, end_time: int | None, limit: int) -> list[Bar]:
    """Apply Binance's klines query: from ``start_time`` forward, else the latest ``limit`` up to ``end_time``."""
    chosen = [
        b
        for b in bars
        if (start_time is None or b.open_time >= start_time) and (end_time is None or b.open_time <= end_time)
    ]
    if start_time is not None:
        return chosen[:limit]
    return chosen[-limit:]


def kline_row(bar: Bar, precision: Precision) -> list:
    """Return the REST array ``[openTime, "open", "high", "low", "close", "volume", closeTime, ...]``."""
    return [
        bar.open_time,
        _fmt(bar.open, precision.price),
        _fmt(bar.high, precision.price),
        _fmt(bar.low, precision.price),
        _fmt(bar.close, precision.price),
        _fmt(bar.volume, precision.qty),
        bar.close_time,
        _fmt(bar.quote_volume, precision.quote),
        bar.trades,
        _fmt(bar.taker_buy_volume, precision.qty),
        _fmt(bar.taker_buy_quote_volume, precision.quote),
        "0",
    ]


def kline_event(symbol: str, interval: str, bar: Bar, closed: bool, event_time: int, precision: Precision) -> dict:
    """Return the ``<symbol>@kline_<interval>`` stream payload for ``bar``."""
    return {
        "e": "kline",
        "E": event_time,
        "s": symbol,
        "k": {
            "t": bar.open_time,
            "T": bar.close_time,
            "s": symbol,
            "i": interval,
            "f": bar.first_trade_id,
            "L": bar.last_trade_id,
            "o": _fmt(bar.open, precision.price),
            "c": _fmt(bar.close, precision.price),
            "h": _fmt(bar.high, precision.price),
            "l": _fmt(bar.low, precision.price),
            "v": _fmt(bar.volume, precision.qty),
            "n": bar.trades,
            "x": closed,
            "q": _fmt(bar.quote_volume, precision.quote),
            "V": _fmt(bar.taker_buy_volume, precision.qty),
            "Q": _fmt(bar.taker_buy_quote_volume, precision.quote),
            "B": "0",
        },
    }


def _fmt(value: Decimal, places: Decimal) -> str:
    # Sums of recorded strings already carry Binance's decimals; quantize only pads zeros (0 -> "0.000")
    # and rounds estimates (CSV-derived quote volumes).
    return format(value.quantize(places), "f")
