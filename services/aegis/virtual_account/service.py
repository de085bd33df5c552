"""The virtual_account service process: VirtualAccountService over the PostgreSQL book, events through Redis.

Stateless between calls: positions, balances, prices and idempotency keys are in PostgreSQL, so replicas can
serve side by side and a restart (even kill -9) loses nothing acknowledged. Settings: ``AEGIS_ACCOUNT_*``
(:mod:`aegis.virtual_account.settings`); docs/accounts.md explains the accounts' rules.
"""

from __future__ import annotations

import logging

from aegis import observability
from aegis.errors import AegisError
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts
from aegis.virtual_account import settings as account_settings
from aegis.virtual_account.book import AccountBook
from aegis.virtual_account.events import EventHub
from aegis.virtual_account.servicer import VirtualAccountServicer, registration

log = logging.getLogger("aegis.virtual_account")


async def setup(ctx: ServiceContext) -> ServiceParts:
    settings = account_settings.load()
    assert ctx.db is not None
    hub = EventHub(ctx.cache.client if ctx.cache is not None else None)
    book = AccountBook(ctx.db, settings, publish=hub.publish)
    servicer = VirtualAccountServicer(book, hub)

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

    # Positions, trades and PnL per account come from PostgreSQL: polled in the background, served from memory.
    accounts_metrics = observability.virtual_account_collector(book, interval_s=10.0)

    async def account_metrics() -> None:
        await accounts_metrics.run()

    return ServiceParts(
        registrations=[registration(servicer)],
        background=[create_accounts, hub.watch_listeners, account_metrics],
        on_stop=stop,
        metrics=[accounts_metrics],
    )


DEFINITION = ServiceDefinition(name="virtual_account", setup=setup, needs_postgres=True, needs_redis=True)
