"""Process supervision for ``aegis up``: the pod topology as local processes.

Each child runs in its own session (a terminal's Ctrl-C reaches only the supervisor, which then stops the children
in order) and gets ``PR_SET_PDEATHSIG`` so that it dies with the supervisor even if the supervisor is killed
outright. A child that exits on its own is restarted with exponential backoff; a child that exits with a
configuration (2) or start-up (4) error is not: restarting cannot fix that, so the supervisor stops everything and
reports the child's last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aegis.supervisor")

FATAL_EXIT_CODES = frozenset({2, 4})

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass(slots=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path
    stop_signal: signal.Signals = signal.SIGTERM
    user: str | None = None
    restart: bool = True


@dataclass(slots=True)
class Child:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.5
    watcher: asyncio.Task | None = None
    history: list[str] = field(default_factory=list)


class FatalChildExit(Exception):
    def __init__(self, name: str, code: int, last_line: str) -> None:
        super().__init__(f"{name} exited with code {code}: {last_line}")
        self.name = name
        self.code = code
        self.last_line = last_line


def last_line(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = [line for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class Supervisor:
    """Start, watch, restart and stop a set of child processes."""

    def __init__(
        self,
        *,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 30.0,
        on_event: Callable[[str, str], None] | None = None,
        on_spawn: Callable[[Child], None] | None = None,
    ) -> None:
        self.children: dict[str, Child] = {}
        self._max_backoff_s = max_backoff_s
        self._stable_after_s = stable_after_s
        self._on_event = on_event or (lambda name, text: log.info("%s: %s", name, text))
        self._on_spawn = on_spawn or (lambda child: None)
        self._stopping = False
        self._fatal: asyncio.Future[FatalChildExit] | None = None

    async def start(self, spec: ProcessSpec) -> Child:
        child = self.children.get(spec.name) or Child(spec)
        self.children[spec.name] = child
        await self._spawn(child)
        return child

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_file.open("ab") as out:
            child.process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=spec.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                user=spec.user,
            )
        child.started_at = time.monotonic()
        self._on_spawn(child)
        child.watcher = asyncio.create_task(self._watch(child), name=f"watch-{spec.name}")

    async def _watch(self, child: Child) -> None:
        assert child.process is not None
        code = await child.process.wait()
        if self._stopping:
            return
        spec = child.spec
        line = last_line(spec.log_file)
        if code in FATAL_EXIT_CODES or not spec.restart:
            self._on_event(spec.name, f"exited with code {code}: {line}")
            if self._fatal is None:
                self._fatal = asyncio.get_running_loop().create_future()
            if not self._fatal.done():
                self._fatal.set_result(FatalChildExit(spec.name, code, line))
            return
        ran_s = time.monotonic() - child.started_at
        if ran_s > self._stable_after_s:
            child.backoff_s = 0.5
        delay = child.backoff_s
        child.backoff_s = min(child.backoff_s * 2, self._max_backoff_s)
        child.restarts += 1
        how = f"signal {-code}" if code < 0 else f"code {code}"
        self._on_event(spec.name, f"exited ({how}) after {ran_s:.1f} s; restart #{child.restarts} in {delay:.1f} s")
        await asyncio.sleep(delay)
        if not self._stopping:
            await self._spawn(child)
            self._on_event(spec.name, f"restarted, pid {child.process.pid if child.process else '?'}")

    async def wait_fatal(self) -> FatalChildExit:
        """Wait until a child fails in a way restarting cannot fix."""
        if self._fatal is None:
            self._fatal = asyncio.get_running_loop().create_future()
        return await self._fatal

    async def stop(self, groups: list[list[str]], timeout_s: float) -> None:
        """Stop the children group by group: each gets its stop signal, then SIGKILL after ``timeout_s``."""
        self._stopping = True
        for child in self.children.values():
            if child.watcher is not None:
                child.watcher.cancel()
        for names in groups:
            for name in names:
                child = self.children.get(name)
                if child is not None and child.process is not None and child.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.send_signal(child.spec.stop_signal)
            await self._reap(names, timeout_s)

    async def _reap(self, names: list[str], timeout_s: float) -> None:
        waits = []
        for name in names:
            child = self.children.get(name)
            if child is not None and child.process is not None:
                waits.append(child)
        deadline = time.monotonic() + timeout_s
        for child in waits:
            assert child.process is not None
            remaining = max(0.05, deadline - time.monotonic())
            try:
                await asyncio.wait_for(child.process.wait(), remaining)
            except TimeoutError:
                self._on_event(child.spec.name, f"did not stop within {timeout_s:.0f} s; killing")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                await child.process.wait()
