"""Ring overrun: a writer process floods a small ring at >= 200k records/s while a slowed reader falls behind.

The reader (``RingReader``, what the brain's ring consumer wraps) must count every record it lost, resync, never
return a torn or out-of-order record, and end exactly at the writer's last record. Each record carries its own index
(``i0`` = sequence - 1), so the test checks the counts against the data itself: the gaps the reader saw add up to
``records_lost``, and read + lost covers every record published.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from faultkit import report

from aegis.core.records import MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import RingReader

CAPACITY = 4096
TOTAL = 1_000_000
RATE = 300_000
"""The burst: records/s the writer paces itself to (a market-wide spike; the ring's reader manages ~128k/s)."""

WRITER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from aegis.core import records
    from aegis.core.ring import RingWriter

    path, capacity, total, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    writer = RingWriter(path, records.MARKET_RECORD, capacity, layout_name=records.MARKET_RECORD_LAYOUT)
    writer.add_symbol("BTCUSDT")
    batch = np.zeros(512, dtype=records.MARKET_RECORD)
    batch["kind"] = records.TRADE
    batch["f0"] = 60000.0
    batch["f1"] = 0.001
    print("ready", flush=True)
    sys.stdin.readline()  # the reader is attached: flood
    written, started = 0, time.perf_counter()
    while written < total:
        n = min(len(batch), total - written)
        part = batch[:n]
        part["i0"] = np.arange(written, written + n)
        part["recv_time_ns"] = time.time_ns()
        writer.write_batch(part)
        written += n
        while time.perf_counter() - started < written / rate:  # paced, never blocked by the reader
            pass
    seconds = time.perf_counter() - started
    print(json.dumps({"written": written, "seconds": seconds, "published": writer.published}), flush=True)
    sys.stdin.readline()
    writer.close()
    """
)


def test_a_slowed_reader_counts_every_lost_record_and_resyncs(tmp_path: Path) -> None:
    path = tmp_path / "burst.ring"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(CAPACITY), str(TOTAL), str(RATE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "ready"
        reader = RingReader(path, MARKET_RECORD, layout_name=MARKET_RECORD_LAYOUT, start="oldest", on_overrun="oldest")
        first_cursor = reader.cursor
        writer.stdin.write("go\n")
        writer.stdin.flush()
        expected = first_cursor - 1  # i0 of the next record
        gaps = 0
        out_of_order = 0
        read = 0
        buffer = np.zeros(256, dtype=MARKET_RECORD)
        started = time.perf_counter()
        done = None
        while True:
            n = reader.read_into(buffer)
            if n:
                idx = buffer["i0"][:n]
                if idx[0] != expected:
                    gaps += int(idx[0] - expected)
                steps = np.diff(idx)
                out_of_order += int(np.count_nonzero(steps != 1))
                expected = int(idx[-1]) + 1
                read += n
                time.sleep(0.002)  # the slow consumer: at most ~128k records/s against the flood
            elif done is None:
                time.sleep(0.0005)
            if done is None and writer.poll() is None:
                import select

                if select.select([writer.stdout], [], [], 0)[0]:
                    done = json.loads(writer.stdout.readline())
            if done is not None and n == 0 and reader.cursor > done["published"]:
                break
            assert time.perf_counter() - started < 120, "the reader never caught up"
        stats = reader.stats()
        reader.close()
        writer.stdin.write("bye\n")
        writer.stdin.flush()
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
    rate = done["written"] / done["seconds"]
    figures = report(
        "ring overrun",
        {
            "capacity": CAPACITY,
            "written": done["written"],
            "write_rate_per_s": f"{rate:,.0f}",
            "read": read,
            "lost": stats["records_lost"],
            "overruns": stats["overruns"],
            "resyncs": stats["resyncs"],
            "torn_reads": stats["torn_reads"],
            "gaps_seen_in_data": gaps,
            "out_of_order": out_of_order,
        },
    )
    assert rate >= 200_000, figures
    assert stats["records_lost"] > 0 and stats["overruns"] > 0, figures  # the burst did overrun the reader
    assert gaps == stats["records_lost"], figures  # every lost record counted, no more, no less
    assert out_of_order == 0, figures  # no torn or reordered record ever returned
    assert read + stats["records_lost"] == done["published"] - first_cursor + 1 == TOTAL, figures
    assert expected == TOTAL, figures  # resynced and read to the very last record
