"""Exchange rules at rest: PostgreSQL is the source of truth, Redis a cache and a notice board.

- ``exchange_rules``: one row per symbol holding its exchangeInfo entry as Binance sent it (jsonb). Saving a new
  exchangeInfo replaces the whole set in one transaction: a symbol gone from the exchange is gone here too.
- ``leverage_brackets``: one row per symbol and tier. Saving brackets replaces the whole set the same way.
- Redis: ``aegis:rules:<SYMBOL>`` holds the exchangeInfo entry (TTL :data:`aegis.storage.keys.EXCHANGE_RULES_TTL_S`)
  for readers that want one symbol cheaply; after every save a notice goes out on
  :data:`aegis.storage.keys.EXCHANGE_RULES_CHANNEL`, and the risk service reloads from PostgreSQL when it hears it.

Everything is validated before it is stored (corrupt rules are worse than none): an exchangeInfo or bracket set
that :mod:`aegis.exchange.rules` cannot parse raises :class:`ValidationError` and nothing is written.

:func:`refresh_rules` is what the orchestrator calls on its schedule. ``/fapi/v1/leverageBracket`` is a SIGNED
endpoint: until live execution brings signed requests, brackets come from a file (``aegis rules load-brackets``)
or are passed in by a caller that fetched them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from aegis.errors import ValidationError
from aegis.exchange.rules import LeverageBracket, SymbolRules, load_exchange_info, load_leverage_brackets
from aegis.storage import keys

if TYPE_CHECKING:
    from aegis.exchange.rest import BinanceRest
    from aegis.storage.cache import Cache
    from aegis.storage.postgres import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RulesSnapshot:
    """Every symbol's rules as stored, with its brackets attached, and when each symbol was fetched."""

    rules: Mapping[str, SymbolRules]
    fetched_at: Mapping[str, dt.datetime]
    version: str
    """Changes whenever a save changed either table (see :func:`rules_version`)."""

    @property
    def bracket_symbols(self) -> int:
        return sum(1 for r in self.rules.values() if r.brackets)


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What :func:`refresh_rules` did."""

    symbols: int
    trading: int
    bracket_symbols: int | None
    """Symbols whose brackets were saved; None when no brackets were given."""
    fetched_at: dt.datetime
    cached: bool
    notified: bool


def _entries(info: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(raw["symbol"]): raw for raw in info["symbols"]}


async def save_exchange_info(
    db: Database, info: Mapping[str, Any], *, fetched_at: dt.datetime | None = None, source: str = "exchangeInfo"
) -> int:
    """Replace the stored exchangeInfo by ``info`` (the parsed response); return the number of symbols saved."""
    load_exchange_info(info)  # validate every entry first: raises ValidationError, nothing written
    entries = _entries(info)
    if not entries:
        raise ValidationError("exchange_info.symbols", "is empty: refusing to replace the stored rules by nothing")
    when = fetched_at or dt.datetime.now(dt.UTC)
    rows = [(symbol, json.dumps(raw, separators=(",", ":")), source, when) for symbol, raw in entries.items()]
    async with db.connection() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO exchange_rules (symbol, rules, source, fetched_at) VALUES ($1, $2::jsonb, $3, $4) "
            "ON CONFLICT (symbol) DO UPDATE SET rules = EXCLUDED.rules, source = EXCLUDED.source, "
            "fetched_at = EXCLUDED.fetched_at",
            rows,
        )
        await conn.execute("DELETE FROM exchange_rules WHERE NOT (symbol = ANY($1::text[]))", list(entries))
    return len(rows)


async def save_brackets(
    db: Database, brackets: Mapping[str, Sequence[LeverageBracket]], *, fetched_at: dt.datetime | None = None
) -> int:
    """Replace every stored leverage bracket by ``brackets`` (as :func:`load_leverage_brackets` returns them).

    Return the number of symbols saved.
    """
    if not brackets:
        raise ValidationError("leverage_brackets", "is empty: refusing to replace the stored brackets by nothing")
    when = fetched_at or dt.datetime.now(dt.UTC)
    rows = [
        (symbol, b.bracket, b.initial_leverage, b.notional_floor, b.notional_cap, b.maint_margin_ratio, b.cum, when)
        for symbol, tiers in brackets.items()
        for b in tiers
    ]
    async with db.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM leverage_brackets")
        await conn.copy_records_to_table(
            "leverage_brackets",
            records=rows,
            columns=[
                "symbol",
                "bracket",
                "initial_leverage",
                "notional_floor",
                "notional_cap",
                "maint_margin_ratio",
                "cum",
                "fetched_at",
            ],
        )
    return len(brackets)


async def rules_version(db: Database) -> str:
    """Return a fingerprint of both tables that changes whenever a save changed them (one cheap query)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM exchange_rules) AS n, (SELECT max(fetched_at) FROM exchange_rules) AS t, "
            "(SELECT count(*) FROM leverage_brackets) AS bn, (SELECT max(fetched_at) FROM leverage_brackets) AS bt"
        )
    stamp = [row["n"], row["t"].isoformat() if row["t"] else "", row["bn"], row["bt"].isoformat() if row["bt"] else ""]
    return "|".join(str(part) for part in stamp)


