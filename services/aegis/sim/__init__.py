"""A Binance USD-M compatible exchange simulator that replays real recordings (see docs/simulator.md).

    async with Simulator(speed=None) as sim:
        sim.rest_url, sim.ws_market_url, sim.ws_public_url
        sim.ws_private_url, sim.api_key, sim.api_secret   # signed endpoints and user data (docs/live-trading.md)

or ``python -m aegis.sim --port 0 --speed max``.
"""

from aegis.sim.config import SimConfig, parse_speed
from aegis.sim.server import Simulator

__all__ = ["SimConfig", "Simulator", "parse_speed"]
