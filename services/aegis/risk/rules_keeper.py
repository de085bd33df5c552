"""Keep the risk desk's exchange rules current without a restart.

* At start: load the rules from PostgreSQL, retrying while PostgreSQL is down. On a fresh install (PostgreSQL holds
  no exchangeInfo) fetch it from ``AEGIS_BINANCE_REST_URL`` and store it (``refresh_rules``), retrying with backoff
  while the exchange does not answer; when PostgreSQL holds no leverage brackets and ``AEGIS_RISK_BRACKETS_FILE`` is
  set, store that file.
* Then: reload when a notice arrives on ``aegis:rules:updated`` (Redis pub/sub), and every
  ``AEGIS_RISK_RULES_RELOAD_S`` as a fallback for notices lost while Redis was away. A reload only re-reads the
  tables when their fingerprint (row counts and newest ``fetched_at``) changed.

The keeper never ends on its own and never raises out of :meth:`RulesKeeper.run` (a failing background task stops
the process): every failure is logged, visible in ``RiskDesk.rules_help``, and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import asyncpg
from redis.exceptions import RedisError

from aegis.errors import AegisError, DependencyUnavailable
from aegis.exchange.rules_store import load_rules, refresh_rules, rules_version, store_brackets_file, stored_counts
from aegis.risk.desk import RiskDesk
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database

log = logging.getLogger(__name__)

_STORAGE_ERRORS = (DependencyUnavailable, asyncpg.PostgresError, OSError, TimeoutError)


class RulesKeeper:
    """Load the exchange rules into a :class:`RiskDesk` and keep them current."""

    def __init__(
        self,
        db: Database,
        cache: Cache | None,
        desk: RiskDesk,
        *,
        rest_url: str,
        reload_s: float,
        fetch: bool = True,
        brackets_file: str = "",
        rest_timeout_s: float = 10.0,
    ) -> None:
        self._db = db
        self._cache = cache
        self._desk = desk
        self._rest_url = rest_url
        self._reload_s = reload_s
        self._fetch = fetch
        self._brackets_file = brackets_file
        self._rest_timeout_s = rest_timeout_s
        self._wake = asyncio.Event()
        self._brackets_file_done = False
        self.subscribed = asyncio.Event()
        """Set while the keeper listens on the Redis channel (tests wait for it before publishing)."""
        self.reloads = 0

    def wake(self) -> None:
        """Check for new rules now (what a notice does)."""
        self._wake.set()

    # ----------------------------------------------------------------------------------- one pass

    async def _bootstrap(self) -> None:
        """Fill an empty PostgreSQL: exchangeInfo from the exchange, brackets from the configured file."""
        symbols, bracket_symbols = await stored_counts(self._db)
        if bracket_symbols == 0 and self._brackets_file and not self._brackets_file_done:
            self._brackets_file_done = True  # a broken file is reported once, not every pass
            try:
                report = await store_brackets_file(self._db, self._cache, Path(self._brackets_file))
                log.info("stored leverage brackets of %d symbols from %s", report.bracket_symbols, self._brackets_file)
            except AegisError as exc:
                if isinstance(exc, DependencyUnavailable):
                    self._brackets_file_done = False
                    raise
                log.error("AEGIS_RISK_BRACKETS_FILE=%s not stored: %s", self._brackets_file, exc)
        if symbols == 0 and self._fetch:
            from aegis.exchange.rest import BinanceRest  # aiohttp: imported only when needed (start-up time)

            try:
                async with BinanceRest(self._rest_url, timeout_s=self._rest_timeout_s) as rest:
                    report = await refresh_rules(rest, self._db, self._cache)
                log.info("fetched exchangeInfo from %s: %d symbols stored", self._rest_url, report.symbols)
            except DependencyUnavailable:
                raise
            except AegisError as exc:
                self._desk.rules_help = (
                    f"PostgreSQL holds none and exchangeInfo from {self._rest_url} failed ({exc}); retrying — or "
                    "store them with `aegis rules load FILE`"
                )
                log.warning("no exchange rules yet: %s", self._desk.rules_help)

    async def _reload_if_changed(self) -> bool:
        version = await rules_version(self._db)
        if version == self._desk.rules_version:
            return False
        snapshot = await load_rules(self._db)
        self._desk.set_rules(snapshot)
        self.reloads += 1
        if snapshot.rules:
            self._desk.rules_help = ""
            log.info(
                "exchange rules loaded",
                extra={"symbols": len(snapshot.rules), "bracket_symbols": snapshot.bracket_symbols},
            )
            if not snapshot.bracket_symbols:
                log.warning(
                    "no leverage brackets in PostgreSQL: every signal is refused (SYMBOL_NOT_TRADING) until "
                    "`aegis rules load-brackets FILE` stores them"
                )
        elif not self._desk.rules_help:
            self._desk.rules_help = (
                "PostgreSQL holds none yet: the orchestrator stores them, or `aegis rules load FILE`"
            )
        return True

    async def check_once(self) -> None:
        """Bootstrap an empty store when needed, then reload if the stored rules changed."""
        await self._bootstrap()
        await self._reload_if_changed()

    # ----------------------------------------------------------------------------------- loops

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="risk-rules-notices") if self._cache else None
        delay = 0.5
        down_since_logged = False
        try:
            while True:
                self._wake.clear()  # a notice arriving during the pass below triggers another pass
                try:
                    await self.check_once()
                    if down_since_logged:
                        log.info("PostgreSQL answers again: exchange rules checked")
                        down_since_logged = False
                    delay = self._reload_s if self._desk.rules_loaded else min(max(delay * 2, 1.0), 60.0)
                except _STORAGE_ERRORS as exc:
                    if not down_since_logged:
                        log.warning("cannot read exchange rules from PostgreSQL (%s): retrying", exc)
                        down_since_logged = True
                    if not self._desk.rules_loaded:
                        self._desk.rules_help = f"PostgreSQL does not answer ({exc}); retrying"
                    delay = min(max(delay * 2, 0.5), 5.0)
                except Exception:  # a bug must not stop the process with rules that still work
                    log.exception("exchange rules check failed; retrying")
                    delay = 30.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self) -> None:
        assert self._cache is not None
        delay = 0.5
        while True:
            pubsub = self._cache.client.pubsub()
            try:
                await pubsub.subscribe(keys.EXCHANGE_RULES_CHANNEL)
                self.subscribed.set()
                self._wake.set()  # notices may have gone by while we were not subscribed
                delay = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        log.debug("exchange rules notice: %s", message.get("data"))
                        self._wake.set()
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed.is_set():
                    log.warning("lost the exchange rules channel (%s): re-subscribing", exc)
                self.subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