async def stored_counts(db: Database) -> tuple[int, int]:
    """Return (symbols with exchange rules, symbols with brackets) in PostgreSQL."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM exchange_rules) AS n, "
            "(SELECT count(DISTINCT symbol) FROM leverage_brackets) AS b"
        )
    return int(row["n"]), int(row["b"])


async def load_rules(db: Database) -> RulesSnapshot:
    """Return every stored symbol's rules with its brackets attached.

    A row that no longer parses (someone edited the table by hand) is left out with an error in the log, so one
    bad symbol does not take the others down; a symbol whose stored tiers are inconsistent keeps no brackets (and
    risk refuses to trade it).
    """
    version = await rules_version(db)
    async with db.connection() as conn:
        rule_rows = await conn.fetch("SELECT symbol, rules::text AS rules, fetched_at FROM exchange_rules")
        bracket_rows = await conn.fetch(
            "SELECT symbol, bracket, initial_leverage, notional_floor, notional_cap, maint_margin_ratio, cum "
            "FROM leverage_brackets ORDER BY symbol, bracket"
        )
    tiers: dict[str, list[LeverageBracket]] = {}
    for row in bracket_rows:
        tiers.setdefault(row["symbol"], []).append(
            LeverageBracket(
                bracket=row["bracket"],
                initial_leverage=row["initial_leverage"],
                notional_floor=row["notional_floor"],
                notional_cap=row["notional_cap"],
                maint_margin_ratio=row["maint_margin_ratio"],
                cum=row["cum"],
            )
        )
    rules: dict[str, SymbolRules] = {}
    fetched: dict[str, dt.datetime] = {}
    for row in rule_rows:
        symbol = row["symbol"]
        try:
            parsed = SymbolRules.from_binance(json.loads(row["rules"]))
        except (ValidationError, ValueError) as exc:
            log.error("stored exchange rules of %s do not parse, leaving the symbol out: %s", symbol, exc)
            continue
        if symbol in tiers:
            try:
                parsed = parsed.with_brackets(tiers[symbol])
            except ValidationError as exc:
                log.error("stored leverage brackets of %s are inconsistent, ignoring them: %s", symbol, exc)
        rules[symbol] = parsed
        fetched[symbol] = row["fetched_at"]
    return RulesSnapshot(MappingProxyType(rules), MappingProxyType(fetched), version)


async def cache_rules(cache: Cache, info: Mapping[str, Any]) -> None:
    """Write every symbol's exchangeInfo entry to Redis with its TTL."""
    pipe = cache.client.pipeline(transaction=False)
    for symbol, raw in _entries(info).items():
        pipe.set(keys.exchange_rules(symbol), json.dumps(raw, separators=(",", ":")), ex=keys.EXCHANGE_RULES_TTL_S)
    await pipe.execute()


