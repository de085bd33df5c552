"""`aegis bench feed` reports in the project's benchmark JSON convention (a tiny run, not a measurement)."""

from __future__ import annotations

import argparse
import json

import pytest

from aegis.bench import feed


@pytest.mark.skipif(not feed.DATA_DIR.is_dir(), reason="shared Binance fixtures not present")
def test_bench_feed_quick_run_reports_the_convention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "QUICK_FRAMES", 3_000)
    parser = argparse.ArgumentParser()
    feed.add_arguments(parser)
    result = feed.run(parser.parse_args(["--quick", "--repeat", "1"]))
    json.dumps(result)
    assert result["bench"] == "feed"
    names = {row["name"]: row for row in result["results"]}
    assert {"decode_firewall_publish", "decode_firewall_publish_stdlib_json", "decode_only_msgspec"} <= set(names)
    assert names["frames"]["value"] == 3_000
    assert names["decode_firewall_publish"]["unit"] == "frames/s"
    assert result["ratios"]["vs_stdlib_json"] > 0
    assert set(result["rejected_by_reason"]) == {"unsupported_event"}
