"""Binance's error answer ``{"code": …, "msg": …}`` and compact JSON responses, shared by the route modules."""

from __future__ import annotations

import msgspec
from aiohttp import web

_ENCODER = msgspec.json.Encoder()


def json_response(data: object, status: int = 200) -> web.Response:
    """Return compact JSON, as Binance sends it."""
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json")


class BinanceError(Exception):
    """An error answered as ``{"code": …, "msg": …}`` with an HTTP status."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
