"""Typed, frozen configuration read once at start.

Sources, later ones winning: the defaults below, an optional TOML file (``AEGIS_CONFIG`` or ``--config``), then the
environment. Every setting is declared once, with its environment variable, parser and description; the loader, the
error messages and the README's configuration table (``aegis config --markdown``) all come from that declaration.

A wrong value raises :class:`aegis.errors.ConfigError` with one line naming the variable and the problem, e.g.
``AEGIS_SHUTDOWN_GRACE_S='abc' is not a number``; the entry points turn it into that line on stderr and exit 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from aegis.errors import ConfigError

SERVICES: tuple[str, ...] = ("feed", "brain", "risk", "virtual_account", "trainer", "orchestrator")
"""Every service, in start order. ``python -m aegis.<name>`` runs one."""

DEFAULT_PORTS: Mapping[str, int] = {
    "feed": 50051,
    "brain": 50052,
    "risk": 50053,
    "virtual_account": 50054,
    "trainer": 50055,
    "orchestrator": 50056,
}

LIVE_CONFIRMATION = "I_UNDERSTAND_THIS_TRADES_REAL_MONEY"
"""The exact value ``AEGIS_LIVE_CONFIRM`` must hold before live mode is allowed."""


class Secret(str):
    """A string that never shows itself in repr, logs or config dumps."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def reveal(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return "***" if self else ""


# --------------------------------------------------------------------------------------------- parsers
# Each parser takes the raw string (or a TOML value) and returns the typed value, or raises ValueError whose text
# completes the sentence "<VAR>='<value>' ...".


