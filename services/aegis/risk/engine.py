"""The risk engine: signal + account state + exchange rules -> an order Binance will accept, or refusal reasons.

Pure: no I/O, no clock (``now`` is an argument), no state. The same inputs give the same decision, including its
id. The gRPC servicer only translates these frozen dataclasses to and from ``aegis.v1`` messages.

Steps of :meth:`RiskEngine.evaluate`, in order (docs/risk.md walks through each):

1. Symbol known, TRADING, with leverage brackets; signal values usable; mark price present and fresh.
2. Gates: halt, drawdown, daily loss, signal age, cooldown, confidence, expected return, one position per
   symbol, rotation (position cap). Every failing gate is reported, then the signal is refused.
3. Sizing on total equity (fixed fraction, fixed risk, ATR, Kelly or fixed notional), with the entry, stop and
   target on the tick grid, rounded in the safe direction.
4. maxQty cap, leverage guard (bracket of the resulting position), open-notional and free-margin room: each may
   only cut the quantity, and says so with QUANTITY_REDUCED / LEVERAGE_CLAMPED.
5. Exchange filters on the final order (``SymbolRules.violations`` must be empty) and MAX_NUM_ORDERS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aegis.errors import ValidationError
from aegis.exchange.rules import OrderType, Side, SymbolRules
from aegis.risk.leverage import LeverageGuardResult, guard_leverage
from aegis.risk.protections import (
    ProtectionsConfig,
    ProtectionsState,
    ProtectionsStatus,
    account_blocks,
    open_notional_block,
    protections_status,
    symbol_block,
)
from aegis.risk.rotation import RotationAction, RotationConfig, RotationDecision, decide_rotation
from aegis.risk.sizing import (
    HUNDRED,
    ONE,
    ZERO,
    AccountKind,
    EquityBreakdown,
    OpenPosition,
    PositionSide,
    Reason,
    ReasonCode,
    SizingDetails,
    SizingMethod,
    aware,
    equity_breakdown,
    fixed_fraction_quantity,
    fixed_risk_quantity,
    kelly_risk_fraction,
    money,
    parse_enum,
    per_unit_loss,
    protective_prices,
    ratio,
)

_DECISION_NAMESPACE = uuid.UUID("6f1c7a52-7d0e-4f51-9c1c-3a2b8e0d4a11")


class MarginType(StrEnum):
    ISOLATED = "ISOLATED"
    CROSSED = "CROSSED"


class WorkingType(StrEnum):
    """Price that triggers stop and take-profit orders."""

    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


# --------------------------------------------------------------------------------------------- config


def _opt_ratio(name: str, value: Any, **bounds: Any) -> Decimal | None:
    return None if value is None else ratio(name, value, **bounds)


def _opt_duration(name: str, value: Any) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValidationError(name, f"must be a non-negative timedelta or None, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Risk limits of one account (``aegis.v1.RiskConfig`` plus the knobs the formulas need).

    Percentages are percent points (``1`` = 1 %); fractions are plain (``0.2`` = 20 %). Floats are accepted for
    ratios and converted through their repr; money must be ``Decimal``, ``int`` or a decimal string.
    """

    account: str = "paper"
    kind: AccountKind = AccountKind.PAPER
    sizing_method: SizingMethod = SizingMethod.FIXED_RISK
    risk_per_trade_pct: Decimal = Decimal("1")
    fixed_fraction: Decimal = Decimal("0.20")
    fixed_notional: Decimal = Decimal("100")
    max_leverage: int = 20
    margin_type: MarginType = MarginType.ISOLATED
    max_open_positions: int = 3
    max_open_notional_multiple: Decimal | None = Decimal("3")
    daily_loss_limit_pct: Decimal | None = Decimal("5")
    max_drawdown_pct: Decimal | None = Decimal("20")
    cooldown_after_loss: timedelta = timedelta(minutes=30)
    min_confidence: Decimal = Decimal("0")
    max_signal_age: timedelta | None = timedelta(minutes=5)
    max_mark_price_age: timedelta | None = timedelta(seconds=30)
    rotation_enabled: bool = True
    rotation_min_edge: Decimal = Decimal("0.05")
    rotation_max_profit_pct: Decimal = Decimal("1")
    kelly_multiplier: Decimal = Decimal("0.25")
    kelly_cap: Decimal = Decimal("0.02")
    atr_stop_multiple: Decimal = Decimal("1.5")
    fee_rate: Decimal = Decimal("0.0005")
    include_fees: bool = True
    entry_order_type: OrderType = OrderType.MARKET
    working_type: WorkingType = WorkingType.MARK_PRICE
    one_position_per_symbol: bool = True
    orders_per_entry: int = 3
    """Open orders one entry adds on the symbol (entry, stop-loss, take-profit), for MAX_NUM_ORDERS."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.account, str) or not self.account:
            raise ValidationError("account", "must be a non-empty string")
        s(self, "kind", parse_enum(AccountKind, "kind", self.kind))
        s(self, "sizing_method", parse_enum(SizingMethod, "sizing_method", self.sizing_method))
        s(self, "margin_type", parse_enum(MarginType, "margin_type", self.margin_type))
        s(self, "working_type", parse_enum(WorkingType, "working_type", self.working_type))
        s(self, "entry_order_type", parse_enum(OrderType, "entry_order_type", self.entry_order_type))
        if self.entry_order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValidationError("entry_order_type", "must be MARKET or LIMIT")
        s(self, "risk_per_trade_pct", ratio("risk_per_trade_pct", self.risk_per_trade_pct, lo=ZERO, hi=HUNDRED))
        s(self, "fixed_fraction", ratio("fixed_fraction", self.fixed_fraction, lo=ZERO))
        s(self, "fixed_notional", money("fixed_notional", self.fixed_notional, non_negative=True))
        for name in ("max_leverage", "max_open_positions", "orders_per_entry"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(name, f"must be a non-negative integer, got {value!r}")
        if not 1 <= self.max_leverage <= 125:
            raise ValidationError("max_leverage", f"must be from 1 to 125, got {self.max_leverage}")
        s(self, "max_open_notional_multiple", _opt_ratio("max_open_notional_multiple", self.max_open_notional_multiple))
        s(self, "daily_loss_limit_pct", _opt_ratio("daily_loss_limit_pct", self.daily_loss_limit_pct))
        s(self, "max_drawdown_pct", _opt_ratio("max_drawdown_pct", self.max_drawdown_pct))
        s(self, "min_confidence", ratio("min_confidence", self.min_confidence, lo=ZERO, hi=ONE))
        s(self, "rotation_min_edge", ratio("rotation_min_edge", self.rotation_min_edge, lo=ZERO, hi=ONE))
        s(self, "rotation_max_profit_pct", ratio("rotation_max_profit_pct", self.rotation_max_profit_pct))
        s(self, "kelly_multiplier", ratio("kelly_multiplier", self.kelly_multiplier, lo=ZERO, hi=ONE))
        s(self, "kelly_cap", ratio("kelly_cap", self.kelly_cap, lo=ZERO, hi=ONE))
        s(self, "atr_stop_multiple", ratio("atr_stop_multiple", self.atr_stop_multiple, lo=ZERO))
        s(self, "fee_rate", ratio("fee_rate", self.fee_rate, lo=ZERO, hi=Decimal("0.1")))
        s(self, "max_signal_age", _opt_duration("max_signal_age", self.max_signal_age))
        s(self, "max_mark_price_age", _opt_duration("max_mark_price_age", self.max_mark_price_age))
        # Built here so their own checks run now, on the config, not on the first signal.
        self.protections_config  # noqa: B018
        self.rotation_config  # noqa: B018

    @classmethod
    def defaults(cls, kind: AccountKind | str, account: str | None = None, **overrides: Any) -> RiskConfig:
        """Return the default config of an account kind: LEARNING has no position cap and no rotation."""
        kind_ = parse_enum(AccountKind, "kind", kind)
        base: dict[str, Any] = {"account": account or kind_.value.lower(), "kind": kind_}
        if kind_ is AccountKind.LEARNING:
            base.update(max_open_positions=0, rotation_enabled=False)
        base.update(overrides)
        return cls(**base)

    @property
    def protections_config(self) -> ProtectionsConfig:
        return ProtectionsConfig(
            daily_loss_limit_pct=self.daily_loss_limit_pct,
            max_drawdown_pct=self.max_drawdown_pct,
            cooldown_after_loss=self.cooldown_after_loss,
            max_open_notional_multiple=self.max_open_notional_multiple,
        )

    @property
    def rotation_config(self) -> RotationConfig:
        return RotationConfig(
            max_open_positions=self.max_open_positions,
            enabled=self.rotation_enabled,
            min_edge=self.rotation_min_edge,
            max_profit_pct=self.rotation_max_profit_pct,
        )

    @property
    def fee(self) -> Decimal:
        """Fee rate the sizing includes (0 when fees are not configured)."""
        return self.fee_rate if self.include_fees else ZERO


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class TradeSignal:
    """A trade idea (``aegis.v1.Signal`` without its features).

    Malformed values (wrong types, NaN, a non-positive price, a naive time) raise :class:`ValidationError`.
    Well-formed but unusable values (``sl_pct <= 0``, confidence outside 0..1) are refused by the engine with
    INVALID_SIGNAL, so the refusal is recorded like any other decision.
    """

    symbol: str
    side: PositionSide
    sl_pct: Decimal
    tp_pct: Decimal
    entry_price: Decimal | None = None
    """Reference entry (last price when the signal was made); the limit price of a LIMIT entry."""
    confidence: Decimal = ONE
    predicted_return_pct: Decimal | None = None
    created_time: datetime | None = None
    signal_id: str = ""
    model_version: str = ""

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValidationError("signal.symbol", "must be a non-empty string")
        s(self, "symbol", self.symbol.strip().upper())
        s(self, "side", parse_enum(PositionSide, "signal.side", self.side))
        s(self, "sl_pct", ratio("signal.sl_pct", self.sl_pct))
        s(self, "tp_pct", ratio("signal.tp_pct", self.tp_pct))
        s(self, "confidence", ratio("signal.confidence", self.confidence))
        if self.entry_price is not None:
            s(self, "entry_price", money("signal.entry_price", self.entry_price, positive=True))
        if self.predicted_return_pct is not None:
            s(self, "predicted_return_pct", ratio("signal.predicted_return_pct", self.predicted_return_pct))
        if self.created_time is not None:
            aware("signal.created_time", self.created_time)


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Market inputs of one decision: mark price (and when it was seen), ATR, historical win rate."""

    mark_price: Decimal | None = None
    mark_time: datetime | None = None
    atr: Decimal | None = None
    win_rate: Decimal | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.mark_price is not None:
            s(self, "mark_price", money("mark_price", self.mark_price, positive=True))
        if self.mark_time is not None:
            aware("mark_time", self.mark_time)
        if self.atr is not None:
            s(self, "atr", money("atr", self.atr, positive=True))
        if self.win_rate is not None:
            s(self, "win_rate", ratio("win_rate", self.win_rate, lo=ZERO, hi=ONE))


