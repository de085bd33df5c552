"""The lazy SMC view (GetMarketState's zones and structure) equals the view folded at every candle, on the real klines.

The strategy's open-time table forgets old bars every ``DEFAULT_HORIZON`` bars (the 10-day 1m files run past
that): the lazy view must fold before it does, or an old bar's time would be read from the extrapolation.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from aegis.analytics.smc_stream import DEFAULT_HORIZON, StreamingSMC
from aegis.brain.strategy import _OpenTimes
from aegis.brain.zones import SmcView

MIN = 60_000


@pytest.fixture(scope="module", params=["BTCUSDT", "ETHUSDT"])
def klines(request: pytest.FixtureRequest, shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = pd.read_csv(shared_data / "binance/signalbot/data" / f"{request.param}_1m.csv", parse_dates=["open_time"])
    opens = (pd.DatetimeIndex(raw["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return np.asarray(opens, dtype=np.int64), raw[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)


def _shown(view: SmcView, since: int) -> tuple[list[tuple], list[tuple]]:
    return (
        [msgspec.structs.astuple(z) for z in view.zones(mitigated_since_ms=since)],
        [msgspec.structs.astuple(p) for p in view.structure()],
    )


@pytest.mark.parametrize("swing_length", [3, 5])
def test_the_lazy_view_shows_what_the_eager_view_shows(
    klines: tuple[np.ndarray, np.ndarray], swing_length: int
) -> None:
    opens, ohlcv = klines
    # an hour's gap every 997 candles (a halted market): a forgotten bar's extrapolated time is then wrong, so a
    # view that folded after its table forgot bars would show different times
    opens = opens + np.arange(len(opens)) // 997 * 3_600_000
    assert len(opens) > 2 * DEFAULT_HORIZON + 1  # the open-time table forgets bars during the run
    eager = SmcView("X:1m", keep_pending=1)  # folds every candle's events at once: the view before it was lazy
    lazy = SmcView("X:1m")
    rare = SmcView("X:1m", keep_pending=10**9)  # folds only when asked or when its table forgets bars
    views = [(v, _OpenTimes(MIN, v.fold), StreamingSMC(swing_length)) for v in (eager, lazy, rare)]
    events_seen = 0
    for t, (o, h, lo, c, vol) in enumerate(ohlcv.tolist()):
        for view, table, detector in views:
            table.append(int(opens[t]))
            events = detector.update(o, h, lo, c, vol)
            if events:
                view.apply(events, table)
        events_seen += bool(events)
        if t % 1_499 == 1_498 or t == len(opens) - 1:
            since = int(opens[max(0, t - 500)])
            assert _shown(lazy, since) == _shown(eager, since), t
            if t % 2 == 0:  # the rare view is asked only sometimes: the others fold in between
                assert _shown(rare, since) == _shown(eager, since), t
    assert events_seen > 5_000
    assert _shown(rare, 0) == _shown(eager, 0)
    zones, structure = _shown(eager, 0)
    assert zones and structure
    assert not lazy._pending and not rare._pending  # asking folded everything


def test_a_view_folds_what_it_kept_for_another_table_before_taking_the_new_one() -> None:
    from aegis.analytics.smc_stream import FvgEvent

    view = SmcView("X:1m")
    view.apply([FvgEvent(3, 2, 1, 110.0, 105.0, "formed")], [0, 1_000, 2_000, 3_000])
    view.apply([FvgEvent(4, 3, -1, 99.0, 98.0, "formed")], [0, 10, 20, 30, 40])
    assert [(z.formed_time_ms, z.direction) for z in view.zones()] == [(30, -1), (2_000, 1)]
