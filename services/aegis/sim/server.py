"""The simulator process: one aiohttp application on one loopback port for REST, websockets and control."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web

from aegis.sim import control, rest, trading, ws
from aegis.sim.account import SimAccount
from aegis.sim.config import SimConfig
from aegis.sim.recording import Market, load_csv_klines, load_recordings
from aegis.sim.replay import cancel
from aegis.sim.state import STATE, SimState


def load_market(config: SimConfig) -> Market:
    """Load (or take from the cache) the timeline ``config`` asks for."""
    if config.kline_source == "csv":
        return load_csv_klines(tuple(config.kline_csvs), config.exchange_info, config.csv_history_minutes)
    return load_recordings(tuple(config.recordings), config.exchange_info, config.funding_rate)


def create_app(state: SimState) -> web.Application:
    app = web.Application(middlewares=[rest.weight_middleware])
    app[STATE] = state
    rest.add_routes(app)
    trading.add_routes(app)
    control.add_routes(app)
    app.router.add_get(r"/{category:market|public}/{kind:stream}", ws.handle)
    app.router.add_get(r"/{category:market|public}/{kind:ws}", ws.handle)
    app.router.add_get(r"/{category:market|public}/{kind:ws}/{tail:.+}", ws.handle)
    return app


class Simulator:
    """A Binance USD-M compatible exchange simulator on 127.0.0.1.

    ``async with Simulator(speed=None) as sim:`` then point clients at ``sim.rest_url``, ``sim.ws_market_url`` and
    ``sim.ws_public_url``. Keyword arguments override fields of ``config``.
    """

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        config = config or SimConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.state: SimState | None = None
        self._runner: web.AppRunner | None = None
        self._replay_task: asyncio.Task | None = None
        self.port: int = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Simulator:
        market = await asyncio.to_thread(load_market, self.config)
        self.state = SimState(self.config, market)
        app = create_app(self.state)
        # Long request lines: a combined-stream URL with hundreds of streams must reach the stream-limit check.
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0, max_line_size=65536
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self._replay_task = asyncio.create_task(self.state.replay.run(), name="aegis-sim-replay")
        return self

    async def stop(self) -> None:
        await cancel(self._replay_task)
        self._replay_task = None
        if self.state is not None:
            await self.state.hub.close_all()
            await self.state.user_streams.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_market_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/market"

    @property
    def ws_public_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/public"

    @property
    def ws_private_url(self) -> str:
        """User data streams: ``<ws_private_url>/ws/<listenKey>``."""
        return f"ws://{self.config.host}:{self.port}/private"

    @property
    def api_key(self) -> str:
        """The first configured API key (tests sign with it and :attr:`api_secret`)."""
        return self.config.api_keys[0][0]

    @property
    def api_secret(self) -> str:
        return self.config.api_keys[0][1]

    # ------------------------------------------------------------------ control (same as /_sim/ endpoints)

    @property
    def _state(self) -> SimState:
        if self.state is None:
            raise RuntimeError("the simulator is not started")
        return self.state

    @property
    def clock_ms(self) -> int:
        return self._state.clock_ms

    @property
    def market(self) -> Market:
        return self._state.market

    def drop(self) -> int:
        """Cut every websocket (market and user data) without a close frame; return how many were cut."""
        return self._state.hub.drop_all() + self._state.user_streams.drop_all()

    def stall(self, seconds: float) -> None:
        """Send nothing (frames, pings, pongs) for ``seconds`` while keeping connections open."""
        self._state.hub.stall(seconds)

    def inject_malformed(self, kind: str, count: int = 1, stream: str | None = None) -> int:
        """Queue ``count`` malformed frames of ``kind`` for every open connection; return how many connections."""
        return self._state.hub.inject_malformed(kind, count, stream)

    def pause(self) -> None:
        self._state.replay.pause()

    def resume(self) -> None:
        self._state.replay.resume()

    def stats(self) -> dict:
        return self._state.stats()

    @property
    def account(self) -> SimAccount:
        """The simulated account (orders, positions, wallet), for tests to inspect."""
        return self._state.account

    def fail_next_order(self, mode: str, count: int = 1) -> None:
        """Answer the next ``count`` order placements with a fault: ``503_executed``, ``503_not_executed``, ``429``."""
        if mode not in trading.FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(trading.FAULT_MODES)}")
        self._state.next_order_faults.extend([mode] * count)

    def expire_listen_key(self, listen_key: str | None = None) -> list[str]:
        """Expire a listenKey (every active one when None) as Binance does after 60 min without keepalive."""
        return self._state.user_streams.expire(listen_key)

    async def wait_position(self, position: int, timeout: float = 30.0) -> None:
        """Wait until the shared replay has released ``position`` frames (or finished)."""
        replay = self._state.replay

        async def reached() -> None:
            while replay.position < position and not replay.finished:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(reached(), timeout)