@dataclass(frozen=True, slots=True)
class AccountState:
    """What risk needs to know about an account at decision time."""

    name: str
    wallet_balance: Decimal
    positions: tuple[OpenPosition, ...] = ()
    start_of_day_equity: Decimal | None = None
    """Total equity at 00:00 UTC; ``None`` = the current equity (no loss today)."""
    peak_equity: Decimal | None = None
    """Highest total equity seen; ``None`` = the current equity."""
    last_stop_loss_time: Mapping[str, datetime] = field(default_factory=dict)
    halted: bool = False
    halt_reason: str = ""
    halted_until: datetime | None = None
    open_orders: Mapping[str, int] = field(default_factory=dict)
    """Open orders (normal + algo) per symbol, for MAX_NUM_ORDERS."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("account", "must be a non-empty string")
        s(self, "wallet_balance", money("wallet_balance", self.wallet_balance))
        positions = tuple(self.positions)
        for p in positions:
            if not isinstance(p, OpenPosition):
                raise ValidationError("positions", f"must hold OpenPosition values, got {type(p).__name__}")
        ids = [p.position_id for p in positions]
        if len(set(ids)) != len(ids):
            raise ValidationError("positions", "position ids must be unique")
        s(self, "positions", positions)
        if self.start_of_day_equity is not None:
            s(self, "start_of_day_equity", money("start_of_day_equity", self.start_of_day_equity))
        if self.peak_equity is not None:
            s(self, "peak_equity", money("peak_equity", self.peak_equity))
        for symbol, when in self.last_stop_loss_time.items():
            aware(f"last_stop_loss_time[{symbol}]", when)
        if self.halted_until is not None:
            aware("halted_until", self.halted_until)
        for symbol, count in self.open_orders.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValidationError(f"open_orders[{symbol}]", f"must be a non-negative integer, got {count!r}")

    @property
    def equity(self) -> EquityBreakdown:
        return equity_breakdown(self.wallet_balance, self.positions)

    @property
    def protections(self) -> ProtectionsState:
        total = self.equity.total_equity
        return ProtectionsState(
            start_of_day_equity=total if self.start_of_day_equity is None else self.start_of_day_equity,
            peak_equity=total if self.peak_equity is None else self.peak_equity,
            last_stop_loss_time=self.last_stop_loss_time,
            halted=self.halted,
            halt_reason=self.halt_reason,
            halted_until=self.halted_until,
        )


# --------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class OrderProposal:
    """The order risk proposes (the fields of ``aegis.v1.Order`` known before placing it)."""

    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: str | None
    quantity: Decimal
    price: Decimal | None
    stop_loss_price: Decimal
    take_profit_price: Decimal
    working_type: WorkingType
    reduce_only: bool
    leverage: int
    margin_type: MarginType


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The full answer of risk for one signal (``aegis.v1.RiskDecision``)."""

    decision_id: str
    approved: bool
    account: str
    signal_id: str
    symbol: str
    order: OrderProposal | None
    equity: EquityBreakdown
    sizing: SizingDetails | None
    leverage_guard: LeverageGuardResult | None
    rotation: RotationDecision | None
    reasons: tuple[Reason, ...]
    """Every refusal and adjustment, most important first; empty for a clean approval."""
    filter_violations: tuple[str, ...]
    """Binance filters the order broke (only on refusals)."""
    message: str
    decided_time: datetime

    @property
    def reason_codes(self) -> tuple[ReasonCode, ...]:
        return tuple(r.code for r in self.reasons)


