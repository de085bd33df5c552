"""The simulator's state in one object: the loaded market, the replay clock, the websocket hub, the REST views.

Route modules (``rest``, ``control``, ``ws``) reach it through ``request.app[STATE]``; a later trading layer
(orders, positions, a user data stream) will hang its own state here beside these.
"""

from __future__ import annotations

import collections
import re
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from aiohttp import web

from aegis.sim.book import LazyBook
from aegis.sim.config import SimConfig
from aegis.sim.klines import MINUTE_MS, Bar, bar_from_trades
from aegis.sim.recording import Market, SymbolTape, load_exchange_info
from aegis.sim.replay import Replay
from aegis.sim.ws import Hub

STATE: web.AppKey[SimState] = web.AppKey("aegis_sim_state")

_SERVER_TIME = re.compile(r'"serverTime"\s*:\s*\d+')


class WeightMeter:
    """Request weight per client IP per minute (wall clock), like Binance's ``X-MBX-USED-WEIGHT-1M``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._minute = -1
        self._used: collections.Counter[str] = collections.Counter()

    def charge(self, ip: str, weight: int, now: float | None = None) -> tuple[int, bool]:
        """Add ``weight`` for ``ip``; return (weight used this minute, whether the limit is now exceeded)."""
        minute = int((time.time() if now is None else now) // 60)
        if minute != self._minute:
            self._minute = minute
            self._used.clear()
        self._used[ip] += weight
        used = self._used[ip]
        return used, used > self.limit


class SimState:
    def __init__(self, config: SimConfig, market: Market) -> None:
        self.config = config
        self.market = market
        info_path = Path(config.exchange_info)
        self.exchange_info: dict = load_exchange_info(info_path)
        text = info_path.read_text()
        match = _SERVER_TIME.search(text)
        self._info_head, self._info_tail = (text[: match.start()], text[match.end() :]) if match else (text, "")
        self.symbols: set[str] = {s["symbol"] for s in self.exchange_info.get("symbols", [])} | set(market.tapes)
        limit = config.weight_limit_per_minute or next(
            (
                r["limit"]
                for r in self.exchange_info.get("rateLimits", [])
                if r.get("rateLimitType") == "REQUEST_WEIGHT" and r.get("interval") == "MINUTE"
            ),
            2400,
        )
        self.weights = WeightMeter(int(limit))
        self.hub = Hub(self)
        self.replay = Replay(self)
        self.books = {symbol: LazyBook(tape) for symbol, tape in market.tapes.items()}

    # ------------------------------------------------------------------ views

    @property
    def clock_ms(self) -> int:
        return self.replay.clock_ms

    def exchange_info_text(self) -> str:
        if not self._info_tail:
            return self._info_head
        return f'{self._info_head}"serverTime":{self.clock_ms}{self._info_tail}'

    def bars_1m(self, tape: SymbolTape, position: int | None = None) -> list[Bar]:
        """Closed 1m bars at the replay position plus the open one, as Binance shows them at that moment."""
        position = self.replay.position if position is None else position
        closed = int(np.searchsorted(tape.bar_close_index, position, side="left"))
        bars = list(tape.bars[:closed])
        previous_close = bars[-1].close if bars else None
        if tape.bars_from_trades:
            first = tape.bar_trade_end[closed - 1] if closed else 0
            last = int(np.searchsorted(tape.trade_index, position, side="left"))
            trades = tape.trades[first:last]
            if closed:
                open_time = bars[-1].open_time + MINUTE_MS
            elif trades:
                open_time = trades[0].time_ms - trades[0].time_ms % MINUTE_MS
            else:
                return bars
            if trades or previous_close is not None:
                bars.append(bar_from_trades(open_time, trades, previous_close))
        elif closed < len(tape.bars) and tape.bars[closed].open_time <= self.clock_ms:
            upcoming = tape.bars[closed]  # the CSV has no intra-minute data: show it flat at its open
            zero = Decimal(0)
            price = upcoming.open
            bars.append(Bar(upcoming.open_time, MINUTE_MS, price, price, price, price, zero, zero, 0, zero, zero))
        return bars

    def last_price(self, tape: SymbolTape, position: int | None = None) -> Decimal | None:
        position = self.replay.position if position is None else position
        if tape.bars_from_trades:
            count = int(np.searchsorted(tape.trade_index, position, side="left"))
            return tape.trades[count - 1].price if count else None
        closed = int(np.searchsorted(tape.bar_close_index, position, side="left"))
        return tape.bars[closed - 1].close if closed else None

    def book(self, tape: SymbolTape, limit: int) -> dict:
        position = self.replay.position
        snapshot = self.books[tape.symbol].snapshot(position, limit, self.clock_ms)
        if snapshot is not None:
            return snapshot
        count = int(np.searchsorted(tape.ticker_index, position, side="left"))
        if count:
            ticker = tape.tickers[count - 1]
            return {
                "lastUpdateId": 0,
                "E": self.clock_ms,
                "T": ticker.time_ms,
                "bids": [[ticker.bid, ticker.bid_qty]],
                "asks": [[ticker.ask, ticker.ask_qty]],
            }
        return {"lastUpdateId": 0, "E": self.clock_ms, "T": self.clock_ms, "bids": [], "asks": []}

    def stats(self) -> dict:
        return {"replay": self.replay.describe(), **self.hub.stats(), "recording": self.market.line_counts}
