"""The risk desk: the imperative shell around :class:`aegis.risk.engine.RiskEngine`.

The engine is pure; the desk gathers what one decision needs — the exchange rules in force, the account's money
(from its keeper or from the request), its protections history (PostgreSQL), the clock — calls the engine, and
records a new peak equity. The gRPC servicer only translates messages to and from these calls.

Errors (mapped to status codes in :mod:`aegis.errors`): an unknown account or symbol raises NotFoundError; rules
not loaded yet, PostgreSQL or virtual-account down raise DependencyUnavailable; an account whose keeper cannot tell
its equity raises :class:`~aegis.risk.accounts.AccountUnavailable` (FAILED_PRECONDITION).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aegis.errors import DependencyUnavailable, NotFoundError, ValidationError
from aegis.exchange.rules import SymbolRules
from aegis.exchange.rules_store import RulesSnapshot
from aegis.risk.accounts import (
    AccountSnapshot,
    AccountSource,
    AccountUnavailable,
    ProtectionsHistory,
    ProtectionsStore,
    close_sources,
)
from aegis.risk.engine import AccountState, MarketContext, RiskConfig, RiskDecision, RiskEngine, TradeSignal
from aegis.risk.protections import ProtectionsStatus
from aegis.risk.sizing import AccountKind, SizingMethod

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class RulesPage:
    rules: tuple[tuple[SymbolRules, dt.datetime | None], ...]
    next_page_token: str


def _encode_token(parts: list[str | None]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _decode_token(token: str) -> list[str | None]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise ValidationError("page_token", "is not a token this server issued") from None
    if not isinstance(parts, list) or len(parts) != 2 or not isinstance(parts[1], str):
        raise ValidationError("page_token", "is not a token this server issued")
    return parts


class RiskDesk:
    """Decide on signals with the rules in force and the accounts' real state."""

    def __init__(
        self,
        configs: tuple[RiskConfig, ...],
        *,
        sources: Mapping[AccountKind, AccountSource],
        protections: ProtectionsStore,
        clock: Clock = utc_now,
        rules_help: str = "",
    ) -> None:
        self._engine = RiskEngine(MappingProxyType({}), configs)
        self._sources = sources
        self._protections = protections
        self._clock = clock
        self._snapshot: RulesSnapshot | None = None
        self.rules_help = rules_help
        """Why no rules are loaded yet, for the UNAVAILABLE message (set by the rules keeper)."""

    def now(self) -> dt.datetime:
        """Return the desk's clock reading (injected: replays and tests control time)."""
        return self._clock()

    # ----------------------------------------------------------------------------------- rules

    def set_rules(self, snapshot: RulesSnapshot) -> None:
        """Use these rules from the next decision on (an atomic swap: a decision in flight keeps its engine)."""
        self._engine = self._engine.with_rules(snapshot.rules)
        self._snapshot = snapshot

    @property
    def rules_version(self) -> str | None:
        return None if self._snapshot is None else self._snapshot.version

    @property
    def rules_loaded(self) -> bool:
        return self._snapshot is not None and bool(self._snapshot.rules)

    def _require_rules(self) -> RulesSnapshot:
        if self._snapshot is None or not self._snapshot.rules:
            why = self.rules_help or "the rules keeper has not loaded them from PostgreSQL yet"
            raise DependencyUnavailable(f"exchange rules are not loaded yet: {why}")
        return self._snapshot

    def symbol_rules(self, symbol: str) -> tuple[SymbolRules, dt.datetime | None]:
        snapshot = self._require_rules()
        rules = snapshot.rules.get(symbol)
        if rules is None:
            raise NotFoundError(f"{symbol} is not in the exchange rules ({len(snapshot.rules)} symbols known)")
        return rules, snapshot.fetched_at.get(symbol)

    def list_rules(self, page_size: int, page_token: str, status: str | None) -> RulesPage:
        if page_size < 0:
            raise ValidationError("page_size", f"must not be negative, got {page_size}")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        wanted = status.strip().upper() if status is not None else None
        after = ""
        if page_token:
            token_status, after = _decode_token(page_token)
            if token_status != wanted:
                raise ValidationError("page_token", "belongs to a request with another status filter")
        snapshot = self._require_rules()
        names = sorted(s for s, r in snapshot.rules.items() if s > after and (wanted is None or r.status == wanted))
        chosen = names[:size]
        token = _encode_token([wanted, chosen[-1]]) if len(names) > size else ""
        return RulesPage(tuple((snapshot.rules[s], snapshot.fetched_at.get(s)) for s in chosen), token)

    # ----------------------------------------------------------------------------------- configs

    def config(self, account: str) -> RiskConfig:
        for cfg in self._engine.configs():
            if cfg.account == account:
                return cfg
        known = ", ".join(c.account for c in self._engine.configs())
        raise NotFoundError(f"account {account!r} has no risk config (known: {known})")

    def configs(self, account: str | None = None) -> tuple[RiskConfig, ...]:
        return self._engine.configs() if account is None else (self.config(account),)

    # ----------------------------------------------------------------------------------- accounts

    async def _account(
        self, account: str, cfg: RiskConfig, now: dt.datetime, given: AccountSnapshot | None
    ) -> AccountState:
        own = self.config(account)
        money = given if given is not None else await self._sources[own.kind].snapshot(account)
        history = await self._protections.history(account, now, cfg.cooldown_after_loss)
        state = account_state(account, money, history)
        # Only the keeper's figures may move the peak: what-if state must not halt the real account later.
        equity = state.equity.total_equity
        higher = history.peak_equity is None or equity > history.peak_equity
        if money.authoritative and history.known and higher and await self._protections.raise_peak(account, equity):
            log.info("new peak equity", extra={"account": account, "peak_equity": str(equity)})
        return state

    # ----------------------------------------------------------------------------------- decisions

    async def evaluate(
        self,
        account: str,
        signal: TradeSignal,
        market: MarketContext,
        *,
        mode: AccountKind | None = None,
        given: AccountSnapshot | None = None,
        now: dt.datetime | None = None,
    ) -> RiskDecision:
        """Decide on ``signal`` for ``account`` (EvaluateSignal)."""
        return await self._decide(account, signal, market, mode, None, given, now, gates=True)

    async def size(
        self,
        account: str,
        signal: TradeSignal,
        market: MarketContext,
        *,
        mode: AccountKind | None = None,
        method: SizingMethod | None = None,
        given: AccountSnapshot | None = None,
        now: dt.datetime | None = None,
    ) -> RiskDecision:
        """Size an order without protections or rotation (SizeOrder)."""
        return await self._decide(account, signal, market, mode, method, given, now, gates=False)

    async def _decide(
        self,
        account: str,
        signal: TradeSignal,
        market: MarketContext,
        mode: AccountKind | None,
        method: SizingMethod | None,
        given: AccountSnapshot | None,
        now: dt.datetime | None,
        *,
        gates: bool,
    ) -> RiskDecision:
        when = now or self._clock()
        self.config(account)  # NOT_FOUND before any I/O
        self.symbol_rules(signal.symbol)  # UNAVAILABLE without rules, NOT_FOUND for an unknown symbol
        engine = self._engine  # one engine for the whole decision, whatever a reload does meanwhile
        cfg = engine.config_for(account, mode)
        state = await self._account(account, cfg, when, given)
        if gates:
            return engine.evaluate(signal, state, market, when, mode=mode)
        return engine.size_order(signal, state, market, when, mode=mode, method=method)

    async def protections_status(self, account: str | None = None) -> tuple[ProtectionsStatus, ...]:
        """Return the protections' state of one account or of every configured account."""
        now = self._clock()
        out = []
        unavailable: list[AccountUnavailable] = []
        for cfg in self.configs(account):
            try:
                state = await self._account(cfg.account, cfg, now, None)
            except AccountUnavailable as exc:
                # Asked for every account: one whose keeper cannot tell its equity (live before live execution)
                # is left out rather than shown with made-up figures; asked for that one account, it fails.
                if account is not None:
                    raise
                unavailable.append(exc)
                continue
            out.append(self._engine.protections_status(state, now))
        if not out and unavailable:
            raise unavailable[0]
        return tuple(out)

    async def close(self) -> None:
        await close_sources(self._sources)


def account_state(name: str, money: AccountSnapshot, history: ProtectionsHistory) -> AccountState:
    """Join the money half and the history half of an account's state."""
    start_of_day = money.wallet_balance - history.ledger_today if history.known else None
    return AccountState(
        name=name,
        wallet_balance=money.wallet_balance,
        positions=money.positions,
        start_of_day_equity=start_of_day,
        peak_equity=history.peak_equity,
        last_stop_loss_time=history.last_stop_loss_time,
        halted=history.halted,
        halt_reason="accounts.halted is set for this account" if history.halted else "",
        open_orders=money.open_orders if money.open_orders is not None else history.open_orders,
    )