async def cached_symbol_rules(cache: Cache, symbol: str) -> SymbolRules | None:
    """Return one symbol's rules from the Redis cache (without brackets), or None when not cached."""
    raw = await cache.client.get(keys.exchange_rules(symbol))
    return None if raw is None else SymbolRules.from_binance(json.loads(raw))


async def publish_rules_updated(cache: Cache, notice: Mapping[str, Any]) -> int:
    """Announce new rules on :data:`keys.EXCHANGE_RULES_CHANNEL`; return how many subscribers heard it."""
    return int(await cache.client.publish(keys.EXCHANGE_RULES_CHANNEL, json.dumps(dict(notice))))


async def _announce(
    cache: Cache | None, info: Mapping[str, Any] | None, notice: Mapping[str, Any]
) -> tuple[bool, bool]:
    """Cache and notify; Redis trouble is logged, not raised: PostgreSQL holds the rules and readers also poll."""
    if cache is None:
        return False, False
    cached = notified = False
    try:
        if info is not None:
            await cache_rules(cache, info)
            cached = True
        await publish_rules_updated(cache, notice)
        notified = True
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("exchange rules saved, but Redis did not take the cache or the notice: %s", exc)
    return cached, notified


async def save_and_announce(
    db: Database,
    cache: Cache | None,
    *,
    info: Mapping[str, Any] | None = None,
    brackets: Mapping[str, Sequence[LeverageBracket]] | None = None,
    source: str = "exchangeInfo",
) -> RefreshReport:
    """Save exchangeInfo and/or brackets to PostgreSQL, then cache and announce them in Redis."""
    when = dt.datetime.now(dt.UTC)
    symbols = trading = 0
    if info is not None:
        symbols = await save_exchange_info(db, info, fetched_at=when, source=source)
        trading = sum(1 for r in load_exchange_info(info).values() if r.is_trading)
    bracket_symbols = await save_brackets(db, brackets, fetched_at=when) if brackets is not None else None
    notice = {
        "symbols": symbols,
        "trading": trading,
        "bracket_symbols": bracket_symbols,
        "fetched_at": when.isoformat(),
        "source": source,
    }
    cached, notified = await _announce(cache, info, notice)
    log.info(
        "exchange rules saved",
        extra={"symbols": symbols, "bracket_symbols": bracket_symbols, "source": source, "notified": notified},
    )
    return RefreshReport(symbols, trading, bracket_symbols, when, cached, notified)


async def refresh_rules(
    rest: BinanceRest,
    db: Database,
    cache: Cache | None,
    *,
    brackets: Mapping[str, Sequence[LeverageBracket]] | None = None,
) -> RefreshReport:
    """Fetch exchangeInfo, store it (and ``brackets`` when given), cache it and announce it.

    The orchestrator calls this on its schedule; the risk service calls it once at start when PostgreSQL holds no
    rules yet. Raises ExchangeError/RateLimited when the exchange does not answer and ValidationError when its
    answer does not parse; PostgreSQL errors raise DependencyUnavailable. Nothing is half-written.
    """
    info = await rest.exchange_info()
    return await save_and_announce(db, cache, info=info, brackets=brackets, source=f"exchangeInfo {rest.base_url}")


async def store_exchange_info_file(db: Database, cache: Cache | None, file: str | Path) -> RefreshReport:
    """Store an exchangeInfo JSON file (``aegis rules load FILE``)."""
    path = Path(file)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError("exchange_info", f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValidationError("exchange_info", f"{path} is not JSON: {exc}") from None
    if not isinstance(info, Mapping) or not isinstance(info.get("symbols"), list):
        raise ValidationError("exchange_info", f"{file} has no 'symbols' list")
    return await save_and_announce(db, cache, info=info, source=f"file {Path(file).name}")


async def store_brackets_file(db: Database, cache: Cache | None, file: str | Path) -> RefreshReport:
    """Store a leverage-tiers JSON file (``aegis rules load-brackets FILE``): the raw ``/fapi/v1/leverageBracket``
    answer or a ccxt/freqtrade ``binance_leverage_tiers.json``."""
    return await save_and_announce(db, cache, brackets=load_leverage_brackets(file), source=f"file {Path(file).name}")
