"""The risk service process: RiskService, and the rules keeper as a background task.

Readiness: SERVING needs PostgreSQL and Redis (the runtime checks them), not loaded exchange rules. Until rules are
loaded, EvaluateSignal, SizeOrder and the rules RPCs answer UNAVAILABLE saying why (none stored yet, exchangeInfo
unreachable …) while GetRiskConfig keeps working; reporting NOT_SERVING instead would hide a working API and, on a
fresh install with the exchange unreachable, keep the pod out of its Service for no gain (a risk service without
rules approves nothing either way). docs/risk.md, "The service", has the details.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aegis import observability
from aegis.risk.accounts import LiveAccountSource, ProtectionsStore, VirtualAccountSource, risk_configs
from aegis.risk.desk import Clock, RiskDesk, utc_now
from aegis.risk.engine import RiskDecision
from aegis.risk.rules_keeper import RulesKeeper
from aegis.risk.servicer import registration
from aegis.risk.sizing import AccountKind
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts


def live_source(settings: Any) -> LiveAccountSource:
    """Return the live account source: the exchange account in live mode (keys checked at start), else a refusal."""
    if settings.mode != "live":
        return LiveAccountSource()
    return LiveAccountSource(
        settings.feed.rest_url, settings.binance_api_key.reveal(), settings.binance_api_secret.reveal()
    )


def build(ctx: ServiceContext, *, clock: Clock = utc_now) -> tuple[RiskDesk, RulesKeeper]:
    """Return the desk and its rules keeper for a service context (also what in-process tests use)."""
    assert ctx.db is not None
    settings = ctx.settings
    risk = settings.risk
    virtual = VirtualAccountSource(settings.address_of("virtual_account"), risk.account_timeout_s, settings)
    desk = RiskDesk(
        risk_configs(risk),
        sources={AccountKind.LEARNING: virtual, AccountKind.PAPER: virtual, AccountKind.LIVE: live_source(settings)},
        protections=ProtectionsStore(ctx.db),
        clock=clock,
        rules_help="the rules keeper is starting",
    )
    keeper = RulesKeeper(
        ctx.db,
        ctx.cache,
        desk,
        rest_url=settings.feed.rest_url,
        reload_s=risk.rules_reload_s,
        fetch=risk.fetch_rules,
        brackets_file=risk.brackets_file,
    )
    return desk, keeper


def observe_decisions(desk: RiskDesk, metrics: observability.RiskDecisionMetrics) -> None:
    """Count and trace every decision of ``desk`` (a span ``risk.evaluate``/``risk.size`` inside the call's own)."""

    def observed(rpc: str, decide: Callable[..., Awaitable[RiskDecision]]) -> Callable[..., Awaitable[RiskDecision]]:
        async def run(account: str, signal: Any, market: Any, **kwargs: Any) -> RiskDecision:
            with observability.span(f"risk.{rpc}", account=account, symbol=signal.symbol) as span:
                started = time.perf_counter()
                decision = await decide(account, signal, market, **kwargs)
                metrics.observe(rpc, decision, time.perf_counter() - started)
                span.set_attribute("risk.approved", decision.approved)
                span.set_attribute("risk.decision_id", decision.decision_id)
                return decision

        return run

    desk.evaluate = observed("evaluate", desk.evaluate)  # type: ignore[method-assign]
    desk.size = observed("size", desk.size)  # type: ignore[method-assign]


async def setup(ctx: ServiceContext) -> ServiceParts:
    desk, keeper = build(ctx)
    decisions = observability.RiskDecisionMetrics(desk)
    observe_decisions(desk, decisions)

    async def risk_rules_keeper() -> None:
        await keeper.run()

    return ServiceParts(
        registrations=[registration(desk, record_time=ctx.settings.clock == "record")],
        background=[risk_rules_keeper],
        on_stop=desk.close,
        metrics=[decisions],
    )


DEFINITION = ServiceDefinition(name="risk", setup=setup, needs_postgres=True, needs_redis=True)
