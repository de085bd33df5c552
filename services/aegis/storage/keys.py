"""Every Redis key AEGIS uses, with its time to live, in one place.

Redis holds only what can be lost or rebuilt (latest values, notices, caches); PostgreSQL is the source of truth.
"""

from __future__ import annotations

PREFIX = "aegis"

LATEST_OHLCV_TTL_S = 3600
"""Latest OHLCV per symbol and timeframe lives one hour: a stale candle must disappear rather than mislead."""

EXCHANGE_RULES_TTL_S = 6 * 3600
"""Cached exchangeInfo rules; the orchestrator refreshes them well within this."""

SERVICE_STATUS_TTL_S = 30
"""A service's published status; it expires soon after the service stops publishing."""

MODEL_PROMOTED_CHANNEL = f"{PREFIX}:models:promoted"
"""Pub/sub channel on which the trainer announces a newly active model version (PostgreSQL holds the model)."""

EXCHANGE_RULES_CHANNEL = f"{PREFIX}:rules:updated"
"""Pub/sub channel on which the orchestrator announces refreshed exchange rules."""


def latest_ohlcv(symbol: str, timeframe: str) -> str:
    """Hash of the latest candle of ``symbol`` on ``timeframe`` (TTL :data:`LATEST_OHLCV_TTL_S`)."""
    return f"{PREFIX}:ohlcv:{symbol}:{timeframe}"


def exchange_rules(symbol: str) -> str:
    """JSON of the exchangeInfo entry of ``symbol`` (TTL :data:`EXCHANGE_RULES_TTL_S`)."""
    return f"{PREFIX}:rules:{symbol}"


def service_status(service: str, instance: str) -> str:
    """JSON status a service instance publishes for the orchestrator (TTL :data:`SERVICE_STATUS_TTL_S`)."""
    return f"{PREFIX}:status:{service}:{instance}"


def leader(role: str) -> str:
    """Key naming the current leader of ``role`` (informational; election itself uses PostgreSQL locks)."""
    return f"{PREFIX}:leader:{role}"
