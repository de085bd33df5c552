"""Execution in the brain (paper mode): every signal to the learning account, approved ones to the paper account.

For each :class:`SignalGenerated` on the event bus:

* **learning** — RiskService.SizeOrder sizes it for the ``learning`` account (no position cap, no protections or
  signal gates: every signal becomes a training example) and VirtualAccountService.OpenPosition opens it;
* **paper** — RiskService.EvaluateSignal decides for the ``paper`` account (the same limits as live). When it
  approves, the sized position is opened; when its rotation says REPLACE, the named position is closed first
  (ClosePosition, reason ROTATED), and nothing is opened if that close fails.

Risk's ``mark_price`` is the brain's latest MARK_PRICE record of the symbol, with that record's own event time
(``mark_price_time``), so risk can refuse a stale one; without one the field stays unset and risk decides with
what it knows (never a made-up price).

**Never twice.** Every order carries an idempotency key derived from the signal and the account
(``<signal id>:<account>``; a rotation's close ``<signal id>:<account>:rotate:<position id>``). Signal ids are
themselves derived from the candle, so a retried call, a signal re-emitted after a restart or a replay of the
same records all reuse the key, and virtual-account answers with the first result (``replayed``) instead of
opening again.

**Stored first (transactional outbox).** A signal worker executes a signal only once its ``signals`` row is
committed (``durable``: :meth:`aegis.brain.signals.SignalWriter.stored`; the writer keeps batching, the worker
waits for the batch holding its signal, so the order leaves at most one flush later and the strategy never
waits). A kill can therefore never leave a position whose signal has no row. The other half is the resume at
start (:meth:`Executor.resume`, fed by the engine): stored signals of the brain's symbols younger than
``AEGIS_BRAIN_RESUME_WINDOW_S`` without a position on the learning account — a kill between the row and the
open — are executed again; their keys are the same, so an open virtual-account did already answers
``replayed``. The trading leg (paper) is re-run only when the trading account has no position of that signal
either, and it goes through risk's EvaluateSignal as always (risk refuses stale signals); in live mode a resumed
signal goes to the learning account only: no live order is placed from a resume. A row PostgreSQL refuses is
counted (``unstored``) and its signal not executed.

**Never blocking.** The bus handlers only queue: signals go to a bounded queue (a full queue counts
``signals_dropped`` and logs; the ring consumer never waits), and :meth:`Executor.run` drains it with
``concurrency`` workers doing the gRPC calls. Orders take the bus's priority path: an :class:`OrderRequest` is
published on the bus (rank 0, dispatched before any analytics event still waiting), its handler queues it for
the order workers, and the fill comes back as an :class:`OrderFilled` (rank 0 too). A call failing with
UNAVAILABLE or DEADLINE_EXCEEDED is retried with a doubling backoff (safe: same idempotency key); any other
failure — UNIMPLEMENTED while a service is not built, INVALID_ARGUMENT, FAILED_PRECONDITION … — is counted by
RPC and status code, logged, and the signal moves on. No fill is ever made up.

**Live mode** (``AEGIS_MODE=live``): the trading leg goes to the live account instead of paper, through a
:class:`aegis.brain.live.LiveTrader` (risk's EvaluateSignal for the live account, then Binance orders on the same
priority path; its module doc has the rules). The learning account still records every signal (it is virtual).
Without a trader (``live=None``) the brain places nothing on the live account and logs one line per signal.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from aegis import observability
from aegis.brain import features as feat
from aegis.brain.events import EventBus, OrderFilled, OrderRequest, SignalGenerated
from aegis.brain.numeric import decimal_text, price_text
from aegis.brain.timeframes import INDEX_BY_NAME, TIMEFRAMES
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import risk_pb2 as risk_pb
from aegis.v1 import virtual_account_pb2 as va_pb

log = logging.getLogger("aegis.brain.execution")

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_DUPLICATE = frozenset({"ALREADY_EXISTS"})
RETRY_CAP_S = 2.0

MarkSource = Callable[[str], tuple[float, int] | None]
"""symbol -> (latest mark price, its event time in Unix ms), or None when no mark price was seen."""


def open_key(signal_id: str, account: str) -> str:
    """Return the idempotency key of the position ``signal_id`` opens on ``account``."""
    return f"{signal_id}:{account}"


def rotate_key(signal_id: str, account: str, position_id: str) -> str:
    """Return the idempotency key of the close a rotation for ``signal_id`` makes on ``account``."""
    return f"{signal_id}:{account}:rotate:{position_id}"


def _stamp_ms(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def _stamp_ns(ns: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(ns)
    return out


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _position_side(side: str) -> int:
    return common_pb.POSITION_SIDE_LONG if side == "LONG" else common_pb.POSITION_SIDE_SHORT


def features_pb(schema_version: int, values: tuple[float, ...]) -> common_pb.FeatureVector:
    """Return the ``aegis.v1.FeatureVector`` of a signal (names from the schema)."""
    return common_pb.FeatureVector(
        schema_version=str(schema_version), names=list(feat.names_of(schema_version)), values=list(values)
    )


def signal_pb(s: SignalGenerated) -> common_pb.Signal:
    """Return the ``aegis.v1.Signal`` risk is asked about (complete: features included)."""
    message = common_pb.Signal(
        signal_id=s.signal_id,
        symbol=s.symbol,
        timeframe=TIMEFRAMES[INDEX_BY_NAME[s.timeframe]].proto,
        side=_position_side(s.side),
        entry_price=decimal_text(s.entry_price),
        sl_pct=s.sl_pct,
        tp_pct=s.tp_pct,
        confidence=s.confidence,
        predicted_return_pct=s.predicted_return_pct if math.isfinite(s.predicted_return_pct) else 0.0,
        model_version=s.model_version,
        created_time=_stamp_ns(s.created_time_ns),
        reasons=list(s.reasons),
    )
    if s.candle_open_time_ms:
        message.candle_open_time.CopyFrom(_stamp_ms(s.candle_open_time_ms))
    if s.features:
        message.features.CopyFrom(features_pb(s.feature_schema_version, s.features))
    return message


def _order_attributes(order: OrderRequest) -> dict[str, Any]:
    """The attributes of an order's span (what was asked, never a key or a secret)."""
    return {
        "account": order.account,
        "symbol": order.symbol,
        "side": order.side or "CLOSE",
        "order_type": order.order_type,
        "quantity": order.quantity,
        "client_order_id": order.client_order_id,
        "signal_id": order.signal_id,
        "position_id": order.position_id or None,
    }


