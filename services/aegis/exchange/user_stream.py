"""The Binance USD-M user data stream: a pure account state machine, and the connection that feeds it.

**State machine.** :func:`apply_event` takes the current :class:`AccountState` and one event (``ORDER_TRADE_UPDATE``,
``TRADE_LITE``, ``ACCOUNT_UPDATE``, ``ALGO_UPDATE``, ``listenKeyExpired``) and returns the next state and the
changes, as frozen values with ``Decimal`` money. No I/O, no clock: replaying a recorded stream always gives the
same result. :class:`UserStreamState` holds the current state for callers that want ``state.apply(event) ->
changes``.

* ``ACCOUNT_UPDATE`` carries absolute balances (``wb``, ``cw``) and positions (``pa``, ``ep``, ``bep``, ``cr``,
  ``up``); they replace what was known unless the event is older (``E``) than the last one applied for that asset
  or position (the stream does not guarantee order).
* ``ORDER_TRADE_UPDATE`` with execution type TRADE is a :class:`Fill` with its commission and realised PnL (each
  fill once, by symbol and trade id); every update refreshes the order (older transaction times are ignored).
* ``TRADE_LITE`` is Binance's early, fee-less notice of the same fill: a :class:`TradeLite` change only.
* ``ALGO_UPDATE`` tracks conditional orders: NEW → TRIGGERING → TRIGGERED → FINISHED (or CANCELED, REJECTED,
  EXPIRED); ``ai`` links the order it placed.

**Connection lifecycle** (:class:`UserStream`): create a listenKey (``POST /fapi/v1/listenKey``), connect to
``<ws_private_url>/ws/<listenKey>``, keep the key alive every 30 min (``PUT``), and create a new key when the stream
says ``listenKeyExpired`` or a keepalive answers -1125; reconnect before Binance's 24 h cut, and with backoff
after a drop. After every (re)connection the account is re-read over REST (events may have been missed while
disconnected) and the events that arrived meanwhile are applied on top of that snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import websockets
from websockets.asyncio.client import connect

from aegis.errors import ExchangeError, ValidationError
from aegis.exchange.trading import Account, AlgoOrder, BinanceApiError, BinanceTrading, Order, PositionRisk
from aegis.feed.connection import Backoff

log = logging.getLogger(__name__)

ZERO = Decimal(0)
RECENT_TRADES = 4096
"""How many fill keys are remembered to apply each fill once."""


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal
    balance_change: Decimal = ZERO
    """``bc``: change not caused by PnL or commission (transfers)."""
    reason: str = ""
    time_ms: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    amount: Decimal
    entry_price: Decimal
    break_even_price: Decimal = ZERO
    accumulated_realized: Decimal = ZERO
    """``cr``: realised PnL accumulated on the symbol, before commission."""
    unrealized_pnl: Decimal = ZERO
    margin_type: str = "cross"
    position_side: str = "BOTH"
    reason: str = ""
    time_ms: int = 0


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    order_type: str
    orig_type: str
    time_in_force: str
    status: str
    exec_type: str
    quantity: Decimal
    price: Decimal
    avg_price: Decimal
    stop_price: Decimal
    filled_qty: Decimal
    last_qty: Decimal
    last_price: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    trade_id: int
    is_maker: bool
    reduce_only: bool
    close_position: bool
    time_ms: int

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution, with the commission paid and the PnL it realised (``rp``)."""

    symbol: str
    order_id: int
    client_order_id: str
    trade_id: int
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    is_maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class TradeLite:
    """Binance's early notice of a fill (no commission or realised PnL; the Fill follows)."""

    symbol: str
    order_id: int
    client_order_id: str
    trade_id: int
    side: str
    price: Decimal
    qty: Decimal
    is_maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class AlgoUpdate:
    symbol: str
    algo_id: int
    client_algo_id: str
    side: str
    order_type: str
    status: str
    quantity: Decimal
    trigger_price: Decimal
    price: Decimal
    working_type: str
    actual_order_id: str
    avg_price: Decimal
    filled_qty: Decimal
    close_position: bool
    reduce_only: bool
    reject_reason: str
    time_ms: int

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"


