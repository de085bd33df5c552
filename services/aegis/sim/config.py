"""Settings of the exchange simulator, and where the shared recordings live."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aegis

ReplayMode = Literal["shared", "each"]
KlineSource = Literal["recording", "csv"]


def shared_data_dir() -> Path:
    """Return the shared data directory: ``$AEGIS_SHARED_DATA`` or ``<repo>/../shared/data``."""
    override = os.environ.get("AEGIS_SHARED_DATA")
    if override:
        return Path(override)
    return Path(aegis.__file__).resolve().parents[2].parent / "shared" / "data"


def default_recordings() -> tuple[Path, ...]:
    base = shared_data_dir() / "binance" / "hftbacktest" / "examples" / "usdm"
    return (base / "btcusdt_20240808.gz", base / "ethusdt_20240808.gz")


def default_exchange_info() -> Path:
    return shared_data_dir() / "binance" / "alphadogs_coinbase_python" / "futures_exchange_info.json"


def default_leverage_brackets() -> Path:
    return shared_data_dir() / "binance" / "freqtrade" / "freqtrade" / "exchange" / "binance_leverage_tiers.json"


def default_kline_csvs() -> tuple[Path, ...]:
    base = shared_data_dir() / "binance" / "signalbot" / "data"
    return (base / "BTCUSDT_1m.csv", base / "ETHUSDT_1m.csv")


_SPEED = re.compile(r"^x?(\d+(?:\.\d+)?)$")


def parse_speed(text: str | float | None) -> float | None:
    """Return the replay speed factor for ``max`` (None), ``xN`` or ``N`` (N times as fast as recorded)."""
    if text is None:
        return None
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = text.strip().lower()
        if raw == "max":
            return None
        match = _SPEED.match(raw)
        if not match:
            raise ValueError(f"speed {text!r} is not 'max', 'xN' or a number")
        value = float(match.group(1))
    if value <= 0:
        raise ValueError(f"speed {text!r} must be greater than 0")
    return value


@dataclass(frozen=True)
class SimConfig:
    """Everything a :class:`~aegis.sim.server.Simulator` needs; the defaults mimic Binance."""

    host: str = "127.0.0.1"
    port: int = 0
    recordings: tuple[Path, ...] = field(default_factory=default_recordings)
    """hftbacktest files (``<local_ns> <json>`` lines) replayed on the websocket streams."""
    exchange_info: Path = field(default_factory=default_exchange_info)
    kline_source: KlineSource = "recording"
    """``recording``: klines derived from the recorded trades; ``csv``: the 10-day 1m CSVs drive the clock."""
    kline_csvs: tuple[Path, ...] = field(default_factory=default_kline_csvs)
    csv_history_minutes: int = 1440
    """With ``kline_source="csv"``: how many minutes of bars are already closed when the replay starts."""
    speed: float | None = 1.0
    """Replay speed factor: 1.0 as recorded, 10.0 ten times faster, None as fast as the clients take frames."""
    replay_mode: ReplayMode = "shared"
    """``shared``: one replay clock for everyone; ``each``: every connection gets every frame from the start."""
    start_on_subscribe: bool | None = None
    """Hold the shared replay until the first subscription (default: only when speed is max)."""
    state_file: Path | None = None
    """Where the replay position is kept so that a restarted simulator continues where the last one stopped."""
    ping_interval_s: float = 180.0
    pong_timeout_s: float = 600.0
    max_lifetime_s: float = 86400.0
    max_streams: int = 1024
    max_incoming_per_s: int = 10
    weight_limit_per_minute: int | None = None
    """REQUEST_WEIGHT limit per IP and minute; None takes it from the exchangeInfo ``rateLimits``."""
    funding_rate: str = "0.00010000"
    """Funding rate served in markPrice/premiumIndex (the recordings carry none; synthetic)."""

    # ---------------------------------------------------------------- trading (signed endpoints, user stream)
    api_keys: tuple[tuple[str, str], ...] = (("aegis-sim-key", "aegis-sim-secret"),)
    """(API key, secret) pairs the signed endpoints accept; all of them trade the one simulated account."""
    initial_balance: str = "10000"
    """USDT wallet balance of the simulated account at start (SYNTHETIC)."""
    taker_commission_rate: str = "0.0005"
    maker_commission_rate: str = "0.0002"
    default_leverage: int = 20
    """Leverage of every symbol until ``POST /fapi/v1/leverage`` changes it (Binance's default is 20)."""
    order_limit_10s: int | None = None
    """ORDERS per 10 s; None takes it from the exchangeInfo ``rateLimits`` (300 in the served file)."""
    order_limit_1m: int | None = None
    """ORDERS per minute; None takes it from the exchangeInfo ``rateLimits`` (1 200 in the served file)."""
    listen_key_validity_s: float = 3600.0
    """A listenKey expires this long after its creation or last keepalive (60 min on Binance)."""
    leverage_brackets: Path | None = field(default_factory=default_leverage_brackets)
    """Leverage brackets (maintenance margin, maximum leverage); None: 0.4 % maintenance margin, 125x maximum."""
    limit_fill_on_touch: bool = False
    """Fill a resting LIMIT order on a trade at its price (True) or only on a trade through it (False: the queue
    position in front of the order is unknown, so only a trade beyond the price proves it would have filled)."""

    def holds_until_subscribed(self) -> bool:
        if self.start_on_subscribe is not None:
            return self.start_on_subscribe
        return self.speed is None
