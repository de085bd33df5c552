"""Virtual-account settings, read once at start from ``AEGIS_ACCOUNT_*`` variables.

Declared with the same ``setting(...)`` helper and parsers as :mod:`aegis.config`, and failing the same way: one
line naming the variable and the problem (``AEGIS_ACCOUNT_TAKER_FEE_RATE='abc' is not a number``), exit 2. They
live here until the lead moves them into ``aegis.config.Settings`` (add ``account: AccountSettings``).
Fees, slippage and trigger prices are explained with worked numbers in docs/accounts.md.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aegis.config import bounded, bounded_int, choice, decimal_amount, non_negative_int, positive_float, setting
from aegis.errors import ConfigError


def _rate(raw: Any) -> Decimal:
    """A fraction from 0 to 0.1, kept exact (``0.0005`` = 0.05 %)."""
    bounded(0, 0.1)(raw)  # the same range check and message as the float settings
    return decimal_amount(raw)


def _mmr(raw: Any) -> Decimal:
    bounded(0, 0.5, lo_open=True)(raw)
    return decimal_amount(raw)


@dataclass(frozen=True, slots=True)
class AccountSettings:
    starting_balance: Decimal = setting(
        "AEGIS_ACCOUNT_STARTING_BALANCE",
        Decimal("10000"),
        decimal_amount,
        "Balance (USDT) the learning and paper accounts are created with (a deposit in balance_ledger).",
    )
    taker_fee_rate: Decimal = setting(
        "AEGIS_ACCOUNT_TAKER_FEE_RATE",
        Decimal("0.0005"),
        _rate,
        "Fee rate of market fills: market entries and exits, TP, SL (0.0005 = 0.05 %).",
    )
    maker_fee_rate: Decimal = setting(
        "AEGIS_ACCOUNT_MAKER_FEE_RATE",
        Decimal("0.0002"),
        _rate,
        "Fee rate of limit fills: an OpenPosition entry_price or a ClosePosition price (0.0002 = 0.02 %).",
    )
    slippage_rate: Decimal = setting(
        "AEGIS_ACCOUNT_SLIPPAGE_RATE",
        Decimal("0.0001"),
        _rate,
        "Market fills (and TP/SL) fill this fraction worse than their price (0.0001 = 0.01 %).",
    )
    working_type: str = setting(
        "AEGIS_ACCOUNT_WORKING_TYPE",
        "mark_price",
        choice("mark_price", "contract_price"),
        "Price that triggers TP and SL: mark_price (default) or contract_price (last trade), as Binance's workingType.",
    )
    paper_max_open_positions: int = setting(
        "AEGIS_ACCOUNT_PAPER_MAX_OPEN_POSITIONS",
        3,
        non_negative_int,
        "Safety cap on the paper account's open positions (0 = none; learning has none).",
    )
    default_maint_margin_ratio: Decimal = setting(
        "AEGIS_ACCOUNT_DEFAULT_MAINT_MARGIN_RATIO",
        Decimal("0.01"),
        _mmr,
        "Maintenance margin ratio used for a symbol whose leverage brackets PostgreSQL does not hold (cum 0).",
    )
    batch_max_delay_ms: float = setting(
        "AEGIS_ACCOUNT_BATCH_MAX_DELAY_MS",
        2.0,
        bounded(0, 100),
        "How long an OpenPosition/ClosePosition waits for others to share its transaction (0 = no batching).",
    )
    batch_max_size: int = setting(
        "AEGIS_ACCOUNT_BATCH_MAX_SIZE", 1000, bounded_int(1, 100_000), "Most requests one batch transaction holds."
    )
    brackets_cache_s: float = setting(
        "AEGIS_ACCOUNT_BRACKETS_CACHE_S", 300.0, positive_float, "Seconds leverage brackets are kept in memory."
    )


def load(env: Mapping[str, str] | None = None) -> AccountSettings:
    """Read :class:`AccountSettings` from ``env`` (default: the process environment); raise ConfigError if wrong."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(AccountSettings):
        var = f.metadata["env"]
        if var in env:
            try:
                values[f.name] = f.metadata["parse"](env[var])
            except ValueError as exc:
                raise ConfigError(f"{var}={env[var]!r} {exc}") from None
    return AccountSettings(**values)
