"""One exception tree for AEGIS, and its mapping to gRPC status codes and process exit codes.

Everything the project raises on purpose derives from :class:`AegisError`. The mapping to gRPC status codes lives
here and nowhere else, so a servicer never picks a status code by hand.
"""

from __future__ import annotations

import grpc


class AegisError(Exception):
    """Base of every error AEGIS raises on purpose."""

    status_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    exit_code: int = 1


class ConfigError(AegisError):
    """A configuration value is missing or wrong; the message names the variable and the problem."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION
    exit_code = 2


class ValidationError(AegisError, ValueError):
    """An argument or a piece of data is invalid; the message names the field.

    It is also a ValueError, so code written against the standard library's convention catches it too.
    """

    status_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFoundError(AegisError):
    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(AegisError):
    status_code = grpc.StatusCode.ALREADY_EXISTS


class DependencyUnavailable(AegisError):
    """PostgreSQL, Redis or another service this one needs does not answer right now."""

    status_code = grpc.StatusCode.UNAVAILABLE
    exit_code = 3


class NotImplementedYet(AegisError):
    """The RPC belongs to a part of AEGIS that has not been built yet: never answer with a made-up value."""

    status_code = grpc.StatusCode.UNIMPLEMENTED


class StartupError(AegisError):
    """The process cannot start (port taken, unusable state directory, ...)."""

    exit_code = 4


class ExchangeError(AegisError):
    """Binance (or the simulator) answered with an error."""

    status_code = grpc.StatusCode.UNAVAILABLE


class RateLimited(ExchangeError):
    """HTTP 429/418: back off; continuing earns a ban."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OrderStatusUnknown(ExchangeError):
    """HTTP 503 "Unknown error": the order may or may not exist; reconcile, never retry blindly."""

    status_code = grpc.StatusCode.UNKNOWN


def grpc_status_for(error: BaseException) -> grpc.StatusCode:
    """Return the gRPC status code an error maps to (INTERNAL for anything not ours)."""
    if isinstance(error, AegisError):
        return error.status_code
    return grpc.StatusCode.INTERNAL