def _number(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("is not a number") from None
    if not math.isfinite(value):
        raise ValueError("is not a finite number")
    return value


def positive_float(raw: Any) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def non_negative_float(raw: Any) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("is not a whole number")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError("is not a whole number") from None


def positive_int(raw: Any) -> int:
    value = integer(raw)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def non_negative_int(raw: Any) -> int:
    value = integer(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def port(raw: Any) -> int:
    value = integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError("is not a TCP port (0-65535)")
    return value


def stream_count(raw: Any) -> int:
    value = positive_int(raw)
    if value > 1024:
        raise ValueError("must be at most 1024 (Binance's streams per connection)")
    return value


def power_of_two(raw: Any) -> int:
    value = positive_int(raw)
    if value & (value - 1):
        raise ValueError("must be a power of two")
    return value


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("is not a boolean (use true or false)")


def text(raw: Any) -> str:
    return str(raw)


def secret(raw: Any) -> Secret:
    return Secret(str(raw).strip())


def path(raw: Any) -> Path:
    value = str(raw).strip()
    if not value:
        raise ValueError("is empty")
    return Path(value).expanduser()


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def bounded(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    """Return a parser of a number in [lo, hi] (or (lo, hi] when ``lo_open``)."""

    def parse(raw: Any) -> float:
        value = _number(raw)
        if value < lo or (lo_open and value == lo) or value > hi:
            raise ValueError(
                f"must be {'above' if lo_open else 'from'} {lo:g} {'and at most' if lo_open else 'to'} {hi:g}"
            )
        return value

    return parse


def bounded_int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        value = integer(raw)
        if not lo <= value <= hi:
            raise ValueError(f"must be a whole number from {lo} to {hi}")
        return value

    return parse


def decimal_amount(raw: Any) -> Decimal:
    """A non-negative money amount, kept exact (``Decimal``); floats from TOML go through their repr."""
    text_value = repr(raw) if isinstance(raw, float) else str(raw).strip()
    try:
        value = Decimal(text_value)
    except ArithmeticError:
        raise ValueError("is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ValueError("must be a finite amount of at least 0")
    return value


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
log_level = choice(*_LOG_LEVELS)

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def address(raw: Any) -> str:
    value = str(raw).strip()
    match = _HOSTPORT.match(value)
    if not match or not 0 < int(match.group(2)) <= 65535:
        raise ValueError("is not an address of the form host:port")
    return value


def symbol_list(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    symbols = tuple(s.strip().upper() for s in items if str(s).strip())
    for symbol in symbols:
        if not re.fullmatch(r"[A-Z0-9]{2,32}", symbol):
            raise ValueError(f"has an invalid symbol {symbol!r}")
    return symbols


def url(*schemes: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if parts.scheme not in schemes:
            raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
        if not parts.hostname and parts.scheme not in ("unix",):
            raise ValueError("has no host")
        return value

    return parse


def database_url(raw: Any) -> str:
    value = str(raw).strip()
    try:
        parts = urlsplit(value)
        port_number = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid PostgreSQL URL ({exc})") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("must start with postgresql://")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("has no host")
    if port_number is not None and port_number == 0:
        raise ValueError("has port 0")
    if not parts.path.strip("/"):
        raise ValueError("names no database (postgresql://user@host:port/DATABASE)")
    return value


# --------------------------------------------------------------------------------------------- declaration


def setting(env: str, default: Any, parse: Callable[[Any], Any], doc: str, *, secret_value: bool = False) -> Any:
    """Declare one setting: its environment variable, default, parser and one-line description."""
    return field(
        default=default,
        metadata={"env": env, "parse": parse, "doc": doc, "secret": secret_value},
    )


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    host: str = setting("AEGIS_GRPC_HOST", "0.0.0.0", text, "Interface every gRPC server binds to.")
    shutdown_grace_s: float = setting(
        "AEGIS_SHUTDOWN_GRACE_S", 5.0, positive_float, "Seconds in-flight calls get to finish after SIGTERM."
    )
    health_interval_s: float = setting(
        "AEGIS_HEALTH_INTERVAL_S", 1.0, positive_float, "Seconds between dependency checks behind the health status."
    )
    dependency_timeout_s: float = setting(
        "AEGIS_DEPENDENCY_TIMEOUT_S", 1.0, positive_float, "Seconds a PostgreSQL or Redis check may take."
    )


@dataclass(frozen=True, slots=True)
class ServicePorts:
    feed: int = setting("AEGIS_FEED_PORT", DEFAULT_PORTS["feed"], port, "gRPC port of the feed (FeedService).")
    brain: int = setting("AEGIS_BRAIN_PORT", DEFAULT_PORTS["brain"], port, "gRPC port of the brain (MarketService).")
    risk: int = setting("AEGIS_RISK_PORT", DEFAULT_PORTS["risk"], port, "gRPC port of RiskService.")
    virtual_account: int = setting(
        "AEGIS_VIRTUAL_ACCOUNT_PORT", DEFAULT_PORTS["virtual_account"], port, "gRPC port of VirtualAccountService."
    )
    trainer: int = setting("AEGIS_TRAINER_PORT", DEFAULT_PORTS["trainer"], port, "gRPC port of TrainerService.")
    orchestrator: int = setting(
        "AEGIS_ORCHESTRATOR_PORT", DEFAULT_PORTS["orchestrator"], port, "gRPC port of OrchestratorService."
    )


@dataclass(frozen=True, slots=True)
class ServiceAddresses:
    """Where clients reach each service (Kubernetes: the Service's DNS name)."""

    feed: str = setting("AEGIS_FEED_ADDRESS", "", text, "host:port clients use for the feed (default 127.0.0.1:port).")
    brain: str = setting("AEGIS_BRAIN_ADDRESS", "", text, "host:port clients use for the brain.")
    risk: str = setting("AEGIS_RISK_ADDRESS", "", text, "host:port clients use for risk.")
    virtual_account: str = setting(
        "AEGIS_VIRTUAL_ACCOUNT_ADDRESS", "", text, "host:port clients use for virtual-account."
    )
    trainer: str = setting("AEGIS_TRAINER_ADDRESS", "", text, "host:port clients use for the trainer.")
    orchestrator: str = setting("AEGIS_ORCHESTRATOR_ADDRESS", "", text, "host:port clients use for the orchestrator.")


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = setting("AEGIS_LOG_LEVEL", "info", log_level, "Level of AEGIS's own loggers.")
    root_level: str = setting("AEGIS_LOG_ROOT_LEVEL", "warning", log_level, "Level of every other logger (libraries).")


@dataclass(frozen=True, slots=True)
class FeedSettings:
    rest_url: str = setting(
        "AEGIS_BINANCE_REST_URL", "https://fapi.binance.com", url("https", "http"), "Binance USD-M REST base URL."
    )
    ws_market_url: str = setting(
        "AEGIS_BINANCE_WS_MARKET_URL",
        "wss://fstream.binance.com/market",
        url("wss", "ws"),
        "Websocket base for aggTrade, markPrice and kline streams.",
    )
    ws_public_url: str = setting(
        "AEGIS_BINANCE_WS_PUBLIC_URL",
        "wss://fstream.binance.com/public",
        url("wss", "ws"),
        "Websocket base for bookTicker and depth streams.",
    )
    symbols: tuple[str, ...] = setting(
        "AEGIS_SYMBOLS", (), symbol_list, "Explicit symbol list (comma separated); empty = from exchangeInfo."
    )
    symbol_count: int = setting(
        "AEGIS_SYMBOL_COUNT", 20, positive_int, "How many USDT perpetuals to follow when AEGIS_SYMBOLS is empty."
    )
    shard_size: int = setting("AEGIS_SHARD_SIZE", 50, positive_int, "Symbols per feed-brain shard.")
    shard_index: int = setting(
        "AEGIS_SHARD_INDEX", -1, integer, "This pod's shard; -1 = from the StatefulSet pod ordinal, else 0."
    )
    ring_path: str = setting(
        "AEGIS_RING_PATH", "", text, "Ring file shared by feed and brain (default $AEGIS_HOME/ring/shard-N.ring)."
    )
    ring_capacity: int = setting("AEGIS_RING_CAPACITY", 1 << 20, power_of_two, "Ring slots (power of two).")
    source: str = setting(
        "AEGIS_FEED_SOURCE", "binance", text, "binance (live websockets) or the path of a recording to replay."
    )
    replay_speed: str = setting(
        "AEGIS_FEED_REPLAY_SPEED", "max", text, "Replay pace: max, x1 (as recorded), x10, ... (with AEGIS_FEED_SOURCE)."
    )
    streams_per_connection: int = setting(
        "AEGIS_STREAMS_PER_CONNECTION", 200, stream_count, "Streams per websocket connection (Binance allows 1024)."
    )
    idle_timeout_s: float = setting(
        "AEGIS_FEED_IDLE_TIMEOUT_S", 30.0, positive_float, "Reconnect a connection silent for this long (a stall)."
    )
    reconnect_base_s: float = setting(
        "AEGIS_FEED_RECONNECT_BASE_S", 0.1, positive_float, "First reconnect backoff ceiling (doubles, full jitter)."
    )
    reconnect_cap_s: float = setting("AEGIS_FEED_RECONNECT_CAP_S", 30.0, positive_float, "Largest reconnect backoff.")


_SIZING_METHODS = ("fixed_risk", "fixed_fraction", "atr", "kelly", "fixed_notional")


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """Risk limits of the default accounts (learning, paper, live) and how risk keeps its exchange rules."""

    sizing_method: str = setting(
        "AEGIS_RISK_SIZING_METHOD",
        "fixed_risk",
        choice(*_SIZING_METHODS),
        "Sizing of the paper and live accounts: fixed_risk, fixed_fraction, atr, kelly or fixed_notional.",
    )
    learning_sizing_method: str = setting(
        "AEGIS_RISK_LEARNING_SIZING_METHOD", "fixed_risk", choice(*_SIZING_METHODS), "Sizing of the learning account."
    )
    risk_per_trade_pct: float = setting(
        "AEGIS_RISK_PER_TRADE_PCT",
        1.0,
        bounded(0, 100, lo_open=True),
        "fixed_risk/atr: percent of equity lost at the stop per trade (paper, live).",
    )
    learning_risk_per_trade_pct: float = setting(
        "AEGIS_RISK_LEARNING_PER_TRADE_PCT",
        1.0,
        bounded(0, 100, lo_open=True),
        "fixed_risk/atr: percent of equity lost at the stop per trade (learning).",
    )
    fixed_fraction: float = setting(
        "AEGIS_RISK_FIXED_FRACTION",
        0.2,
        bounded(0, 125, lo_open=True),
        "fixed_fraction: notional as a fraction of equity (paper, live; 0.2 = 20 %).",
    )
    learning_fixed_fraction: float = setting(
        "AEGIS_RISK_LEARNING_FIXED_FRACTION",
        0.2,
        bounded(0, 125, lo_open=True),
        "fixed_fraction: notional as a fraction of equity (learning).",
    )
    fixed_notional: Decimal = setting(
        "AEGIS_RISK_FIXED_NOTIONAL", Decimal("100"), decimal_amount, "fixed_notional: notional per trade (USDT)."
    )
    max_leverage: int = setting(
        "AEGIS_RISK_MAX_LEVERAGE", 20, bounded_int(1, 125), "Highest leverage ever used, whatever the bracket allows."
    )
    margin_type: str = setting(
        "AEGIS_RISK_MARGIN_TYPE", "isolated", choice("isolated", "crossed"), "Margin type of new positions."
    )
    max_open_positions: int = setting(
        "AEGIS_RISK_MAX_OPEN_POSITIONS",
        3,
        non_negative_int,
        "Position cap of the paper and live accounts (0 = none; learning has none).",
    )
    rotation: bool = setting(
        "AEGIS_RISK_ROTATION", True, boolean, "At the cap, replace the weakest position by a clearly stronger signal."
    )
    rotation_min_edge: float = setting(
        "AEGIS_RISK_ROTATION_MIN_EDGE",
        0.05,
        bounded(0, 1),
        "Confidence a signal needs above the weakest position's to replace it.",
    )
    rotation_max_profit_pct: float = setting(
        "AEGIS_RISK_ROTATION_MAX_PROFIT_PCT",
        1.0,
        non_negative_float,
        "Rotation never closes a position in profit beyond this percent of its margin.",
    )
    max_open_notional_multiple: float = setting(
        "AEGIS_RISK_MAX_OPEN_NOTIONAL_MULTIPLE",
        3.0,
        non_negative_float,
        "Cap on the sum of |notional| of open positions, as a multiple of equity (0 = none).",
    )
    daily_loss_limit_pct: float = setting(
        "AEGIS_RISK_DAILY_LOSS_LIMIT_PCT",
        5.0,
        bounded(0, 100),
        "Refuse new positions once equity is this percent below the UTC day's start (0 = off).",
    )
    max_drawdown_pct: float = setting(
        "AEGIS_RISK_MAX_DRAWDOWN_PCT",
        20.0,
        bounded(0, 100),
        "Refuse new positions once equity is this percent below its peak (0 = off).",
    )
    cooldown_after_loss_s: float = setting(
        "AEGIS_RISK_COOLDOWN_AFTER_LOSS_S", 1800.0, non_negative_float, "Pause on a symbol after a stop-loss (seconds)."
    )
    min_confidence: float = setting(
        "AEGIS_RISK_MIN_CONFIDENCE", 0.0, bounded(0, 1), "Signals below this confidence are refused."
    )
    max_signal_age_s: float = setting(
        "AEGIS_RISK_MAX_SIGNAL_AGE_S", 300.0, non_negative_float, "Signals older than this are refused (0 = no limit)."
    )
    max_mark_price_age_s: float = setting(
        "AEGIS_RISK_MAX_MARK_PRICE_AGE_S",
        30.0,
        non_negative_float,
        "Mark prices older than this are refused (0 = no limit).",
    )
    kelly_multiplier: float = setting(
        "AEGIS_RISK_KELLY_MULTIPLIER", 0.25, bounded(0, 1), "kelly: fraction of the Kelly criterion used."
    )
    kelly_cap: float = setting("AEGIS_RISK_KELLY_CAP", 0.02, bounded(0, 1), "kelly: most of equity one trade may risk.")
    atr_stop_multiple: float = setting(
        "AEGIS_RISK_ATR_STOP_MULTIPLE", 1.5, positive_float, "atr/kelly: stop distance in ATRs."
    )
    fee_rate: float = setting(
        "AEGIS_RISK_FEE_RATE", 0.0005, bounded(0, 0.1), "Taker fee rate included in sizing (0.0005 = 0.05 %)."
    )
    rules_reload_s: float = setting(
        "AEGIS_RISK_RULES_RELOAD_S",
        300.0,
        positive_float,
        "Seconds between checks for new exchange rules in PostgreSQL (besides the Redis notice).",
    )
    fetch_rules: bool = setting(
        "AEGIS_RISK_FETCH_RULES",
        True,
        boolean,
        "When PostgreSQL holds no exchange rules, fetch exchangeInfo from AEGIS_BINANCE_REST_URL and store it.",
    )
    brackets_file: str = setting(
        "AEGIS_RISK_BRACKETS_FILE",
        "",
        text,
        "Leverage tiers JSON stored at start when PostgreSQL holds none (else `aegis rules load-brackets`).",
    )
    account_timeout_s: float = setting(
        "AEGIS_RISK_ACCOUNT_TIMEOUT_S", 2.0, positive_float, "Seconds a virtual-account call may take."
    )


@dataclass(frozen=True, slots=True)
class StrategySettings:
    """The brain's rule-based strategy (docs/strategy.md explains every rule with a worked example)."""

    trigger_timeframe: str = setting(
        "AEGIS_STRATEGY_TRIGGER_TIMEFRAME",
        "1m",
        choice("1m", "5m"),
        "Timeframe of the entry trigger (liquidity sweep, then CHOCH): 1m or 5m.",
    )
    structure_swing_length: int = setting(
        "AEGIS_STRATEGY_STRUCTURE_SWING_LENGTH",
        5,
        bounded_int(1, 200),
        "SMC swing length on 15m (order blocks, BOS/CHOCH); a swing is confirmed this many candles late.",
    )
    trigger_swing_length: int = setting(
        "AEGIS_STRATEGY_TRIGGER_SWING_LENGTH",
        3,
        bounded_int(1, 200),
        "SMC swing length on the trigger timeframe (the swings a sweep takes and a CHOCH breaks).",
    )
    sweep_window_bars: int = setting(
        "AEGIS_STRATEGY_SWEEP_WINDOW_BARS",
        12,
        bounded_int(1, 1000),
        "Trigger candles a CHOCH may come after its liquidity sweep.",
    )
    require_zone: bool = setting(
        "AEGIS_STRATEGY_REQUIRE_ZONE",
        False,
        boolean,
        "Only sweeps into a 15m order block or fair value gap count (false: the zone adds to the confluence score).",
    )
    zone_max_age_bars: int = setting(
        "AEGIS_STRATEGY_ZONE_MAX_AGE_BARS", 96, bounded_int(1, 10_000), "15m candles a zone stays usable after forming."
    )
    zone_tolerance_atr: float = setting(
        "AEGIS_STRATEGY_ZONE_TOLERANCE_ATR",
        0.25,
        non_negative_float,
        "A sweep may pierce a zone's far side by this many 15m ATRs and still count as into the zone.",
    )
    sl_atr_buffer: float = setting(
        "AEGIS_STRATEGY_SL_ATR_BUFFER",
        0.25,
        non_negative_float,
        "Stop-loss distance beyond the sweep extreme (or the zone's far side), in trigger-timeframe ATRs.",
    )
    min_sl_pct: float = setting(
        "AEGIS_STRATEGY_MIN_SL_PCT",
        0.2,
        bounded(0, 100, lo_open=True),
        "Narrowest stop-loss in percent of the entry (widened to it).",
    )
    max_sl_pct: float = setting(
        "AEGIS_STRATEGY_MAX_SL_PCT",
        2.5,
        bounded(0, 100, lo_open=True),
        "No signal when the stop-loss would be farther (percent).",
    )
    reward_risk: float = setting(
        "AEGIS_STRATEGY_REWARD_RISK",
        2.0,
        bounded(0, 100, lo_open=True),
        "Take-profit distance as a multiple of the stop distance.",
    )
    min_confidence: float = setting(
        "AEGIS_STRATEGY_MIN_CONFIDENCE", 0.5, bounded(0, 1), "Setups whose confidence is lower emit no signal."
    )
    cooldown_s: float = setting(
        "AEGIS_STRATEGY_COOLDOWN_S",
        3600.0,
        non_negative_float,
        "At most one signal per symbol in this many seconds of market time (0 = no cooldown).",
    )
    round_trip_fee_pct: float = setting(
        "AEGIS_STRATEGY_ROUND_TRIP_FEE_PCT",
        0.1,
        bounded(0, 10),
        "Entry plus exit fees in percent of notional, subtracted from the rule-based predicted return.",
    )
    volume_period: int = setting(
        "AEGIS_STRATEGY_VOLUME_PERIOD", 20, bounded_int(2, 1000), "Trigger candles in the volume-ratio average."
    )

    def __post_init__(self) -> None:
        if self.min_sl_pct > self.max_sl_pct:
            raise ConfigError(
                f"AEGIS_STRATEGY_MIN_SL_PCT={self.min_sl_pct!r} must not exceed "
                f"AEGIS_STRATEGY_MAX_SL_PCT={self.max_sl_pct!r}"
            )


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """Live trading on Binance (AEGIS_MODE=live only; docs/live-trading.md): orders, the mirror, reconciliation."""

    ws_private_url: str = setting(
        "AEGIS_BINANCE_WS_PRIVATE_URL",
        "wss://fstream.binance.com/private",
        url("wss", "ws"),
        "Websocket base of the user data stream (live mode: virtual-account mirrors the live account from it).",
    )
    account: str = setting(
        "AEGIS_LIVE_ACCOUNT", "live", text, "Name of the live account (brain orders, database mirror, Reconcile)."
    )
    working_type: str = setting(
        "AEGIS_LIVE_WORKING_TYPE",
        "mark_price",
        choice("mark_price", "contract_price"),
        "Price that triggers the live stop-loss and take-profit algo orders (Binance workingType, upper-cased).",
    )
    protection: str = setting(
        "AEGIS_LIVE_PROTECTION",
        "close_position",
        choice("close_position", "reduce_only"),
        "Live SL/TP orders: close_position (closePosition=true) or reduce_only (the entry's quantity, reduceOnly).",
    )
    reconcile_interval_s: float = setting(
        "AEGIS_LIVE_RECONCILE_INTERVAL_S",
        60.0,
        non_negative_float,
        "Seconds between reconciliations of the live account with the exchange (also once at start; 0 = start only).",
    )


@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    """The orchestrator's schedules, retention periods, leader election and shard management (docs/orchestrator.md)."""

    rules_interval_s: float = setting(
        "AEGIS_ORCHESTRATOR_RULES_INTERVAL_S",
        3600.0,
        non_negative_float,
        "Seconds between exchange rules refreshes (exchangeInfo; brackets too when API keys are set); 0 = off.",
    )
    universe_interval_s: float = setting(
        "AEGIS_ORCHESTRATOR_UNIVERSE_INTERVAL_S",
        3600.0,
        non_negative_float,
        "Seconds between symbol universe refreshes (symbols table, shards, StatefulSet scale); 0 = off.",
    )
    retention_interval_s: float = setting(
        "AEGIS_ORCHESTRATOR_RETENTION_INTERVAL_S",
        3600.0,
        non_negative_float,
        "Seconds between retention runs; 0 = off.",
    )
    heartbeat_interval_s: float = setting(
        "AEGIS_ORCHESTRATOR_HEARTBEAT_INTERVAL_S",
        900.0,
        non_negative_float,
        "Seconds between the WARNING heartbeat lines with the key figures; 0 = off.",
    )
    retention_1m_days: int = setting(
        "AEGIS_ORCHESTRATOR_RETENTION_1M_DAYS", 30, non_negative_int, "Keep 1m candles this many days; 0 = forever."
    )
    retention_candles_days: int = setting(
        "AEGIS_ORCHESTRATOR_RETENTION_CANDLES_DAYS",
        365,
        non_negative_int,
        "Keep candles of 5m and larger timeframes this many days; 0 = forever.",
    )
    retention_events_days: int = setting(
        "AEGIS_ORCHESTRATOR_RETENTION_EVENTS_DAYS",
        30,
        non_negative_int,
        "Keep service_events this many days; 0 = forever.",
    )
    retention_batch_rows: int = setting(
        "AEGIS_ORCHESTRATOR_RETENTION_BATCH_ROWS",
        5000,
        positive_int,
        "Rows deleted per transaction by retention (short transactions never lock the tables for long).",
    )
    leader_retry_s: float = setting(
        "AEGIS_ORCHESTRATOR_LEADER_RETRY_S",
        2.0,
        positive_float,
        "Seconds between a follower's tries for the leader lock, and between the leader's connection checks.",
    )
    kube_api_url: str = setting(
        "AEGIS_ORCHESTRATOR_KUBE_API_URL",
        "",
        text,
        "Kubernetes API URL; empty = in-cluster config when KUBERNETES_SERVICE_HOST is set, else no Kubernetes.",
    )
    kube_token_file: str = setting(
        "AEGIS_ORCHESTRATOR_KUBE_TOKEN_FILE", "", text, "Bearer token file for AEGIS_ORCHESTRATOR_KUBE_API_URL."
    )
    kube_namespace: str = setting(
        "AEGIS_ORCHESTRATOR_KUBE_NAMESPACE", "", text, "Namespace of the AEGIS pods; empty = the orchestrator's own."
    )
    feed_brain_statefulset: str = setting(
        "AEGIS_ORCHESTRATOR_FEED_BRAIN_STATEFULSET",
        "",
        text,
        "Name of the feed-brain StatefulSet; empty = <release>-feed-brain from the orchestrator's pod name.",
    )
    pod_selector: str = setting(
        "AEGIS_ORCHESTRATOR_POD_SELECTOR",
        "app.kubernetes.io/part-of=aegis",
        text,
        "Label selector of the pods GetSystemStatus reports.",
    )
    scale_shards: bool = setting(
        "AEGIS_ORCHESTRATOR_SCALE_SHARDS",
        True,
        boolean,
        "In a cluster, scale the feed-brain StatefulSet to the number of shards the universe needs.",
    )
    max_shards: int = setting(
        "AEGIS_ORCHESTRATOR_MAX_SHARDS", 20, positive_int, "Most feed-brain shards the orchestrator ever scales to."
    )


def _layer_sizes(raw: Any) -> tuple[int, ...]:
    """Hidden layer widths, e.g. ``32,16`` (each 1-1024, at most 4 layers; empty = a linear model)."""
    parts = [p.strip() for p in (raw.split(",") if isinstance(raw, str) else [str(v) for v in raw])]
    sizes = tuple(integer(p) for p in parts if p)
    if len(sizes) > 4 or any(not 1 <= s <= 1024 for s in sizes):
        raise ValueError("must be up to 4 comma-separated layer widths from 1 to 1024")
    return sizes


@dataclass(frozen=True, slots=True)
class TrainerSettings:
    """The learning loop (docs/learning.md explains validation, bias checks, walk-forward and promotion)."""

    interval_s: float = setting(
        "AEGIS_TRAINER_INTERVAL_S", 600.0, non_negative_float, "Seconds between scheduled runs (0 = TrainNow only)."
    )
    min_trades: int = setting(
        "AEGIS_TRAINER_MIN_TRADES", 200, bounded_int(20, 10_000_000), "A run with fewer valid trades is skipped."
    )
    max_trades: int = setting(
        "AEGIS_TRAINER_MAX_TRADES", 100_000, bounded_int(20, 10_000_000), "A run reads at most the newest this many."
    )
    folds: int = setting("AEGIS_TRAINER_FOLDS", 5, bounded_int(2, 50), "Walk-forward folds (expanding window).")
    promotion_metric: str = setting(
        "AEGIS_TRAINER_PROMOTION_METRIC",
        "ic",
        choice("ic", "expectancy", "hit_rate", "mae"),
        "Out-of-sample metric a challenger must win on: ic, expectancy, hit_rate or mae.",
    )
    promotion_margin: float = setting(
        "AEGIS_TRAINER_PROMOTION_MARGIN",
        0.02,
        non_negative_float,
        "How much better (in the metric's unit) a challenger must be than the active model or the rule baseline.",
    )
    auto_promote: bool = setting(
        "AEGIS_TRAINER_AUTO_PROMOTE", True, boolean, "false = a winning model stays a candidate for ActivateModel."
    )
    take_threshold_pct: float = setting(
        "AEGIS_TRAINER_TAKE_THRESHOLD_PCT",
        0.0,
        bounded(-100, 100),
        "Expectancy counts the trades whose predicted return (percent) is above this.",
    )
    price_tolerance_pct: float = setting(
        "AEGIS_TRAINER_PRICE_TOLERANCE_PCT",
        0.2,
        bounded(0, 10),
        "Entry and exit prices may lie this far (percent) outside their minute's recorded [low, high].",
    )
    clock_skew_s: float = setting(
        "AEGIS_TRAINER_CLOCK_SKEW_S", 5.0, non_negative_float, "A trade closed later than now plus this is refused."
    )
    win_rate_min_pct: float = setting(
        "AEGIS_TRAINER_WIN_RATE_MIN_PCT", 25.0, bounded(0, 100), "Bias check: lowest plausible win rate (percent)."
    )
    win_rate_max_pct: float = setting(
        "AEGIS_TRAINER_WIN_RATE_MAX_PCT", 85.0, bounded(0, 100), "Bias check: highest plausible win rate (percent)."
    )
    outlier_sigma: float = setting(
        "AEGIS_TRAINER_OUTLIER_SIGMA", 3.0, positive_float, "Bias check: a return this many deviations out is extreme."
    )
    max_outlier_share_pct: float = setting(
        "AEGIS_TRAINER_MAX_OUTLIER_SHARE_PCT", 2.0, bounded(0, 100), "Bias check: largest share of outliers (percent)."
    )
    max_symbol_share_pct: float = setting(
        "AEGIS_TRAINER_MAX_SYMBOL_SHARE_PCT", 50.0, bounded(0, 100), "Bias check: top share of one symbol (percent)."
    )
    min_symbols: int = setting(
        "AEGIS_TRAINER_MIN_SYMBOLS", 2, bounded_int(1, 10_000), "Bias check: fewest distinct symbols in a training set."
    )
    max_side_share_pct: float = setting(
        "AEGIS_TRAINER_MAX_SIDE_SHARE_PCT", 95.0, bounded(50, 100), "Bias check: top share of BUY or SELL (percent)."
    )
    max_tp_share_pct: float = setting(
        "AEGIS_TRAINER_MAX_TP_SHARE_PCT", 90.0, bounded(0, 100), "Bias check: largest share of TP_HIT closes (percent)."
    )
    hidden_layers: tuple[int, ...] = setting(
        "AEGIS_TRAINER_HIDDEN_LAYERS", (32, 16), _layer_sizes, "Hidden layer widths of the model (ReLU), e.g. 32,16."
    )
    epochs: int = setting("AEGIS_TRAINER_EPOCHS", 40, bounded_int(1, 10_000), "Most passes over the training set.")
    batch_size: int = setting("AEGIS_TRAINER_BATCH_SIZE", 512, bounded_int(8, 1_000_000), "Trades per gradient step.")
    learning_rate: float = setting(
        "AEGIS_TRAINER_LEARNING_RATE", 0.003, bounded(0, 1, lo_open=True), "Adam learning rate."
    )
    weight_decay: float = setting(
        "AEGIS_TRAINER_WEIGHT_DECAY", 0.0001, bounded(0, 1), "Adam weight decay (L2 penalty on the weights)."
    )
    model_poll_s: float = setting(
        "AEGIS_TRAINER_MODEL_POLL_S",
        30.0,
        positive_float,
        "Seconds between the brain's fallback checks of the active model (a Redis notice reloads it at once).",
    )

    def __post_init__(self) -> None:
        if self.win_rate_min_pct > self.win_rate_max_pct:
            raise ConfigError(
                f"AEGIS_TRAINER_WIN_RATE_MIN_PCT={self.win_rate_min_pct!r} must not exceed "
                f"AEGIS_TRAINER_WIN_RATE_MAX_PCT={self.win_rate_max_pct!r}"
            )
        if self.min_trades > self.max_trades:
            raise ConfigError(
                f"AEGIS_TRAINER_MIN_TRADES={self.min_trades!r} must not exceed "
                f"AEGIS_TRAINER_MAX_TRADES={self.max_trades!r}"
            )


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """Prometheus /metrics, OpenTelemetry traces and optional TLS for gRPC (docs/observability.md, docs/security.md).

    OTLP export follows the standard OpenTelemetry variables (OTEL_EXPORTER_OTLP_ENDPOINT and friends), which the
    SDK reads itself: set the endpoint and traces and metrics are pushed there too.
    """

    metrics_enabled: bool = setting(
        "AEGIS_METRICS_ENABLED", True, boolean, "Serve Prometheus /metrics (and /healthz, /readyz) over HTTP."
    )
    metrics_port_offset: int = setting(
        "AEGIS_METRICS_PORT_OFFSET", 1000, bounded_int(1, 65535), "The /metrics port is the gRPC port plus this."
    )
    metrics_port: int = setting(
        "AEGIS_METRICS_PORT", -1, bounded_int(-1, 65535), "Explicit /metrics port; -1 = gRPC port + offset, 0 = any."
    )
    tracing: bool = setting(
        "AEGIS_TRACING", True, boolean, "Trace gRPC calls and decisions (sent if OTEL_EXPORTER_OTLP_ENDPOINT is set)."
    )
    tls_cert: str = setting(
        "AEGIS_TLS_CERT", "", text, "PEM certificate of this service; with AEGIS_TLS_KEY its gRPC server uses TLS only."
    )
    tls_key: str = setting("AEGIS_TLS_KEY", "", text, "PEM private key of AEGIS_TLS_CERT.")
    tls_ca: str = setting(
        "AEGIS_TLS_CA", "", text, "PEM CA bundle clients verify servers with; set = every client call uses TLS."
    )
    tls_client_auth: bool = setting(
        "AEGIS_TLS_CLIENT_AUTH", False, boolean, "Servers require client certificates signed by AEGIS_TLS_CA (mTLS)."
    )
    tls_server_name: str = setting(
        "AEGIS_TLS_SERVER_NAME", "", text, "Name clients expect in server certificates; empty = the address's host."
    )

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("AEGIS_TLS_CERT and AEGIS_TLS_KEY must be set together (or neither)")
        if self.tls_client_auth and not (self.tls_ca and self.tls_cert):
            raise ConfigError("AEGIS_TLS_CLIENT_AUTH=true needs AEGIS_TLS_CA, AEGIS_TLS_CERT and AEGIS_TLS_KEY")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of an AEGIS process."""

    home: Path = setting(
        "AEGIS_HOME", Path("~/.aegis").expanduser(), path, "State directory: embedded databases, rings, logs."
    )
    mode: str = setting("AEGIS_MODE", "paper", choice("paper", "live"), "paper (default) or live trading.")
    clock: str = setting(
        "AEGIS_CLOCK",
        "system",
        choice("system", "record"),
        "system (default): the services read the host's clock. record (set by `aegis replay`): time is the "
        "recording's (docs/replay.md, Determinism).",
    )
    clock_start_ms: int = setting(
        "AEGIS_CLOCK_START_MS",
        0,
        non_negative_int,
        "With AEGIS_CLOCK=record: the time (Unix ms) before any recorded time arrives (the replay's first frame).",
    )
    live_confirm: str = setting("AEGIS_LIVE_CONFIRM", "", text, f"Must be {LIVE_CONFIRMATION} for live mode to start.")
    database_url: str = setting(
        "DATABASE_URL",
        "",
        database_url,
        "PostgreSQL URL; empty = built from PG* variables (or embedded for `aegis up`).",
    )
    redis_url: str = setting(
        "REDIS_URL", "", url("redis", "rediss", "unix"), "Redis URL; empty = redis://127.0.0.1:6379/0 (or embedded)."
    )
    binance_api_key: Secret = setting(
        "BINANCE_API_KEY", Secret(""), secret, "Binance API key (live mode only).", secret_value=True
    )
    binance_api_secret: Secret = setting(
        "BINANCE_API_SECRET", Secret(""), secret, "Binance API secret (live mode only).", secret_value=True
    )
    embedded_pg_port: int = setting(
        "AEGIS_EMBEDDED_PG_PORT", 55432, port, "Port of the embedded PostgreSQL that `aegis up` starts."
    )
    embedded_redis_port: int = setting(
        "AEGIS_EMBEDDED_REDIS_PORT", 56379, port, "Port of the embedded Redis that `aegis up` starts."
    )
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    ports: ServicePorts = field(default_factory=ServicePorts)
    addresses: ServiceAddresses = field(default_factory=ServiceAddresses)
    log: LogSettings = field(default_factory=LogSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    orchestrator: OrchestratorSettings = field(default_factory=OrchestratorSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)

    # ----------------------------------------------------------------------------------------- derived values

    def port_of(self, service: str) -> int:
        return getattr(self.ports, service)

    def address_of(self, service: str) -> str:
        """Return the host:port a client uses to reach ``service``."""
        return getattr(self.addresses, service) or f"127.0.0.1:{self.port_of(service)}"

    @property
    def ring_file(self) -> Path:
        if self.feed.ring_path:
            return Path(self.feed.ring_path)
        return self.home / "ring" / f"shard-{max(self.shard, 0)}.ring"

    @property
    def shard(self) -> int:
        """Return this process's shard index: explicit, else the StatefulSet ordinal in HOSTNAME, else 0."""
        if self.feed.shard_index >= 0:
            return self.feed.shard_index
        match = re.search(r"-(\d+)$", os.environ.get("HOSTNAME", ""))
        return int(match.group(1)) if match else 0

    def dsn(self) -> str:
        """Return the PostgreSQL URL: DATABASE_URL, else one built from the libpq PG* variables."""
        if self.database_url:
            return self.database_url
        env = os.environ
        user = quote(env.get("PGUSER", "postgres"), safe="")
        password = env.get("PGPASSWORD")
        auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
        host = env.get("PGHOST", "127.0.0.1")
        host_part = f"[{host}]" if ":" in host and not host.startswith("/") else host
        if host.startswith("/"):  # a socket directory
            return f"postgresql://{auth}/{quote(env.get('PGDATABASE', 'aegis'), safe='')}?host={quote(host)}" + (
                f"&port={env['PGPORT']}" if env.get("PGPORT") else ""
            )
        return f"postgresql://{auth}{host_part}:{env.get('PGPORT', '5432')}/{env.get('PGDATABASE', 'aegis')}"

    def redis(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    def check_live_mode(self) -> None:
        """Refuse live mode unless it is confirmed explicitly and keys are present."""
        if self.mode != "live":
            return
        missing = [
            name
            for name, value in (
                ("BINANCE_API_KEY", self.binance_api_key),
                ("BINANCE_API_SECRET", self.binance_api_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"AEGIS_MODE=live needs {' and '.join(missing)}; refusing to start")
        if self.live_confirm != LIVE_CONFIRMATION:
            raise ConfigError(
                f"AEGIS_MODE=live trades real money: set AEGIS_LIVE_CONFIRM={LIVE_CONFIRMATION} to confirm; refusing"
            )


def database_name(dsn: str) -> str:
    return unquote(urlsplit(dsn).path.lstrip("/"))


def with_database(dsn: str, name: str) -> str:
    """Return ``dsn`` pointing at database ``name`` instead."""
    parts = urlsplit(dsn)
    return parts._replace(path="/" + quote(name, safe="")).geturl()


# --------------------------------------------------------------------------------------------- loading


def _walk(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """List (dotted name, field) for every declared setting of ``cls``, depth first."""
    out: list[tuple[str, dataclasses.Field]] = []
    for f in dataclasses.fields(cls):
        if "env" in f.metadata:
            out.append((prefix + f.name, f))
        else:
            out.extend(_walk(f.default_factory, prefix + f.name + "."))  # type: ignore[arg-type]
    return out


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if "env" in f.metadata:
            if name in values:
                kwargs[f.name] = values[name]
        else:
            kwargs[f.name] = _build(f.default_factory, values, name + ".")  # type: ignore[arg-type]
    return cls(**kwargs)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def load(env: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    """Read the settings from an optional TOML file and the environment; raise ConfigError on a wrong value."""
    env = os.environ if env is None else env
    declared = _walk(Settings)
    values: dict[str, Any] = {}

    file_name = config_file or env.get("AEGIS_CONFIG")
    if file_name:
        file_path = Path(file_name).expanduser()
        try:
            raw = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"AEGIS_CONFIG={str(file_name)!r}: file not found") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"AEGIS_CONFIG={str(file_name)!r}: {exc}") from None
        known = {name: f for name, f in declared}
        for key, value in _flatten(raw).items():
            if key not in known:
                raise ConfigError(f"{file_path}: unknown setting {key!r}")
            values[key] = _parse(known[key], value, f"{file_path}: {key}")

    for name, f in declared:
        var = f.metadata["env"]
        if var in env:
            values[name] = _parse(f, env[var], var)
    return _build(Settings, values)


def redact_url(value: str) -> str:
    """Return ``value`` with the password of a URL (if any) replaced by ***."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)[^@]*@", r"\1***@", value)


def _parse(f: dataclasses.Field, raw: Any, where: str) -> Any:
    try:
        return f.metadata["parse"](raw)
    except ValueError as exc:
        shown = "***" if f.metadata["secret"] else redact_url(str(raw))
        raise ConfigError(f"{where}={shown!r} {exc}") from None


def service_settings() -> list[tuple[str, type]]:
    """(service, settings class) of what one service alone reads, declared with ``setting(...)`` as here."""
    from aegis.brain.settings import BrainSettings  # late: those modules import this one
    from aegis.virtual_account.settings import AccountSettings

    return [("brain", BrainSettings), ("virtual-account", AccountSettings)]


def describe(cls: type | None = None) -> list[dict[str, str]]:
    """Return one row per setting (variable, default, description) of ``cls`` (default :class:`Settings`)."""
    rows = []
    for name, f in _walk(Settings if cls is None else cls):
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(str(item) for item in default)
        if isinstance(default, Path):
            default = str(default).replace(str(Path.home()), "~")
        rows.append({"variable": f.metadata["env"], "setting": name, "default": str(default), "doc": f.metadata["doc"]})
    return rows


def markdown_table() -> str:
    """Return the configuration table that the README embeds."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for row in describe():
        default = f"`{row['default']}`" if row["default"] else "(empty)"
        lines.append(f"| `{row['variable']}` | {default} | {row['doc']} |")
    for service, cls in service_settings():
        for row in describe(cls):
            default = f"`{row['default']}`" if row["default"] else "(empty)"
            lines.append(f"| `{row['variable']}` | {default} | ({service} only) {row['doc']} |")
    return "\n".join(lines)
