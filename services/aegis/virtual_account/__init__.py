"""Virtual accounts (learning, paper): positions, TP/SL, fees, funding."""
