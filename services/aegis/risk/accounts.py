"""Where risk learns an account's state: its money from its keeper, its protections history from PostgreSQL.

An account's state has two halves:

* **money and exposure** — wallet balance, open positions at their mark prices, open orders. The learning and paper
  accounts are kept by virtual-account (``VirtualAccountService.GetAccount`` + ``ListPositions``); the live account
  by Binance (the signed account endpoint, which arrives with live execution: :class:`LiveAccountSource` is the
  seam and refuses for now). A request may also carry this half itself (``account_state``: what-if sizing). Risk
  never sizes on made-up equity: when the keeper cannot answer, the call fails with FAILED_PRECONDITION or
  UNAVAILABLE and says why.
* **protections history** — what must survive a restart of risk, read from PostgreSQL on every decision
  (:class:`ProtectionsStore`): the peak equity (``accounts.peak_equity``, raised by risk whenever it sees a higher
  equity from the keeper), the halt flag (``accounts.halted``), the wallet balance at 00:00 UTC (today's
  ``balance_ledger`` entries taken off the current balance), the last stop-loss per symbol (``trades`` closed with
  SL_HIT within the cooldown) and the open orders per symbol (``orders``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Protocol

import grpc

from aegis import observability
from aegis.config import RiskSettings, Settings
from aegis.errors import AegisError, ConfigError, DependencyUnavailable, NotFoundError, ValidationError
from aegis.risk.convert import positions_from_pb
from aegis.risk.engine import RiskConfig
from aegis.risk.sizing import AccountKind, OpenPosition, PositionSide, money
from aegis.storage.postgres import Database
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

log = logging.getLogger(__name__)

DEFAULT_ACCOUNTS: Mapping[str, AccountKind] = {
    "learning": AccountKind.LEARNING,
    "paper": AccountKind.PAPER,
    "live": AccountKind.LIVE,
}


class AccountUnavailable(AegisError):
    """The account's keeper cannot tell its state (not built yet, or refuses): no decision without real equity."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


# --------------------------------------------------------------------------------------------- configs


def _off_if_zero(value: float) -> float | None:
    return None if value == 0 else value


def risk_configs(s: RiskSettings) -> tuple[RiskConfig, ...]:
    """Return the risk config of the default accounts from the ``AEGIS_RISK_*`` settings.

    learning takes every signal (no position cap, no rotation); paper and live share the same limits, so what a
    user watches in paper mode is what live would do.
    """
    common = {
        "max_leverage": s.max_leverage,
        "margin_type": s.margin_type,
        "fixed_notional": s.fixed_notional,
        "max_open_notional_multiple": _off_if_zero(s.max_open_notional_multiple),
        "daily_loss_limit_pct": _off_if_zero(s.daily_loss_limit_pct),
        "max_drawdown_pct": _off_if_zero(s.max_drawdown_pct),
        "cooldown_after_loss": timedelta(seconds=s.cooldown_after_loss_s),
        "min_confidence": s.min_confidence,
        "max_signal_age": timedelta(seconds=s.max_signal_age_s) if s.max_signal_age_s else None,
        "max_mark_price_age": timedelta(seconds=s.max_mark_price_age_s) if s.max_mark_price_age_s else None,
        "rotation_min_edge": s.rotation_min_edge,
        "rotation_max_profit_pct": s.rotation_max_profit_pct,
        "kelly_multiplier": s.kelly_multiplier,
        "kelly_cap": s.kelly_cap,
        "atr_stop_multiple": s.atr_stop_multiple,
        "fee_rate": s.fee_rate,
    }
    try:
        learning = RiskConfig.defaults(
            AccountKind.LEARNING,
            "learning",
            sizing_method=s.learning_sizing_method,
            risk_per_trade_pct=s.learning_risk_per_trade_pct,
            fixed_fraction=s.learning_fixed_fraction,
            **common,
        )
        capped = {
            "sizing_method": s.sizing_method,
            "risk_per_trade_pct": s.risk_per_trade_pct,
            "fixed_fraction": s.fixed_fraction,
            "max_open_positions": s.max_open_positions,
            "rotation_enabled": s.rotation,
            **common,
        }
        paper = RiskConfig.defaults(AccountKind.PAPER, "paper", **capped)
        live = RiskConfig.defaults(AccountKind.LIVE, "live", **capped)
    except ValidationError as exc:
        raise ConfigError(f"risk settings: {exc}") from None
    return (learning, paper, live)


# --------------------------------------------------------------------------------------------- money half


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The money half of an account's state."""

    wallet_balance: Decimal
    positions: tuple[OpenPosition, ...] = ()
    open_orders: Mapping[str, int] | None = None
    """Open orders per symbol; None = read them from PostgreSQL."""
    authoritative: bool = True
    """True when the account's keeper told it (so risk may record a new peak equity); False for what-if state."""


