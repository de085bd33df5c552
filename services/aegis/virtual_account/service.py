"""The virtual_account service process: VirtualAccountService over the PostgreSQL book, events through Redis.

Stateless between calls: positions, balances, prices and idempotency keys are in PostgreSQL, so replicas can
serve side by side and a restart (even kill -9) loses nothing acknowledged. Settings: ``AEGIS_ACCOUNT_*``
(:mod:`aegis.virtual_account.settings`); docs/accounts.md explains the accounts' rules.

Live mode (``AEGIS_MODE=live``, keys and the confirmation checked at start): this service also owns the live
account's mirror (:class:`aegis.virtual_account.live.LiveMirror`): it runs the Binance user data stream, writes
the live account's positions, trades and balance into the same tables, and reconciles them with the exchange at
start, after every stream reconnection and every ``AEGIS_LIVE_RECONCILE_INTERVAL_S``. Run one replica in live
mode: two would both follow the stream (each fill is still applied once, by its trade id, and the account row lock
serialises them, but it is twice the exchange traffic for nothing).
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any

from aegis import observability
from aegis.core.clock import RecordClock, record_clock
from aegis.errors import AegisError
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts
from aegis.virtual_account import settings as account_settings
from aegis.virtual_account.book import DEFAULT_ACCOUNTS, AccountBook
from aegis.virtual_account.events import EventHub
from aegis.virtual_account.servicer import VirtualAccountServicer, registration

if TYPE_CHECKING:
    from aegis.virtual_account.live import LiveMirror

log = logging.getLogger("aegis.virtual_account")


def follow_record_time(book: AccountBook, clock: RecordClock) -> None:
    """AEGIS_CLOCK=record (a replay): every batch of price updates first moves the book's clock to its newest
    ``event_time``, so positions open, close and pay funding at the recording's time (aegis.core.clock)."""
    apply = book.apply_price_updates

    async def apply_in_record_time(ticks: Any) -> Any:
        clock.observe_all(t.event_time for t in ticks)
        return await apply(ticks)

    book.apply_price_updates = apply_in_record_time  # type: ignore[method-assign]


GC_THRESHOLDS = (50_000, 10, 10)
"""CPython's cyclic collector: a young collection every 50,000 net allocations instead of 700 (then every 10th one
older, as CPython's own)."""


def tune_gc() -> None:
    """Set the collector for the book's workload (the service at start; ``aegis bench account`` the same).

    A round trip allocates ~100 short-lived objects that reference counting frees (Decimals, rows, tuples, the
    frozen Position/Trade/LedgerEntry values); none makes cycles. At CPython's default threshold the young
    collection ran every few round trips and traversed the batch's live objects each time: 5-10 µs of CPU per
    round trip in ``aegis bench account`` (docs/accounts.md, "Performance"). What is alive at start (modules,
    settings, the gRPC stack) is frozen out of the scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def setup(ctx: ServiceContext) -> ServiceParts:
    tune_gc()
    settings = account_settings.load()
    assert ctx.db is not None
    hub = EventHub(ctx.cache.client if ctx.cache is not None else None)
    live = ctx.settings.live
    mirror: LiveMirror | None = None
    accounts = dict(DEFAULT_ACCOUNTS)
    if ctx.settings.mode == "live":  # the exchange client and the mirror load only here (aiohttp: ~0.1 s at start)
        from aegis.exchange.trading import BinanceTrading
        from aegis.virtual_account.live import LiveMirror

        client = BinanceTrading(
            ctx.settings.feed.rest_url, ctx.settings.binance_api_key.reveal(), ctx.settings.binance_api_secret.reveal()
        )
        mirror = LiveMirror(
            ctx.db,
            client,
            account=live.account,
            ws_private_url=live.ws_private_url,
            working_type=live.working_type,
            reconcile_interval_s=live.reconcile_interval_s,
            publish=hub.publish,
        )
        accounts[live.account] = "live"
    clock = record_clock(ctx.settings)
    if clock is None:
        book = AccountBook(ctx.db, settings, accounts=accounts, publish=hub.publish, listening=hub.listening)
    else:
        book = AccountBook(
            ctx.db, settings, accounts=accounts, publish=hub.publish, listening=hub.listening, clock=clock
        )
        follow_record_time(book, clock)
    servicer = VirtualAccountServicer(book, hub, live=mirror, live_account=live.account)

    async def create_accounts() -> None:
        # Accounts are also created at first use; doing it at start puts the deposits in the ledger early.
        try:
            await book.ensure_accounts()
        except AegisError as exc:
            log.warning("accounts not created at start (%s); they will be at first use", exc)
        except Exception as exc:  # the schema may not be migrated yet: first use retries
            log.warning("accounts not created at start (%s); they will be at first use", exc)

    async def stop() -> None:
        await servicer.close()
        await hub.close()
        if mirror is not None:
            await mirror.stop()
            await mirror.client.close()

    # Positions, trades and PnL per account come from PostgreSQL: polled in the background, served from memory.
    accounts_metrics = observability.virtual_account_collector(book, interval_s=10.0)

    async def account_metrics() -> None:
        await accounts_metrics.run()

    return ServiceParts(
        registrations=[registration(servicer)],
        background=[create_accounts, hub.watch_listeners, account_metrics]
        + ([mirror.run] if mirror is not None else []),
        on_stop=stop,
        metrics=[accounts_metrics],
    )


DEFINITION = ServiceDefinition(name="virtual_account", setup=setup, needs_postgres=True, needs_redis=True)
