from __future__ import annotations

import pytest

from aegis.feed import universe
from aegis.feed.streams import MAX_STREAMS_PER_CONNECTION, plan_connections

MARKET = "wss://fstream.binance.com/market"
PUBLIC = "wss://fstream.binance.com/public"


def test_streams_go_to_their_paths_and_fit_the_connection_limit() -> None:
    symbols = [f"S{i}USDT" for i in range(500)]
    plans = plan_connections(symbols, MARKET, PUBLIC, per_connection=MAX_STREAMS_PER_CONNECTION)
    market = [p for p in plans if p.base_url == MARKET]
    public = [p for p in plans if p.base_url == PUBLIC]
    assert all(len(p.streams) <= MAX_STREAMS_PER_CONNECTION for p in plans)
    assert sum(len(p.streams) for p in market) == 500 * 3
    assert sum(len(p.streams) for p in public) == 500
    assert all("@bookTicker" in s for p in public for s in p.streams)
    assert {s.split("@", 1)[1] for p in market for s in p.streams} == {"aggTrade", "markPrice@1s", "kline_1m"}
    assert market[0].url.startswith(MARKET + "/stream?streams=s0usdt@aggTrade/s0usdt@markPrice@1s/")


def test_per_connection_is_bounded() -> None:
    with pytest.raises(ValueError, match="per_connection"):
        plan_connections(["BTCUSDT"], MARKET, PUBLIC, per_connection=1025)


def test_universe_from_the_real_exchange_info(shared_data) -> None:
    import json

    info = json.loads((shared_data / "binance/alphadogs_coinbase_python/futures_exchange_info.json").read_text())
    tradable = universe.tradable_perpetuals(info)
    assert "BTCUSDT" in tradable and "ETHUSDT" in tradable
    by_symbol = {s["symbol"]: s for s in info["symbols"]}
    assert all(
        by_symbol[s]["contractType"] == "PERPETUAL"
        and by_symbol[s]["status"] == "TRADING"
        and by_symbol[s]["quoteAsset"] == "USDT"
        for s in tradable
    )
    assert universe.select(info, count=20) == tradable[:20]
    assert universe.select(info, explicit=["ETHUSDT", "NOPEUSDT"]) == ["ETHUSDT"]
    assert universe.select(None, count=20) == list(universe.FALLBACK_SYMBOLS)
    tickers = [{"symbol": "ETHUSDT", "quoteVolume": "9e9"}, {"symbol": "BTCUSDT", "quoteVolume": "1e9"}]
    assert universe.select(info, count=2, tickers=tickers) == ["ETHUSDT", "BTCUSDT"]


def test_shards_split_the_universe_in_order() -> None:
    symbols = [f"S{i}USDT" for i in range(7)]
    assert universe.shard_of(symbols, 3) == {s: i // 3 for i, s in enumerate(symbols)}
    assert universe.symbols_of_shard(symbols, 3, 2) == ["S6USDT"]
