"""AEGIS: a self-learning trading engine for Binance USD-M perpetual futures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aegis")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
