"""``python -m aegis.sim``: run the exchange simulator until SIGTERM/SIGINT.

The first stdout lines are the URLs, one per line, so a parent process can read them:

    AEGIS_BINANCE_REST_URL=http://127.0.0.1:PORT
    AEGIS_BINANCE_WS_MARKET_URL=ws://127.0.0.1:PORT/market
    AEGIS_BINANCE_WS_PUBLIC_URL=ws://127.0.0.1:PORT/public
    AEGIS_BINANCE_WS_PRIVATE_URL=ws://127.0.0.1:PORT/private

The signed endpoints accept ``--api-key``/``--api-secret`` (default ``aegis-sim-key``/``aegis-sim-secret``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from aegis.sim.config import SimConfig, parse_speed
from aegis.sim.server import Simulator


def parse_args(argv: list[str] | None = None) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m aegis.sim", description="Binance USD-M exchange simulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--speed", default="1", help="replay speed: 1 (as recorded), xN, or max")
    parser.add_argument(
        "--mode",
        choices=("shared", "each"),
        default="shared",
        help="shared replay clock, or every frame once to each connection from the start",
    )
    parser.add_argument(
        "--klines",
        choices=("recording", "csv"),
        default="recording",
        help="kline source: derived from the recording, or the 10-day 1m CSVs",
    )
    parser.add_argument(
        "--recording",
        action="append",
        type=Path,
        help="hftbacktest file to replay (repeatable; default: BTCUSDT and ETHUSDT 2024-08-08)",
    )
    parser.add_argument("--exchange-info", type=Path, help="exchangeInfo JSON file to serve")
    parser.add_argument("--state-file", type=Path, help="keep the replay position here across restarts")
    parser.add_argument(
        "--start-on-subscribe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="hold the replay until the first subscription (default: only at max speed)",
    )
    parser.add_argument("--ping-interval", type=float, default=180.0, help="server ping interval, seconds")
    parser.add_argument("--pong-timeout", type=float, default=600.0, help="close after this long without pong")
    parser.add_argument("--max-lifetime", type=float, default=86400.0, help="close connections after, seconds")
    parser.add_argument("--api-key", default="aegis-sim-key", help="API key the signed endpoints accept")
    parser.add_argument("--api-secret", default="aegis-sim-secret", help="secret of --api-key")
    parser.add_argument("--balance", default="10000", help="USDT wallet balance of the simulated account")
    args = parser.parse_args(argv)
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        if not Decimal(args.balance) >= 0:
            raise InvalidOperation
    except InvalidOperation:
        parser.error(f"--balance {args.balance!r} is not a non-negative decimal number")
    overrides: dict = {}
    if args.recording:
        overrides["recordings"] = tuple(args.recording)
    if args.exchange_info:
        overrides["exchange_info"] = args.exchange_info
    return SimConfig(
        host=args.host,
        port=args.port,
        speed=speed,
        replay_mode=args.mode,
        kline_source=args.klines,
        state_file=args.state_file,
        start_on_subscribe=args.start_on_subscribe,
        ping_interval_s=args.ping_interval,
        pong_timeout_s=args.pong_timeout,
        max_lifetime_s=args.max_lifetime,
        api_keys=((args.api_key, args.api_secret),),
        initial_balance=args.balance,
        **overrides,
    )


async def run(config: SimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(config) as sim:
        print(f"AEGIS_BINANCE_REST_URL={sim.rest_url}", flush=True)
        print(f"AEGIS_BINANCE_WS_MARKET_URL={sim.ws_market_url}", flush=True)
        print(f"AEGIS_BINANCE_WS_PUBLIC_URL={sim.ws_public_url}", flush=True)
        print(f"AEGIS_BINANCE_WS_PRIVATE_URL={sim.ws_private_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        asyncio.run(run(config))
    except OSError as exc:
        print(f"aegis.sim: cannot start: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
