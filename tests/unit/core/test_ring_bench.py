"""`aegis bench ring` reports in the project's benchmark JSON convention (a tiny run, not a measurement)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aegis.bench import ring as bench


def test_bench_ring_tiny_run_reports_every_scenario_ratio_and_target(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    options = parser.parse_args(["--records", "3000", "--paced-records", "200", "--dir", str(tmp_path)])
    result = bench.run(options, report=lambda line: None)
    json.dumps(result)
    assert result["bench"] == "ring"
    names = {row["name"] for row in result["results"]}
    for scenario in ("ring_per_record_python_api", "ring_per_record_bytes", "ring_batched", "faster_fifo_per_record"):
        assert f"{scenario}.throughput" in names
    assert {"ring_paced.latency_p99", "ring_paced.send_interval_p50", "faster_fifo_paced.latency_p99"} <= names
    assert not any(name.endswith(".records_lost") for name in names)  # the ring is sized to hold every record
    assert {"per_record_vs_mp_queue", "per_record_vs_faster_fifo", "batched_vs_mp_queue"} <= set(result["ratios"])
    assert set(result["targets"]) >= {"per_record_10x_faster_fifo", "batched_20M_per_s", "paced_p99_10us"}
    assert result["config"]["pinned_cpus"] is None and result["config"]["gc_disabled_while_timed"]
    assert list(tmp_path.iterdir()) == []  # the ring file and its lock are removed
