"""Binance USD-M REST client for the public market endpoints (signed endpoints come with live execution).

It tracks the request weight Binance reports (``X-MBX-USED-WEIGHT-1M``) and refuses to send a request that would
pass the limit read from exchangeInfo's ``rateLimits`` (2,400 weight/min today), so that AEGIS backs off on its own
instead of earning a 429 — and never a 418 ban, which is what continuing after a 429 earns. A 429 or 418 raises
:class:`aegis.errors.RateLimited` with the server's Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from aegis.errors import ExchangeError, RateLimited

log = logging.getLogger(__name__)

DEFAULT_WEIGHT_LIMIT_1M = 2400
"""REQUEST_WEIGHT per minute until exchangeInfo's rateLimits say otherwise."""

_json = msgspec.json.Decoder()


def klines_weight(limit: int) -> int:
    """Return the request weight of GET /fapi/v1/klines for ``limit`` (Binance's published table)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


class WeightTracker:
    """Track the used request weight of the current minute as the exchange reports it."""

    def __init__(self, limit_1m: int = DEFAULT_WEIGHT_LIMIT_1M, clock: Callable[[], float] = time.time) -> None:
        self.limit_1m = limit_1m
        self._clock = clock
        self._minute = -1
        self.used = 0

    def _roll(self) -> None:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute, self.used = minute, 0

    def seconds_until_room(self, weight: int, headroom: float = 0.9) -> float:
        """Return 0 when ``weight`` fits under ``headroom`` of the limit this minute, else the wait in seconds."""
        self._roll()
        if self.used + weight <= self.limit_1m * headroom:
            return 0.0
        return 60.0 - (self._clock() % 60.0) + 0.05

    def record(self, weight: int, reported: str | None) -> None:
        self._roll()
        if reported is not None and reported.isdigit():
            self.used = int(reported)  # the exchange's count wins: other clients may share this IP
        else:
            self.used += weight


class BinanceRest:
    """Public REST endpoints of Binance USD-M futures (or of the local simulator)."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
        weights: WeightTracker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.weights = weights or WeightTracker()

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def get(self, path: str, params: dict[str, Any] | None = None, *, weight: int = 1) -> Any:
        """GET ``path`` and return the decoded JSON; raise RateLimited or ExchangeError on failure."""
        wait = self.weights.seconds_until_room(weight)
        if wait > 0:
            log.warning(
                "request weight near the limit (%d/%d): waiting %.1f s", self.weights.used, self.weights.limit_1m, wait
            )
            await asyncio.sleep(wait)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            async with self._client().get(self.base_url + path, params=query) as response:
                body = await response.read()
                self.weights.record(weight, response.headers.get("X-MBX-USED-WEIGHT-1M"))
                if response.status in (418, 429):
                    retry = float(response.headers.get("Retry-After", "60") or 60)
                    raise RateLimited(f"{path}: HTTP {response.status}, retry after {retry:.0f} s")
                if response.status >= 400:
                    raise ExchangeError(f"{path}: HTTP {response.status}: {body[:200].decode(errors='replace')}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ExchangeError(f"{path}: {type(exc).__name__}: {exc}") from exc
        try:
            return _json.decode(body)
        except msgspec.DecodeError as exc:
            raise ExchangeError(f"{path}: response is not JSON: {exc}") from exc

    async def server_time_ms(self) -> int:
        return int((await self.get("/fapi/v1/time"))["serverTime"])

    async def exchange_info(self) -> dict[str, Any]:
        info = await self.get("/fapi/v1/exchangeInfo", weight=1)
        for limit in info.get("rateLimits", []):
            if limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("interval") == "MINUTE":
                self.weights.limit_1m = int(limit["limit"]) // max(1, int(limit.get("intervalNum", 1)))
        return info

    async def klines(
        self, symbol: str, interval: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 500
    ) -> list[list[Any]]:
        """Return raw kline arrays ``[openTime, "open", "high", "low", "close", "volume", closeTime, ...]``."""
        return await self.get(
            "/fapi/v1/klines",
            {"symbol": symbol, "interval": interval, "startTime": start_ms, "endTime": end_ms, "limit": limit},
            weight=klines_weight(limit),
        )
