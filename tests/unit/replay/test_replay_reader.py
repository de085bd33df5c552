"""The hftbacktest reader the replay's max-speed loop reads from: every line accounted for, as before the fast path."""

from __future__ import annotations

import gzip
from pathlib import Path

from aegis.feed.pipeline import FramePipeline
from aegis.feed.replay import read_hftbacktest, replay

TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600100,"T":1723161600099,"s":"BTCUSDT",'
    b'"t":%d,"p":"56979.90","q":"0.010","X":"MARKET","m":true}}'
)


def _lines() -> list[bytes]:
    return [
        b"1723161600200000000 " + TRADE % 1,
        b"",  # empty: skipped
        b"1723161600300000000 " + TRADE % 2 + b"\r",  # CRLF line ending
        b'{"lastUpdateId": 1, "bids": [], "asks": []}',  # no stamp (a collector's snapshot): previous receive time
        b"not-a-number " + TRADE % 3,  # no numeric stamp: the whole line, previous receive time
        b"1723161600400000000 {broken",
    ]


def test_every_line_is_a_frame_with_the_last_receive_time(tmp_path: Path) -> None:
    plain, gz = tmp_path / "rec.hft", tmp_path / "rec.gz"
    data = b"\n".join(_lines()) + b"\n"
    plain.write_bytes(data)
    gz.write_bytes(gzip.compress(data))
    expected = [
        (1723161600200000000, TRADE % 1),
        (1723161600300000000, TRADE % 2),
        (1723161600300000000, b'{"lastUpdateId": 1, "bids": [], "asks": []}'),
        (1723161600300000000, b"not-a-number " + TRADE % 3),
        (1723161600400000000, b"{broken"),
    ]
    assert list(read_hftbacktest(plain)) == expected
    assert list(read_hftbacktest(gz)) == expected


class _Sink:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def write_bytes(self, record: bytes) -> int:
        self.records.append(record)
        return len(self.records)

    def add_symbol(self, name: str) -> int:
        return 0


def test_max_speed_and_paced_replays_publish_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "rec.hft"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    results = []
    for speed in (None, "x1000000"):
        sink = _Sink()
        stats = replay(read_hftbacktest(path), FramePipeline(["BTCUSDT"], sink, recv_clock="wall", replay=True), speed)
        results.append((sink.records, stats.to_dict()))
        assert stats.frames_in == 5 and stats.published + stats.rejected == stats.events_in
    assert results[0] == results[1]
    assert len(results[0][0]) == 2  # the two trades; the snapshot, the unstamped and the broken line are rejected
