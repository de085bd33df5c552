"""Brain: ring consumer, candles, indicators, SMC, signals."""