def _trace_decision(span: Any, response: Any) -> None:
    """Put risk's answer on the decision's span (or the failing status code)."""
    if isinstance(response, str):
        span.set_attribute("result", response)
        return
    span.set_attribute("approved", response.decision.approved)
    span.set_attribute("decision_id", response.decision.decision_id)


class CallStats:
    """Calls per RPC: attempts, successes, retries, and failures by status code."""

    def __init__(self) -> None:
        self.rpcs: dict[str, dict[str, Any]] = {}

    def _of(self, rpc: str) -> dict[str, Any]:
        return self.rpcs.setdefault(rpc, {"calls": 0, "ok": 0, "retries": 0, "failed": {}})

    def call(self, rpc: str) -> None:
        self._of(rpc)["calls"] += 1

    def ok(self, rpc: str) -> None:
        self._of(rpc)["ok"] += 1

    def retry(self, rpc: str) -> None:
        self._of(rpc)["retries"] += 1

    def fail(self, rpc: str, code: str) -> None:
        failed = self._of(rpc)["failed"]
        failed[code] = failed.get(code, 0) + 1

    def failed(self, rpc: str, code: str | None = None) -> int:
        failed = self.rpcs.get(rpc, {}).get("failed", {})
        return sum(failed.values()) if code is None else failed.get(code, 0)

    def snapshot(self) -> dict[str, Any]:
        return {rpc: {**v, "failed": dict(v["failed"])} for rpc, v in self.rpcs.items()}


