"""Decision table for aegis.risk.protections: halt, drawdown, daily loss, cooldown, open notional."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from aegis.errors import ValidationError
from aegis.risk.protections import (
    ProtectionsConfig,
    ProtectionsState,
    account_blocks,
    drawdown_pct,
    open_notional_block,
    protections_status,
    symbol_block,
)
from aegis.risk.sizing import ReasonCode, equity_breakdown

NOW = datetime(2025, 11, 26, 15, 0, tzinfo=UTC)
CFG = ProtectionsConfig(
    daily_loss_limit_pct=D("5"),
    max_drawdown_pct=D("20"),
    cooldown_after_loss=timedelta(minutes=30),
    max_open_notional_multiple=D("3"),
)


def state(sod: str = "10000", peak: str = "10000", **kw) -> ProtectionsState:
    return ProtectionsState(start_of_day_equity=D(sod), peak_equity=D(peak), **kw)


@pytest.mark.parametrize(
    ("st", "equity", "codes"),
    [
        (state(), "10000", []),
        (state(), "9501", []),  # 4.99 % down on the day
        (state(), "9500", [ReasonCode.DAILY_LOSS_LIMIT]),  # exactly 5 %: the limit is reached
        (state(sod="9000", peak="12000"), "9600", [ReasonCode.MAX_DRAWDOWN]),  # 20 % below peak, day is up
        (state(sod="10000", peak="12500"), "9000", [ReasonCode.MAX_DRAWDOWN, ReasonCode.DAILY_LOSS_LIMIT]),
        (state(peak="12000"), "9601", []),  # 19.99 % drawdown
        (state(halted=True, halt_reason="manual"), "10000", [ReasonCode.HALTED]),
        (state(halted=True, halted_until=NOW + timedelta(minutes=1)), "10000", [ReasonCode.HALTED]),
        (state(halted=True, halted_until=NOW), "10000", []),  # the halt has lifted
    ],
)
def test_account_block_table(st, equity, codes) -> None:
    assert [r.code for r in account_blocks(CFG, st, D(equity), NOW)] == codes


def test_limits_can_be_switched_off() -> None:
    off = ProtectionsConfig(daily_loss_limit_pct=None, max_drawdown_pct=None, max_open_notional_multiple=None)
    assert account_blocks(off, state(peak="100000"), D("1"), NOW) == []
    assert open_notional_block(off, D("1"), D("1000"), D("1000")) is None


@pytest.mark.parametrize(
    ("minutes_ago", "blocked"),
    [(0, True), (29, True), (30, False), (120, False)],
)
def test_cooldown_after_a_stop_loss(minutes_ago, blocked) -> None:
    st = state(last_stop_loss_time={"BTCUSDT": NOW - timedelta(minutes=minutes_ago)})
    reason = symbol_block(CFG, st, "BTCUSDT", NOW)
    assert (reason is not None) == blocked
    if blocked:
        assert reason.code is ReasonCode.COOLDOWN and "BTCUSDT" in reason.message
    assert symbol_block(CFG, st, "ETHUSDT", NOW) is None


@pytest.mark.parametrize(
    ("open_notional", "new", "blocked"),
    [("0", "30000", False), ("20000", "10000", False), ("20000", "10000.01", True), ("30000", "1", True)],
)
def test_max_open_notional(open_notional, new, blocked) -> None:
    reason = open_notional_block(CFG, D("10000"), D(open_notional), D(new))
    assert (reason is not None) == blocked
    if blocked:
        assert reason.code is ReasonCode.MAX_OPEN_NOTIONAL


def test_drawdown_counts_a_new_peak() -> None:
    assert drawdown_pct(D("10000"), D("11000")) == 0
    assert drawdown_pct(D("10000"), D("8000")) == D("20")


def test_status_reports_the_figures() -> None:
    st = state(sod="10000", peak="10000", last_stop_loss_time={"ETHUSDT": NOW - timedelta(minutes=10)})
    status = protections_status(
        account="paper",
        config=CFG,
        state=st,
        equity=equity_breakdown(D("9400")),
        open_positions=0,
        max_open_positions=3,
        now=NOW,
    )
    assert status.halted and status.reasons[0].code is ReasonCode.DAILY_LOSS_LIMIT
    assert status.daily_pnl == D("-600") and status.daily_loss_pct == D("6")
    assert status.halted_until_time == datetime(2025, 11, 27, tzinfo=UTC)  # lifts at the next UTC day
    assert status.max_open_notional == D("28200")
    assert [c.symbol for c in status.cooldowns] == ["ETHUSDT"]
    assert status.cooldowns[0].until_time == NOW + timedelta(minutes=20)


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="daily_loss_limit_pct"):
        ProtectionsConfig(daily_loss_limit_pct=D("0"))
    with pytest.raises(ValidationError, match="cooldown_after_loss"):
        ProtectionsConfig(cooldown_after_loss=timedelta(minutes=-1))