@dataclass(frozen=True, slots=True)
class ListenKeyExpired:
    listen_key: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Resynced:
    """The state was replaced by a REST snapshot (after a (re)connection)."""

    time_ms: int


Change = Balance | Position | OrderUpdate | Fill | TradeLite | AlgoUpdate | ListenKeyExpired | Resynced


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the stream has told about the account. Positions are keyed by ``(symbol, position_side)``."""

    balances: Mapping[str, Balance] = field(default_factory=_empty)
    positions: Mapping[tuple[str, str], Position] = field(default_factory=_empty)
    orders: Mapping[int, OrderUpdate] = field(default_factory=_empty)
    algo_orders: Mapping[int, AlgoUpdate] = field(default_factory=_empty)
    recent_trades: tuple[tuple[str, int], ...] = ()
    last_event_ms: int = 0
    listen_key_expired: bool = False
    ignored_events: int = 0

    def position(self, symbol: str, position_side: str = "BOTH") -> Position | None:
        return self.positions.get((symbol, position_side))

    def open_orders(self) -> list[OrderUpdate]:
        return [o for o in self.orders.values() if o.is_open]

    def open_algo_orders(self) -> list[AlgoUpdate]:
        return [a for a in self.algo_orders.values() if a.is_open]


# --------------------------------------------------------------------------------------------- parsing


def _dec(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> Decimal:
    raw = data.get(key, default)
    if raw is None:
        raise ValidationError(f"{where}.{key}", "is missing")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValidationError(f"{where}.{key}", f"is not a decimal number: {raw!r}") from None
    if not value.is_finite():
        raise ValidationError(f"{where}.{key}", f"must be finite, got {raw!r}")
    return value


def _int(data: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    raw = data.get(key, default)
    if raw is None or raw == "":
        if default is not None:
            return default
        raise ValidationError(f"{where}.{key}", "is missing")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}.{key}", f"is not an integer: {raw!r}") from None


def _with(items: Mapping[Any, Any], key: Any, value: Any) -> Mapping[Any, Any]:
    merged = dict(items)
    merged[key] = value
    return MappingProxyType(merged)


def order_update_of(event: Mapping[str, Any]) -> OrderUpdate:
    """Parse an ``ORDER_TRADE_UPDATE`` event's order."""
    o = event.get("o")
    if not isinstance(o, Mapping):
        raise ValidationError("ORDER_TRADE_UPDATE.o", "is missing")
    w = "ORDER_TRADE_UPDATE.o"
    return OrderUpdate(
        symbol=str(o["s"]),
        order_id=_int(o, "i", w),
        client_order_id=str(o.get("c", "")),
        side=str(o["S"]),
        order_type=str(o["o"]),
        orig_type=str(o.get("ot", o["o"])),
        time_in_force=str(o.get("f", "")),
        status=str(o["X"]),
        exec_type=str(o["x"]),
        quantity=_dec(o, "q", w),
        price=_dec(o, "p", w, "0"),
        avg_price=_dec(o, "ap", w, "0"),
        stop_price=_dec(o, "sp", w, "0"),
        filled_qty=_dec(o, "z", w, "0"),
        last_qty=_dec(o, "l", w, "0"),
        last_price=_dec(o, "L", w, "0"),
        commission=_dec(o, "n", w, "0"),
        commission_asset=str(o.get("N") or ""),
        realized_pnl=_dec(o, "rp", w, "0"),
        trade_id=_int(o, "t", w, 0),
        is_maker=bool(o.get("m", False)),
        reduce_only=bool(o.get("R", False)),
        close_position=bool(o.get("cp", False)),
        time_ms=_int(o, "T", w, _int(event, "T", "ORDER_TRADE_UPDATE", 0)),
    )


