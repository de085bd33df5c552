"""Smoke test of the indicator half of `aegis bench analytics` (the figures themselves come from a real run)."""

from __future__ import annotations

import argparse

from aegis.bench import analytics


def test_indicator_benchmark_reports_the_convention() -> None:
    parser = argparse.ArgumentParser()
    analytics.add_arguments(parser)
    options = parser.parse_args(["--quick", "--symbols", "20", "--bars", "3", "--repeat", "1"])
    result = analytics.run(options, report=lambda line: None)
    assert result["bench"] == "analytics"
    names = {row["name"] for row in result["results"]}
    assert {"indicators.ours_streaming", "indicators.talib_stream", "indicators.talib_window_500"} <= names
    assert all(row["value"] > 0 and row["unit"] for row in result["results"])
    assert set(result["ratios"]) >= {"indicators_vs_talib_stream", "indicators_vs_talib_window_500"}
    assert result["checks"]["indicators_max_rel_diff_vs_talib_stream"] <= 1e-9
