"""Portfolio rotation (the seeds' "Elite 3-position" rule): hold at most N positions, keep the strongest.

When the account is at its cap, a new signal may take the place of the weakest open position: the one with the
lowest confidence, the oldest among equals. It does so only when

1. its confidence beats the weakest's by more than ``min_edge`` (``incoming > weakest + min_edge``), and
2. the weakest is not in profit beyond ``max_profit_pct`` (unrealised PnL in percent of its margin), so rotation
   never cuts a winner short.

Otherwise the signal is refused with MAX_POSITIONS. An account with ``max_open_positions == 0`` (the learning
account) has no cap and rotation does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from aegis.errors import ValidationError
from aegis.risk.sizing import OpenPosition, ReasonCode

ZERO = Decimal(0)


class RotationAction(StrEnum):
    """What rotation decided (``aegis.v1.RotationAction``)."""

    NONE = "NONE"
    OPEN = "OPEN"
    REPLACE = "REPLACE"
    REJECT = "REJECT"


@dataclass(frozen=True, slots=True)
class RotationConfig:
    """Rotation limits of one account."""

    max_open_positions: int = 3
    """0 = no cap (the learning account)."""
    enabled: bool = True
    """Whether a stronger signal may replace the weakest position when at the cap."""
    min_edge: Decimal = Decimal("0.05")
    """Confidence the incoming signal must have beyond the weakest's (0 to 1)."""
    max_profit_pct: Decimal = Decimal("1")
    """A position whose unrealised PnL is above this percent of its margin is never replaced."""

    def __post_init__(self) -> None:
        if isinstance(self.max_open_positions, bool) or not isinstance(self.max_open_positions, int):
            raise ValidationError("max_open_positions", f"must be an integer, got {self.max_open_positions!r}")
        if self.max_open_positions < 0:
            raise ValidationError("max_open_positions", f"must not be negative, got {self.max_open_positions}")
        if not isinstance(self.min_edge, Decimal) or not ZERO <= self.min_edge <= 1:
            raise ValidationError("rotation_min_edge", f"must be a Decimal from 0 to 1, got {self.min_edge!r}")
        if not isinstance(self.max_profit_pct, Decimal) or not self.max_profit_pct.is_finite():
            raise ValidationError("rotation_max_profit_pct", f"must be a finite Decimal, got {self.max_profit_pct!r}")


@dataclass(frozen=True, slots=True)
class RotationDecision:
    """What rotation decided and why (``aegis.v1.Rotation`` plus the reason code)."""

    action: RotationAction
    reason: str
    reason_code: ReasonCode | None = None
    close_position_id: str = ""
    close_symbol: str = ""
    incoming_score: Decimal = ZERO
    weakest_score: Decimal | None = None
    weakest_pnl_pct: Decimal | None = None


def weakest_position(positions: Iterable[OpenPosition]) -> OpenPosition | None:
    """Return the open position with the lowest confidence, the oldest among equals (then by id, for ties)."""
    return min(positions, key=lambda p: (p.confidence, p.opened_time, p.position_id), default=None)


def decide_rotation(
    positions: Iterable[OpenPosition], incoming_confidence: Decimal, config: RotationConfig
) -> RotationDecision:
    """Return OPEN, REPLACE(weakest) or REJECT for a new signal of ``incoming_confidence`` (NONE without a cap)."""
    held = tuple(positions)
    cap = config.max_open_positions
    if cap == 0:
        return RotationDecision(
            RotationAction.NONE, "no position cap on this account", incoming_score=incoming_confidence
        )
    if len(held) < cap:
        return RotationDecision(
            RotationAction.OPEN,
            f"{len(held)} of {cap} positions open: room for one more",
            incoming_score=incoming_confidence,
        )
    weakest = weakest_position(held)
    assert weakest is not None  # cap >= 1 and len(held) >= cap
    base = {
        "incoming_score": incoming_confidence,
        "weakest_score": weakest.confidence,
        "weakest_pnl_pct": weakest.pnl_pct_of_margin,
    }
    if not config.enabled:
        return RotationDecision(
            RotationAction.REJECT,
            f"{len(held)} of {cap} positions open and rotation is off",
            ReasonCode.MAX_POSITIONS,
            **base,
        )
    if len(held) > cap:
        return RotationDecision(
            RotationAction.REJECT,
            f"{len(held)} positions open, above the cap of {cap}: replacing one would not make room",
            ReasonCode.MAX_POSITIONS,
            **base,
        )
    if not incoming_confidence > weakest.confidence + config.min_edge:
        return RotationDecision(
            RotationAction.REJECT,
            f"at the cap of {cap}; confidence {incoming_confidence} does not beat the weakest position "
            f"{weakest.position_id} ({weakest.symbol}, {weakest.confidence}) by more than {config.min_edge}",
            ReasonCode.MAX_POSITIONS,
            **base,
        )
    pnl_pct = weakest.pnl_pct_of_margin
    if pnl_pct > config.max_profit_pct:
        return RotationDecision(
            RotationAction.REJECT,
            f"at the cap of {cap}; the weakest position {weakest.position_id} ({weakest.symbol}) is "
            f"{pnl_pct:.2f} % in profit on its margin, above {config.max_profit_pct} %: it is kept",
            ReasonCode.MAX_POSITIONS,
            **base,
        )
    return RotationDecision(
        RotationAction.REPLACE,
        f"at the cap of {cap}; confidence {incoming_confidence} beats the weakest position {weakest.position_id} "
        f"({weakest.symbol}, {weakest.confidence}) by more than {config.min_edge}: close it first",
        ReasonCode.ROTATION_REPLACE,
        close_position_id=weakest.position_id,
        close_symbol=weakest.symbol,
        **base,
    )