def algo_update_of(event: Mapping[str, Any]) -> AlgoUpdate:
    """Parse an ``ALGO_UPDATE`` event's order."""
    o = event.get("o")
    if not isinstance(o, Mapping):
        raise ValidationError("ALGO_UPDATE.o", "is missing")
    w = "ALGO_UPDATE.o"
    return AlgoUpdate(
        symbol=str(o["s"]),
        algo_id=_int(o, "aid", w),
        client_algo_id=str(o.get("caid", "")),
        side=str(o["S"]),
        order_type=str(o["o"]),
        status=str(o["X"]),
        quantity=_dec(o, "q", w, "0"),
        trigger_price=_dec(o, "tp", w, "0"),
        price=_dec(o, "p", w, "0"),
        working_type=str(o.get("wt", "")),
        actual_order_id=str(o.get("ai", "")),
        avg_price=_dec(o, "ap", w, "0"),
        filled_qty=_dec(o, "aq", w, "0"),
        close_position=bool(o.get("cp", False)),
        reduce_only=bool(o.get("R", False)),
        reject_reason=str(o.get("rm", "")),
        time_ms=_int(event, "T", "ALGO_UPDATE", 0),
    )


# --------------------------------------------------------------------------------------------- the machine


def apply_event(state: AccountState, event: Mapping[str, Any]) -> tuple[AccountState, tuple[Change, ...]]:
    """Return the state after ``event`` and what changed. Raise :class:`ValidationError` on a malformed event.

    Combined-stream frames (``{"stream": …, "data": {…}}``) are unwrapped. Unknown event types change nothing
    (they are counted in ``ignored_events``).
    """
    if isinstance(event, Mapping) and "data" in event and "stream" in event:
        event = event["data"]
    if not isinstance(event, Mapping) or "e" not in event:
        raise ValidationError("event", f"is not a user-data event: {str(event)[:120]}")
    kind = event["e"]
    event_ms = _int(event, "E", str(kind), 0)
    state = replace(state, last_event_ms=max(state.last_event_ms, event_ms))
    if kind == "ACCOUNT_UPDATE":
        return _account_update(state, event, event_ms)
    if kind == "ORDER_TRADE_UPDATE":
        return _order_trade_update(state, event)
    if kind == "TRADE_LITE":
        w = "TRADE_LITE"
        lite = TradeLite(
            symbol=str(event["s"]),
            order_id=_int(event, "i", w),
            client_order_id=str(event.get("c", "")),
            trade_id=_int(event, "t", w),
            side=str(event["S"]),
            price=_dec(event, "L", w),
            qty=_dec(event, "l", w),
            is_maker=bool(event.get("m", False)),
            time_ms=_int(event, "T", w, event_ms),
        )
        return state, (lite,)
    if kind == "ALGO_UPDATE":
        update = algo_update_of(event)
        known = state.algo_orders.get(update.algo_id)
        if known is not None and known.time_ms > update.time_ms:
            return state, ()
        return replace(state, algo_orders=_with(state.algo_orders, update.algo_id, update)), (update,)
    if kind == "listenKeyExpired":
        expired = ListenKeyExpired(str(event.get("listenKey", "")), event_ms)
        return replace(state, listen_key_expired=True), (expired,)
    return replace(state, ignored_events=state.ignored_events + 1), ()


def _account_update(
    state: AccountState, event: Mapping[str, Any], event_ms: int
) -> tuple[AccountState, tuple[Change, ...]]:
    body = event.get("a")
    if not isinstance(body, Mapping):
        raise ValidationError("ACCOUNT_UPDATE.a", "is missing")
    reason = str(body.get("m", ""))
    changes: list[Change] = []
    balances, positions = dict(state.balances), dict(state.positions)
    for raw in body.get("B", ()):
        w = "ACCOUNT_UPDATE.a.B[]"
        balance = Balance(
            asset=str(raw["a"]),
            wallet_balance=_dec(raw, "wb", w),
            cross_wallet_balance=_dec(raw, "cw", w, str(raw.get("wb"))),
            balance_change=_dec(raw, "bc", w, "0"),
            reason=reason,
            time_ms=event_ms,
        )
        known = balances.get(balance.asset)
        if known is not None and known.time_ms > event_ms:
            continue  # an older event arrived late: the newer values stand
        balances[balance.asset] = balance
        changes.append(balance)
    for raw in body.get("P", ()):
        w = "ACCOUNT_UPDATE.a.P[]"
        position = Position(
            symbol=str(raw["s"]),
            amount=_dec(raw, "pa", w),
            entry_price=_dec(raw, "ep", w, "0"),
            break_even_price=_dec(raw, "bep", w, "0"),
            accumulated_realized=_dec(raw, "cr", w, "0"),
            unrealized_pnl=_dec(raw, "up", w, "0"),
            margin_type=str(raw.get("mt", "cross")),
            position_side=str(raw.get("ps", "BOTH")),
            reason=reason,
            time_ms=event_ms,
        )
        key = (position.symbol, position.position_side)
        known_position = positions.get(key)
        if known_position is not None and known_position.time_ms > event_ms:
            continue
        positions[key] = position
        changes.append(position)
    new_state = replace(state, balances=MappingProxyType(balances), positions=MappingProxyType(positions))
    return new_state, tuple(changes)


