"""Protections: conditions under which an account opens no new position, each with its reason code.

- HALTED: trading was halted by hand (until ``halted_until`` when set).
- MAX_DRAWDOWN: equity is ``max_drawdown_pct`` or more below its peak. Stays until someone lifts it (the peak
  only moves up, so the account has to recover or the peak be reset on purpose).
- DAILY_LOSS_LIMIT: equity is ``daily_loss_limit_pct`` or more below the day's starting equity (UTC day).
  Equity includes unrealised PnL, so an open loss counts as much as a realised one. Lifts at the next UTC day.
- COOLDOWN: the symbol's last stop-loss was less than ``cooldown_after_loss`` ago.
- MAX_OPEN_NOTIONAL: the sum of ``|notional|`` of open positions plus the new order would exceed
  ``max_open_notional_multiple * total_equity``.

A limit of ``None`` is off. All functions are pure: the caller passes the clock's ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aegis.errors import ValidationError
from aegis.risk.sizing import HUNDRED, EquityBreakdown, Reason, ReasonCode

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ProtectionsConfig:
    """Protection limits of one account (percent points; ``None`` = off)."""

    daily_loss_limit_pct: Decimal | None = Decimal("5")
    max_drawdown_pct: Decimal | None = Decimal("20")
    cooldown_after_loss: timedelta = timedelta(minutes=30)
    max_open_notional_multiple: Decimal | None = Decimal("3")

    def __post_init__(self) -> None:
        for name in ("daily_loss_limit_pct", "max_drawdown_pct"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or not ZERO < value <= HUNDRED):
                raise ValidationError(name, f"must be a Decimal in (0, 100] or None, got {value!r}")
        multiple = self.max_open_notional_multiple
        if multiple is not None and (not isinstance(multiple, Decimal) or not multiple.is_finite() or multiple <= 0):
            raise ValidationError("max_open_notional_multiple", f"must be a positive Decimal or None, got {multiple!r}")
        if not isinstance(self.cooldown_after_loss, timedelta) or self.cooldown_after_loss < timedelta(0):
            raise ValidationError(
                "cooldown_after_loss", f"must be a non-negative timedelta, got {self.cooldown_after_loss!r}"
            )


@dataclass(frozen=True, slots=True)
class ProtectionsState:
    """What the protections need to know about an account besides its equity."""

    start_of_day_equity: Decimal
    """Total equity at 00:00 UTC today."""
    peak_equity: Decimal
    """Highest total equity seen (the current equity counts too)."""
    last_stop_loss_time: Mapping[str, datetime] = field(default_factory=dict)
    """Per symbol, when its last stop-loss filled."""
    halted: bool = False
    halt_reason: str = ""
    halted_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A pause on one symbol (``aegis.v1.Cooldown``)."""

    symbol: str
    reason: str
    until_time: datetime


@dataclass(frozen=True, slots=True)
class ProtectionsStatus:
    """State of the protections of one account (``aegis.v1.ProtectionsStatus``)."""

    account: str
    halted: bool
    halt_reason: str
    halted_until_time: datetime | None
    daily_pnl: Decimal
    """Equity change since the start of the UTC day (realised and unrealised)."""
    daily_loss_pct: Decimal
    daily_loss_limit_pct: Decimal | None
    peak_equity: Decimal
    equity: Decimal
    drawdown_pct: Decimal
    max_drawdown_pct: Decimal | None
    open_notional: Decimal
    max_open_notional: Decimal | None
    open_positions: int
    max_open_positions: int
    cooldowns: tuple[Cooldown, ...]
    reasons: tuple[Reason, ...]
    """Why new positions are refused right now (empty when none is)."""


def daily_loss_pct(start_of_day_equity: Decimal, equity: Decimal) -> Decimal:
    """Return today's loss in percent of the day's starting equity (0 when the day is up)."""
    if start_of_day_equity <= 0:
        return ZERO
    return max(ZERO, (start_of_day_equity - equity) * HUNDRED / start_of_day_equity)


def drawdown_pct(peak_equity: Decimal, equity: Decimal) -> Decimal:
    """Return how far equity is below its peak, in percent of the peak."""
    peak = max(peak_equity, equity)
    if peak <= 0:
        return ZERO
    return (peak - equity) * HUNDRED / peak


