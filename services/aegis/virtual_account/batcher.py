"""Gather requests that arrive together into one call of a batch handler (one transaction for all of them).

A request waits at most ``max_delay_s`` after the first request of its batch arrived (or not at all once
``max_size`` are waiting); while a batch is in PostgreSQL the next one gathers. Each request still gets its own
result or its own error: the handler returns one outcome per request, in order.

Up to ``in_flight`` batches are handled at once (default 2), each in its own transaction: the next batch has begun
and waits on the account locks while the previous one writes and commits (no round trips between the two), and the
locks order them, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class Batcher(Generic[Req, Res]):
    def __init__(
        self,
        handle: Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]],
        *,
        max_delay_s: float,
        max_size: int,
        in_flight: int = 2,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        self._handle = handle
        self._max_delay_s = max_delay_s
        self._max_size = max_size
        self._in_flight = asyncio.Semaphore(in_flight)
        self._handling: set[asyncio.Task[None]] = set()
        self._queue: list[tuple[Req, asyncio.Future[Res], float]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.requests = 0

    async def submit(self, request: Req) -> Res:
        """Return the outcome of ``request`` (raise its error), after it went through a batch."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="batcher")
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future, time.monotonic()))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if len(self._queue) < self._max_size:
                    wait = self._queue[0][2] + self._max_delay_s - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                batch, self._queue = self._queue[: self._max_size], self._queue[self._max_size :]
                await self._in_flight.acquire()
                task = asyncio.create_task(self._process(batch), name="batcher-batch")
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)

    async def _process(self, batch: list[tuple[Req, asyncio.Future[Res], float]]) -> None:
        self.batches += 1
        self.requests += len(batch)
        try:
            outcomes = await self._handle([item[0] for item in batch])
        except Exception as exc:  # the whole transaction failed: every request in it gets the error
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._in_flight.release()
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller gave up (deadline); the outcome stays in PostgreSQL for its retry
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._handling):  # batches in PostgreSQL: let them finish, their callers get the outcome
            with contextlib.suppress(Exception):
                await task
        for _, future, _ in self._queue:
            if not future.done():
                future.set_exception(asyncio.CancelledError())
        self._queue = []