def _order_trade_update(state: AccountState, event: Mapping[str, Any]) -> tuple[AccountState, tuple[Change, ...]]:
    update = order_update_of(event)
    changes: list[Change] = []
    recent = state.recent_trades
    if update.exec_type == "TRADE":
        key = (update.symbol, update.trade_id)
        if key not in recent:
            changes.append(
                Fill(
                    symbol=update.symbol,
                    order_id=update.order_id,
                    client_order_id=update.client_order_id,
                    trade_id=update.trade_id,
                    side=update.side,
                    price=update.last_price,
                    qty=update.last_qty,
                    commission=update.commission,
                    commission_asset=update.commission_asset,
                    realized_pnl=update.realized_pnl,
                    is_maker=update.is_maker,
                    time_ms=update.time_ms,
                )
            )
            recent = (*recent, key)[-RECENT_TRADES:]
    known = state.orders.get(update.order_id)
    newer = known is None or (
        update != known and (update.time_ms, update.filled_qty) >= (known.time_ms, known.filled_qty)
    )
    orders = state.orders
    if newer:
        orders = _with(orders, update.order_id, update)
        changes.append(update)
    return replace(state, orders=orders, recent_trades=recent), tuple(changes)


def state_from_rest(
    account: Account,
    positions: Iterable[PositionRisk],
    open_orders: Iterable[Order] = (),
    open_algo_orders: Iterable[AlgoOrder] = (),
    time_ms: int = 0,
    previous: AccountState | None = None,
) -> AccountState:
    """Return the state a REST snapshot describes (after a (re)connection, or to start).

    Orders and algo orders the snapshot does not list as open keep their last known (final) update from
    ``previous``; fills already applied stay remembered so a replayed event does not count twice.
    """
    balances = {
        a.asset: Balance(a.asset, a.wallet_balance, a.cross_wallet_balance, ZERO, "SNAPSHOT", time_ms)
        for a in account.assets
    }
    position_map = {
        (p.symbol, p.position_side): Position(
            p.symbol,
            p.position_amt,
            p.entry_price,
            p.break_even_price,
            ZERO,
            p.un_realized_profit,
            "cross" if p.isolated_margin == 0 else "isolated",
            p.position_side,
            "SNAPSHOT",
            time_ms,
        )
        for p in positions
    }
    if previous is not None:
        for key, known in previous.positions.items():
            if key in position_map:
                position_map[key] = replace(position_map[key], accumulated_realized=known.accumulated_realized)
    orders = {k: v for k, v in previous.orders.items() if not v.is_open} if previous else {}
    for o in open_orders:
        orders[o.order_id] = OrderUpdate(
            o.symbol, o.order_id, o.client_order_id, o.side, o.type, o.orig_type or o.type, o.time_in_force, o.status,
            "SNAPSHOT", o.orig_qty, o.price, o.avg_price, o.stop_price, o.executed_qty, ZERO, ZERO, ZERO, "",
            ZERO, 0, False, o.reduce_only, o.close_position, o.update_time or time_ms,
        )  # fmt: skip
    algos = {k: v for k, v in previous.algo_orders.items() if not v.is_open} if previous else {}
    for a in open_algo_orders:
        algos[a.algo_id] = AlgoUpdate(
            a.symbol, a.algo_id, a.client_algo_id, a.side, a.order_type, a.algo_status, a.quantity, a.trigger_price,
            a.price, a.working_type, a.actual_order_id, a.actual_price, ZERO, a.close_position, a.reduce_only, "",
            a.update_time or time_ms,
        )  # fmt: skip
    return AccountState(
        balances=MappingProxyType(balances),
        positions=MappingProxyType(position_map),
        orders=MappingProxyType(orders),
        algo_orders=MappingProxyType(algos),
        recent_trades=previous.recent_trades if previous else (),
        last_event_ms=max(time_ms, previous.last_event_ms if previous else 0),
    )


