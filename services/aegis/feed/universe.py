"""The symbol universe: USDT-quoted perpetuals in TRADING status, from exchangeInfo, and their shards.

When exchangeInfo cannot be had (Binance unreachable at start), the feed falls back to a fixed list of 20 large
USDT perpetuals, as the seeds did, so that a restart during an exchange outage still follows the main markets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FALLBACK_SYMBOLS: tuple[str, ...] = (
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "LINKUSDT", "DOTUSDT",
    "TRXUSDT", "LTCUSDT", "BCHUSDT", "NEARUSDT", "ATOMUSDT", "UNIUSDT", "ETCUSDT", "FILUSDT", "APTUSDT", "ARBUSDT",
)  # fmt: skip


def tradable_perpetuals(exchange_info: Mapping[str, Any], quote: str = "USDT") -> list[str]:
    """Return the symbols of ``exchange_info`` that are PERPETUAL, TRADING and quoted in ``quote``, in its order."""
    return [
        s["symbol"]
        for s in exchange_info.get("symbols", [])
        if s.get("contractType") == "PERPETUAL" and s.get("status") == "TRADING" and s.get("quoteAsset") == quote
    ]


def rank_by_quote_volume(symbols: Sequence[str], tickers: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """Order ``symbols`` by 24 h quote volume (from /fapi/v1/ticker/24hr) when given, else keep their order."""
    if not tickers:
        return list(symbols)
    volume = {}
    for ticker in tickers:
        try:
            volume[ticker["symbol"]] = float(ticker.get("quoteVolume", 0))
        except (KeyError, TypeError, ValueError):
            continue
    position = {s: i for i, s in enumerate(symbols)}
    return sorted(symbols, key=lambda s: (-volume.get(s, -1.0), position[s]))


def select(
    exchange_info: Mapping[str, Any] | None,
    *,
    explicit: Sequence[str] = (),
    count: int = 20,
    tickers: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """Return the universe: the explicit list if given, else the ``count`` largest tradable perpetuals.

    Explicit symbols that exchangeInfo does not list as tradable are dropped; without exchangeInfo the fallback
    list is used.
    """
    if exchange_info is None:
        return list(explicit) if explicit else list(FALLBACK_SYMBOLS[:count])
    tradable = tradable_perpetuals(exchange_info)
    if explicit:
        allowed = set(tradable)
        return [s for s in explicit if s in allowed]
    return rank_by_quote_volume(tradable, tickers)[:count]


def shard_of(universe: Sequence[str], shard_size: int) -> dict[str, int]:
    """Assign each symbol of the universe to a shard of ``shard_size`` consecutive symbols."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    return {symbol: index // shard_size for index, symbol in enumerate(universe)}


def symbols_of_shard(universe: Sequence[str], shard_size: int, shard: int) -> list[str]:
    return list(universe[shard * shard_size : (shard + 1) * shard_size])
