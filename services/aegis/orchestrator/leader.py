"""Exactly one active orchestrator: leader election over a PostgreSQL session-level advisory lock.

Every replica opens one dedicated connection (outside the pool, so no other query ever runs on it) and asks for
the lock with ``pg_try_advisory_lock``. The replica that gets it is the leader and runs the duties; the others
ask again every ``retry_s`` seconds. A session-level lock lives exactly as long as the session: when the leader
stops, crashes or is killed with ``kill -9``, the kernel closes its socket, PostgreSQL ends the session and the
lock is free for the next follower's try. The leader checks every ``retry_s`` seconds that its session still
holds the lock; when the check fails (the connection died, PostgreSQL restarted) it steps down at once, so the
duties stop before another replica can start them.

The connection carries ``application_name = "aegis-orchestrator <identity>"``, so any replica can tell who leads
by looking the lock up in ``pg_locks`` (:func:`current_leader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import asyncpg

from aegis.storage.postgres import Database

log = logging.getLogger("aegis.orchestrator.leader")

LEADER_LOCK_KEY = 0x4145_4749_535F_4F52
"""The advisory lock key of the orchestrator leader ("AEGIS_OR" in ASCII); migrations use a different one."""

APPLICATION_NAME_PREFIX = "aegis-orchestrator "

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def default_identity() -> str:
    """Return this replica's name: the pod name (HOSTNAME in Kubernetes) or the host name, with the process id."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}:{os.getpid()}"


def lock_parts(key: int) -> tuple[int, int]:
    """Return the (classid, objid) under which ``pg_locks`` shows a bigint advisory lock key."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class LeaderElection:
    """Campaign for the leader lock on a dedicated connection; expose whether this replica leads right now."""

    def __init__(
        self,
        dsn: str,
        identity: str,
        *,
        retry_s: float = 2.0,
        timeout_s: float = 2.0,
        lock_key: int = LEADER_LOCK_KEY,
    ) -> None:
        self.dsn = dsn
        self.identity = identity
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self.lock_key = lock_key
        self.terms = 0
        """How many times this replica became the leader."""
        self._conn: asyncpg.Connection | None = None
        self._leading = asyncio.Event()
        self._following = asyncio.Event()
        self._following.set()

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    async def wait_leading(self) -> None:
        await self._leading.wait()

    async def wait_following(self) -> None:
        await self._following.wait()

    def _set_leader(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        if leading:
            self.terms += 1
            self._following.clear()
            self._leading.set()
            log.warning("leader: %s holds the orchestrator lock and runs the duties", self.identity)
        else:
            self._leading.clear()
            self._following.set()
            log.warning("no longer the leader: %s stopped its duties", self.identity)

    async def run(self) -> None:
        """Campaign until cancelled; on cancellation release the lock (by closing the session)."""
        try:
            while True:
                try:
                    await self._campaign()
                except _ERRORS as exc:
                    if self.is_leader:
                        log.error("leader lock lost (%s: %s); stepping down", type(exc).__name__, exc)
                    else:
                        log.info("leader election: PostgreSQL unavailable (%s); retrying", exc)
                except Exception:  # never let a surprise end the campaign: step down and try again
                    log.exception("leader election failed unexpectedly; stepping down and retrying")
                self._set_leader(False)
                await self._drop_connection()
                await asyncio.sleep(self.retry_s)
        finally:
            self._set_leader(False)
            await self._drop_connection()

    async def _campaign(self) -> None:
        self._conn = await asyncpg.connect(
            self.dsn,
            timeout=self.timeout_s,
            server_settings={"application_name": (APPLICATION_NAME_PREFIX + self.identity)[:63]},
        )
        while True:
            async with asyncio.timeout(self.timeout_s):
                got = await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key)
            if got:
                break
            await asyncio.sleep(self.retry_s)
        self._set_leader(True)
        classid, objid = lock_parts(self.lock_key)
        while True:
            await asyncio.sleep(self.retry_s)
            async with asyncio.timeout(self.timeout_s):
                held = await self._conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
                    "AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
                    classid,
                    objid,
                )
            if not held:
                raise asyncpg.InterfaceError("the session no longer holds the leader lock")

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.close(), 1.0)
        except (*_ERRORS, asyncio.CancelledError):
            conn.terminate()


async def current_leader(db: Database, lock_key: int = LEADER_LOCK_KEY, timeout_s: float = 2.0) -> str:
    """Return the identity of the replica holding the leader lock, or "" when none (or PostgreSQL is down)."""
    classid, objid = lock_parts(lock_key)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s), db.connection() as conn:
            name = await conn.fetchval(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid "
                "AND l.objid = $2::bigint::oid AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
                classid,
                objid,
            )
            if name:
                return str(name).removeprefix(APPLICATION_NAME_PREFIX)
    return ""