class UserStreamState:
    """Holds the current :class:`AccountState`; ``apply(event)`` advances it and returns the changes."""

    def __init__(self, state: AccountState | None = None) -> None:
        self.state = state or AccountState()

    def apply(self, event: Mapping[str, Any]) -> tuple[Change, ...]:
        self.state, changes = apply_event(self.state, event)
        return changes

    def reset(self, state: AccountState) -> tuple[Change, ...]:
        self.state = state
        return (Resynced(state.last_event_ms),)


async def rest_snapshot(client: BinanceTrading, previous: AccountState | None = None) -> AccountState:
    """Read the account over REST (account, positions, open orders and algo orders) as an :class:`AccountState`."""
    account, positions, orders, algos = await asyncio.gather(
        client.account(), client.position_risk(), client.open_orders(), client.open_algo_orders()
    )
    return state_from_rest(account, positions, orders, algos, client.now_ms(), previous)


# --------------------------------------------------------------------------------------------- the connection


ChangeHandler = Callable[[tuple[Change, ...]], Awaitable[None] | None]


@dataclass(slots=True)
class UserStreamStats:
    connects: int = 0
    listen_keys_created: int = 0
    keepalives: int = 0
    recreated_after_expiry: int = 0
    planned_reconnects: int = 0
    drops: int = 0
    resyncs: int = 0
    events: int = 0
    malformed: int = 0
    listen_keys: list[str] = field(default_factory=list)


