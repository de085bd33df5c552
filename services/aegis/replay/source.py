"""The recording(s) a replay runs: one file as it is, several merged in receive-time order into one file."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aegis.feed import replay as feed_replay
from aegis.feed.decode import AggTrade, Trade, decode_frame


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    """The file the feed replays (AEGIS_FEED_SOURCE)."""
    frames: int
    """Frames (lines) in it: what the feed's ``frames_in`` must reach."""
    symbols: list[str]
    first_recv_ns: int
    last_recv_ns: int
    has_mark_price: bool = False
    """Whether the recording carries a markPrice stream (else the replay prices marks from the last trade)."""


ID_SPAN = 10**13
"""Ids of repetition ``r`` are shifted by ``r * ID_SPAN`` (above every Binance id in the recordings, ~5e12)."""
_TIME_FIELDS = ("E", "T")
_ID_FIELDS = ("t", "u", "U", "pu", "a", "f", "l", "lastUpdateId")


def _shifted(path: Path, shift_ns: int, repetition: int = 0) -> Iterator[tuple[int, bytes]]:
    for recv_ns, frame in feed_replay.read_frames(path):
        yield (
            recv_ns + shift_ns if recv_ns else 0,
            (frame if repetition == 0 else shift_frame(frame, shift_ns // 1_000_000, repetition * ID_SPAN)),
        )


def shift_frame(frame: bytes, shift_ms: int, id_shift: int) -> bytes:
    """Return ``frame`` with its exchange times moved by ``shift_ms`` and its ids by ``id_shift`` (a repetition).

    Without it the feed's firewall would refuse a repeated event as going back in time or out of sequence.
    A frame that is not a JSON object (or a list of them) is returned as it is.
    """
    import msgspec

    try:
        obj = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return frame
    data = obj.get("data", obj) if isinstance(obj, dict) else obj
    for event in data if isinstance(data, list) else [data]:
        if not isinstance(event, dict):
            continue
        for key in _TIME_FIELDS:
            if isinstance(event.get(key), int):
                event[key] += shift_ms
        for key in _ID_FIELDS:
            if isinstance(event.get(key), int) and event[key] >= 0:
                event[key] += id_shift
        for nested in ("k", "o"):  # kline bar times, forceOrder trade time
            inner = event.get(nested)
            if isinstance(inner, dict):
                for key in ("t", "T"):
                    if isinstance(inner.get(key), int):
                        inner[key] += shift_ms
    return msgspec.json.encode(obj)


def prepare(paths: Sequence[str | Path], workdir: Path, repeat: int = 1) -> Source:
    """Return the source to replay: ``paths`` merged by receive time, ``repeat`` times with shifted timestamps.

    One file replayed once is used as it is; otherwise an hftbacktest-format file (``<recv_ns> <frame>``) is
    written under ``workdir``. A repetition is shifted by the recordings' whole span (rounded up to the minute)
    so candles and times keep increasing — receive times, exchange times (``E``, ``T``) and ids (trade, update)
    alike, see :func:`shift_frame` — its data is the same market again (a synthetic continuation).
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"no recording at {p}")
    marks = any(has_mark_price(p) for p in paths)
    if len(paths) == 1 and repeat == 1:
        frames = list(feed_replay.read_frames(paths[0]))
        stamps = [t for t, _ in frames if t]
        return Source(paths[0], len(frames), feed_replay.symbols_in(frames), min(stamps), max(stamps), marks)
    spans = []
    for p in paths:
        stamps = [t for t, _ in feed_replay.read_frames(p) if t]
        spans.append((min(stamps), max(stamps)))
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    minute = 60_000_000_000
    period = ((last - first) // minute + 1) * minute
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "source.hft"
    count, symbols = 0, []
    with out.open("wb") as f:
        for r in range(repeat):
            merged = heapq.merge(*(_shifted(p, r * period, r) for p in paths), key=lambda item: item[0])
            for recv_ns, frame in merged:
                f.write(b"%d %s\n" % (recv_ns, frame))
                count += 1
        symbols = feed_replay.symbols_in(feed_replay.read_frames(paths[0]))
        for p in paths[1:]:
            symbols += [s for s in feed_replay.symbols_in(feed_replay.read_frames(p)) if s not in symbols]
    return Source(out, count, symbols, first, last + (repeat - 1) * period, marks)


def has_mark_price(path: str | Path) -> bool:
    """True when any frame of the recording is a markPrice update (single or ``!markPrice@arr``)."""
    return any(b"markPriceUpdate" in frame for _, frame in feed_replay.read_frames(path))


def trades_of(path: str | Path) -> Iterator[tuple[str, int, float, float]]:
    """Yield ``(symbol, trade_time_ms, price, quantity)`` of every market trade of a recording.

    What the feed's firewall would pass: ``X == "MARKET"`` for ``@trade`` events, trade ids increasing per symbol.
    """
    last_id: dict[str, int] = {}
    for _, frame in feed_replay.read_frames(path):
        decoded = decode_frame(frame)
        for event in decoded if type(decoded) is list else (decoded,):
            if type(event) is Trade:
                if event.X != "MARKET" or event.t <= last_id.get(event.s, -1):
                    continue
                last_id[event.s] = event.t
            elif type(event) is AggTrade:
                if event.a <= last_id.get(event.s, -1):
                    continue
                last_id[event.s] = event.a
            else:
                continue
            yield event.s, int(event.T), float(event.p), float(event.q)


def batch_candles_1m(paths: Sequence[str | Path]) -> dict[tuple[str, int], tuple[float, float, float, float, float]]:
    """1m OHLCV per (symbol, open time ms) recomputed from the recordings' trades (the test's reference)."""
    trades = sorted((t for p in paths for t in trades_of(p)), key=lambda t: (t[0], t[1]))
    out: dict[tuple[str, int], list[float]] = {}
    for symbol, t_ms, price, qty in trades:
        key = (symbol, t_ms - t_ms % 60_000)
        bar = out.get(key)
        if bar is None:
            out[key] = [price, price, price, price, qty]
        else:
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price
            bar[4] += qty
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in out.items()}


def trades_from_klines(
    csv_paths: Sequence[str | Path], out: str | Path, *, start_ms: int | None = None, minutes: int | None = None
) -> Path:
    """Write a recording of **synthetic** trades derived from real 1m klines; return its path.

    For replays that need more history than a real tick recording holds (the strategy reads 1h and 1d
    indicators): each kline of ``<SYMBOL>_1m.csv`` (open_time, open, high, low, close, volume, …; the shared
    10-day Binance futures klines) becomes four ``@trade`` frames of its symbol — open at +0 s, then low and high
    (high first for a falling candle) at +20 s and +40 s, close at +59.999 s — whose quantities add up to the
    kline's volume. The candles the brain builds from them have the kline's exact OHLC and volume; the path
    inside a minute is made up, so label anything measured on it as synthetic. Receive time = trade time.
    ``start_ms``/``minutes`` keep klines opening in ``[start_ms, start_ms + minutes)``.
    """
    import csv
    import datetime as dt
    from decimal import ROUND_DOWN, Decimal

    step = Decimal("0.001")
    rows: list[tuple[int, str, bytes]] = []
    for path in csv_paths:
        symbol = Path(path).name.split("_", 1)[0].upper()
        trade_id = 1
        with Path(path).open(newline="") as f:
            for row in csv.DictReader(f):
                open_ms = int(dt.datetime.fromisoformat(row["open_time"]).timestamp() * 1000)
                if start_ms is not None and open_ms < start_ms:
                    continue
                if start_ms is not None and minutes is not None and open_ms >= start_ms + minutes * 60_000:
                    continue
                o, h, lo, c = row["open"], row["high"], row["low"], row["close"]
                path_prices = (o, h, lo, c) if Decimal(c) < Decimal(o) else (o, lo, h, c)
                volume = max(Decimal(row["volume"]), step * 4)
                part = (volume / 4).quantize(step, rounding=ROUND_DOWN)
                quantities = (part, part, part, volume - 3 * part)
                previous = Decimal(o)
                for offset, price, qty in zip((0, 20_000, 40_000, 59_999), path_prices, quantities, strict=True):
                    t = open_ms + offset
                    maker = "true" if Decimal(price) < previous else "false"  # a falling print: a seller took
                    previous = Decimal(price)
                    frame = (
                        f'{{"stream":"{symbol.lower()}@trade","data":{{"e":"trade","E":{t},"T":{t},"s":"{symbol}",'
                        f'"t":{trade_id},"p":"{price}","q":"{qty}","X":"MARKET","m":{maker}}}}}'
                    ).encode()
                    trade_id += 1
                    rows.append((t * 1_000_000, symbol, frame))
    rows.sort(key=lambda r: (r[0], r[1]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        for recv_ns, _, frame in rows:
            f.write(b"%d %s\n" % (recv_ns, frame))
    return out
