"""The simulator's state in one object: the loaded market, the replay clock, the websocket hub, the REST views.

Route modules (``rest``, ``trading``, ``control``, ``ws``) reach it through ``request.app[STATE]``; the trading
layer (the account and its matching, the order-rate meter, the user data stream) hangs here beside them.
"""

from __future__ import annotations

import collections
import re
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from aiohttp import web

from aegis.sim.account import SimAccount
from aegis.sim.book import LazyBook
from aegis.sim.config import SimConfig
from aegis.sim.klines import MINUTE_MS, Bar, bar_from_trades
from aegis.sim.recording import Market, SymbolTape, load_exchange_info
from aegis.sim.replay import Replay
from aegis.sim.user_stream import UserStreamHub
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


class OrderMeter:
    """ORDERS per account in the current 10-second and 1-minute windows (wall clock), as Binance counts them."""

    def __init__(self, limit_10s: int, limit_1m: int) -> None:
        self.limit_10s = limit_10s
        self.limit_1m = limit_1m
        self._window_10s = self._window_1m = -1
        self._count_10s: collections.Counter[str] = collections.Counter()
        self._count_1m: collections.Counter[str] = collections.Counter()

    def charge(self, account: str, now: float | None = None) -> tuple[int, int, str | None, float]:
        """Count one order; return (count 10 s, count 1 min, the -1015 message if over a limit, retry-after s)."""
        now = time.time() if now is None else now
        window_10s, window_1m = int(now // 10), int(now // 60)
        if window_10s != self._window_10s:
            self._window_10s = window_10s
            self._count_10s.clear()
        if window_1m != self._window_1m:
            self._window_1m = window_1m
            self._count_1m.clear()
        self._count_10s[account] += 1
        self._count_1m[account] += 1
        c10, c1m = self._count_10s[account], self._count_1m[account]
        if c10 > self.limit_10s:
            message = f"Too many new orders; current limit is {self.limit_10s} orders per 10 SECOND."
            return c10, c1m, message, 10 - now % 10
        if c1m > self.limit_1m:
            message = f"Too many new orders; current limit is {self.limit_1m} orders per MINUTE."
            return c10, c1m, message, 60 - now % 60
        return c10, c1m, None, 0.0

    def counts(self, account: str) -> tuple[int, int]:
        return self._count_10s[account], self._count_1m[account]


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
        self.account = SimAccount(self)
        self.user_streams = UserStreamHub(self)
        self.orders_meter = OrderMeter(
            config.order_limit_10s or self._rate_limit("ORDERS", "SECOND", 300),
            config.order_limit_1m or self._rate_limit("ORDERS", "MINUTE", 1200),
        )
        self.next_order_faults: collections.deque[str] = collections.deque()
        self.trading_stats: collections.Counter[str] = collections.Counter()

    def _rate_limit(self, kind: str, interval: str, default: int) -> int:
        for limit in self.exchange_info.get("rateLimits", []):
            if limit.get("rateLimitType") == kind and limit.get("interval") == interval:
                return int(limit["limit"])
        return default

    def after_advance(self, start: int, end: int) -> None:
        """The replay released frames ``[start, end)``: let resting and algo orders react to them."""
        self.account.on_advance(start, end)

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
        return {
            "replay": self.replay.describe(),
            **self.hub.stats(),
            "recording": self.market.line_counts,
            "trading": {
                **self.trading_stats,
                "orders_accepted": self.account.counters.orders_accepted,
                "algo_orders_accepted": self.account.counters.algo_orders_accepted,
                "fills": self.account.counters.fills,
                "events": dict(self.account.counters.events),
                "pending_faults": list(self.next_order_faults),
                "user_stream": self.user_streams.stats(),
            },
        }
