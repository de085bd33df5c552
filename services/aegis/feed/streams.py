"""Which Binance streams the feed subscribes to, and how they are split across connections.

Since 2026-04-23 Binance serves market streams on two paths: ``/public`` (bookTicker, depth) and ``/market``
(aggTrade, markPrice, kline, forceOrder). A connection carries at most 1024 streams; the feed keeps each
connection's list in its URL (``/stream?streams=a/b/c``) so that a reconnect resubscribes by itself and no
SUBSCRIBE message counts against the 10 incoming messages/s limit. URLs stay short by capping the streams per
connection (``AEGIS_STREAMS_PER_CONNECTION``, at most 1024).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_STREAMS_PER_CONNECTION = 1024

MARKET_STREAMS: tuple[str, ...] = ("aggTrade", "markPrice@1s", "kline_1m")
PUBLIC_STREAMS: tuple[str, ...] = ("bookTicker",)
FORCE_ORDER_STREAM = "forceOrder"


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """One websocket connection: its base URL (``.../market`` or ``.../public``) and its streams."""

    base_url: str
    streams: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/stream?streams={'/'.join(self.streams)}"

    @property
    def name(self) -> str:
        path = self.base_url.rstrip("/").rsplit("/", 1)[-1]
        return f"{path}:{self.streams[0]}+{len(self.streams) - 1}"


def plan_connections(
    symbols: Sequence[str],
    market_url: str,
    public_url: str,
    *,
    per_connection: int = 200,
    force_orders: bool = False,
) -> list[ConnectionPlan]:
    """Return the connections that carry every stream of ``symbols``, at most ``per_connection`` streams each."""
    if not 1 <= per_connection <= MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"per_connection must be 1..{MAX_STREAMS_PER_CONNECTION}, not {per_connection}")
    market_kinds = MARKET_STREAMS + ((FORCE_ORDER_STREAM,) if force_orders else ())
    plans: list[ConnectionPlan] = []
    for base, kinds in ((market_url, market_kinds), (public_url, PUBLIC_STREAMS)):
        # All streams of a symbol stay on one connection (when they fit), so a lost connection costs whole symbols.
        names = [f"{symbol.lower()}@{kind}" for symbol in symbols for kind in kinds]
        for start in range(0, len(names), per_connection):
            plans.append(ConnectionPlan(base, tuple(names[start : start + per_connection])))
    return plans
