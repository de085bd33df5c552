"""AEGIS: a self-learning trading engine for Binance USD-M perpetual futures."""

import os
from importlib.metadata import PackageNotFoundError, version

# gRPC core prints its own unstructured lines to stderr (e.g. a second, noisier report of a port already in use)
# before our one clear line; AEGIS reports those errors itself. Set GRPC_VERBOSITY=ERROR to see them again.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

try:
    __version__ = version("aegis")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
