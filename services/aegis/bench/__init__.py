"""Benchmarks: `aegis bench <name> [--json]`.

Every benchmark module exposes ``run(options) -> dict`` (and optionally ``add_arguments(parser)``) and returns
``{"bench": name, "results": [{"name", "value", "unit"}...], "ratios": {baseline: times better}}``. Each figure is
measured beside a baseline in the same run, because on a shared machine absolute times drift while ratios hold.
"""

from __future__ import annotations

from typing import Any


def report(bench: str, results: list[dict[str, Any]], ratios: dict[str, float], **extra: Any) -> dict[str, Any]:
    """Return a result in the project's benchmark JSON convention."""
    return {"bench": bench, "results": results, "ratios": ratios, **extra}


def render(result: dict[str, Any]) -> None:
    """Print a benchmark result as tables."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"aegis bench {result['bench']}")
    for column in ("result", "value", "unit"):
        table.add_column(column)
    for row in result["results"]:
        value = row["value"]
        table.add_row(row["name"], f"{value:,.3f}" if isinstance(value, float) else str(value), row["unit"])
    ratios = Table(title="ratios (how many times better than the baseline)")
    ratios.add_column("baseline")
    ratios.add_column("ratio")
    for name, value in result["ratios"].items():
        ratios.add_row(name, f"{value:,.2f}x")
    console = Console()
    console.print(table)
    console.print(ratios)
