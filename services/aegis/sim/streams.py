"""Stream names: which are valid, and which URL path (``/public`` or ``/market``) carries each.

Since 2026-04-23 Binance splits USD-M market streams by path: ``/public`` carries the order book streams
(``bookTicker``, ``depth*``), ``/market`` the rest (``aggTrade``, ``trade``, ``markPrice``, ``kline``,
``forceOrder``, tickers). A stream requested on the wrong path is accepted but never receives a frame.
"""

from __future__ import annotations

import re
from typing import Literal

Category = Literal["public", "market"]

_INTERVALS = "1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_SYMBOL_STREAM = re.compile(
    r"^[a-z0-9_]+@("
    r"(?P<public>bookTicker|depth(?:5|10|20)?(?:@(?:0|100|250|500)ms)?)"
    r"|(?P<market>aggTrade|trade|markPrice(?:@1s)?|kline_(?:" + _INTERVALS + r")|forceOrder|miniTicker|ticker"
    r"|continuousKline_(?:" + _INTERVALS + r")|compositeIndex|assetIndex)"
    r")$"
)
_ALL_STREAM = re.compile(
    r"^!(?:(?P<public>bookTicker)|(?P<market>markPrice@arr(?:@1s)?|forceOrder@arr|miniTicker@arr|ticker@arr"
    r"|contractInfo|assetIndex@arr))$"
)


def normalise(name: str) -> str:
    """Lower-case the symbol part the way Binance accepts ``BTCUSDT@aggTrade`` as ``btcusdt@aggTrade``."""
    if "@" in name and not name.startswith("!"):
        symbol, _, rest = name.partition("@")
        return f"{symbol.lower()}@{rest}"
    return name


def category(name: str) -> Category | None:
    """Return the path that carries stream ``name``, or None when the name is not a valid stream."""
    match = _SYMBOL_STREAM.match(name) or _ALL_STREAM.match(name)
    if match is None:
        return None
    return "public" if match.group("public") else "market"