class Caller:
    """Make one gRPC call with a deadline, retrying transient failures; return None (counted) when it fails."""

    def __init__(self, stats: CallStats, *, timeout_s: float, attempts: int, retry_base_s: float) -> None:
        self.stats = stats
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retry_base_s = retry_base_s
        self._logged: set[tuple[str, str]] = set()

    async def __call__(self, rpc: str, method: Any, request: Any, *, expected: frozenset[str] = frozenset()) -> Any:
        """Return the response, or the failing status code's name (a str) once retries are exhausted.

        ``expected``: codes that are an answer rather than a problem (counted, logged at debug only).
        """
        delay = self.retry_base_s
        for attempt in range(1, self.attempts + 1):
            self.stats.call(rpc)
            try:
                response = await method(request, timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in TRANSIENT and attempt < self.attempts:
                    self.stats.retry(rpc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_CAP_S)
                    continue
                self._failed(rpc, code.name, exc.details() or "", code.name in expected)
                return code.name
            self.stats.ok(rpc)
            return response
        return "UNKNOWN"  # pragma: no cover - the loop always returns

    def _failed(self, rpc: str, code: str, details: str, expected: bool) -> None:
        self.stats.fail(rpc, code)
        # one line per (rpc, code) at warning level, the rest at debug: an unbuilt service must not flood the log
        if not expected and (rpc, code) not in self._logged:
            self._logged.add((rpc, code))
            log.warning(
                "%s failed with %s (%s); counted, carrying on (further ones logged at debug)", rpc, code, details
            )
        else:
            log.debug("%s failed with %s (%s)", rpc, code, details)


class Executor:
    """Turn signals into positions on the learning and paper accounts (see the module doc)."""

    def __init__(
        self,
        bus: EventBus,
        *,
        risk: Any | None,
        accounts: Any | None,
        marks: MarkSource,
        mode: str = "paper",
        learning_account: str = "learning",
        paper_account: str = "paper",
        queue_size: int = 1024,
        concurrency: int = 4,
        timeout_s: float = 3.0,
        attempts: int = 5,
        retry_base_s: float = 0.1,
        live: Any | None = None,
        durable: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.bus = bus
        self.durable = durable
        """signal id -> True once its row is committed (False: refused); None: execute without waiting."""
        self.live = live
        """A :class:`aegis.brain.live.LiveTrader` (live mode), or None."""
        self.risk = risk
        """A ``RiskServiceStub`` (grpc.aio), or None: no risk decisions (nothing is placed)."""
        self.accounts = accounts
        """A ``VirtualAccountServiceStub`` (grpc.aio), or None: nothing is placed."""
        self._marks = marks
        self.mode = mode
        self.learning_account = learning_account
        self.paper_account = paper_account
        self.queue_size = queue_size
        self.concurrency = concurrency
        self.stats = CallStats()
        self._call = Caller(self.stats, timeout_s=timeout_s, attempts=attempts, retry_base_s=retry_base_s)
        self._signals: deque[tuple[SignalGenerated, bool]] = deque()
        self._signal_ready = asyncio.Event()
        self._orders: deque[tuple[OrderRequest, asyncio.Future[OrderFilled | None] | None]] = deque()
        self._order_ready = asyncio.Event()
        self._waiting: dict[int, asyncio.Future[OrderFilled | None]] = {}
        self._trace_contexts: dict[int, Any] = {}
        """id(order) -> the trace context it was placed in (the order worker continues that trace)."""
        self._inflight: dict[str, SignalGenerated] = {}
        self._duplicates: deque[str] = deque(maxlen=1024)
        self.failed_orders: deque[tuple[str, str, str]] = deque(maxlen=64)
        """The newest failed orders: (signal id, account, status code), for the status (which signal was refused)."""
        self.busy = 0
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "signals",
                "signals_dropped",
                "resumed",
                "unstored",
                "live_refused",
                "no_mark_price",
                "learning_opened",
                "learning_replayed",
                "learning_refused",
                "paper_approved",
                "paper_refused",
                "paper_opened",
                "paper_replayed",
                "rotations",
                "rotation_failed",
                "orders",
                "orders_filled",
                "orders_failed",
                "orders_duplicate",
                "decisions_failed",
                "errors",
            ),
            0,
        )
        self.refusals: dict[str, int] = {}
        """Paper refusals by risk reason code."""
        bus.subscribe(SignalGenerated, self.on_signal)
        bus.subscribe(OrderRequest, self.on_order_request)

    # -- bus handlers (synchronous, O(1): they only queue) ----------------------------------------------------

    def on_signal(self, signal: SignalGenerated) -> None:
        """Queue ``signal`` for execution; in live mode refuse the live side with one clear line."""
        self.counts["signals"] += 1
        paper = True
        if self.mode == "live" and self.live is None:
            paper = False
            self.counts["live_refused"] += 1
            log.warning(
                "live mode: %s %s signal %s NOT placed on the live account: this executor has no live trader "
                "(docs/live-trading.md); the learning account still records it",
                signal.symbol,
                signal.side,
                signal.signal_id,
            )
        if len(self._signals) >= self.queue_size:
            self.counts["signals_dropped"] += 1
            log.warning("execution queue full (%d signals): signal %s not executed", self.queue_size, signal.signal_id)
            return
        self._signals.append((signal, paper))
        self._signal_ready.set()

    def resume(self, signal: SignalGenerated, *, trade: bool) -> None:
        """Queue a stored signal that has no learning position (the engine's resume at start, see the module doc);
        ``trade``: the trading account has no position of it either (paper mode only; never live)."""
        self.counts["resumed"] += 1
        paper = trade and self.mode != "live"
        log.info("resuming stored signal %s (%s %s): not executed before the restart", signal.signal_id,
                 signal.symbol, signal.side)  # fmt: skip
        self._signals.append((signal, paper))
        self._signal_ready.set()

    def on_order_request(self, order: OrderRequest) -> None:
        """Queue an order for the order workers (dispatched at rank 0: ahead of everything else on the bus)."""
        self._orders.append((order, self._waiting.pop(id(order), None)))
        self._order_ready.set()

    # -- workers ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Execute queued signals and orders until cancelled."""
        async with asyncio.TaskGroup() as group:
            for i in range(self.concurrency):
                group.create_task(self._signal_worker(), name=f"execution-signals-{i}")
                group.create_task(self._order_worker(), name=f"execution-orders-{i}")

    @property
    def pending(self) -> int:
        """Signals and orders queued or being executed."""
        return len(self._signals) + len(self._orders) + self.busy

    async def idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is queued or running (tests, shutdown); return False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pending or self.bus.pending:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _signal_worker(self) -> None:
        while True:
            if not self._signals:
                self._signal_ready.clear()
                await self._signal_ready.wait()
                continue
            signal, paper = self._signals.popleft()
            self.busy += 1
            try:
                if self.durable is not None and not await self.durable(signal.signal_id):
                    self.counts["unstored"] += 1
                    log.error("signal %s not executed: PostgreSQL refused its row", signal.signal_id)
                    continue
                await self.execute(signal, paper=paper)
            except Exception:
                self.counts["errors"] += 1
                log.exception("executing signal %s failed", signal.signal_id)
            finally:
                self.busy -= 1

    async def _order_worker(self) -> None:
        while True:
            if not self._orders:
                self._order_ready.clear()
                await self._order_ready.wait()
                continue
            order, done = self._orders.popleft()
            self.busy += 1
            filled: OrderFilled | None = None
            try:
                with (
                    observability.attached(self._trace_contexts.pop(id(order), None)),
                    observability.span("aegis.order", **_order_attributes(order)) as traced,
                ):
                    filled = await self._send(order)
                    traced.set_attribute("filled", filled is not None)
            except Exception:
                self.counts["errors"] += 1
                log.exception("placing order %s failed", order.client_order_id)
            finally:
                self.busy -= 1
                if done is not None and not done.done():
                    done.set_result(filled)

    # -- one signal ------------------------------------------------------------------------------------------

    async def execute(self, signal: SignalGenerated, *, paper: bool = True) -> None:
        """Open ``signal`` on the learning account, and on the paper account when ``paper`` and risk approves."""
        if self.risk is None or self.accounts is None:
            return
        mark = self._marks(signal.symbol)
        if mark is None:
            self.counts["no_mark_price"] += 1
        self._inflight[signal.signal_id] = signal
        trading = self.live.account if self.live is not None and self.mode == "live" else self.paper_account
        accounts = [self.learning_account, trading] if paper else [self.learning_account]
        try:
            # one trace per signal: risk's decisions, the orders and their fills are its children (the gRPC calls
            # carry it to risk and virtual-account); never a span per tick
            with observability.span("aegis.signal", signal_id=signal.signal_id, symbol=signal.symbol,
                                    side=signal.side, timeframe=signal.timeframe, accounts=accounts):  # fmt: skip
                legs = [self._learning(signal, mark)]
                if paper:
                    live = self.live is not None and self.mode == "live"
                    legs.append(self.live.decide(self, signal, mark) if live else self._paper(signal, mark))
                await asyncio.gather(*legs)
        finally:
            self._inflight.pop(signal.signal_id, None)

    def _with_mark(self, request: Any, mark: tuple[float, int] | None) -> Any:
        if mark is not None:
            request.mark_price = price_text(mark[0])
            if mark[1] > 0:
                request.mark_price_time.CopyFrom(_stamp_ms(mark[1]))
        return request

    async def _learning(self, signal: SignalGenerated, mark: tuple[float, int] | None) -> None:
        account = self.learning_account
        request = self._with_mark(
            risk_pb.SizeOrderRequest(
                account=account,
                mode=common_pb.ACCOUNT_KIND_LEARNING,
                symbol=signal.symbol,
                side=_position_side(signal.side),
                sl_pct=signal.sl_pct,
                tp_pct=signal.tp_pct,
            ),
            mark,
        )
        with observability.span("aegis.risk_decision", account=account, rpc="SizeOrder") as traced:
            response = await self._call("RiskService.SizeOrder", self.risk.SizeOrder, request)
            _trace_decision(traced, response)
        if isinstance(response, str):
            self.counts["decisions_failed"] += 1
            return
        decision = response.decision
        if not decision.approved or not decision.HasField("order"):
            self.counts["learning_refused"] += 1
            log.info("learning: %s not sized: %s", signal.signal_id, decision.message)
            return
        filled = await self.place(self._open_order(signal, account, decision))
        if filled is not None:
            self.counts["learning_replayed" if filled.replayed else "learning_opened"] += 1
        elif open_key(signal.signal_id, account) in self._duplicates:
            self.counts["learning_replayed"] += 1

    async def _paper(self, signal: SignalGenerated, mark: tuple[float, int] | None) -> None:
        await self.trade(
            signal, mark, account=self.paper_account, mode=common_pb.ACCOUNT_KIND_PAPER, label="paper",
            counts=self.counts, refusals=self.refusals, prefix="paper_",
        )  # fmt: skip

    async def trade(
        self,
        signal: SignalGenerated,
        mark: tuple[float, int] | None,
        *,
        account: str,
        mode: int,
        label: str,
        counts: dict[str, int],
        refusals: dict[str, int],
        prefix: str = "",
    ) -> None:
        """The trading leg (paper, or live through :class:`aegis.brain.live.LiveTrader`): RiskService.EvaluateSignal
        for ``account``; when approved, the rotation's close first (nothing is opened if it fails), then the entry.
        Outcomes are counted in ``counts`` under ``prefix`` + approved / refused / opened / replayed (rotations
        unprefixed), refusal reasons in ``refusals``."""
        request = self._with_mark(
            risk_pb.EvaluateSignalRequest(signal=signal_pb(signal), account=account, mode=mode), mark
        )
        with observability.span("aegis.risk_decision", account=account, rpc="EvaluateSignal") as traced:
            response = await self._call("RiskService.EvaluateSignal", self.risk.EvaluateSignal, request)
            _trace_decision(traced, response)
        if isinstance(response, str):
            self.counts["decisions_failed"] += 1
            if counts is not self.counts:
                counts["decisions_failed"] += 1
            return
        decision = response.decision
        if not decision.approved or not decision.HasField("order"):
            counts[prefix + "refused"] += 1
            for reason in decision.reasons:
                refusals[reason.code] = refusals.get(reason.code, 0) + 1
            log.info("%s: %s refused by risk: %s", label, signal.signal_id, decision.message)
            return
        counts[prefix + "approved"] += 1
        rotation = decision.rotation
        if rotation.action == risk_pb.ROTATION_ACTION_REPLACE and rotation.close_position_id:
            close = OrderRequest(
                client_order_id=rotate_key(signal.signal_id, account, rotation.close_position_id),
                account=account,
                symbol=rotation.close_symbol,
                side="",
                order_type="MARKET",
                quantity=Decimal(0),
                created_time_ns=time.time_ns(),
                reduce_only=True,
                exit=True,
                signal_id=signal.signal_id,
                decision_id=decision.decision_id,
                position_id=rotation.close_position_id,
                reason="ROTATED",
            )
            if await self.place(close) is None:
                counts["rotation_failed"] += 1
                log.warning(
                    "%s: %s not opened: closing %s to make room failed",
                    label, signal.signal_id, rotation.close_position_id,
                )  # fmt: skip
                return
            counts["rotations"] += 1
        filled = await self.place(self._open_order(signal, account, decision))
        if filled is not None:
            counts[prefix + ("replayed" if filled.replayed else "opened")] += 1
        elif open_key(signal.signal_id, account) in self._duplicates:
            counts[prefix + "replayed"] += 1

    def _open_order(self, signal: SignalGenerated, account: str, decision: Any) -> OrderRequest:
        o = decision.order
        return OrderRequest(
            client_order_id=open_key(signal.signal_id, account),
            account=account,
            symbol=signal.symbol,
            side="BUY" if signal.side == "LONG" else "SELL",
            order_type=common_pb.OrderType.Name(o.type).removeprefix("ORDER_TYPE_") if o.type else "MARKET",
            quantity=_decimal(o.quantity),
            created_time_ns=time.time_ns(),
            price=_decimal(o.price) if o.price else None,
            signal_id=signal.signal_id,
            stop_loss_price=_decimal(o.stop_loss_price) if o.stop_loss_price else None,
            take_profit_price=_decimal(o.take_profit_price) if o.take_profit_price else None,
            leverage=o.leverage,
            margin_type=common_pb.MarginType.Name(o.margin_type).removeprefix("MARGIN_TYPE_") if o.margin_type else "",
            decision_id=decision.decision_id,
        )

    # -- orders ----------------------------------------------------------------------------------------------

    async def place(self, order: OrderRequest) -> OrderFilled | None:
        """Publish ``order`` on the bus (rank 0) and wait for its fill; None when it failed (counted)."""
        done: asyncio.Future[OrderFilled | None] = asyncio.get_running_loop().create_future()
        self._waiting[id(order)] = done
        self._trace_contexts[id(order)] = observability.capture_context()
        self.bus.publish(order)
        return await done

    async def _send(self, order: OrderRequest) -> OrderFilled | None:
        self.counts["orders"] += 1
        if self.live is not None and order.account == self.live.account:
            filled: OrderFilled | str = await self.live.send(order)
        elif self.accounts is None:
            return None
        elif order.position_id:
            filled = await self._close(order)
        else:
            filled = await self._open(order)
        if filled == "ALREADY_EXISTS":
            # the key was used before with other fields (a re-emitted signal sized again): already executed once
            self.counts["orders_duplicate"] += 1
            self._duplicates.append(order.client_order_id)
            return None
        if not isinstance(filled, OrderFilled):
            self.counts["orders_failed"] += 1
            self.failed_orders.append((order.signal_id, order.account, filled if isinstance(filled, str) else ""))
            return None
        self.counts["orders_filled"] += 1
        with observability.span("aegis.fill", account=filled.account, position_id=filled.position_id,
                                price=filled.price, quantity=filled.quantity, replayed=filled.replayed):  # fmt: skip
            self._observe_fill(order, filled)
            self.bus.publish(filled)
        return filled

    def _observe_fill(self, order: OrderRequest, filled: OrderFilled) -> None:
        """Observe tick-to-fill once per new entry fill of a signal (a replayed key opened nothing new then)."""
        signal = self._inflight.get(order.signal_id)
        if signal is None or not signal.recv_time_ns or filled.replayed or order.position_id:
            return
        observability.observe_since(observability.tick_to_fill(), signal.recv_time_ns, account=order.account)

    async def _open(self, order: OrderRequest) -> OrderFilled | str:
        signal = self._inflight.get(order.signal_id)
        request = va_pb.OpenPositionRequest(
            idempotency_key=order.client_order_id,
            account=order.account,
            symbol=order.symbol,
            side=common_pb.POSITION_SIDE_LONG if order.side == "BUY" else common_pb.POSITION_SIDE_SHORT,
            quantity=decimal_text(order.quantity),
            leverage=order.leverage,
            signal_id=order.signal_id,
            decision_id=order.decision_id,
        )
        if order.price is not None and order.order_type == "LIMIT":
            request.entry_price = decimal_text(order.price)
        if order.stop_loss_price is not None:
            request.stop_loss_price = decimal_text(order.stop_loss_price)
        if order.take_profit_price is not None:
            request.take_profit_price = decimal_text(order.take_profit_price)
        if order.margin_type:
            request.margin_type = common_pb.MarginType.Value(f"MARGIN_TYPE_{order.margin_type}")
        if signal is not None:
            request.confidence = signal.confidence
            if math.isfinite(signal.predicted_return_pct):
                request.predicted_return_pct = signal.predicted_return_pct
            request.model_version = signal.model_version
            if signal.features:
                request.features.CopyFrom(features_pb(signal.feature_schema_version, signal.features))
        response = await self._call(
            "VirtualAccountService.OpenPosition", self.accounts.OpenPosition, request, expected=_DUPLICATE
        )
        if isinstance(response, str):
            return response
        p = response.position
        return OrderFilled(
            client_order_id=order.client_order_id,
            account=order.account,
            symbol=p.symbol or order.symbol,
            side=order.side,
            price=_decimal(p.entry_price),
            quantity=_decimal(p.quantity),
            fee=_decimal(p.fees),
            fill_time_ms=p.opened_time.ToMilliseconds() if p.HasField("opened_time") else 0,
            position_id=p.position_id,
            replayed=response.replayed,
        )

    async def _close(self, order: OrderRequest) -> OrderFilled | str:
        request = va_pb.ClosePositionRequest(
            idempotency_key=order.client_order_id,
            account=order.account,
            position_id=order.position_id,
            reason=common_pb.CloseReason.Value(f"CLOSE_REASON_{order.reason or 'MANUAL'}"),
        )
        response = await self._call(
            "VirtualAccountService.ClosePosition", self.accounts.ClosePosition, request, expected=_DUPLICATE
        )
        if isinstance(response, str):
            return response
        p, trade = response.position, response.trade
        closing_side = "SELL" if p.side == common_pb.POSITION_SIDE_LONG else "BUY"
        return OrderFilled(
            client_order_id=order.client_order_id,
            account=order.account,
            symbol=p.symbol or order.symbol,
            side=closing_side,
            price=_decimal(p.exit_price or trade.exit_price),
            quantity=_decimal(p.quantity),
            fee=_decimal(trade.fees),
            fill_time_ms=p.closed_time.ToMilliseconds() if p.HasField("closed_time") else 0,
            reduce_only=True,
            position_id=p.position_id or order.position_id,
            replayed=response.replayed,
        )

    def stats_snapshot(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            **self.counts,
            "queued": len(self._signals),
            "orders_queued": len(self._orders),
            "paper_refusals": dict(self.refusals),
            "failed_orders": [list(f) for f in self.failed_orders],
            "rpcs": self.stats.snapshot(),
            **({"live": self.live.snapshot()} if self.live is not None else {}),
        }