class UserStream:
    """Keep one user data stream open and feed its events through a :class:`UserStreamState`.

    ``on_changes`` receives every tuple of changes (including :class:`Resynced` after each REST resync). Run with
    ``await stream.run()`` (until :meth:`stop`), or ``async with stream:`` to run it in the background.
    """

    def __init__(
        self,
        client: BinanceTrading,
        ws_private_url: str,
        on_changes: ChangeHandler | None = None,
        *,
        state: UserStreamState | None = None,
        keepalive_interval_s: float = 30 * 60.0,
        max_lifetime_s: float = 23.5 * 3600,
        resync: bool = True,
        backoff: Backoff | None = None,
        open_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ws_private_url = ws_private_url.rstrip("/")
        self.on_changes = on_changes
        self.state = state or UserStreamState()
        self.keepalive_interval_s = keepalive_interval_s
        self.max_lifetime_s = max_lifetime_s
        self.resync = resync
        self.backoff = backoff or Backoff(base_s=0.2, cap_s=30.0)
        self.open_timeout_s = open_timeout_s
        self._clock = clock
        self.stats = UserStreamStats()
        self.listen_key: str | None = None
        self.connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> UserStream:
        self._task = asyncio.create_task(self.run(), name="aegis-user-stream")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _emit(self, changes: tuple[Change, ...]) -> None:
        if changes and self.on_changes is not None:
            result = self.on_changes(changes)
            if asyncio.iscoroutine(result):
                await result

    async def run(self) -> None:
        """Connect, read, keep alive, recreate and reconnect until stopped."""
        while not self._stopped.is_set():
            try:
                key = await self.client.create_listen_key()
                if key != self.listen_key:
                    self.stats.listen_keys_created += 1
                    self.stats.listen_keys.append(key)
                self.listen_key = key
                outcome = await self._session(key)
            except asyncio.CancelledError:
                raise
            except (OSError, ExchangeError, websockets.WebSocketException, TimeoutError) as exc:
                self.connected.clear()
                self.stats.drops += 1
                delay = self.backoff.next_delay()
                log.warning("user stream: %s: %s; reconnecting in %.2f s", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.connected.clear()
            if outcome == "expired":
                self.stats.recreated_after_expiry += 1
                self.listen_key = None
            elif outcome == "lifetime":
                self.stats.planned_reconnects += 1
            elif outcome == "closed":
                self.stats.drops += 1
                await asyncio.sleep(self.backoff.next_delay())

    async def _keepalive(self) -> str:
        """Return "expired" when the key is gone (-1125); keep it alive every ``keepalive_interval_s`` otherwise."""
        while True:
            await asyncio.sleep(self.keepalive_interval_s)
            try:
                await self.client.keepalive_listen_key()
                self.stats.keepalives += 1
            except BinanceApiError as exc:
                if exc.code == -1125:
                    log.warning("user stream: keepalive says the listenKey does not exist; creating a new one")
                    return "expired"
                log.warning("user stream: keepalive failed: %s", exc)
            except ExchangeError as exc:
                log.warning("user stream: keepalive failed: %s", exc)

    async def _session(self, key: str) -> str:
        """One connection; return why it ended: "expired", "lifetime" or "closed"."""
        url = f"{self.ws_private_url}/ws/{key}"
        async with connect(url, open_timeout=self.open_timeout_s, max_size=1 << 22) as ws:
            self.stats.connects += 1
            self.backoff.reset()
            deadline = self._clock() + self.max_lifetime_s
            keepalive = asyncio.create_task(self._keepalive())
            snapshot = asyncio.create_task(rest_snapshot(self.client, self.state.state)) if self.resync else None
            buffered: list[Mapping[str, Any]] = []
            if snapshot is None:
                self.connected.set()
            receive: asyncio.Task | None = None
            try:
                while True:
                    if receive is None:
                        receive = asyncio.create_task(ws.recv())
                    waiting: set[asyncio.Future] = {receive, keepalive}
                    if snapshot is not None:
                        waiting.add(snapshot)
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return "lifetime"
                    done, _ = await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                    if keepalive in done:
                        return keepalive.result()
                    if snapshot is not None and snapshot in done:
                        await self._apply_snapshot(snapshot, buffered)
                        snapshot, buffered = None, []
                        self.connected.set()
                    if receive in done:
                        try:
                            text = receive.result()
                        except websockets.ConnectionClosed:
                            return "closed"
                        receive = None
                        event = self._decode(text)
                        if event is None:
                            continue
                        self.stats.events += 1
                        if snapshot is not None:
                            buffered.append(event)
                            if event.get("e") != "listenKeyExpired":
                                continue
                        if await self._apply(event):
                            return "expired"
            finally:
                for task in (keepalive, snapshot, receive):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task

    async def _apply_snapshot(self, snapshot: asyncio.Task, buffered: list[Mapping[str, Any]]) -> None:
        try:
            state = snapshot.result()
        except ExchangeError as exc:
            log.warning("user stream: REST resync failed (%s); continuing from the stream alone", exc)
            for event in buffered:
                await self._apply(event)
            return
        self.stats.resyncs += 1
        await self._emit(self.state.reset(state))
        for event in buffered:
            await self._apply(event)

    def _decode(self, text: str | bytes) -> Mapping[str, Any] | None:
        try:
            event = json.loads(text)
        except ValueError:
            self.stats.malformed += 1
            log.warning("user stream: a frame is not JSON: %r", text[:120])
            return None
        if isinstance(event, Mapping) and "data" in event and "stream" in event:
            event = event["data"]
        if not isinstance(event, Mapping):
            self.stats.malformed += 1
            return None
        return event

    async def _apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one event; return True when it says the listenKey expired."""
        try:
            changes = self.state.apply(event)
        except (ValidationError, KeyError, TypeError) as exc:
            self.stats.malformed += 1
            log.warning("user stream: malformed %s event dropped: %s", event.get("e"), exc)
            return False
        await self._emit(changes)
        return any(isinstance(c, ListenKeyExpired) for c in changes)
