"""Training data for tests and benchmarks — SYNTHETIC, and labelled so everywhere it is used.

Two kinds, both clearly not trading results:

* :func:`trades_from_klines` — *synthetic-from-real* closed learning trades: entry times on real recorded 1m
  klines, a stop from the volatility of the hour before the entry (causal), a target at twice the stop, and the
  exit found by walking the real future 1m candles (a stop and a target in the same minute count as the stop,
  the pessimistic reading; after ``max_hold_minutes`` the trade closes at that minute's close as MANUAL). Prices,
  fees and PnL follow the virtual account's arithmetic exactly, so every trade passes validation against the same
  candles. The feature vector has schema 1's layout with the real side, stop and target, but the other features are
  random noise, except that ``plant_feature`` carries a *planted* share ``plant`` of the standardised realised
  return — a relationship put there on purpose, from the outcome, so that a model has something to learn. The
  "rule" baseline prediction each trade carries is built the same way with ``baseline_skill``.
* :func:`planted_arrays` — purely synthetic arrays in memory (the benchmark): random features, a return that is a
  known non-linear function of a few of them plus noise.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from aegis.brain import features as feat
from aegis.trainer.validation import CandleKey, ClosedTrade, MinuteRange

MINUTE_MS = 60_000
MONEY = Decimal("1e-8")
TAKER_FEE = Decimal("0.0005")
SLIPPAGE = Decimal("0.0001")
NOTIONAL = Decimal("1000")
LEVERAGE = 10
_NAMESPACE = uuid.UUID("0b8c2d55-7e0f-4c6a-9a51-5d8f3f4e6a10")


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def reward_score(roi_margin_pct: Decimal) -> int:
    """The virtual account's reward buckets of ROI on margin (see aegis.virtual_account.domain.reward_score)."""
    for edge, score in ((10, 8), (5, 5), (2, 3), (0, 1)):
        if roi_margin_pct > edge:
            return score
    for edge, score in ((-10, -10), (-5, -7), (-2, -3)):
        if roi_margin_pct < edge:
            return score
    return -1 if roi_margin_pct < 0 else 0


@dataclass(frozen=True, slots=True, eq=False)
class Klines:
    """Real 1m klines of one symbol (open times in ms; prices as float64)."""

    symbol: str
    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_ms)


def load_klines(path: Path, symbol: str) -> Klines:
    """Read a ``open_time,open,high,low,close,volume,...`` CSV of 1m klines (the shared recordings)."""
    import pandas as pd

    df = pd.read_csv(path, parse_dates=["open_time"])
    open_ms = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return Klines(
        symbol,
        np.asarray(open_ms, dtype=np.int64),
        df["open"].to_numpy(np.float64),
        df["high"].to_numpy(np.float64),
        df["low"].to_numpy(np.float64),
        df["close"].to_numpy(np.float64),
        df["volume"].to_numpy(np.float64),
    )


