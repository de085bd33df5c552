"""The risk service process: RiskService, and the rules keeper as a background task.

Readiness: SERVING needs PostgreSQL and Redis (the runtime checks them), not loaded exchange rules. Until rules are
loaded, EvaluateSignal, SizeOrder and the rules RPCs answer UNAVAILABLE saying why (none stored yet, exchangeInfo
unreachable …) while GetRiskConfig keeps working; reporting NOT_SERVING instead would hide a working API and, on a
fresh install with the exchange unreachable, keep the pod out of its Service for no gain (a risk service without
rules approves nothing either way). docs/risk.md, "The service", has the details.
"""

from __future__ import annotations

from aegis.risk.accounts import LiveAccountSource, ProtectionsStore, VirtualAccountSource, risk_configs
from aegis.risk.desk import Clock, RiskDesk, utc_now
from aegis.risk.rules_keeper import RulesKeeper
from aegis.risk.servicer import registration
from aegis.risk.sizing import AccountKind
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts


def build(ctx: ServiceContext, *, clock: Clock = utc_now) -> tuple[RiskDesk, RulesKeeper]:
    """Return the desk and its rules keeper for a service context (also what in-process tests use)."""
    assert ctx.db is not None
    settings = ctx.settings
    risk = settings.risk
    virtual = VirtualAccountSource(settings.address_of("virtual_account"), risk.account_timeout_s)
    desk = RiskDesk(
        risk_configs(risk),
        sources={AccountKind.LEARNING: virtual, AccountKind.PAPER: virtual, AccountKind.LIVE: LiveAccountSource()},
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


async def setup(ctx: ServiceContext) -> ServiceParts:
    desk, keeper = build(ctx)

    async def risk_rules_keeper() -> None:
        await keeper.run()

    return ServiceParts(registrations=[registration(desk)], background=[risk_rules_keeper], on_stop=desk.close)


DEFINITION = ServiceDefinition(name="risk", setup=setup, needs_postgres=True, needs_redis=True)
