"""Load the recordings into one time-ordered timeline of stream frames, plus what the REST views need.

Two sources:

* hftbacktest files (``<local_ns> <json>`` per line, combined-stream frames of ``<sym>@trade``, ``<sym>@bookTicker``
  and ``<sym>@depth@0ms``; one line is a REST depth snapshot). The recorded frames are served byte for byte.
  From the trades we DERIVE ``<sym>@aggTrade`` (one per trade), ``<sym>@kline_1m`` (an ``x:false`` update at most
  every 250 ms of exchange time while trades arrive, an ``x:true`` bar at each minute boundary) and
  ``<sym>@markPrice@1s`` (last trade price, once per recorded second). The same pass yields the 1m bars the REST
  klines serve, so a client that missed stream data can backfill exactly what the stream carried.
* 1m kline CSVs (``open_time,open,high,low,close,volume,taker_buy_base_asset_volume``): the timeline is one closed
  ``<sym>@kline_1m`` frame per minute.

The result is immutable and cached per set of inputs, so many simulators in one test session load it once.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import gzip
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np

from aegis.sim.klines import MINUTE_MS, Bar, Precision, Trade, bar_from_trades, kline_event

FUNDING_INTERVAL_MS = 8 * 3600 * 1000
KLINE_PUSH_MS = 250
"""Binance pushes kline updates every 250 ms; derived ``x:false`` updates follow the same cadence."""
CLOSE_GRACE_MS = 1000
"""A minute closes on the first trade after it, or on any frame this long after its end (late trades)."""

_ENCODER = msgspec.json.Encoder()


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Event(msgspec.Struct):
    E: int = 0


class _TradeData(msgspec.Struct):
    E: int
    T: int
    s: str
    t: int
    p: str
    q: str
    m: bool
    X: str = "MARKET"


class _BookTickerData(msgspec.Struct):
    E: int
    T: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _DepthData(msgspec.Struct):
    E: int
    T: int
    s: str
    U: int
    u: int
    pu: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class DepthUpdate(msgspec.Struct, frozen=True):
    first_id: int
    last_id: int
    time_ms: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class BookTicker(msgspec.Struct, frozen=True):
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    time_ms: int


@dataclass(frozen=True)
class Timeline:
    """Every frame the simulator can send, in replay order. ``frames[i]`` is the combined-stream text."""

    local_ns: np.ndarray
    exch_ms: np.ndarray
    streams: list[str]
    frames: list[str]
    recorded: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def raw(self, index: int) -> str:
        """Return the payload alone (what ``/ws/<stream>`` sends): the frame without its envelope."""
        return self.frames[index][20 + len(self.streams[index]) : -1]


@dataclass(frozen=True)
class SymbolTape:
    """What the REST views of one symbol need, each item tagged with its timeline index."""

    symbol: str
    precision: Precision
    trades: list[Trade] = field(default_factory=list)
    trade_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bars: list[Bar] = field(default_factory=list)
    """Closed 1m bars in time order."""
    bar_close_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Timeline index at which each bar is closed (its ``x:true`` frame)."""
    bar_trade_end: list[int] = field(default_factory=list)
    """Number of trades up to and including each closed bar."""
    bars_from_trades: bool = True
    """False for CSV bars: the open bar is then shown flat at its open (the CSV has no intra-minute data)."""
    snapshot: dict | None = None
    snapshot_index: int = 0
    depth_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    depth_updates: list[DepthUpdate] = field(default_factory=list)
    ticker_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tickers: list[BookTicker] = field(default_factory=list)
    late_trades: int = 0
    """Trades whose time fell in an already closed minute (kept in the open bar, on stream and REST alike)."""


@dataclass(frozen=True)
class Market:
    kind: str
    timeline: Timeline
    tapes: dict[str, SymbolTape]
    start_index: int
    fingerprint: str
    line_counts: dict[str, dict[str, int]]
    """Per input file: ``lines``, ``stream_frames``, ``snapshots`` (hftbacktest) or ``rows`` (CSV)."""

    def first_exch_ms(self) -> int:
        return int(self.timeline.exch_ms[0]) if len(self.timeline) else 0