def _price(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    entry_index: int
    exit_index: int
    side: int
    sl_pct: float
    tp_pct: float
    exit_level: float
    close_reason: str


def simulate_exit(k: Klines, entry: int, side: int, sl_pct: float, tp_pct: float, max_hold: int) -> Outcome | None:
    """Walk the real candles after ``entry`` until the stop or the target is touched (None when data runs out)."""
    price = k.close[entry]
    stop = price * (1 - side * sl_pct / 100)
    target = price * (1 + side * tp_pct / 100)
    last = min(len(k) - 1, entry + max_hold)
    for j in range(entry + 1, last + 1):
        hit_stop = k.low[j] <= stop if side > 0 else k.high[j] >= stop
        hit_target = k.high[j] >= target if side > 0 else k.low[j] <= target
        if hit_stop:  # both in one minute: the stop, since we cannot know which came first
            return Outcome(entry, j, side, sl_pct, tp_pct, stop, "SL_HIT")
        if hit_target:
            return Outcome(entry, j, side, sl_pct, tp_pct, target, "TP_HIT")
    if last - entry < max_hold:
        return None
    return Outcome(entry, last, side, sl_pct, tp_pct, k.close[last], "MANUAL")


def _trade(k: Klines, o: Outcome, features: tuple[float, ...], baseline: float, account: str) -> ClosedTrade:
    entry = _price(k.close[o.entry_index])
    sign = o.side
    # fills as the virtual account makes them: market entry and exit one slippage step worse for the trader
    entry_fill = (entry * (1 + sign * SLIPPAGE)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    level = _price(o.exit_level)
    exit_fill = (level * (1 - sign * SLIPPAGE)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    quantity = (NOTIONAL / entry_fill).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    margin = _money(quantity * entry_fill / LEVERAGE)
    gross = _money(sign * quantity * (exit_fill - entry_fill))
    fees = _money(quantity * entry_fill * TAKER_FEE) + _money(quantity * exit_fill * TAKER_FEE)
    funding = Decimal(0)
    realised = gross - fees + funding
    opened_ms = int(k.open_ms[o.entry_index]) + MINUTE_MS + 1_000  # just after the entry candle closed
    closed_ms = int(k.open_ms[o.exit_index]) + 30_000
    key = f"{account}|{k.symbol}|{opened_ms}|{sign}"
    return ClosedTrade(
        trade_id=str(uuid.uuid5(_NAMESPACE, key)),
        account_id=account,
        symbol=k.symbol,
        side="BUY" if sign > 0 else "SELL",
        quantity=quantity,
        entry_price=entry_fill,
        exit_price=exit_fill,
        margin=margin,
        opened_at=_when(opened_ms),
        closed_at=_when(closed_ms),
        close_reason=o.close_reason,
        gross_pnl=gross,
        fees=fees,
        funding=funding,
        realised_pnl=realised,
        reward_score=reward_score(realised * 100 / margin),
        predicted_return_pct=baseline,
        model_version="rules-v1",
        feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
        features=features,
    )


def trades_from_klines(
    klines: Sequence[Klines],
    *,
    seed: int,
    every_minutes: int = 30,
    plant: float = 0.6,
    plant_feature: str = "t_macd_hist_pct",
    baseline_skill: float = 0.0,
    max_hold_minutes: int = 720,
    sides: Sequence[int] = (1, -1),
    account: str = "learning",
    start_index: int = 60,
    end_index: int | None = None,
    balance_symbols: bool = True,
) -> list[ClosedTrade]:
    """Return SYNTHETIC-FROM-REAL closed trades on real klines (see the module doc), ordered by close time.

    With ``balance_symbols`` every symbol keeps as many trades as the one with fewest (randomly chosen ones are
    dropped), so a set of two symbols passes the 50 % concentration check.
    """
    rng = np.random.default_rng(seed)
    outcomes: list[tuple[Klines, Outcome]] = []
    for k in klines:
        close = k.close
        log_ret = np.diff(np.log(close), prepend=np.log(close[0]))
        stop_at = len(k) if end_index is None else min(end_index, len(k))
        entry = start_index + int(rng.integers(0, every_minutes))
        while entry < stop_at - 2:
            past = log_ret[max(1, entry - 59) : entry + 1]  # the hour up to and including the entry minute
            vol_pct = float(past.std()) * 100 * np.sqrt(30)
            sl_pct = round(float(np.clip(1.5 * vol_pct, 0.2, 2.5)), 6)
            side = int(rng.choice(np.asarray(sides)))
            outcome = simulate_exit(k, entry, side, sl_pct, round(2 * sl_pct, 6), max_hold_minutes)
            if outcome is not None:
                outcomes.append((k, outcome))
            entry += every_minutes + int(rng.integers(-every_minutes // 3, every_minutes // 3 + 1))
    if not outcomes:
        return []
    if balance_symbols:
        per_symbol: dict[str, list[int]] = {}
        for i, (k, _) in enumerate(outcomes):
            per_symbol.setdefault(k.symbol, []).append(i)
        keep_count = min(len(v) for v in per_symbol.values())
        keep = sorted(int(i) for v in per_symbol.values() for i in rng.choice(v, keep_count, replace=False))
        outcomes = [outcomes[i] for i in keep]
    # features and baseline need the realised return, so build the trades first with placeholders
    trades = [_trade(k, o, (), 0.0, account) for k, o in outcomes]
    returns = np.array([t.return_pct() for t in trades])
    z = (returns - returns.mean()) / (returns.std() or 1.0)
    names = feat.FEATURE_NAMES
    planted = names.index(plant_feature)
    out = []
    for (_, o), t, zi in zip(outcomes, trades, z, strict=True):
        values = rng.normal(size=len(names))
        values[planted] = plant * zi + np.sqrt(max(0.0, 1 - plant * plant)) * values[planted]
        values[names.index("side")] = float(o.side)
        values[names.index("sl_pct")] = o.sl_pct
        values[names.index("tp_pct")] = o.tp_pct
        noise = float(rng.normal())
        baseline = float(returns.std() * (baseline_skill * zi + np.sqrt(max(0.0, 1 - baseline_skill**2)) * noise))
        out.append(replace(t, features=tuple(float(v) for v in values), predicted_return_pct=baseline))
    out.sort(key=lambda t: (t.closed_at, t.trade_id))
    return out


def candle_ranges(klines: Sequence[Klines]) -> dict[CandleKey, MinuteRange]:
    """The klines as the validator's candle lookup (what the trainer reads from ``candles``)."""
    return {
        (k.symbol, _when(int(k.open_ms[i]))): MinuteRange(_price(k.low[i]), _price(k.high[i]))
        for k in klines
        for i in range(len(k))
    }


# --------------------------------------------------------------------------------------------- database


async def ensure_learning_account(conn: Any, account: str = "learning") -> None:
    await conn.execute(
        "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance) VALUES ($1, 'learning', 10000, "
        "10000) ON CONFLICT (account_id) DO NOTHING",
        account,
    )


async def insert_trades(conn: Any, trades: Sequence[ClosedTrade]) -> None:
    """Write trades into ``trades`` as the virtual account would (ROI columns included)."""
    for account in sorted({t.account_id for t in trades}):
        await ensure_learning_account(conn, account)
    records = []
    for t in trades:
        sign = 1 if t.side == "BUY" else -1
        roi_margin = (t.realised_pnl * 100 / t.margin).quantize(Decimal("1e-6")) if t.margin else Decimal(0)
        roi_price = (sign * (t.exit_price - t.entry_price) * 100 / t.entry_price).quantize(Decimal("1e-6"))
        records.append(
            (
                uuid.UUID(t.trade_id),
                uuid.uuid5(_NAMESPACE, "position|" + t.trade_id),
                t.account_id,
                t.symbol,
                t.side,
                t.quantity,
                t.entry_price,
                t.exit_price,
                Decimal(LEVERAGE),
                t.margin,
                t.opened_at,
                t.closed_at,
                t.close_reason,
                t.gross_pnl,
                t.fees,
                t.funding,
                t.realised_pnl,
                roi_margin,
                roi_price,
                t.reward_score,
                t.predicted_return_pct,
                t.model_version,
                t.feature_schema_version,
                None if t.features is None else list(t.features),
            )
        )
    await conn.copy_records_to_table(
        "trades",
        records=records,
        columns=[
            "trade_id",
            "position_id",
            "account_id",
            "symbol",
            "side",
            "quantity",
            "entry_price",
            "exit_price",
            "leverage",
            "margin",
            "opened_at",
            "closed_at",
            "close_reason",
            "gross_pnl",
            "fees",
            "funding",
            "realised_pnl",
            "roi_margin_pct",
            "roi_price_pct",
            "reward_score",
            "predicted_return_pct",
            "model_version",
            "feature_schema_version",
            "features",
        ],
    )


async def insert_candles(conn: Any, klines: Sequence[Klines]) -> None:
    """Store the real 1m klines in ``candles`` (what the brain persists), for the price checks."""
    records = []
    for k in klines:
        for i in range(len(k)):
            opened = _when(int(k.open_ms[i]))
            records.append(
                (
                    k.symbol,
                    "1m",
                    opened,
                    opened + dt.timedelta(milliseconds=MINUTE_MS - 1),
                    _price(k.open[i]),
                    _price(k.high[i]),
                    _price(k.low[i]),
                    _price(k.close[i]),
                    _price(k.volume[i]),
                    "replay",
                )
            )
    await conn.copy_records_to_table(
        "candles",
        records=records,
        columns=["symbol", "timeframe", "open_time", "close_time", "open", "high", "low", "close", "volume", "source"],
    )


# --------------------------------------------------------------------------------------------- in memory


@dataclass(frozen=True, slots=True, eq=False)
class PlantedArrays:
    """SYNTHETIC arrays: features, returns (percent), rewards, open/close times (ms), ordered by close time."""

    features: np.ndarray
    returns_pct: np.ndarray
    rewards: np.ndarray
    opened_ms: np.ndarray
    closed_ms: np.ndarray


def planted_arrays(n: int, seed: int, *, noise: float = 1.0) -> PlantedArrays:
    """Return ``n`` purely synthetic rows of schema 1's width with a known non-linear return function.

    ``return = 0.4 f3 + 0.3 tanh(f5 f6) - 0.2 |f10| + noise`` (percent points), features standard normal.
    """
    rng = np.random.default_rng(seed)
    d = len(feat.FEATURE_NAMES)
    x = rng.normal(size=(n, d))
    y = 0.4 * x[:, 3] + 0.3 * np.tanh(x[:, 5] * x[:, 6]) - 0.2 * np.abs(x[:, 10]) + noise * rng.normal(size=n)
    rewards = np.clip(np.round(y * 3), -10, 8)
    opened = np.sort(rng.integers(0, 90 * 86_400_000, size=n)).astype(np.int64)
    closed = opened + rng.integers(60_000, 6 * 3_600_000, size=n)
    order = np.argsort(closed, kind="mergesort")
    return PlantedArrays(x[order], y[order], rewards[order], opened[order], closed[order])