class AccountSource(Protocol):
    async def snapshot(self, account: str) -> AccountSnapshot: ...

    async def close(self) -> None: ...


class VirtualAccountSource:
    """Ask virtual-account (GetAccount, then ListPositions of the open positions)."""

    def __init__(self, address: str, timeout_s: float, settings: Settings | None = None) -> None:
        self.address = address
        self._timeout_s = timeout_s
        self._settings = settings
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> va_grpc.VirtualAccountServiceStub:
        if self._channel is None:  # created inside the running loop, on first use
            # TLS when AEGIS_TLS_CA is set; the tracing interceptors keep the brain's decision trace going
            self._channel = observability.insecure_or_tls_channel(self.address, self._settings)
        return va_grpc.VirtualAccountServiceStub(self._channel)

    def _failed(self, account: str, rpc: str, exc: grpc.aio.AioRpcError) -> AegisError:
        code = exc.code()
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return AccountUnavailable(
                f"the equity of account {account!r} comes from virtual-account, whose {rpc} is not built yet "
                f"({self.address} answered UNIMPLEMENTED); risk never sizes on made-up equity: pass account_state "
                "in the request, or retry once virtual-account implements it"
            )
        if code == grpc.StatusCode.NOT_FOUND or (
            # virtual-account's accounts are fixed by its configuration: an unknown name is an invalid argument there
            code == grpc.StatusCode.INVALID_ARGUMENT and "no account named" in (exc.details() or "")
        ):
            return NotFoundError(f"virtual-account has no account {account!r}")
        return DependencyUnavailable(
            f"virtual-account at {self.address} did not answer {rpc} for {account!r}: {code.name} {exc.details()}"
        )

    async def snapshot(self, account: str) -> AccountSnapshot:
        stub = self._stub()
        try:
            reply = await stub.GetAccount(va_pb.GetAccountRequest(account=account), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(account, "GetAccount", exc) from None
        if not reply.account.wallet_balance:
            raise AccountUnavailable(f"virtual-account answered GetAccount for {account!r} without a wallet balance")
        try:
            wallet = money("wallet_balance", reply.account.wallet_balance)
        except ValidationError as exc:
            raise AccountUnavailable(
                f"virtual-account sent an unusable wallet balance for {account!r}: {exc}"
            ) from None
        positions: list[OpenPosition] = []
        token = ""
        while True:
            request = va_pb.ListPositionsRequest(
                account=account, status=common_pb.POSITION_STATUS_OPEN, page_size=1000, page_token=token
            )
            try:
                page = await stub.ListPositions(request, timeout=self._timeout_s)
            except grpc.aio.AioRpcError as exc:
                raise self._failed(account, "ListPositions", exc) from None
            try:
                positions.extend(positions_from_pb(page.positions, "positions"))
            except ValidationError as exc:
                raise AccountUnavailable(
                    f"virtual-account sent an unusable open position for {account!r}: {exc}"
                ) from None
            token = page.next_page_token
            if not token:
                break
        return AccountSnapshot(wallet, tuple(positions))

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()


class LiveAccountSource:
    """The live account, as Binance reports it: signed ``GET /fapi/v3/positionRisk`` and ``/fapi/v3/account``.

    Built with the exchange's REST URL and the API keys (live mode only); without them it refuses, because risk never
    sizes on made-up equity. The wallet is the USDT asset's wallet balance; positions carry Binance's entry and mark
    prices, so unrealised PnL is the exchange's own.
    """

    def __init__(self, rest_url: str | None = None, api_key: str = "", api_secret: str = "") -> None:
        self._client = None
        if rest_url and api_key and api_secret:
            from aegis.exchange.trading import BinanceTrading

            self._client = BinanceTrading(rest_url, api_key, api_secret)

    async def snapshot(self, account: str) -> AccountSnapshot:
        if self._client is None:
            raise AccountUnavailable(
                f"the equity of live account {account!r} comes from the Binance account (signed GET /fapi/v3/account),"
                " and live mode is not configured (AEGIS_MODE=live with BINANCE_API_KEY and BINANCE_API_SECRET); "
                "risk never sizes on made-up equity: pass account_state in the request"
            )
        try:
            info = await self._client.account()
            risks = await self._client.position_risk()
        except AegisError as exc:
            raise DependencyUnavailable(f"Binance did not answer the live account query: {exc}") from exc
        usdt = info.asset("USDT")
        wallet = usdt.wallet_balance if usdt is not None else info.total_wallet_balance
        now = dt.datetime.now(dt.UTC)
        positions = []
        for risk in risks:
            if not risk.position_amt or not risk.entry_price or not risk.mark_price:
                continue
            notional = abs(risk.position_amt) * risk.entry_price
            margin = risk.initial_margin or risk.isolated_margin
            leverage = max(1, min(125, round(notional / margin))) if margin else 1
            positions.append(
                OpenPosition(
                    position_id=f"live:{risk.symbol}:{risk.position_side}",
                    symbol=risk.symbol,
                    side=PositionSide.LONG if risk.position_amt > 0 else PositionSide.SHORT,
                    quantity=abs(risk.position_amt),
                    entry_price=risk.entry_price,
                    mark_price=risk.mark_price,
                    leverage=int(leverage),
                    opened_time=dt.datetime.fromtimestamp(risk.update_time / 1000, dt.UTC) if risk.update_time else now,
                    initial_margin=margin or None,
                )
            )
        return AccountSnapshot(wallet_balance=wallet, positions=tuple(positions), authoritative=True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


# --------------------------------------------------------------------------------------------- history half


@dataclass(frozen=True, slots=True)
class ProtectionsHistory:
    """The protections half of an account's state, as PostgreSQL remembers it."""

    known: bool
    """False when the account has no row in ``accounts`` (what-if state for an account nobody keeps)."""
    peak_equity: Decimal | None = None
    halted: bool = False
    ledger_today: Decimal = Decimal(0)
    """Sum of today's (UTC) balance_ledger amounts: the wallet at 00:00 UTC is the wallet now minus this."""
    last_stop_loss_time: Mapping[str, dt.datetime] = field(default_factory=dict)
    open_orders: Mapping[str, int] = field(default_factory=dict)


_HISTORY_SQL = """
WITH open_orders AS (
    -- resting orders: the live mirror's (exchange_orders, kept by the user data stream and reconciliation; normal
    -- and algo orders alike) and any in the orders table
    SELECT symbol FROM exchange_orders WHERE account_id = $1 AND is_open
    UNION ALL
    SELECT symbol FROM orders WHERE account_id = $1 AND status IN ('NEW', 'PARTIALLY_FILLED')
)
SELECT
    (SELECT peak_equity FROM accounts WHERE account_id = $1) AS peak_equity,
    (SELECT halted FROM accounts WHERE account_id = $1) AS halted,
    (SELECT coalesce(sum(amount), 0) FROM balance_ledger WHERE account_id = $1 AND created_at >= $2) AS ledger_today,
    (SELECT array_agg(symbol ORDER BY symbol) FROM (
        SELECT symbol, max(closed_at) AS t FROM trades
        WHERE account_id = $1 AND close_reason = 'SL_HIT' AND closed_at > $3 GROUP BY symbol) sl) AS sl_symbols,
    (SELECT array_agg(t ORDER BY symbol) FROM (
        SELECT symbol, max(closed_at) AS t FROM trades
        WHERE account_id = $1 AND close_reason = 'SL_HIT' AND closed_at > $3 GROUP BY symbol) sl) AS sl_times,
    (SELECT array_agg(symbol ORDER BY symbol) FROM (
        SELECT symbol, count(*) AS n FROM open_orders GROUP BY symbol) o) AS order_symbols,
    (SELECT array_agg(n ORDER BY symbol) FROM (
        SELECT symbol, count(*) AS n FROM open_orders GROUP BY symbol) o) AS order_counts
"""


def utc_midnight(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(dt.UTC).date()
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


class ProtectionsStore:
    """Read (and raise the peak of) the protections history in PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def history(self, account: str, now: dt.datetime, cooldown: timedelta) -> ProtectionsHistory:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_HISTORY_SQL, account, utc_midnight(now), now - cooldown)
        if row["halted"] is None:
            return ProtectionsHistory(known=False)
        return ProtectionsHistory(
            known=True,
            peak_equity=row["peak_equity"],
            halted=row["halted"],
            ledger_today=row["ledger_today"],
            last_stop_loss_time=dict(zip(row["sl_symbols"] or (), row["sl_times"] or (), strict=True)),
            open_orders=dict(zip(row["order_symbols"] or (), (int(n) for n in row["order_counts"] or ()), strict=True)),
        )

    async def raise_peak(self, account: str, equity: Decimal) -> bool:
        """Record ``equity`` as the account's peak when it is higher; return True when it was."""
        async with self._db.connection() as conn:
            result = await conn.execute(
                "UPDATE accounts SET peak_equity = $2 WHERE account_id = $1 AND peak_equity < $2", account, equity
            )
        return result.endswith(" 1")


async def close_sources(sources: Mapping[AccountKind, AccountSource]) -> None:
    await asyncio.gather(*(s.close() for s in {id(s): s for s in sources.values()}.values()), return_exceptions=True)
