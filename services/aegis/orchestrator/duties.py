"""The leader's schedule: each duty runs when this replica becomes the leader (or after its first delay), then
every interval, and stops the moment leadership is lost.

A duty that fails is logged and tried again after ``min(interval, retry_s)``; it never stops the process (a
refresh that fails while Binance is unreachable must not take the orchestrator's status API down with it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aegis.errors import AegisError
from aegis.orchestrator.leader import LeaderElection

log = logging.getLogger("aegis.orchestrator.duties")


@dataclass(frozen=True, slots=True)
class Duty:
    name: str
    interval_s: float
    """0 = off."""
    run: Callable[[], Awaitable[str | None]]
    """Returns a summary to log at INFO (None: nothing to log)."""
    first_delay_s: float = 0.0
    retry_s: float = 60.0


async def run_duty(duty: Duty) -> None:
    """Run ``duty`` forever on its interval (until cancelled)."""
    await asyncio.sleep(duty.first_delay_s)
    while True:
        delay = duty.interval_s
        try:
            summary = await duty.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = min(duty.interval_s, duty.retry_s)
            error = str(exc) if isinstance(exc, AegisError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "duty %s failed: %s (next try in %.0f s)",
                duty.name,
                error,
                delay,
                exc_info=not isinstance(exc, AegisError),
            )
        else:
            if summary:
                log.info("%s: %s", duty.name, summary, extra={"duty": duty.name})
        await asyncio.sleep(delay)


async def lead(election: LeaderElection, duties: Sequence[Duty], ready: asyncio.Event | None = None) -> None:
    """Run the enabled duties while ``election`` says this replica leads; stop them when it no longer does."""
    enabled = [d for d in duties if d.interval_s > 0]
    if ready is not None:
        await ready.wait()
    while True:
        await election.wait_leading()
        tasks = [asyncio.create_task(run_duty(d), name=f"duty-{d.name}") for d in enabled]
        if enabled:
            log.info("duties started: %s", ", ".join(d.name for d in enabled))
        try:
            await election.wait_following()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
