"""Benchmark: the shared-memory ring against multiprocessing.Queue, Pipe and faster_fifo.Queue.

Every scenario moves the same number of 64-byte records (``seq u8, send_ns i8, 48 payload bytes``) from a
writer process to a reader process (``fork`` context; both started per scenario, synchronised on a barrier).
The send timestamp inside each record and the reader's receipt time are both CLOCK_MONOTONIC
(``time.perf_counter_ns`` on Linux, ``clock_gettime`` in the compiled paths), which is one clock for every
process on the host, so one-way latency = receipt − send is valid across processes.

Scenarios, each reported as throughput (records/s, writer start → reader has every record) and one-way latency
p50/p99 (µs):

* ``ring_per_record_python_api`` — the writer makes one Python call per record, the function
  ``RingWriter.packed_writer`` returns for the record's fields (own seq, published on its own; the send time is
  packed straight into the slot, no ``bytes`` object is built), the reader calls ``RingReader.read_one_bytes``
  once per record (validated on its own) and gets the 64-byte record as ``bytes``, as the baseline readers do.
  Latency is sampled on every 64th record (the same sampling for every per-record contender).
* ``ring_per_record_bytes`` — the same with ``write_bytes(pack(i, clock()))``: the writer builds the record as
  ``bytes`` first, exactly as the baseline writers must (reported for comparison; not used by the ratios).
* ``ring_per_record_compiled`` — ``write_each`` / ``read_each``: still one seq, one publish and one validation
  per record, but the per-record loop runs in numba (the writer stamps each record as it publishes it, the
  reader stamps each record as it takes it). This is what a compiled consumer (e.g. a numba candle builder)
  gets.
* ``ring_batched`` — ``write_batch`` / ``read_into`` in batches of ``--batch`` records.
* ``mp_queue_*``, ``mp_pipe_*``, ``faster_fifo_*`` — the baselines: per record (one ``put``/``send_bytes`` of
  a 64-byte ``bytes`` per record), and batched (one ``put``/``send_bytes`` of ``--batch`` × 64 bytes; for
  faster_fifo its native ``put_many``/``get_many`` of ``--batch`` 64-byte messages).
* ``*_paced`` — one record every ``--pace-us`` µs (default 50); the writer waits for each deadline (spinning
  with ``sched_yield``; see ``_wait_until``) and stamps the record when it sends it, the reader busy-polls
  (``read_one_bytes``, ``get_nowait``, ``Pipe.poll``): the latency a lone tick sees on a quiet stream.
  ``send_interval_p50``/``_p99`` report the intervals achieved (a writer that was descheduled does not burst
  to catch up). In the flooded ring scenarios the reader sleeps 50 µs when it finds
  nothing (as the brain's consumer sleeps when the ring is empty), where the queue readers block in the kernel:
  either way the waiting reader leaves the CPU to the writer. (It used to ``sched_yield``, which on a loaded
  machine keeps a caught-up reader runnable and competing with its own writer.)

Flooded latency is queueing delay: the ring never pushes back on its writer (the ring is sized to hold every
record so nothing is lost), whereas the Pipe and faster_fifo block their writer when full, so under flood
their latency is bounded by their buffer and ours by the run. Compare paced latencies for the cost of one hop.

Ratios: ``per_record_vs_mp_queue``, ``per_record_vs_mp_pipe`` and ``per_record_vs_faster_fifo`` use
``ring_per_record_python_api`` (ours ÷ baseline records/s), because the baselines are also one Python call per
record on each side and the feed and brain are Python; ``per_record_bytes_vs_*`` and ``per_record_compiled_vs_*``
are reported beside them.

Conditions, the same for every scenario: each child process runs its timed part with the garbage collector
disabled (after a collection and ``gc.freeze()``; none of the loops creates reference cycles) and with its
timer slack at 1 ns (so the flooded ring reader's 50 µs idle sleep is not stretched by the default 50 µs).
With ``--pin`` (needs 2 or more usable CPUs) the writer is pinned to one CPU and the reader to another
(``os.sched_setaffinity``), so the two busy processes are never time-shared on one core; multiprocessing.Queue's
feeder thread shares its writer's CPU (it needs the writer's GIL anyway). Pinning is off by default: on the
2-vCPU development VM shared with other jobs it made every contender worse (a pinned process cannot move away
from a CPU another job is using). ``config`` records both settings and the 1-minute load average before and
after the run: on a shared machine, read every figure with it.
``batched_vs_*`` compare ``ring_batched`` with the same baseline batched the same way. ``paced_p99_vs_*`` is
the baseline's paced p99 ÷ ours (how many times lower ours is). ``targets`` says, without rounding in our
favour, whether the issue's targets were met in this run.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import multiprocessing as mp
import os
import queue
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aegis.core import ring

RECORD = np.dtype([("seq", "<u8"), ("send_ns", "<i8"), ("payload", "<f8", (6,))])
_PACK = struct.Struct("<Qq48x")  # the same 64-byte record as bytes, for the per-record paths
_FIELDS = struct.Struct("<q48x")  # the record after its seq word, packed straight into a ring slot
_SEND = struct.Struct("<q")
_SAMPLE_MASK = 63  # per-record paths sample latency on every 64th record
_DEADLINE_S = 300.0  # a stuck peer must not hang the benchmark forever
_PR_SET_TIMERSLACK = 29
_IDLE_S = 50e-6  # a flooded ring reader that has caught up sleeps this long before it looks again

Scenario = tuple[str, Callable[..., Any], Callable[..., Any]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ring benchmark's options to ``parser``."""
    parser.add_argument("--records", type=int, default=None, help="records per throughput scenario (default 1000000)")
    parser.add_argument("--paced-records", type=int, default=None, help="records per paced scenario (default 20000)")
    parser.add_argument("--pace-us", type=float, default=50.0, help="interval between paced records, µs")
    parser.add_argument("--batch", type=int, default=1024, help="records per batch in the batched scenarios")
    parser.add_argument("--quick", action="store_true", help="small run for tests (≤ 10 s)")
    parser.add_argument("--dir", default=None, help="directory for the ring file (default /dev/shm, else a temp dir)")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin writer and reader to two different CPUs (needs 2+ usable CPUs; default off)",
    )


