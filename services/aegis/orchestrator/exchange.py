"""The orchestrator's exchange duties: exchange rules (and leverage brackets) and the symbol universe.

Leverage brackets come from ``GET /fapi/v1/leverageBracket``, a SIGNED endpoint: they are fetched only when
``BINANCE_API_KEY`` and ``BINANCE_API_SECRET`` are set. Without keys the refresh stores exchangeInfo alone and
leaves the stored brackets as they are (load them from a file with ``aegis rules load-brackets``). A bracket fetch
that fails does not hold back exchangeInfo: the rules are stored and the failure is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aegis.config import Settings
from aegis.errors import AegisError
from aegis.exchange.rest import BinanceRest
from aegis.exchange.rules import LeverageBracket, load_exchange_info, load_leverage_brackets
from aegis.exchange.rules_store import refresh_rules
from aegis.exchange.trading import BinanceTrading
from aegis.orchestrator import kube, symbols
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database

log = logging.getLogger("aegis.orchestrator.exchange")


class BracketClient(BinanceTrading):
    """The signed client with the one endpoint the orchestrator needs from it."""

    async def leverage_brackets(self) -> Mapping[str, tuple[LeverageBracket, ...]]:
        """``GET /fapi/v1/leverageBracket`` (SIGNED, weight 1): every symbol's tiers."""
        raw = await self._send("GET", "/fapi/v1/leverageBracket", [], weight=1)
        return load_leverage_brackets(raw)


@dataclass(frozen=True, slots=True)
class RulesOutcome:
    symbols: int
    trading: int
    bracket_symbols: int | None
    """Symbols whose brackets were stored; None when brackets were skipped or failed."""
    brackets_note: str
    dry_run: bool

    @property
    def summary(self) -> str:
        verb = "would store" if self.dry_run else "stored"
        text = f"{verb} exchange rules of {self.symbols} symbols ({self.trading} trading)"
        if self.bracket_symbols is not None:
            text += f" and leverage brackets of {self.bracket_symbols} symbols"
        return f"{text}; {self.brackets_note}" if self.brackets_note else text


def has_keys(settings: Settings) -> bool:
    return bool(settings.binance_api_key) and bool(settings.binance_api_secret)


async def refresh_exchange_rules(
    settings: Settings, db: Database, cache: Cache | None, *, dry_run: bool = False
) -> RulesOutcome:
    """Fetch exchangeInfo (and brackets when keys are set), validate them and store them unless ``dry_run``."""
    brackets: Mapping[str, Sequence[LeverageBracket]] | None = None
    note = ""
    async with BinanceRest(settings.feed.rest_url) as rest:
        if has_keys(settings):
            trading = BracketClient(
                settings.feed.rest_url,
                settings.binance_api_key.reveal(),
                settings.binance_api_secret.reveal(),
            )
            try:
                brackets = await trading.leverage_brackets()
            except AegisError as exc:
                note = f"leverage brackets not refreshed: {exc}"
                log.error("%s", note)
            finally:
                await trading.close()
        else:
            note = "leverage brackets skipped: no API keys (the endpoint is signed)"
        if dry_run:
            info = await rest.exchange_info()
            parsed = load_exchange_info(info)
            trading_count = sum(1 for r in parsed.values() if r.is_trading)
            return RulesOutcome(len(parsed), trading_count, len(brackets) if brackets is not None else None, note, True)
        report = await refresh_rules(rest, db, cache, brackets=brackets)
    return RulesOutcome(report.symbols, report.trading, report.bracket_symbols, note, False)


@dataclass(frozen=True, slots=True)
class UniverseOutcome:
    change: symbols.UniverseChange
    shards_needed: int
    scale: kube.ScaleOutcome | None
    scale_note: str
    dry_run: bool

    @property
    def summary(self) -> str:
        c = self.change
        verb = "would follow" if self.dry_run else "follows"
        text = (
            f"universe {verb} {c.included} symbols in {self.shards_needed} shards: {len(c.added)} added, "
            f"{len(c.removed)} removed, {len(c.moved)} moved between shards"
        )
        if self.scale is not None:
            s = self.scale
            if s.changed:
                text += f"; {s.statefulset} {'would scale' if s.dry_run else 'scaled'} from {s.before} to {s.after}"
            else:
                text += f"; {s.statefulset} already has {s.before} pods"
        elif self.scale_note:
            text += f"; {self.scale_note}"
        return text


async def fetch_exchange_info(settings: Settings) -> dict[str, Any]:
    async with BinanceRest(settings.feed.rest_url) as rest:
        return await rest.exchange_info()


async def refresh_universe(
    settings: Settings,
    db: Database,
    kube_client: kube.KubeClient | None,
    *,
    dry_run: bool = False,
    exchange_info: Mapping[str, Any] | None = None,
) -> UniverseOutcome:
    """Recompute the universe and its shards from exchangeInfo, store it, and size the feed-brain StatefulSet."""
    info = exchange_info if exchange_info is not None else await fetch_exchange_info(settings)
    load_exchange_info(info)  # corrupt data is worse than none: refuse an answer that does not parse
    feed = settings.feed
    rows = symbols.plan(info, explicit=feed.symbols, count=feed.symbol_count, shard_size=feed.shard_size)
    if not any(r.active for r in rows):
        raise AegisError("exchangeInfo yields an empty universe: refusing to replace the stored one by nothing")
    change = symbols.compare(await symbols.stored_rows(db), rows)
    if not dry_run and change.rows_changed:
        await symbols.save(db, rows)
    needed = symbols.shards_needed(change.included, feed.shard_size)
    scale, note = None, ""
    if kube_client is None:
        note = "not in a Kubernetes cluster: shard pods are not managed"
    elif not settings.orchestrator.scale_shards:
        note = "shard scaling is off (AEGIS_ORCHESTRATOR_SCALE_SHARDS=false)"
    else:
        scale = await kube.scale_feed_brain(
            kube_client, needed, max_shards=settings.orchestrator.max_shards, dry_run=dry_run
        )
    return UniverseOutcome(change, needed, scale, note, dry_run)
