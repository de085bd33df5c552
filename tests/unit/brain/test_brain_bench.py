"""`aegis bench brain` reports in the project's benchmark JSON convention (a small run, not a measurement)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aegis.bench import brain


def test_bench_brain_small_run_reports_both_sides_and_every_latency(shared_data: Path) -> None:
    parser = argparse.ArgumentParser()
    brain.add_arguments(parser)
    args = "--rules loose --symbols 40 --minutes 5 --repeat 1 --latency-minutes 600 --stall-probe-s 0.2"
    options = parser.parse_args([*args.split(), "--data", str(shared_data / "binance/signalbot/data")])
    result = brain.run(options, report=lambda line: None)
    json.dumps(result)
    assert result["bench"] == "brain"
    values = {row["name"]: row["value"] for row in result["results"]}
    assert values["ticks_per_second_per_core"] > 0 and values["baseline_python_per_tick_talib_ticks_per_second"] > 0
    assert result["ratios"]["ticks_vs_baseline"] == (
        values["ticks_per_second_per_core"] / values["baseline_python_per_tick_talib_ticks_per_second"]
    )
    assert values["tick_to_signal_samples"] > 0 and values["tick_to_decision_samples"] > 0
    # a signal is published after it is created, and created after its record was received
    assert 0 < values["tick_to_signal_p50"] <= values["tick_to_publish_p50"]
    assert values["tick_to_signal_p99"] <= values["tick_to_signal_max"]
    assert set(result["targets"]) == {"ticks_per_second_per_core_1M", "tick_to_signal_p99_100us"}
    ring = result["config"]["ring"]
    assert ring["records_lost"] == 0 and ring["records_rejected"] == 0 and ring["records_processed"] > 0
    counts = result["config"]["strategy_counts"]
    assert counts["signals"] > 0 and counts["symbols"] == 40
    for probe in result["config"]["machine_stalls"].values():
        assert probe["seconds"] >= 0.2 and probe["gaps_over_10us_per_s"] >= 0
        assert probe["gap_p50_us"] <= probe["gap_p90_us"] <= probe["gap_max_us"]


def test_the_stall_probe_counts_gaps_a_sleep_makes() -> None:
    # a spin that sleeps is a spin with known stalls: the probe must see them
    import time

    original = time.perf_counter_ns
    calls = [0]

    def clock() -> int:
        calls[0] += 1
        if calls[0] % 1000 == 0:
            time.sleep(0.001)
        return original()

    time.perf_counter_ns = clock
    try:
        probe = brain.stall_probe(0.2)
    finally:
        time.perf_counter_ns = original
    assert probe["gaps_over_10us_per_s"] >= 50 and probe["gap_p50_us"] >= 1000
