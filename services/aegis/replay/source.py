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


def _shifted(path: Path, shift_ns: int) -> Iterator[tuple[int, bytes]]:
    for recv_ns, frame in feed_replay.read_frames(path):
        yield recv_ns + shift_ns if recv_ns else 0, frame


def prepare(paths: Sequence[str | Path], workdir: Path, repeat: int = 1) -> Source:
    """Return the source to replay: ``paths`` merged by receive time, ``repeat`` times with shifted timestamps.

    One file replayed once is used as it is; otherwise an hftbacktest-format file (``<recv_ns> <frame>``) is
    written under ``workdir``. A repetition is shifted by the recordings' whole span (rounded up to the minute)
    so candles and times keep increasing; its data is the same market again (a synthetic continuation).
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"no recording at {p}")
    if len(paths) == 1 and repeat == 1:
        frames = list(feed_replay.read_frames(paths[0]))
        stamps = [t for t, _ in frames if t]
        return Source(paths[0], len(frames), feed_replay.symbols_in(frames), min(stamps), max(stamps))
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
            merged = heapq.merge(*(_shifted(p, r * period) for p in paths), key=lambda item: item[0])
            for recv_ns, frame in merged:
                f.write(b"%d %s\n" % (recv_ns, frame))
                count += 1
        symbols = feed_replay.symbols_in(feed_replay.read_frames(paths[0]))
        for p in paths[1:]:
            symbols += [s for s in feed_replay.symbols_in(feed_replay.read_frames(p)) if s not in symbols]
    return Source(out, count, symbols, first, last + (repeat - 1) * period)


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
