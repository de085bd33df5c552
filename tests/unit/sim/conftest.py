"""Session fixtures for the simulator tests: the real recordings from ../shared/data, loaded once."""

from __future__ import annotations

import json

import pytest
from sim_testdata import CCXT_FILE

from aegis.sim.config import SimConfig
from aegis.sim.server import load_market


@pytest.fixture(scope="session")
def market():
    return load_market(SimConfig())


@pytest.fixture(scope="session")
def csv_market():
    return load_market(SimConfig(kline_source="csv"))


@pytest.fixture(scope="session")
def ccxt_responses() -> dict:
    items = json.loads(CCXT_FILE.read_text())["items"]
    return {item["ccxt_method"]: item["httpResponse"] for item in items}