def _next_utc_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def account_blocks(config: ProtectionsConfig, state: ProtectionsState, equity: Decimal, now: datetime) -> list[Reason]:
    """Return the reasons the whole account may open nothing now: HALTED, MAX_DRAWDOWN, DAILY_LOSS_LIMIT."""
    reasons: list[Reason] = []
    if state.halted and (state.halted_until is None or now < state.halted_until):
        until = f" until {state.halted_until.isoformat()}" if state.halted_until else ""
        why = f": {state.halt_reason}" if state.halt_reason else ""
        reasons.append(Reason(ReasonCode.HALTED, f"trading is halted for this account{until}{why}"))
    if config.max_drawdown_pct is not None:
        dd = drawdown_pct(state.peak_equity, equity)
        if dd >= config.max_drawdown_pct:
            reasons.append(
                Reason(
                    ReasonCode.MAX_DRAWDOWN,
                    f"equity {equity} is {dd:.2f} % below its peak {max(state.peak_equity, equity)}, "
                    f"at or past the {config.max_drawdown_pct} % limit",
                )
            )
    if config.daily_loss_limit_pct is not None:
        loss = daily_loss_pct(state.start_of_day_equity, equity)
        if loss >= config.daily_loss_limit_pct:
            reasons.append(
                Reason(
                    ReasonCode.DAILY_LOSS_LIMIT,
                    f"equity {equity} is {loss:.2f} % below the day's start {state.start_of_day_equity}, "
                    f"at or past the {config.daily_loss_limit_pct} % daily limit",
                )
            )
    return reasons


def active_cooldowns(config: ProtectionsConfig, state: ProtectionsState, now: datetime) -> tuple[Cooldown, ...]:
    """Return the symbols still cooling down after a stop-loss, by symbol name."""
    out = []
    for symbol, when in sorted(state.last_stop_loss_time.items()):
        until = when + config.cooldown_after_loss
        if now < until:
            out.append(Cooldown(symbol, f"stop-loss at {when.isoformat()}", until))
    return tuple(out)


def symbol_block(config: ProtectionsConfig, state: ProtectionsState, symbol: str, now: datetime) -> Reason | None:
    """Return COOLDOWN when ``symbol`` had a stop-loss less than ``cooldown_after_loss`` ago."""
    when = state.last_stop_loss_time.get(symbol)
    if when is None:
        return None
    until = when + config.cooldown_after_loss
    if now < until:
        left = until - now
        minutes = int(left.total_seconds() // 60)
        return Reason(
            ReasonCode.COOLDOWN,
            f"{symbol} is cooling down after a stop-loss at {when.isoformat()}: {minutes} min left",
        )
    return None


def open_notional_block(
    config: ProtectionsConfig, equity: Decimal, open_notional: Decimal, new_notional: Decimal
) -> Reason | None:
    """Return MAX_OPEN_NOTIONAL when open plus new notional exceeds the allowed multiple of equity."""
    if config.max_open_notional_multiple is None:
        return None
    cap = config.max_open_notional_multiple * max(equity, ZERO)
    total = open_notional + new_notional
    if total > cap:
        return Reason(
            ReasonCode.MAX_OPEN_NOTIONAL,
            f"open notional {open_notional} + {new_notional} = {total} would exceed "
            f"{config.max_open_notional_multiple} x equity = {cap}",
        )
    return None


def protections_status(
    *,
    account: str,
    config: ProtectionsConfig,
    state: ProtectionsState,
    equity: EquityBreakdown,
    open_positions: int,
    max_open_positions: int,
    now: datetime,
) -> ProtectionsStatus:
    """Return the protections' state for reporting (GetProtectionsStatus)."""
    total = equity.total_equity
    reasons = account_blocks(config, state, total, now)
    codes = {r.code for r in reasons}
    until: datetime | None = None
    if ReasonCode.HALTED in codes:
        until = state.halted_until
    elif ReasonCode.DAILY_LOSS_LIMIT in codes and ReasonCode.MAX_DRAWDOWN not in codes:
        until = _next_utc_midnight(now)
    cap = (
        config.max_open_notional_multiple * max(total, ZERO) if config.max_open_notional_multiple is not None else None
    )
    return ProtectionsStatus(
        account=account,
        halted=bool(reasons),
        halt_reason="; ".join(r.message for r in reasons),
        halted_until_time=until,
        daily_pnl=total - state.start_of_day_equity,
        daily_loss_pct=daily_loss_pct(state.start_of_day_equity, total),
        daily_loss_limit_pct=config.daily_loss_limit_pct,
        peak_equity=max(state.peak_equity, total),
        equity=total,
        drawdown_pct=drawdown_pct(state.peak_equity, total),
        max_drawdown_pct=config.max_drawdown_pct,
        open_notional=equity.position_value,
        max_open_notional=cap,
        open_positions=open_positions,
        max_open_positions=max_open_positions,
        cooldowns=active_cooldowns(config, state, now),
        reasons=tuple(reasons),
    )
