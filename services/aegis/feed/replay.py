"""Replay recorded websocket frames through the same decode → firewall → ring path as the live feed.

A recording is read as an iterator of ``(recv_time_ns, frame_bytes)`` — the receive time the recording gives
(Unix ns) and the exact bytes of the websocket message — so the same readers feed :func:`replay` here and the
exchange simulator's websocket server (``aegis.sim``), which only needs the frames and their timing.

Accepted formats (``format="auto"`` picks one from the first line; a ``.gz`` file is gunzipped on the fly):

``hftbacktest``
    ``<local_ns> <json>`` per line (the hftbacktest ``examples/usdm/*.gz`` collector output). ``local_ns`` is the
    local receive time in Unix ns. Lines hold combined-stream frames; the REST depth snapshot line a collector
    writes at start is passed through (the pipeline counts it as ``unsupported_event``).
``jsonl``
    One JSON value per line: either a frame exactly as Binance sent it (``{"stream": …, "data": …}``, a bare event
    object or an event array), or an envelope ``{"recv_ns": <Unix ns>, "frame": <frame>}`` whose ``frame`` is the
    frame as JSON or as a JSON string holding the frame's text. For a bare frame the receive time is taken from
    its event time ``E`` (ms → ns; the first element's for arrays), or the previous line's if it has none.
``cryptofeed``
    cryptofeed's ``sample_data/*.ws.*`` files: a first line with the subscribed URL, then
    ``<recv_ts_seconds>: <json>`` per line.

Lines the reader cannot take apart are not dropped: they are yielded as frames (with the previous receive time)
so the pipeline counts them as ``malformed_json`` — a replay accounts for every line, like the live feed for every
message. Empty lines are skipped.

Speed: ``None`` / ``"max"`` replays as fast as the pipeline goes; a number *N* (or ``"xN"``) replays *N* times
faster than recorded, pacing on the injected clock's monotonic time. :func:`replay` gives the pipeline its frames
in batches (``FramePipeline.process_lines`` for an hftbacktest recording at max speed, ``process_many``
otherwise; when paced, the frames already due, just before each sleep). Receive times always come from the recording,
never from the wall clock, so a replay at x1000 writes the same records as one at max speed.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Literal

import msgspec

from aegis.feed.decode import Rejected, decode_frame
from aegis.feed.firewall import Clock, SystemClock
from aegis.feed.pipeline import FramePipeline, PipelineStats, RecordSink, hftbacktest_frames

__all__ = [
    "Format",
    "HftbacktestRecording",
    "Speed",
    "detect_format",
    "paced",
    "paced_async",
    "parse_speed",
    "read_cryptofeed",
    "read_frames",
    "read_hftbacktest",
    "read_jsonl",
    "replay",
    "replay_file",
    "symbols_in",
]

Format = Literal["auto", "hftbacktest", "jsonl", "cryptofeed"]
Speed = float | str | None
Frame = tuple[int, bytes]

_BATCH_FRAMES = 4096  # frames per FramePipeline.process_many call at max speed
_MIN_SLEEP_NS = 1_000_000  # pace in steps of >= 1 ms: one sleep per frame would cost more than the frames


# --------------------------------------------------------------------------------------------------------------
# Readers


def _open(path: str | Path) -> IO[bytes]:
    path = Path(path)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)


def _lines(path: str | Path) -> Iterator[bytes]:
    with _open(path) as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def read_hftbacktest(path: str | Path) -> Iterator[Frame]:
    """Yield ``(local_ns, frame)`` from an hftbacktest ``<local_ns> <json>`` recording (gzip or plain).

    A line whose first word is not a number is yielded whole, with the previous receive time. The iterator is a
    :class:`HftbacktestRecording`: :func:`replay` at max speed does not iterate it but hands its raw line
    chunks to :meth:`FramePipeline.process_lines <aegis.feed.pipeline.FramePipeline.process_lines>`, which
    splits them the same way in compiled code.
    """
    return HftbacktestRecording(path)


class HftbacktestRecording(Iterator[Frame]):
    """An hftbacktest recording as an iterator of ``(local_ns, frame)``, or as chunks of whole lines."""

    CHUNK_BYTES = 1 << 20

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._frames: Iterator[Frame] | None = None

    def __iter__(self) -> HftbacktestRecording:
        return self

    def __next__(self) -> Frame:
        if self._frames is None:
            self._frames = self._read()
        return next(self._frames)

    @property
    def started(self) -> bool:
        """Whether frames were taken from the iterator already (then :meth:`line_chunks` would repeat them)."""
        return self._frames is not None

    def _read(self) -> Iterator[Frame]:
        with _open(self.path) as f:
            yield from hftbacktest_frames(f)

    def line_chunks(self, chunk_bytes: int | None = None) -> Iterator[bytes]:
        """Yield the file's bytes (gunzipped) in chunks of whole lines of about ``chunk_bytes`` each."""
        size = chunk_bytes or self.CHUNK_BYTES
        rest = b""
        with _open(self.path) as f:
            while block := f.read(size):
                data = rest + block if rest else block
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    rest = data
                    continue
                rest = data[cut:]
                yield data[:cut]
        if rest:
            yield rest


