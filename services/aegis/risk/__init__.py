"""Risk: sizing on total equity, leverage guard, exchange filters, rotation."""