# ----------------------------------------------------------------------------------------------- helpers


def frame_text(stream: str, payload: dict | list) -> str:
    return '{"stream":"' + stream + '","data":' + _ENCODER.encode(payload).decode() + "}"


def precisions(exchange_info: dict) -> dict[str, Precision]:
    return {
        s["symbol"]: Precision.of(int(s.get("pricePrecision", 2)), int(s.get("quantityPrecision", 3)))
        for s in exchange_info.get("symbols", [])
    }


@functools.lru_cache(maxsize=4)
def load_exchange_info(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _fingerprint(paths: Iterable[Path], extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{Path(path).name}:{stat.st_size}".encode())
    return digest.hexdigest()[:16]


class _BarBuilder:
    """The open 1m bar, accumulated trade by trade (same result as ``bar_from_trades`` over its trades)."""

    def __init__(self, open_time: int) -> None:
        self.open_time = open_time
        self.trades: list[Trade] = []
        self._high = self._low = Decimal(0)
        self._volume = self._quote = self._taker_volume = self._taker_quote = Decimal(0)

    def add(self, trade: Trade) -> None:
        notional = trade.price * trade.qty
        if not self.trades:
            self._high = self._low = trade.price
            self._volume, self._quote = trade.qty, notional
        else:
            self._high = max(self._high, trade.price)
            self._low = min(self._low, trade.price)
            self._volume += trade.qty
            self._quote += notional
        if not trade.buyer_is_maker:
            self._taker_volume += trade.qty
            self._taker_quote += notional
        self.trades.append(trade)

    def bar(self, previous_close: Decimal | None) -> Bar:
        if not self.trades:
            return bar_from_trades(self.open_time, self.trades, previous_close)
        first, last = self.trades[0], self.trades[-1]
        return Bar(
            self.open_time,
            MINUTE_MS,
            first.price,
            self._high,
            self._low,
            last.price,
            self._volume,
            self._quote,
            len(self.trades),
            self._taker_volume,
            self._taker_quote,
            first.trade_id,
            last.trade_id,
        )


class _Pending:
    """Events of one input file in file order: (local_ns, exch_ms, stream, text, recorded)."""

    def __init__(self) -> None:
        self.local_ns: list[int] = []
        self.exch_ms: list[int] = []
        self.streams: list[str] = []
        self.frames: list[str] = []
        self.recorded: list[bool] = []

    def add(self, local_ns: int, exch_ms: int, stream: str, text: str, recorded: bool) -> int:
        self.local_ns.append(local_ns)
        self.exch_ms.append(exch_ms)
        self.streams.append(stream)
        self.frames.append(text)
        self.recorded.append(recorded)
        return len(self.frames) - 1


# ------------------------------------------------------------------------------------ hftbacktest source


def _derive_file(path: Path, precision_of: dict[str, Precision], funding_rate: str) -> tuple[_Pending, dict]:
    """Read one hftbacktest file; return its events and the tape parts, indices local to the file."""
    envelope = msgspec.json.Decoder(_Envelope)
    decode_trade = msgspec.json.Decoder(_TradeData)
    decode_ticker = msgspec.json.Decoder(_BookTickerData)
    decode_depth = msgspec.json.Decoder(_DepthData)
    decode_event = msgspec.json.Decoder(_Event)

    out = _Pending()
    symbol: str | None = None
    precision = Precision()
    trades: list[Trade] = []
    trade_seq: list[int] = []
    bars: list[Bar] = []
    bar_close_seq: list[int] = []
    bar_trade_end: list[int] = []
    depth_seq: list[int] = []
    depth_updates: list[DepthUpdate] = []
    ticker_seq: list[int] = []
    tickers: list[BookTicker] = []
    snapshot: dict | None = None
    snapshot_ns = 0
    lines = frames = snapshots = late = 0

    builder: _BarBuilder | None = None
    previous_close: Decimal | None = None
    last_price: str | None = None
    last_mark_second = -1
    last_push_ms = -(10**15)
    kline_stream = mark_stream = agg_stream = ""

    def close_until(minute: int, local_ns: int, exch_ms: int) -> None:
        nonlocal builder, previous_close
        while builder is not None and builder.open_time < minute:
            bar = builder.bar(previous_close)
            payload = kline_event(symbol, "1m", bar, True, exch_ms, precision)  # type: ignore[arg-type]
            bar_close_seq.append(out.add(local_ns, exch_ms, kline_stream, frame_text(kline_stream, payload), False))
            bars.append(bar)
            bar_trade_end.append(len(trades))
            previous_close = bar.close
            builder = _BarBuilder(builder.open_time + MINUTE_MS)

    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            lines += 1
            ns_text, _, body = line.partition(" ")
            local_ns = int(ns_text)
            if body.startswith('{"lastUpdateId"'):
                snapshots += 1
                snapshot = json.loads(body)
                snapshot_ns = local_ns
                continue
            frames += 1
            env = envelope.decode(body)
            stream = sys.intern(env.stream)
            if not (body.startswith('{"stream":"' + stream + '","data":') and body.endswith("}")):
                body = frame_text(stream, msgspec.json.decode(env.data))  # normalise a frame we cannot slice
            kind = stream.split("@", 1)[1]
            if symbol is None:
                symbol = msgspec.json.decode(env.data)["s"]
                precision = precision_of.get(symbol, Precision())
                low = symbol.lower()
                kline_stream = sys.intern(f"{low}@kline_1m")
                mark_stream = sys.intern(f"{low}@markPrice@1s")
                agg_stream = sys.intern(f"{low}@aggTrade")

            trade = decode_trade.decode(env.data) if kind == "trade" else None
            exch_ms = trade.E if trade is not None else decode_event.decode(env.data).E

            # Minute boundaries: a trade of a later minute closes the open bar; so does any frame well after it.
            if builder is not None:
                trade_minute = trade.T - trade.T % MINUTE_MS if trade is not None else None
                if trade_minute is not None and trade_minute > builder.open_time:
                    close_until(trade_minute, local_ns, exch_ms)
                elif exch_ms - CLOSE_GRACE_MS >= builder.open_time + MINUTE_MS:
                    late_minute = exch_ms - CLOSE_GRACE_MS
                    close_until(late_minute - late_minute % MINUTE_MS, local_ns, exch_ms)
            # Mark price once per recorded second, from the last trade price.
            second = exch_ms // 1000
            if last_price is not None and second > last_mark_second:
                last_mark_second = second
                mark = format(Decimal(last_price).quantize(Decimal("0.00000001")), "f")
                payload = {
                    "e": "markPriceUpdate",
                    "E": exch_ms,
                    "s": symbol,
                    "p": mark,
                    "P": mark,
                    "i": mark,
                    "r": funding_rate,
                    "T": (exch_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS,
                }
                out.add(local_ns, exch_ms, mark_stream, frame_text(mark_stream, payload), False)

            seq = out.add(local_ns, exch_ms, stream, body, True)

            if trade is not None:
                item = Trade(trade.t, trade.T, Decimal(trade.p), Decimal(trade.q), trade.m)
                trades.append(item)
                trade_seq.append(seq)
                last_price = trade.p
                if builder is None:
                    builder = _BarBuilder(trade.T - trade.T % MINUTE_MS)
                elif trade.T - builder.open_time < 0:  # its minute is already closed
                    late += 1
                first_of_minute = not builder.trades
                builder.add(item)
                if trade.X == "MARKET":
                    agg = {
                        "e": "aggTrade",
                        "E": trade.E,
                        "a": trade.t,
                        "s": trade.s,
                        "p": trade.p,
                        "q": trade.q,
                        "f": trade.t,
                        "l": trade.t,
                        "T": trade.T,
                        "m": trade.m,
                    }
                    out.add(local_ns, exch_ms, agg_stream, frame_text(agg_stream, agg), False)
                if first_of_minute or exch_ms - last_push_ms >= KLINE_PUSH_MS:
                    last_push_ms = exch_ms
                    payload = kline_event(symbol, "1m", builder.bar(previous_close), False, exch_ms, precision)
                    out.add(local_ns, exch_ms, kline_stream, frame_text(kline_stream, payload), False)
            elif kind == "bookTicker":
                t = decode_ticker.decode(env.data)
                ticker_seq.append(seq)
                tickers.append(BookTicker(t.b, t.B, t.a, t.A, t.T))
            elif kind.startswith("depth"):
                d = decode_depth.decode(env.data)
                depth_seq.append(seq)
                depth_updates.append(DepthUpdate(d.U, d.u, d.T, d.b, d.a))

    parts = {
        "symbol": symbol,
        "precision": precision,
        "trades": trades,
        "trade_seq": trade_seq,
        "bars": bars,
        "bar_close_seq": bar_close_seq,
        "bar_trade_end": bar_trade_end,
        "snapshot": snapshot,
        "snapshot_ns": snapshot_ns,
        "depth_seq": depth_seq,
        "depth_updates": depth_updates,
        "ticker_seq": ticker_seq,
        "tickers": tickers,
        "late": late,
        "counts": {"lines": lines, "stream_frames": frames, "snapshots": snapshots},
    }
    return out, parts


def _merge(pendings: list[_Pending]) -> tuple[Timeline, list[np.ndarray]]:
    """Merge the files' events by recorded local time; return the timeline and, per file, seq -> global index."""
    local = np.concatenate([np.asarray(p.local_ns, dtype=np.int64) for p in pendings])
    file_no = np.concatenate([np.full(len(p.frames), i, dtype=np.int64) for i, p in enumerate(pendings)])
    seq = np.concatenate([np.arange(len(p.frames), dtype=np.int64) for p in pendings])
    order = np.lexsort((seq, file_no, local))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    exch = np.concatenate([np.asarray(p.exch_ms, dtype=np.int64) for p in pendings])
    streams = [s for p in pendings for s in p.streams]
    frames = [f for p in pendings for f in p.frames]
    recorded = np.concatenate([np.asarray(p.recorded, dtype=bool) for p in pendings])
    timeline = Timeline(
        local_ns=local[order],
        exch_ms=exch[order],
        streams=[streams[i] for i in order],
        frames=[frames[i] for i in order],
        recorded=recorded[order],
    )
    offsets = np.cumsum([0] + [len(p.frames) for p in pendings])
    return timeline, [rank[offsets[i] : offsets[i + 1]] for i in range(len(pendings))]


@functools.lru_cache(maxsize=4)
def load_recordings(paths: tuple[Path, ...], exchange_info: Path, funding_rate: str) -> Market:
    """Load hftbacktest recordings, derive the extra streams and bars, and merge the files in time order."""
    precision_of = precisions(load_exchange_info(exchange_info))
    pendings: list[_Pending] = []
    all_parts: list[dict] = []
    for path in paths:
        pending, parts = _derive_file(Path(path), precision_of, funding_rate)
        pendings.append(pending)
        all_parts.append(parts)
    timeline, ranks = _merge(pendings)
    tapes: dict[str, SymbolTape] = {}
    counts: dict[str, dict[str, int]] = {}
    for path, parts, rank in zip(paths, all_parts, ranks, strict=True):
        counts[Path(path).name] = parts["counts"]
        if parts["symbol"] is None:
            continue

        def to_global(seqs: list[int], rank: np.ndarray = rank) -> np.ndarray:
            return rank[np.asarray(seqs, dtype=np.int64)] if seqs else np.zeros(0, np.int64)

        snapshot_index = int(np.searchsorted(timeline.local_ns, parts["snapshot_ns"], side="right"))
        tapes[parts["symbol"]] = SymbolTape(
            symbol=parts["symbol"],
            precision=parts["precision"],
            trades=parts["trades"],
            trade_index=to_global(parts["trade_seq"]),
            bars=parts["bars"],
            bar_close_index=to_global(parts["bar_close_seq"]),
            bar_trade_end=parts["bar_trade_end"],
            snapshot=parts["snapshot"],
            snapshot_index=snapshot_index,
            depth_index=to_global(parts["depth_seq"]),
            depth_updates=parts["depth_updates"],
            ticker_index=to_global(parts["ticker_seq"]),
            tickers=parts["tickers"],
            late_trades=parts["late"],
        )
    fingerprint = _fingerprint(paths, f"recording:{funding_rate}")
    return Market("recording", timeline, tapes, 0, fingerprint, counts)


# -------------------------------------------------------------------------------------------- CSV source


def _read_csv_bars(path: Path, precision: Precision) -> list[Bar]:
    bars: list[Bar] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            open_time = int(dt.datetime.fromisoformat(row["open_time"]).timestamp() * 1000)
            o, h, low, c = (Decimal(row[k]).quantize(precision.price) for k in ("open", "high", "low", "close"))
            volume = Decimal(row["volume"]).quantize(precision.qty)
            taker = Decimal(row["taker_buy_base_asset_volume"]).quantize(precision.qty)
            typical = (h + low + c) / 3  # ESTIMATE: the CSV carries no quote volume
            bars.append(
                Bar(
                    open_time,
                    MINUTE_MS,
                    o,
                    h,
                    low,
                    c,
                    volume,
                    (volume * typical).quantize(precision.quote),
                    0,
                    taker,
                    (taker * typical).quantize(precision.quote),
                )
            )
    return bars


@functools.lru_cache(maxsize=4)
def load_csv_klines(paths: tuple[Path, ...], exchange_info: Path, history_minutes: int) -> Market:
    """Load 1m kline CSVs (``<SYMBOL>_1m.csv``); the timeline is one closed kline frame per bar."""
    precision_of = precisions(load_exchange_info(exchange_info))
    pendings: list[_Pending] = []
    per_file: list[tuple[str, Precision, list[Bar]]] = []
    counts: dict[str, dict[str, int]] = {}
    for path in paths:
        symbol = Path(path).name.split("_", 1)[0].upper()
        precision = precision_of.get(symbol, Precision())
        bars = _read_csv_bars(Path(path), precision)
        counts[Path(path).name] = {"rows": len(bars)}
        stream = f"{symbol.lower()}@kline_1m"
        pending = _Pending()
        for bar in bars:
            close_ms = bar.open_time + MINUTE_MS
            payload = kline_event(symbol, "1m", bar, True, close_ms, precision)
            pending.add(close_ms * 1_000_000, close_ms, stream, frame_text(stream, payload), False)
        pendings.append(pending)
        per_file.append((symbol, precision, bars))
    timeline, ranks = _merge(pendings)
    tapes = {
        symbol: SymbolTape(
            symbol=symbol,
            precision=precision,
            bars=bars,
            bar_close_index=rank,
            bar_trade_end=[0] * len(bars),
            bars_from_trades=False,
        )
        for (symbol, precision, bars), rank in zip(per_file, ranks, strict=True)
    }
    first_open = min((bars[0].open_time for _, _, bars in per_file if bars), default=0)
    start_ms = first_open + history_minutes * MINUTE_MS
    start_index = int(np.searchsorted(timeline.exch_ms, start_ms, side="right"))
    fingerprint = _fingerprint(paths, f"csv:{history_minutes}")
    return Market("csv", timeline, tapes, start_index, fingerprint, counts)