class _Envelope(msgspec.Struct):
    recv_ns: int
    frame: msgspec.Raw


class _TimeProbe(msgspec.Struct):
    E: int | None = None


class _FrameProbe(msgspec.Struct):
    E: int | None = None
    data: _TimeProbe | list[_TimeProbe] | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_probe = msgspec.json.Decoder(_FrameProbe | list[_TimeProbe]).decode
_decode_str = msgspec.json.Decoder(str).decode


def read_jsonl(path: str | Path) -> Iterator[Frame]:
    """Yield ``(recv_ns, frame)`` from a JSONL file of raw frames or ``{"recv_ns", "frame"}`` envelopes."""
    return _jsonl_lines(_lines(path))


def _jsonl_lines(lines: Iterable[bytes]) -> Iterator[Frame]:
    recv_ns = 0
    for line in lines:
        if b'"recv_ns"' in line:  # an envelope (no Binance frame has this key)
            try:
                envelope = _decode_envelope(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                recv_ns = envelope.recv_ns
                frame = bytes(envelope.frame)
                if frame[:1] == b'"':  # the frame's text as a JSON string
                    try:
                        frame = _decode_str(frame).encode()
                    except (msgspec.DecodeError, UnicodeDecodeError):
                        pass
                yield recv_ns, frame
                continue
        event_time_ms = _event_time_ms(line)
        if event_time_ms is not None:
            recv_ns = event_time_ms * 1_000_000
        yield recv_ns, line


def _event_time_ms(frame: bytes) -> int | None:
    try:
        probe = _decode_probe(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if type(probe) is list:
        return probe[0].E if probe else None
    if probe.E is not None:
        return probe.E
    data = probe.data
    if type(data) is list:
        return data[0].E if data else None
    return data.E if data is not None else None


def read_cryptofeed(path: str | Path) -> Iterator[Frame]:
    """Yield ``(recv_ns, frame)`` from a cryptofeed ``*.ws.*`` sample (URL line, then ``<ts>: <json>``)."""
    return _cryptofeed_lines(_lines(path))


def _cryptofeed_lines(lines: Iterable[bytes]) -> Iterator[Frame]:
    recv_ns = 0
    for line in lines:
        if line.startswith((b"wss://", b"ws://", b"http")):  # the subscription line, not a frame
            continue
        stamp, sep, frame = line.partition(b": ")
        ns = _seconds_to_ns(stamp) if sep else None
        if ns is None:
            yield recv_ns, line
        else:
            recv_ns = ns
            yield recv_ns, frame


def _seconds_to_ns(stamp: bytes) -> int | None:
    """``b"1626992741.06217"`` → Unix ns, exactly (no float rounding)."""
    whole, _, frac = stamp.partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        return None
    return int(whole) * 1_000_000_000 + int(frac[:9].ljust(9, b"0") or b"0")


def detect_format(path: str | Path) -> Format:
    """Return the format of a recording from its first non-empty line."""
    for line in _lines(path):
        if line.startswith((b"wss://", b"ws://")):
            return "cryptofeed"
        stamp, sep, _ = line.partition(b" ")
        if sep and stamp.isdigit():
            return "hftbacktest"
        if stamp.endswith(b":") and _seconds_to_ns(stamp[:-1]) is not None:
            return "cryptofeed"
        return "jsonl"
    return "jsonl"


def read_frames(path: str | Path, format: Format = "auto") -> Iterator[Frame]:
    """Yield ``(recv_ns, frame_bytes)`` from a recording in any accepted format (see the module docstring)."""
    if format == "auto":
        format = detect_format(path)
    readers: dict[str, Callable[[str | Path], Iterator[Frame]]] = {
        "hftbacktest": read_hftbacktest,
        "jsonl": read_jsonl,
        "cryptofeed": read_cryptofeed,
    }
    if format not in readers:
        raise ValueError(f"unknown recording format {format!r}; expected one of {sorted(readers)} or 'auto'")
    return readers[format](path)


def symbols_in(frames: Iterable[Frame]) -> list[str]:
    """Return the symbols the frames carry events for, in order of first appearance (a slow pre-scan)."""
    seen: dict[str, None] = {}
    for _, frame in frames:
        decoded = decode_frame(frame)
        for event in decoded if type(decoded) is list else (decoded,):
            if type(event) is Rejected:
                continue
            symbol = getattr(event, "s", None) or getattr(getattr(event, "o", None), "s", None)
            if symbol:
                seen.setdefault(symbol, None)
    return list(seen)


# --------------------------------------------------------------------------------------------------------------
# Pacing


def parse_speed(speed: Speed) -> float | None:
    """Return a replay speed factor, or None for "as fast as possible" (``None``, ``"max"``, ``"x10"``, ``10``)."""
    if speed is None:
        return None
    if isinstance(speed, str):
        text = speed.strip().lower()
        if text in ("max", "inf", ""):
            return None
        text = text.removeprefix("x").removesuffix("x")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"replay speed must be 'max' or a factor such as 'x10', not {speed!r}") from None
    else:
        value = float(speed)
    if value == float("inf"):
        return None
    if not value > 0:
        raise ValueError(f"replay speed must be positive, not {speed!r}")
    return value


class _Pace:
    """The recorded spacing divided by ``factor``, on ``clock``'s monotonic time: how long a frame must still wait."""

    __slots__ = ("_factor", "_first_recv_ns", "_monotonic_ns", "_start_ns")

    def __init__(self, factor: float, clock: Clock | None) -> None:
        self._factor = factor
        self._monotonic_ns = (clock or SystemClock()).monotonic_ns
        self._start_ns: int | None = None
        self._first_recv_ns = 0

    def wait_ns(self, recv_ns: int) -> float:
        """Nanoseconds until the frame received at ``recv_ns`` is due (the first frame sets the origin: 0)."""
        if self._start_ns is None:
            self._start_ns, self._first_recv_ns = self._monotonic_ns(), recv_ns
            return 0.0
        return self._start_ns + (recv_ns - self._first_recv_ns) / self._factor - self._monotonic_ns()


def paced(
    frames: Iterable[Frame],
    speed: Speed = None,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[Frame]:
    """Yield ``frames`` no earlier than their recorded spacing divided by ``speed`` (all at once for max)."""
    factor = parse_speed(speed)
    if factor is None:
        yield from frames
        return
    pace = _Pace(factor, clock)
    for recv_ns, frame in frames:
        wait_ns = pace.wait_ns(recv_ns)
        if wait_ns >= _MIN_SLEEP_NS:
            sleep(wait_ns / 1e9)
        yield recv_ns, frame


async def paced_async(
    frames: Iterable[Frame],
    speed: Speed = None,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> AsyncIterator[Frame]:
    """:func:`paced` for asyncio (e.g. a simulator serving frames over a websocket)."""
    factor = parse_speed(speed)
    pace = None if factor is None else _Pace(factor, clock)
    for recv_ns, frame in frames:
        if pace is not None:
            wait_ns = pace.wait_ns(recv_ns)
            if wait_ns >= _MIN_SLEEP_NS:
                await sleep(wait_ns / 1e9)
        yield recv_ns, frame


# --------------------------------------------------------------------------------------------------------------
# Replay


def replay(
    frames: Iterable[Frame],
    pipeline: FramePipeline,
    speed: Speed = None,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> PipelineStats:
    """Push ``frames`` through ``pipeline`` at ``speed``; return the pipeline's counters afterwards."""
    factor = parse_speed(speed)
    if factor is None:  # max speed: no pacing layer between the reader and the pipeline
        if type(frames) is HftbacktestRecording and not frames.started:
            recv_ns = 0  # the raw lines straight into the compiled batch path
            for chunk in frames.line_chunks():
                recv_ns = pipeline.process_lines(chunk, recv_ns)
            return pipeline.stats
        iterator = iter(frames)
        while batch := list(islice(iterator, _BATCH_FRAMES)):  # any other source: in batches, in order
            pipeline.process_many([frame for _, frame in batch], [recv_ns for recv_ns, _ in batch])
        return pipeline.stats
    # Paced: the frames already due go to the pipeline as one batch just before each sleep (and every
    # _BATCH_FRAMES frames), so no frame is published before its time and none waits for a sleep.
    pace = _Pace(factor, clock)
    due: list[bytes] = []
    due_recv: list[int] = []
    for recv_ns, frame in frames:
        wait_ns = pace.wait_ns(recv_ns)
        if wait_ns >= _MIN_SLEEP_NS:
            if due:
                pipeline.process_many(due, due_recv)
                due, due_recv = [], []
                wait_ns = pace.wait_ns(recv_ns)
            if wait_ns >= _MIN_SLEEP_NS:
                sleep(wait_ns / 1e9)
        due.append(frame)
        due_recv.append(recv_ns)
        if len(due) >= _BATCH_FRAMES:
            pipeline.process_many(due, due_recv)
            due, due_recv = [], []
    if due:
        pipeline.process_many(due, due_recv)
    return pipeline.stats


def replay_file(
    path: str | Path,
    writer: RecordSink,
    symbols: Iterable[str] | None = None,
    speed: Speed = None,
    *,
    format: Format = "auto",
    clock: Clock | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> PipelineStats:
    """Replay a recording into ``writer`` (records flagged ``FLAG_REPLAY``, receive times from the recording).

    ``symbols``: the symbols to publish (others are counted as ``unknown_symbol``); None takes every symbol the
    recording carries (one extra pass over it).
    """
    if symbols is None:
        symbols = symbols_in(read_frames(path, format))
    pipeline = FramePipeline(symbols, writer, clock, recv_clock="wall", replay=True)
    return replay(read_frames(path, format), pipeline, speed, clock=clock, sleep=sleep)