def run(options: argparse.Namespace, report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every scenario and return ``{"bench": "ring", "results": [...], "ratios": {...}, ...}``.

    Progress lines go to ``report`` (default: stderr) so stdout stays free for the JSON.
    """
    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    quick = bool(getattr(options, "quick", False))
    records = getattr(options, "records", None) or (30_000 if quick else 1_000_000)
    paced = getattr(options, "paced_records", None) or (1_000 if quick else 20_000)
    pace_ns = int(getattr(options, "pace_us", 50.0) * 1000)
    batch = max(1, getattr(options, "batch", 1024))
    directory = Path(getattr(options, "dir", None) or _default_dir())
    ctx = mp.get_context("fork")
    ring_path = directory / f"aegis-bench-ring-{os.getpid()}"
    capacity = 1 << max(10, (max(records, paced) - 1).bit_length())
    usable = sorted(os.sched_getaffinity(0))
    pin = getattr(options, "pin", None)
    cpus = (usable[0], usable[1]) if pin and len(usable) >= 2 else None
    load_before = os.getloadavg()[0]

    say(f"ring bench: {records} records × 64 B per throughput scenario, {paced} paced at {pace_ns / 1000:g} µs, ")
    say(f"batch {batch}, ring {ring_path} capacity {capacity}, {os.cpu_count()} CPUs, pinned to {cpus}")
    say(f"{'scenario':34s} {'records/s':>12s} {'p50 µs':>10s} {'p99 µs':>10s} {'lost':>6s}")

    flood: list[Scenario] = [
        ("ring_per_record_python_api", _ring_write_packed, _ring_read_python),
        ("ring_per_record_bytes", _ring_write_python, _ring_read_python),
        ("ring_per_record_compiled", _ring_write_compiled, _ring_read_compiled),
        ("ring_batched", _ring_write_batched, _ring_read_batched),
        ("mp_queue_per_record", _queue_write, _queue_read),
        ("mp_pipe_per_record", _pipe_write, _pipe_read),
        ("faster_fifo_per_record", _queue_write, _queue_read),
        ("mp_queue_batched", _queue_write_batched, _queue_read_batched),
        ("mp_pipe_batched", _pipe_write_batched, _pipe_read_batched),
        ("faster_fifo_batched", _ffq_write_batched, _ffq_read_batched),
    ]
    paced_scenarios: list[Scenario] = [
        ("ring_paced", _ring_write_packed, _ring_read_python),
        ("mp_queue_paced", _queue_write, _queue_read_polling),
        ("mp_pipe_paced", _pipe_write, _pipe_read_polling),
        ("faster_fifo_paced", _queue_write, _queue_read_polling),
    ]
    measured: dict[str, dict[str, float]] = {}
    try:
        for name, writer, reader in flood:
            measured[name] = _run_pair(ctx, name, writer, reader, records, 0, batch, ring_path, capacity, cpus)
            _show(say, name, measured[name])
        for name, writer, reader in paced_scenarios:
            measured[name] = _run_pair(ctx, name, writer, reader, paced, pace_ns, 1, ring_path, capacity, cpus)
            _show(say, name, measured[name])
    finally:
        for leftover in (ring_path, ring_path.with_name(ring_path.name + ".lock")):
            leftover.unlink(missing_ok=True)

    results: list[dict[str, Any]] = []
    for name, m in measured.items():
        if not name.endswith("_paced"):
            results.append({"name": f"{name}.throughput", "value": round(m["rate"]), "unit": "records/s"})
        results.append({"name": f"{name}.latency_p50", "value": round(m["p50"], 2), "unit": "us"})
        results.append({"name": f"{name}.latency_p99", "value": round(m["p99"], 2), "unit": "us"})
        if name.endswith("_paced"):
            results.append({"name": f"{name}.send_interval_p50", "value": round(m["pace_p50"], 2), "unit": "us"})
            results.append({"name": f"{name}.send_interval_p99", "value": round(m["pace_p99"], 2), "unit": "us"})
        if m["lost"]:
            results.append({"name": f"{name}.records_lost", "value": int(m["lost"]), "unit": "records"})

    def rate(name: str) -> float:
        return measured[name]["rate"]

    ratios = {
        "per_record_vs_mp_queue": rate("ring_per_record_python_api") / rate("mp_queue_per_record"),
        "per_record_vs_mp_pipe": rate("ring_per_record_python_api") / rate("mp_pipe_per_record"),
        "per_record_vs_faster_fifo": rate("ring_per_record_python_api") / rate("faster_fifo_per_record"),
        "per_record_bytes_vs_mp_queue": rate("ring_per_record_bytes") / rate("mp_queue_per_record"),
        "per_record_bytes_vs_faster_fifo": rate("ring_per_record_bytes") / rate("faster_fifo_per_record"),
        "per_record_compiled_vs_mp_queue": rate("ring_per_record_compiled") / rate("mp_queue_per_record"),
        "per_record_compiled_vs_faster_fifo": rate("ring_per_record_compiled") / rate("faster_fifo_per_record"),
        "batched_vs_mp_queue": rate("ring_batched") / rate("mp_queue_batched"),
        "batched_vs_mp_pipe": rate("ring_batched") / rate("mp_pipe_batched"),
        "batched_vs_faster_fifo": rate("ring_batched") / rate("faster_fifo_batched"),
        "paced_p99_vs_mp_queue": measured["mp_queue_paced"]["p99"] / measured["ring_paced"]["p99"],
        "paced_p99_vs_mp_pipe": measured["mp_pipe_paced"]["p99"] / measured["ring_paced"]["p99"],
        "paced_p99_vs_faster_fifo": measured["faster_fifo_paced"]["p99"] / measured["ring_paced"]["p99"],
    }
    ratios = {k: round(v, 2) for k, v in ratios.items()}
    targets = {
        "per_record_10x_mp_queue": ratios["per_record_vs_mp_queue"] >= 10,
        "per_record_10x_faster_fifo": ratios["per_record_vs_faster_fifo"] >= 10,
        "per_record_compiled_10x_mp_queue": ratios["per_record_compiled_vs_mp_queue"] >= 10,
        "per_record_compiled_10x_faster_fifo": ratios["per_record_compiled_vs_faster_fifo"] >= 10,
        "batched_20M_per_s": rate("ring_batched") >= 20e6,
        "paced_p99_10us": measured["ring_paced"]["p99"] <= 10.0,
    }
    say("targets: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in targets.items()))
    return {
        "bench": "ring",
        "results": results,
        "ratios": ratios,
        "targets": targets,
        "config": {
            "records": records,
            "paced_records": paced,
            "pace_us": pace_ns / 1000,
            "batch": batch,
            "record_bytes": RECORD.itemsize,
            "cpus": os.cpu_count(),
            "pinned_cpus": list(cpus) if cpus else None,
            "gc_disabled_while_timed": True,
            "load_avg_1m_before": round(load_before, 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "quick": quick,
        },
    }


def _default_dir() -> str:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return os.environ.get("AEGIS_HOME") or tempfile.gettempdir()


def _show(say: Callable[[str], None], name: str, m: dict[str, float]) -> None:
    rate = "" if name.endswith("_paced") else f"{m['rate']:,.0f}"
    say(f"{name:34s} {rate:>12s} {m['p50']:10.2f} {m['p99']:10.2f} {int(m['lost']):6d}")


# ------------------------------------------------------------------------------------------------------------
# Orchestration


def _run_pair(
    ctx: Any,
    name: str,
    writer: Callable[..., Any],
    reader: Callable[..., Any],
    n: int,
    pace_ns: int,
    batch: int,
    ring_path: Path,
    capacity: int,
    cpus: tuple[int, int] | None,
) -> dict[str, float]:
    if name.startswith("faster_fifo"):
        from faster_fifo import Queue as FasterFifoQueue

        channel: Any = FasterFifoQueue(max_size_bytes=8 * 1024 * 1024)
    elif name.startswith("mp_queue"):
        channel = ctx.Queue()
    elif name.startswith("mp_pipe"):
        channel = ctx.Pipe(duplex=False)  # (receive end, send end)
    else:
        channel = (ring_path, capacity)
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    job = {"n": n, "pace_ns": pace_ns, "batch": batch}
    processes = [
        ctx.Process(
            target=_child, args=(writer, channel, barrier, job, results, "writer", cpus and cpus[0]), daemon=True
        ),
        ctx.Process(
            target=_child, args=(reader, channel, barrier, job, results, "reader", cpus and cpus[1]), daemon=True
        ),
    ]
    for process in processes:
        process.start()
    got: dict[str, Any] = {}
    try:
        for _ in processes:
            role, value = results.get(timeout=_DEADLINE_S)
            if isinstance(value, str):
                raise RuntimeError(f"{name} {role} failed: {value}")
            got[role] = value
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
        if isinstance(channel, tuple) and isinstance(channel[0], Path):
            for leftover in (ring_path, ring_path.with_name(ring_path.name + ".lock")):
                leftover.unlink(missing_ok=True)
    start_ns = got["writer"]["start_ns"]
    end_ns = got["reader"]["end_ns"]
    latencies = got["reader"]["latency_ns"] / 1000.0
    sent = got["writer"].get("sent_ns")
    intervals = np.diff(sent) / 1000.0 if sent is not None and sent.size > 1 else None
    return {
        "pace_p50": float(np.percentile(intervals, 50)) if intervals is not None else float("nan"),
        "pace_p99": float(np.percentile(intervals, 99)) if intervals is not None else float("nan"),
        "rate": got["reader"]["count"] / ((end_ns - start_ns) / 1e9),
        "p50": float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
        "p99": float(np.percentile(latencies, 99)) if latencies.size else float("nan"),
        "lost": float(got["reader"].get("lost", 0)),
    }


def _child(
    body: Callable[..., Any], channel: Any, barrier: Any, job: dict, results: Any, role: str, cpu: int | None
) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    _precise_sleeps()
    gc.collect()
    gc.freeze()
    gc.disable()  # the same for every contender: no collection pauses inside the timed loops
    try:
        value = body(channel, barrier, **job)
    except BaseException as exc:  # report to the parent rather than dying silently
        results.put((role, f"{type(exc).__name__}: {exc}"))
        raise
    results.put((role, value))


def _touched(n: int) -> np.ndarray:
    """Return n zeroed records whose pages are already mapped (np.zeros maps them lazily, on first write)."""
    records = np.empty(n, dtype=RECORD)
    records.view(np.uint8)[:] = 0
    return records


def _wait_until(deadline_ns: int, pace_ns: int) -> int:
    """Wait for ``deadline_ns``; return the deadline the next record is paced from (every contender alike).

    The writer spins, yielding (``sched_yield``) so that anything else that wants its CPU runs in the writer's
    idle time instead of preempting the busy-polling reader. It does not sleep: a writer woken from a sleep is
    often placed on the reader's CPU and preempts it, which put a context switch (~10 µs here) into most
    one-way latencies when we tried it. A writer that fell more than ``pace`` behind (it was descheduled)
    paces on from now instead of sending a burst to catch up; ``send_interval_p50``/``_p99`` report the
    intervals achieved.
    """
    now = time.perf_counter_ns()
    if now - deadline_ns > pace_ns:
        return now
    while now < deadline_ns:
        os.sched_yield()
        now = time.perf_counter_ns()
    return deadline_ns


def _precise_sleeps() -> None:
    """Set this process's timer slack to 1 ns (Linux ``prctl(PR_SET_TIMERSLACK)``; the default 50 µs slack
    would stretch every short sleep by up to 50 µs). Elsewhere, or if refused, sleeps stay as they are."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _idle() -> None:
    """What a flooded ring reader does when it has caught up with the writer."""
    time.sleep(_IDLE_S)