# --------------------------------------------------------------------------------------------- engine


_FILTER_CODES = {c.value: c for c in ReasonCode}


class RiskEngine:
    """Decide on signals for accounts under their :class:`RiskConfig`, against the exchange's rules."""

    def __init__(self, rules: Mapping[str, SymbolRules], configs: Iterable[RiskConfig] | Mapping[str, RiskConfig]):
        self._rules = rules
        items = configs.values() if isinstance(configs, Mapping) else configs
        self._configs: dict[str, RiskConfig] = {}
        for cfg in items:
            if not isinstance(cfg, RiskConfig):
                raise ValidationError("configs", f"must hold RiskConfig values, got {type(cfg).__name__}")
            self._configs[cfg.account] = cfg

    @property
    def rules(self) -> Mapping[str, SymbolRules]:
        return self._rules

    def with_rules(self, rules: Mapping[str, SymbolRules]) -> RiskEngine:
        """Return an engine with new exchange rules and the same configs."""
        return RiskEngine(rules, self._configs.values())

    def configs(self) -> tuple[RiskConfig, ...]:
        return tuple(self._configs[name] for name in sorted(self._configs))

    def config_for(self, account: str, mode: AccountKind | str | None = None) -> RiskConfig:
        """Return the config to apply: the account's own, or, when ``mode`` names another kind, that kind's rules.

        For another kind, the config of an account of that kind is used if one is configured, else the kind's
        defaults; either way under the requesting account's name.
        """
        own = self._configs.get(account)
        if own is None:
            raise ValidationError("account", f"no risk config for account {account!r}")
        if mode is None:
            return own
        kind = parse_enum(AccountKind, "mode", mode)
        if kind is own.kind:
            return own
        for name in sorted(self._configs):
            if self._configs[name].kind is kind:
                return replace(self._configs[name], account=account)
        return RiskConfig.defaults(kind, account)

    # ----------------------------------------------------------------------------------- public API

    def evaluate(
        self,
        signal: TradeSignal,
        account: AccountState,
        market: MarketContext,
        now: datetime,
        *,
        mode: AccountKind | str | None = None,
        method: SizingMethod | str | None = None,
        order_type: OrderType | str | None = None,
    ) -> RiskDecision:
        """Decide on ``signal`` for ``account``: protections, rotation, sizing, leverage guard, filters."""
        return self._decide(signal, account, market, now, mode, method, order_type, gates=True)

    def size_order(
        self,
        signal: TradeSignal,
        account: AccountState,
        market: MarketContext,
        now: datetime,
        *,
        mode: AccountKind | str | None = None,
        method: SizingMethod | str | None = None,
        order_type: OrderType | str | None = None,
    ) -> RiskDecision:
        """Size an order without protections, rotation or signal gates (what-if sizing).

        Filters, the leverage guard, open-notional and margin room still apply. Without ``order_type`` the entry
        is a LIMIT at ``signal.entry_price`` when it is set, else a MARKET order at the mark price.
        """
        if order_type is None:
            order_type = OrderType.LIMIT if signal.entry_price is not None else OrderType.MARKET
        return self._decide(signal, account, market, now, mode, method, order_type, gates=False)

    def protections_status(self, account: AccountState, now: datetime) -> ProtectionsStatus:
        """Return the protections' state of ``account`` (GetProtectionsStatus)."""
        cfg = self.config_for(account.name)
        return protections_status(
            account=account.name,
            config=cfg.protections_config,
            state=account.protections,
            equity=account.equity,
            open_positions=len(account.positions),
            max_open_positions=cfg.max_open_positions,
            now=aware("now", now),
        )

    # ----------------------------------------------------------------------------------- the pipeline

    def _decide(
        self,
        signal: TradeSignal,
        account: AccountState,
        market: MarketContext,
        now: datetime,
        mode: Any,
        method: Any,
        order_type: Any,
        *,
        gates: bool,
    ) -> RiskDecision:
        for name, value, kind in (("signal", signal, TradeSignal), ("account", account, AccountState)):
            if not isinstance(value, kind):
                raise ValidationError(name, f"must be a {kind.__name__}, got {type(value).__name__}")
        if not isinstance(market, MarketContext):
            raise ValidationError("market", f"must be a MarketContext, got {type(market).__name__}")
        aware("now", now)
        cfg = self.config_for(account.name, mode)
        if method is not None:
            cfg = replace(cfg, sizing_method=parse_enum(SizingMethod, "method", method))
        if order_type is not None:
            cfg = replace(cfg, entry_order_type=parse_enum(OrderType, "order_type", order_type))
        ctx = _Context(self, cfg, signal, account, market, now)
        return ctx.run(gates)


