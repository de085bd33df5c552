"""Decision table for aegis.risk.rotation (the "Elite 3-position" rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from aegis.errors import ValidationError
from aegis.risk.rotation import RotationAction, RotationConfig, decide_rotation, weakest_position
from aegis.risk.sizing import OpenPosition, PositionSide, ReasonCode

T0 = datetime(2025, 11, 26, 4, 0, tzinfo=UTC)


def pos(pid: str, confidence: str, *, age_min: int = 0, mark: str = "100", symbol: str | None = None) -> OpenPosition:
    """A 1-unit long at 100 with 10x leverage (margin 10): mark 101 is +10 % on margin."""
    return OpenPosition(
        position_id=pid,
        symbol=symbol or f"{pid.upper()}USDT",
        side=PositionSide.LONG,
        quantity=D("1"),
        entry_price=D("100"),
        mark_price=D(mark),
        leverage=10,
        opened_time=T0 - timedelta(minutes=age_min),
        confidence=D(confidence),
    )


THREE = (pos("a", "0.70", age_min=30), pos("b", "0.60", age_min=20), pos("c", "0.80", age_min=10))
CFG = RotationConfig(max_open_positions=3, enabled=True, min_edge=D("0.05"), max_profit_pct=D("1"))


@pytest.mark.parametrize(
    ("positions", "incoming", "config", "action", "close", "code"),
    [
        # no cap (learning account)
        (THREE, "0.10", RotationConfig(max_open_positions=0), RotationAction.NONE, "", None),
        # room left
        ((), "0.10", CFG, RotationAction.OPEN, "", None),
        (THREE[:2], "0.10", CFG, RotationAction.OPEN, "", None),
        # at the cap: replace the weakest (b, 0.60) when beaten by more than 0.05
        (THREE, "0.66", CFG, RotationAction.REPLACE, "b", ReasonCode.ROTATION_REPLACE),
        (THREE, "0.65", CFG, RotationAction.REJECT, "", ReasonCode.MAX_POSITIONS),  # exactly +0.05: not more
        (THREE, "0.50", CFG, RotationAction.REJECT, "", ReasonCode.MAX_POSITIONS),
        # rotation off
        (
            THREE,
            "0.99",
            RotationConfig(max_open_positions=3, enabled=False),
            RotationAction.REJECT,
            "",
            ReasonCode.MAX_POSITIONS,
        ),
        # the weakest is a winner: +10 % on margin > 1 % -> kept
        (
            (pos("a", "0.70"), pos("b", "0.60", mark="101"), pos("c", "0.80")),
            "0.99",
            CFG,
            RotationAction.REJECT,
            "",
            ReasonCode.MAX_POSITIONS,
        ),
        # +1 % on margin exactly (mark 100.1): not beyond the threshold -> replaced
        (
            (pos("a", "0.70"), pos("b", "0.60", mark="100.1"), pos("c", "0.80")),
            "0.99",
            CFG,
            RotationAction.REPLACE,
            "b",
            ReasonCode.ROTATION_REPLACE,
        ),
        # a losing weakest is replaced
        (
            (pos("a", "0.70"), pos("b", "0.60", mark="90"), pos("c", "0.80")),
            "0.99",
            CFG,
            RotationAction.REPLACE,
            "b",
            ReasonCode.ROTATION_REPLACE,
        ),
        # tie on confidence: the oldest goes
        (
            (pos("a", "0.60", age_min=5), pos("b", "0.60", age_min=50), pos("c", "0.80")),
            "0.90",
            CFG,
            RotationAction.REPLACE,
            "b",
            ReasonCode.ROTATION_REPLACE,
        ),
        # over the cap (config lowered): one replacement would not make room
        (THREE, "0.99", RotationConfig(max_open_positions=2), RotationAction.REJECT, "", ReasonCode.MAX_POSITIONS),
    ],
)
def test_rotation_decision_table(positions, incoming, config, action, close, code) -> None:
    decision = decide_rotation(positions, D(incoming), config)
    assert decision.action is action
    assert decision.close_position_id == close
    assert decision.reason_code is code
    assert decision.reason
    if action is RotationAction.REPLACE:
        assert decision.close_symbol == f"{close.upper()}USDT"
        assert decision.weakest_score is not None and decision.incoming_score == D(incoming)


def test_weakest_is_lowest_confidence_then_oldest() -> None:
    assert weakest_position(THREE).position_id == "b"
    assert weakest_position(()) is None


def test_rotation_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="max_open_positions"):
        RotationConfig(max_open_positions=-1)
    with pytest.raises(ValidationError, match="rotation_min_edge"):
        RotationConfig(min_edge=D("2"))
