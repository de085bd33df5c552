"""Market data feed: Binance websockets -> data firewall -> ring."""