class _Refused(Exception):
    """Internal: stop the pipeline; the context already holds the reasons."""


class _Context:
    """One decision in progress. Internal; keeps :meth:`RiskEngine._decide` readable."""

    def __init__(
        self,
        engine: RiskEngine,
        cfg: RiskConfig,
        signal: TradeSignal,
        account: AccountState,
        market: MarketContext,
        now: datetime,
    ) -> None:
        self.cfg = cfg
        self.signal = signal
        self.account = account
        self.market = market
        self.now = now
        self.rules = engine.rules.get(signal.symbol)
        self.equity = account.equity
        self.reasons: list[Reason] = []
        self.violations: tuple[str, ...] = ()
        self.rotation: RotationDecision | None = None
        self.sizing: SizingDetails | None = None
        self.guard: LeverageGuardResult | None = None
        self.order: OrderProposal | None = None
        key = f"{account.name}|{cfg.kind}|{signal.signal_id}|{signal.symbol}|{now.isoformat()}"
        self.decision_id = str(uuid.uuid5(_DECISION_NAMESPACE, key))

    # ------------------------------------------------------------------------------- helpers

    def refuse(self, code: ReasonCode, message: str) -> None:
        self.reasons.append(Reason(code, message))

    def adjust(self, code: ReasonCode, message: str) -> None:
        self.reasons.append(Reason(code, message))

    def refused(self) -> bool:
        return any(not r.code.is_adjustment for r in self.reasons)

    def stop_if_refused(self) -> None:
        if self.refused():
            raise _Refused

    # ------------------------------------------------------------------------------- run

    def run(self, gates: bool) -> RiskDecision:
        try:
            self.check_symbol()
            self.check_signal(gates)
            if gates:
                self.check_gates()
            self.stop_if_refused()
            self.size()
        except _Refused:
            pass
        return self.decision()

    def decision(self) -> RiskDecision:
        approved = not self.refused() and self.order is not None
        if approved:
            o = self.order
            assert o is not None and self.sizing is not None
            where = "at market" if o.price is None else f"limit {o.price}"
            message = (
                f"approved: {o.side} {o.quantity} {o.symbol} {where}, stop {o.stop_loss_price}, "
                f"target {o.take_profit_price}, leverage {o.leverage}x; loses {self.sizing.risk_amount:.2f} "
                f"({self.sizing.risk_pct:.2f} % of equity) at the stop"
            )
            notes = [r.message for r in self.reasons]
            if notes:
                message += "; " + "; ".join(notes)
        else:
            refusals = [r.message for r in self.reasons if not r.code.is_adjustment]
            message = "rejected: " + "; ".join(refusals or ["no order could be built"])
        # Refusals first, then adjustments, each group in the order the pipeline found them.
        reasons = [r for r in self.reasons if not r.code.is_adjustment] + [
            r for r in self.reasons if r.code.is_adjustment
        ]
        return RiskDecision(
            decision_id=self.decision_id,
            approved=approved,
            account=self.account.name,
            signal_id=self.signal.signal_id,
            symbol=self.signal.symbol,
            order=self.order if approved or self.only_filters_refused() else None,
            equity=self.equity,
            sizing=self.sizing,
            leverage_guard=self.guard,
            rotation=self.rotation,
            reasons=tuple(reasons),
            filter_violations=self.violations,
            message=message,
            decided_time=self.now,
        )

    def only_filters_refused(self) -> bool:
        filters = {ReasonCode(v) for v in self.violations}
        refusals = {r.code for r in self.reasons if not r.code.is_adjustment}
        return bool(refusals) and refusals <= filters | {ReasonCode.QUANTITY_TOO_SMALL}

    # ------------------------------------------------------------------------------- step 1

    def check_symbol(self) -> None:
        symbol = self.signal.symbol
        if self.rules is None:
            self.refuse(ReasonCode.SYMBOL_NOT_TRADING, f"{symbol} is not a known symbol")
        elif not self.rules.is_trading:
            self.refuse(ReasonCode.SYMBOL_NOT_TRADING, f"{symbol} is {self.rules.status}, not TRADING")
        elif not self.rules.brackets:
            self.refuse(ReasonCode.SYMBOL_NOT_TRADING, f"no leverage brackets are known for {symbol}")
        self.stop_if_refused()

    def check_signal(self, gates: bool) -> None:
        sig, cfg = self.signal, self.cfg
        if sig.sl_pct <= 0:
            self.refuse(ReasonCode.INVALID_SIGNAL, f"sl_pct must be greater than 0, got {sig.sl_pct}")
        elif sig.side is PositionSide.LONG and sig.sl_pct >= HUNDRED and cfg.sizing_method is not SizingMethod.ATR:
            self.refuse(ReasonCode.INVALID_SIGNAL, f"sl_pct {sig.sl_pct} puts a long's stop at or below 0")
        if sig.tp_pct <= 0:
            self.refuse(ReasonCode.INVALID_SIGNAL, f"tp_pct must be greater than 0, got {sig.tp_pct}")
        elif sig.side is PositionSide.SHORT and sig.tp_pct >= HUNDRED:
            self.refuse(ReasonCode.INVALID_SIGNAL, f"tp_pct {sig.tp_pct} puts a short's target at or below 0")
        if not ZERO <= sig.confidence <= ONE:
            self.refuse(ReasonCode.INVALID_SIGNAL, f"confidence must be from 0 to 1, got {sig.confidence}")
        if cfg.entry_order_type is OrderType.LIMIT and sig.entry_price is None:
            self.refuse(ReasonCode.INVALID_SIGNAL, "a LIMIT entry needs the signal's entry_price")
        if cfg.sizing_method is SizingMethod.ATR and self.market.atr is None:
            self.refuse(ReasonCode.INVALID_SIGNAL, "ATR sizing needs the ATR")
        if (
            cfg.sizing_method is SizingMethod.KELLY
            and sig.predicted_return_pct is None
            and self.market.win_rate is None
        ):
            self.refuse(ReasonCode.INVALID_SIGNAL, "Kelly sizing needs a predicted return or a win rate")
        mark = self.market.mark_price
        if mark is None:
            self.refuse(ReasonCode.STALE_PRICE, f"no mark price for {sig.symbol}")
        elif gates and cfg.max_mark_price_age is not None:
            if self.market.mark_time is None:
                self.refuse(ReasonCode.STALE_PRICE, f"the mark price of {sig.symbol} has no time")
            elif self.now - self.market.mark_time > cfg.max_mark_price_age:
                age = (self.now - self.market.mark_time).total_seconds()
                limit = cfg.max_mark_price_age.total_seconds()
                self.refuse(
                    ReasonCode.STALE_PRICE, f"the mark price of {sig.symbol} is {age:.0f} s old (limit {limit:.0f} s)"
                )

    # ------------------------------------------------------------------------------- step 2

    def check_gates(self) -> None:
        sig, cfg, acct = self.signal, self.cfg, self.account
        protections = acct.protections
        pcfg = cfg.protections_config
        for reason in account_blocks(pcfg, protections, self.equity.total_equity, self.now):
            self.reasons.append(reason)
        if cfg.max_signal_age is not None:
            if sig.created_time is None:
                self.refuse(ReasonCode.STALE_SIGNAL, "the signal has no creation time")
            elif self.now - sig.created_time > cfg.max_signal_age:
                age = (self.now - sig.created_time).total_seconds()
                self.refuse(
                    ReasonCode.STALE_SIGNAL,
                    f"the signal is {age:.0f} s old (limit {cfg.max_signal_age.total_seconds():.0f} s)",
                )
        cooldown = symbol_block(pcfg, protections, sig.symbol, self.now)
        if cooldown is not None:
            self.reasons.append(cooldown)
        if sig.confidence < cfg.min_confidence:
            self.refuse(ReasonCode.LOW_CONFIDENCE, f"confidence {sig.confidence} is below {cfg.min_confidence}")
        fee_pct = 2 * cfg.fee * HUNDRED
        if sig.predicted_return_pct is not None and sig.predicted_return_pct <= fee_pct:
            self.refuse(
                ReasonCode.LOW_EXPECTED_RETURN,
                f"predicted return {sig.predicted_return_pct} % does not cover the {fee_pct} % round-trip fees",
            )
        if cfg.one_position_per_symbol:
            held = [p for p in acct.positions if p.symbol == sig.symbol]
            if held:
                self.refuse(
                    ReasonCode.POSITION_EXISTS, f"the account already holds {sig.symbol} ({held[0].position_id})"
                )
        self.rotation = decide_rotation(acct.positions, sig.confidence, cfg.rotation_config)
        if self.rotation.action is RotationAction.REJECT:
            self.refuse(ReasonCode.MAX_POSITIONS, self.rotation.reason)
        elif self.rotation.action is RotationAction.REPLACE:
            self.adjust(ReasonCode.ROTATION_REPLACE, self.rotation.reason)

    # ------------------------------------------------------------------------------- steps 3-5

    def size(self) -> None:
        sig, cfg, market = self.signal, self.cfg, self.market
        rules = self.rules
        assert rules is not None and market.mark_price is not None
        mark = market.mark_price
        side = sig.side
        order_type = cfg.entry_order_type
        is_market = order_type.is_market
        if is_market:
            entry = mark
        else:
            assert sig.entry_price is not None
            entry = rules.round_price(sig.entry_price, side.entry_side)
        value_price = max(entry, mark)

        # Account as it will be once rotation closed the weakest position (its PnL realised, margin freed).
        positions = self.account.positions
        wallet = self.account.wallet_balance
        if self.rotation is not None and self.rotation.action is RotationAction.REPLACE:
            closing = next(p for p in positions if p.position_id == self.rotation.close_position_id)
            positions = tuple(p for p in positions if p is not closing)
            wallet = wallet + closing.unrealised_pnl
        after = equity_breakdown(wallet, positions)
        equity = after.total_equity
        if equity <= 0:
            self.refuse(ReasonCode.INSUFFICIENT_MARGIN, f"total equity is {equity}: nothing to size on")
            raise _Refused

        # Stop and target on the tick grid, rounded toward the entry.
        if cfg.sizing_method is SizingMethod.ATR:
            assert market.atr is not None
            stop_distance = cfg.atr_stop_multiple * market.atr
        else:
            stop_distance = entry * sig.sl_pct / HUNDRED
        target_distance = entry * sig.tp_pct / HUNDRED
        stop, target = protective_prices(rules, side, entry, stop_distance, target_distance)
        valid = ZERO < stop < entry < target if side is PositionSide.LONG else ZERO < target < entry < stop
        if not valid:
            self.refuse(
                ReasonCode.INVALID_SIGNAL,
                f"stop {stop} / target {target} are not on either side of the entry {entry} once on the tick grid",
            )
            raise _Refused
        bad_prices = [name for name, p in (("stop", stop), ("target", target)) if not rules.price_filter_ok(p)]
        if bad_prices:
            self.violations = ("PRICE_FILTER",)
            self.refuse(
                ReasonCode.PRICE_FILTER,
                f"{' and '.join(bad_prices)} price outside [{rules.min_price}, {rules.max_price}] of {rules.symbol}",
            )
            raise _Refused

        # Raw quantity by method.
        fee = cfg.fee
        unit_loss = per_unit_loss(entry, stop, fee)
        budget: Decimal | None = None
        kelly = None
        method = cfg.sizing_method
        if method is SizingMethod.FIXED_FRACTION:
            raw = fixed_fraction_quantity(equity, cfg.fixed_fraction, entry)
        elif method is SizingMethod.FIXED_NOTIONAL:
            raw = cfg.fixed_notional / entry
        elif method in (SizingMethod.FIXED_RISK, SizingMethod.ATR):
            budget = equity * cfg.risk_per_trade_pct / HUNDRED
            raw = fixed_risk_quantity(equity, cfg.risk_per_trade_pct, unit_loss)
        else:
            kelly = kelly_risk_fraction(
                predicted_return_pct=sig.predicted_return_pct,
                sl_pct=sig.sl_pct,
                tp_pct=sig.tp_pct,
                confidence=sig.confidence,
                win_rate=market.win_rate,
                multiplier=cfg.kelly_multiplier,
                cap=cfg.kelly_cap,
                fee_rate=fee,
            )
            if kelly.risk_fraction <= 0:
                self.refuse(
                    ReasonCode.LOW_EXPECTED_RETURN,
                    f"no Kelly edge: expected return {kelly.expected_return * HUNDRED:.4f} % after fees",
                )
                raise _Refused
            budget = equity * kelly.risk_fraction
            sizing_unit = unit_loss
            if market.atr is not None:
                atr_unit = cfg.atr_stop_multiple * market.atr + fee * (entry + stop)
                sizing_unit = max(unit_loss, atr_unit)
            raw = budget / sizing_unit

        # Cuts: maxQty, leverage bracket, open notional, free margin. Each only lowers the quantity.
        qty_cap = min(rules.max_qty, rules.market_max_qty) if rules.max_qty > 0 and rules.market_max_qty > 0 else None
        wanted = raw
        if qty_cap is not None and wanted > qty_cap:
            wanted = qty_cap
            self.adjust(ReasonCode.QUANTITY_REDUCED, f"quantity cut to the symbol's maxQty {qty_cap}")
        existing = sum(
            (p.notional for p in positions if p.symbol == sig.symbol and p.side is side),
            ZERO,
        )
        first = guard_leverage(
            rules,
            quantity=wanted,
            price=value_price,
            equity=equity,
            max_leverage=cfg.max_leverage,
            existing_notional=existing,
            market=is_market,
        )
        qty = first.quantity
        if first.clamped:
            bracket = first.bracket
            self.adjust(
                ReasonCode.QUANTITY_REDUCED,
                f"quantity cut from {first.original_quantity} to {qty} so the position fits its leverage bracket "
                f"(at most {first.max_notional} notional on {equity} equity"
                + (f", bracket {bracket.bracket} up to {bracket.initial_leverage}x" if bracket else "")
                + ")",
            )
        if first.leverage_lowered:
            self.adjust(
                ReasonCode.LEVERAGE_CLAMPED,
                f"leverage lowered from {cfg.max_leverage}x to the bracket's {first.bracket_max_leverage}x",
            )
        limiting: Reason | None = None
        if cfg.max_open_notional_multiple is not None:
            room = cfg.max_open_notional_multiple * equity - after.position_value
            fit = rules.round_qty(max(room, ZERO) / value_price, market=is_market)
            if fit < qty:
                block = open_notional_block(cfg.protections_config, equity, after.position_value, qty * value_price)
                self.adjust(
                    ReasonCode.QUANTITY_REDUCED,
                    f"quantity cut from {qty} to {fit}: {block.message if block else 'open notional cap'}",
                )
                cap = cfg.max_open_notional_multiple * equity
                limiting = Reason(
                    ReasonCode.MAX_OPEN_NOTIONAL,
                    f"open notional {after.position_value} leaves room for {max(room, ZERO)} under the cap {cap}",
                )
                qty = fit
        leverage_now = first.applied_leverage or 1
        per_unit_margin = value_price / leverage_now + value_price * fee
        free = after.free_margin
        fit = rules.round_qty(max(free, ZERO) / per_unit_margin, market=is_market)
        if fit < qty:
            self.adjust(
                ReasonCode.QUANTITY_REDUCED,
                f"quantity cut from {qty} to {fit}: free margin {free} covers no more at {leverage_now}x",
            )
            limiting = Reason(
                ReasonCode.INSUFFICIENT_MARGIN,
                f"free margin {free} does not cover the minimum order at {leverage_now}x",
            )
            qty = fit

        # Final leverage for the final position; original figures kept from the first pass.
        final = guard_leverage(
            rules,
            quantity=qty,
            price=value_price,
            equity=equity,
            max_leverage=cfg.max_leverage,
            existing_notional=existing,
            market=is_market,
        )
        self.guard = replace(
            final,
            original_quantity=first.original_quantity,
            original_required_leverage=first.original_required_leverage,
            clamped=first.clamped,
        )
        notional = qty * entry
        leverage = final.applied_leverage or min(cfg.max_leverage, first.applied_leverage or cfg.max_leverage)
        risk_amount = qty * unit_loss
        self.sizing = SizingDetails(
            method=method,
            risk_pct=risk_amount * HUNDRED / equity,
            risk_amount=risk_amount,
            risk_budget=budget,
            stop_distance=abs(entry - stop),
            entry_price=entry,
            raw_quantity=raw,
            quantity=qty,
            notional=notional,
            initial_margin=qty * value_price / leverage,
            estimated_fees=fee * qty * (entry + stop),
            kelly_fraction=kelly.risk_fraction if kelly else None,
            win_rate=market.win_rate,
            payoff_ratio=kelly.payoff_ratio if kelly else None,
            atr=market.atr,
        )
        client_id = "ae" + uuid.UUID(self.decision_id).hex
        self.order = OrderProposal(
            client_order_id=client_id,
            account=self.account.name,
            symbol=sig.symbol,
            side=side.entry_side,
            type=order_type,
            time_in_force=None if is_market else "GTC",
            quantity=qty,
            price=None if is_market else entry,
            stop_loss_price=stop,
            take_profit_price=target,
            working_type=cfg.working_type,
            reduce_only=False,
            leverage=leverage,
            margin_type=cfg.margin_type,
        )

        # Exchange filters on the final order.
        found = rules.violations(side.entry_side, order_type, None if is_market else entry, qty, mark)
        if found:
            self.violations = tuple(found)
            lot = "MARKET_LOT_SIZE" if is_market else "LOT_SIZE"
            minimum = rules.market_min_qty if is_market else rules.min_qty
            if limiting is not None:
                self.reasons.append(limiting)
            if qty < minimum or qty <= 0 or "MIN_NOTIONAL" in found:
                self.refuse(
                    ReasonCode.QUANTITY_TOO_SMALL,
                    f"quantity {qty} (notional {qty * (mark if is_market else entry):.4f}) is below the minimum "
                    f"{minimum} / notional {rules.min_notional} of {rules.symbol}",
                )
            for name in found:
                detail = {
                    lot: f"quantity {qty} breaks {name}",
                    "MIN_NOTIONAL": f"notional below {rules.min_notional}",
                    "PRICE_FILTER": f"price {entry} off the tick grid or range",
                    "PERCENT_PRICE": f"limit price {entry} too far from the mark {mark}",
                }.get(name, name)
                self.refuse(_FILTER_CODES[name], detail)
            return
        limit = rules.max_num_orders
        held = self.account.open_orders.get(sig.symbol, 0)
        if limit > 0 and held + cfg.orders_per_entry > limit:
            self.refuse(
                ReasonCode.MAX_NUM_ORDERS,
                f"{held} open orders on {sig.symbol} + {cfg.orders_per_entry} would exceed its limit of {limit}",
            )