def _check_deadline(start_ns: int) -> None:
    if time.perf_counter_ns() - start_ns > _DEADLINE_S * 1e9:
        raise TimeoutError("peer stopped sending")


# ------------------------------------------------------------------------------------------------------------
# Ring


def _ring_write_python(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, capacity = channel
    writer = ring.create(path, RECORD, capacity)
    write_bytes, pack, clock = writer.write_bytes, _PACK.pack, time.perf_counter_ns
    barrier.wait()
    start = clock()
    if pace_ns:
        due, sent = start, []
        for i in range(n):
            due = _wait_until(due + pace_ns, pace_ns)
            now = clock()
            write_bytes(pack(i, now))
            sent.append(now)
        writer.close()
        return {"start_ns": start, "sent_ns": np.array(sent, dtype=np.int64)}
    else:
        for i in range(n):
            write_bytes(pack(i, clock()))
    writer.close()
    return {"start_ns": start}


def _ring_write_packed(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, capacity = channel
    writer = ring.create(path, RECORD, capacity)
    write, clock = writer.packed_writer(_FIELDS), time.perf_counter_ns
    barrier.wait()
    start = clock()
    if pace_ns:
        due, sent = start, []
        for _ in range(n):
            due = _wait_until(due + pace_ns, pace_ns)
            now = clock()
            write(now)
            sent.append(now)
        writer.close()
        return {"start_ns": start, "sent_ns": np.array(sent, dtype=np.int64)}
    else:
        for _ in range(n):
            write(clock())
    writer.close()
    return {"start_ns": start}


def _ring_read_python(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, _ = channel
    reader = ring.attach(path, RECORD, timeout=60.0)
    read, unpack, clock, idle = reader.read_one_bytes, _SEND.unpack_from, time.perf_counter_ns, _idle
    sample_mask = 0 if pace_ns else _SAMPLE_MASK
    latencies: list[int] = []
    barrier.wait()
    count = 0
    start = clock()
    while count < n:
        data = read()
        if data is None:
            if not pace_ns:
                idle()
            if count == 0 or not count & 0xFFFF:
                _check_deadline(start)
            continue
        if not count & sample_mask:
            latencies.append(clock() - unpack(data, 8)[0])
        count += 1
    end = clock()
    lost = reader.records_lost
    reader.close()
    return {"end_ns": end, "count": count, "latency_ns": np.array(latencies, dtype=np.int64), "lost": lost}


def _ring_write_compiled(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, capacity = channel
    writer = ring.create(path, RECORD, capacity)
    records = _touched(n)
    ring.warm_up()  # compile / load the numba cache before the clock starts
    barrier.wait()
    start = time.perf_counter_ns()
    writer.write_each(records, stamp_field="send_ns")
    writer.close()
    return {"start_ns": start}


def _ring_read_compiled(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, _ = channel
    reader = ring.attach(path, RECORD, timeout=60.0)
    out = _touched(n)
    recv = np.ones(n, dtype=np.int64)
    ring.warm_up()
    barrier.wait()
    count = 0
    start = time.perf_counter_ns()
    while count < n:
        got = reader.read_each(out[count:], recv[count:])
        if got == 0:
            _idle()
            _check_deadline(start)
        count += got
    end = time.perf_counter_ns()
    lost = reader.records_lost
    reader.close()
    latency = (recv - out["send_ns"])[:: _SAMPLE_MASK + 1]
    return {"end_ns": end, "count": count, "latency_ns": latency, "lost": lost}


def _ring_write_batched(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, capacity = channel
    writer = ring.create(path, RECORD, capacity)
    records = _touched(n)
    ring.warm_up()
    barrier.wait()
    start = time.perf_counter_ns()
    for i in range(0, n, batch):
        chunk = records[i : i + batch]
        chunk["send_ns"] = time.perf_counter_ns()
        writer.write_batch(chunk)
    writer.close()
    return {"start_ns": start}


def _ring_read_batched(channel: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    path, _ = channel
    reader = ring.attach(path, RECORD, timeout=60.0)
    out = _touched(n)
    recv = np.ones(n, dtype=np.int64)
    ring.warm_up()
    barrier.wait()
    count = 0
    start = time.perf_counter_ns()
    while count < n:
        got = reader.read_into(out[count : count + batch])
        if got:
            recv[count : count + got] = time.perf_counter_ns()
            count += got
        else:
            _idle()
            _check_deadline(start)
    end = time.perf_counter_ns()
    lost = reader.records_lost
    reader.close()
    return {"end_ns": end, "count": count, "latency_ns": recv - out["send_ns"], "lost": lost}


# ------------------------------------------------------------------------------------------------------------
# Baselines: multiprocessing.Queue and faster_fifo.Queue share put/get; Pipe has send_bytes/recv_bytes.


def _queue_write(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    put, pack, clock = q.put, _PACK.pack, time.perf_counter_ns
    barrier.wait()
    start = clock()
    if pace_ns:
        due, sent = start, []
        for i in range(n):
            due = _wait_until(due + pace_ns, pace_ns)
            now = clock()
            put(pack(i, now))
            sent.append(now)
        return {"start_ns": start, "sent_ns": np.array(sent, dtype=np.int64)}
    else:
        for i in range(n):
            put(pack(i, clock()))
    return {"start_ns": start}


def _queue_read(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    get, unpack, clock = q.get, _SEND.unpack_from, time.perf_counter_ns
    latencies: list[int] = []
    barrier.wait()
    for count in range(n):
        data = get(timeout=_DEADLINE_S)
        if not count & _SAMPLE_MASK:
            latencies.append(clock() - unpack(data, 8)[0])
    return {"end_ns": clock(), "count": n, "latency_ns": np.array(latencies, dtype=np.int64)}


def _queue_read_polling(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    get, unpack, clock = q.get_nowait, _SEND.unpack_from, time.perf_counter_ns
    latencies: list[int] = []
    barrier.wait()
    start = clock()
    count = 0
    while count < n:
        try:
            data = get()
        except queue.Empty:
            _check_deadline(start)
            continue
        latencies.append(clock() - unpack(data, 8)[0])
        count += 1
    return {"end_ns": clock(), "count": n, "latency_ns": np.array(latencies, dtype=np.int64)}


def _pipe_write(pipe: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    send, pack, clock = pipe[1].send_bytes, _PACK.pack, time.perf_counter_ns
    barrier.wait()
    start = clock()
    if pace_ns:
        due, sent = start, []
        for i in range(n):
            due = _wait_until(due + pace_ns, pace_ns)
            now = clock()
            send(pack(i, now))
            sent.append(now)
        return {"start_ns": start, "sent_ns": np.array(sent, dtype=np.int64)}
    else:
        for i in range(n):
            send(pack(i, clock()))
    return {"start_ns": start}


def _pipe_read(pipe: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    recv, unpack, clock = pipe[0].recv_bytes, _SEND.unpack_from, time.perf_counter_ns
    latencies: list[int] = []
    barrier.wait()
    for count in range(n):
        data = recv()
        if not count & _SAMPLE_MASK:
            latencies.append(clock() - unpack(data, 8)[0])
    return {"end_ns": clock(), "count": n, "latency_ns": np.array(latencies, dtype=np.int64)}


def _pipe_read_polling(pipe: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    conn = pipe[0]
    poll, recv, unpack, clock = conn.poll, conn.recv_bytes, _SEND.unpack_from, time.perf_counter_ns
    latencies: list[int] = []
    barrier.wait()
    start = clock()
    count = 0
    while count < n:
        if not poll():
            _check_deadline(start)
            continue
        data = recv()
        latencies.append(clock() - unpack(data, 8)[0])
        count += 1
    return {"end_ns": clock(), "count": n, "latency_ns": np.array(latencies, dtype=np.int64)}


def _blob_batches(n: int, batch: int):
    records = np.zeros(n, dtype=RECORD)
    for i in range(0, n, batch):
        chunk = records[i : i + batch]
        chunk["send_ns"] = time.perf_counter_ns()
        yield chunk.tobytes()


def _queue_write_batched(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    barrier.wait()
    start = time.perf_counter_ns()
    for blob in _blob_batches(n, batch):
        q.put(blob)
    return {"start_ns": start}


def _queue_read_batched(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    return _read_blobs(lambda: q.get(timeout=_DEADLINE_S), barrier, n)


def _pipe_write_batched(pipe: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    barrier.wait()
    start = time.perf_counter_ns()
    for blob in _blob_batches(n, batch):
        pipe[1].send_bytes(blob)
    return {"start_ns": start}


def _pipe_read_batched(pipe: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    return _read_blobs(pipe[0].recv_bytes, barrier, n)


def _read_blobs(receive: Callable[[], bytes], barrier: Any, n: int) -> dict:
    latencies = []
    barrier.wait()
    count = 0
    while count < n:
        chunk = np.frombuffer(receive(), dtype=RECORD)
        latencies.append(time.perf_counter_ns() - chunk["send_ns"])
        count += len(chunk)
    end = time.perf_counter_ns()
    return {"end_ns": end, "count": count, "latency_ns": np.concatenate(latencies)}


def _ffq_write_batched(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    pack, clock = _PACK.pack, time.perf_counter_ns
    barrier.wait()
    start = clock()
    for i in range(0, n, batch):
        now = clock()
        q.put_many([pack(j, now) for j in range(i, min(n, i + batch))], timeout=_DEADLINE_S)
    return {"start_ns": start}


def _ffq_read_batched(q: Any, barrier: Any, n: int, pace_ns: int, batch: int) -> dict:
    unpack, clock = _SEND.unpack_from, time.perf_counter_ns
    latencies: list[int] = []
    sizes: list[int] = []
    barrier.wait()
    count = 0
    while count < n:
        messages = q.get_many(timeout=_DEADLINE_S, max_messages_to_get=batch)
        # A put_many batch shares one send time, so its first message's latency is every message's latency.
        latencies.append(clock() - unpack(messages[0], 8)[0])
        sizes.append(len(messages))
        count += len(messages)
    end = clock()
    return {
        "end_ns": end,
        "count": count,
        "latency_ns": np.repeat(np.array(latencies, dtype=np.int64), sizes),
    }
