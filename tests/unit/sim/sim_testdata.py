"""Paths and independent reference code for the simulator tests (a uniquely named module, not conftest, so that
other test folders' conftest files cannot shadow it)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from aegis.sim.config import shared_data_dir

BTC_FILE = shared_data_dir() / "binance" / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"
CCXT_FILE = shared_data_dir() / "binance" / "ccxt" / "binance.json.usdm_httpResponses.transcribed.json"


def direct_minute_aggregation(path: Path) -> dict[int, dict]:
    """Aggregate the recorded trades of one file into 1m bars with plain json + Decimal (independent code)."""
    minutes: dict[int, dict] = defaultdict(lambda: {"trades": []})
    with gzip.open(path, "rt") as handle:
        for line in handle:
            _, _, body = line.rstrip("\n").partition(" ")
            frame = json.loads(body)
            if not frame.get("stream", "").endswith("@trade"):
                continue
            data = frame["data"]
            minutes[data["T"] // 60000 * 60000]["trades"].append(data)
    out = {}
    for start, item in sorted(minutes.items()):
        trades = item["trades"]
        prices = [Decimal(t["p"]) for t in trades]
        out[start] = {
            "open": trades[0]["p"],
            "high": max(prices),
            "low": min(prices),
            "close": trades[-1]["p"],
            "volume": sum(Decimal(t["q"]) for t in trades),
            "quote": sum(Decimal(t["p"]) * Decimal(t["q"]) for t in trades),
            "count": len(trades),
            "taker_buy": sum((Decimal(t["q"]) for t in trades if not t["m"]), Decimal(0)),
            "taker_buy_quote": sum((Decimal(t["p"]) * Decimal(t["q"]) for t in trades if not t["m"]), Decimal(0)),
        }
    return out
