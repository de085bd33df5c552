"""The brain's own settings, read once at start from ``AEGIS_BRAIN_*`` variables.

Declared with the same ``setting(...)`` helper and parsers as :mod:`aegis.config`, and failing the same way: one
line naming the variable and the problem (``AEGIS_BRAIN_HISTORY_CANDLES='abc' is not a whole number``), exit 2.
They live here rather than in ``aegis.config.Settings`` until the brain's configuration is settled; moving them
there is a matter of adding ``brain: BrainSettings`` to ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aegis.config import boolean, choice, non_negative_float, positive_float, positive_int, setting, text
from aegis.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BrainSettings:
    hydrate_candles: int = setting(
        "AEGIS_BRAIN_HYDRATE_CANDLES",
        500,
        positive_int,
        "Candles per symbol and timeframe loaded at a cold start (PostgreSQL, then Binance REST).",
    )
    history_candles: int = setting(
        "AEGIS_BRAIN_HISTORY_CANDLES",
        1024,
        positive_int,
        "Candles per symbol and timeframe kept in memory (GetMarketState, recent ListCandles).",
    )
    batch_records: int = setting(
        "AEGIS_BRAIN_BATCH_RECORDS", 4096, positive_int, "Ring records the brain reads per batch at most."
    )
    idle_sleep_s: float = setting(
        "AEGIS_BRAIN_IDLE_SLEEP_S", 0.002, positive_float, "Pause of the ring consumer when nothing is published."
    )
    attach_interval_s: float = setting(
        "AEGIS_BRAIN_ATTACH_INTERVAL_S", 0.5, positive_float, "How often the brain looks for the feed's ring file."
    )
    quiet_close_s: float = setting(
        "AEGIS_BRAIN_QUIET_CLOSE_S",
        10.0,
        non_negative_float,
        "Close a live candle this long after its end when nothing closed it (quiet symbol); 0 = never.",
    )
    write_batch_rows: int = setting(
        "AEGIS_BRAIN_WRITE_BATCH_ROWS", 1000, positive_int, "Closed candles per PostgreSQL write at most."
    )
    write_interval_s: float = setting(
        "AEGIS_BRAIN_WRITE_INTERVAL_S", 0.2, positive_float, "How long closed candles gather before a write."
    )
    retry_max_s: float = setting(
        "AEGIS_BRAIN_RETRY_MAX_S", 5.0, positive_float, "Longest wait between write retries while storage is down."
    )
    rest_timeout_s: float = setting(
        "AEGIS_BRAIN_REST_TIMEOUT_S", 5.0, positive_float, "Timeout of one Binance REST call during hydration."
    )
    status_interval_s: float = setting(
        "AEGIS_BRAIN_STATUS_INTERVAL_S", 5.0, positive_float, "How often the brain publishes its status to Redis."
    )
    stale_candle_s: float = setting(
        "AEGIS_BRAIN_STALE_CANDLE_S",
        60.0,
        non_negative_float,
        "A live candle that closed longer ago than this (re-read from the ring after a restart, backfilled) "
        "updates the strategy but emits no signal; 0 = no limit. Replayed candles are exempt.",
    )
    signal_memory: int = setting(
        "AEGIS_BRAIN_SIGNAL_MEMORY", 10_000, positive_int, "Newest signals kept in memory for ListSignals."
    )
    stream_queue: int = setting(
        "AEGIS_BRAIN_STREAM_QUEUE",
        256,
        positive_int,
        "Signals a StreamSignals subscriber may have waiting before it is dropped (RESOURCE_EXHAUSTED).",
    )
    execution: bool = setting(
        "AEGIS_BRAIN_EXECUTION",
        True,
        boolean,
        "Send signals to the accounts (learning, and paper after RiskService); false = signals only.",
    )
    learning_account: str = setting(
        "AEGIS_BRAIN_LEARNING_ACCOUNT", "learning", text, "Account that takes every signal (training data)."
    )
    paper_account: str = setting(
        "AEGIS_BRAIN_PAPER_ACCOUNT", "paper", text, "Account that takes the signals risk approves in paper mode."
    )
    resume_window_s: float = setting(
        "AEGIS_BRAIN_RESUME_WINDOW_S",
        300.0,
        non_negative_float,
        "At start, stored signals of the brain's symbols created less than this long ago and without a position "
        "on the learning account (a kill between storing and opening them) are executed again; 0 = none.",
    )
    execution_queue: int = setting(
        "AEGIS_BRAIN_EXECUTION_QUEUE",
        1024,
        positive_int,
        "Signals waiting for execution at most; more are counted as dropped, never block the ring consumer.",
    )
    execution_concurrency: int = setting(
        "AEGIS_BRAIN_EXECUTION_CONCURRENCY", 4, positive_int, "Signals (and orders) executed at the same time."
    )
    call_timeout_s: float = setting(
        "AEGIS_BRAIN_CALL_TIMEOUT_S", 3.0, positive_float, "Deadline of one RiskService or VirtualAccountService call."
    )
    call_retries: int = setting(
        "AEGIS_BRAIN_CALL_RETRIES",
        5,
        positive_int,
        "Attempts of a call that fails with UNAVAILABLE or DEADLINE_EXCEEDED (idempotency keys make it safe).",
    )
    retry_base_s: float = setting(
        "AEGIS_BRAIN_RETRY_BASE_S", 0.1, positive_float, "First backoff between call attempts (doubles, capped at 2 s)."
    )
    tick_interval_ms: float = setting(
        "AEGIS_BRAIN_TICK_INTERVAL_MS",
        25.0,
        positive_float,
        "While the brain is behind the ring (a burst), tick updates go on the bus at most this often (merged per "
        "symbol, no trade lost); when it has caught up, after every batch.",
    )
    price_push_ms: float = setting(
        "AEGIS_BRAIN_PRICE_PUSH_MS",
        100.0,
        positive_float,
        "How often conflated prices (latest, plus high/low since the last push) go to ApplyPriceUpdates "
        "(with AEGIS_CLOCK=record: windows of record time).",
    )
    mark_price_source: str = setting(
        "AEGIS_BRAIN_MARK_PRICE_SOURCE",
        "mark",
        choice("mark", "last"),
        "Price sent as the mark price to virtual-account and risk: mark (the markPrice stream) or last (the last "
        "trade; `aegis replay` sets it for recordings without markPrice, and says so in its report).",
    )


def load(env: Mapping[str, str] | None = None) -> BrainSettings:
    """Read :class:`BrainSettings` from ``env`` (default: the process environment); raise ConfigError if wrong."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(BrainSettings):
        var = f.metadata["env"]
        if var in env:
            try:
                values[f.name] = f.metadata["parse"](env[var])
            except ValueError as exc:
                raise ConfigError(f"{var}={env[var]!r} {exc}") from None
    return BrainSettings(**values)
