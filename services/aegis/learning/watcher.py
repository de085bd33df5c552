"""The brain's hot reload of the active model: :class:`ActiveModelWatcher`.

PostgreSQL says which model is active; a Redis notice on :data:`aegis.storage.keys.MODEL_PROMOTED_CHANNEL` says
"look now", and a periodic check (``poll_s``) covers notices lost while Redis was down or the brain was
re-subscribing. A reload reads and checks the new weights off to the side, then replaces one reference: a signal
being scored keeps the model it started with, the next one gets the new model, and no call ever sees half of
each. A model that cannot be loaded (unknown feature schema, damaged artifact) is refused and the current one
kept.

Wiring in the brain::

    watcher = ActiveModelWatcher(db, cache, poll_s=settings.trainer.model_poll_s, on_change=strategy.set_predictor)
    background.append(watcher.run)    # loads the active model at once, then follows promotions

``on_change`` runs in the watcher's task (the brain's event loop), so a strategy that is "called from one task"
stays so. Without ``on_change``, read ``watcher.predictor()`` per signal instead: it is always the current model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from aegis.errors import AegisError
from aegis.learning import store
from aegis.learning.inference import NumpyModel, Predictor
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database

log = logging.getLogger("aegis.learning.watcher")


class ActiveModelWatcher:
    """Keep the active model loaded; swap it atomically when the trainer promotes another one."""

    def __init__(
        self,
        db: Database,
        cache: Cache | None,
        *,
        poll_s: float = 30.0,
        on_change: Callable[[Predictor | None], None] | None = None,
    ) -> None:
        self._db = db
        self._cache = cache
        self._poll_s = poll_s
        self._on_change = on_change
        self._model: NumpyModel | None = None
        self._refused: str | None = None  # a version that failed to load: not retried until another is active
        self._wake = asyncio.Event()
        self.loaded = asyncio.Event()
        """Set once the first check has finished (with or without an active model)."""
        self.subscribed = asyncio.Event()
        """Set while the watcher listens on the Redis channel (tests wait for it before promoting)."""
        self.reloads = 0
        self.failures = 0

    # ----------------------------------------------------------------------------------- reading

    def predictor(self) -> Predictor | None:
        """Return the current model as the strategy's predictor, or None when no model is active."""
        return self._model

    @property
    def version(self) -> str | None:
        model = self._model
        return None if model is None else model.version

    def wake(self) -> None:
        """Check PostgreSQL now (what a notice does)."""
        self._wake.set()

    # ----------------------------------------------------------------------------------- one check

    async def refresh(self) -> bool:
        """Load the active model if it changed; return True when the predictor changed."""
        async with self._db.connection() as conn:
            version = await store.active_version(conn)
            current = self.version
            if version == current or (version is not None and version == self._refused):
                return False
            if version is None:
                model = None
            else:
                try:
                    artifact = await store.load_version(conn, version)
                    model = None if artifact is None else NumpyModel(artifact)
                except (AegisError, ValueError, KeyError) as exc:
                    self._refused = version
                    self.failures += 1
                    log.error("active model %s cannot be loaded (%s); keeping %s", version, exc, current or "rules")
                    return False
        self._refused = None
        self._model = model  # one reference swap: callers see the old model or the new one, never a mix
        self.reloads += 1
        log.info("active model %s -> %s", current or "none", version or "none")
        if self._on_change is not None:
            self._on_change(model)
        return True

    # ----------------------------------------------------------------------------------- loops

    async def run(self) -> None:
        """Follow the active model until cancelled (a background task of the brain)."""
        listener = asyncio.create_task(self._listen(), name="model-notices") if self._cache is not None else None
        delay = 0.5
        try:
            while True:
                self._wake.clear()  # a notice during the check below triggers another check
                try:
                    await self.refresh()
                    delay = self._poll_s
                except (AegisError, OSError, TimeoutError) as exc:
                    log.warning("cannot read the active model (%s); retrying", exc)
                    delay = min(max(delay * 2, 0.5), self._poll_s)
                except Exception:  # a bug here must not stop the brain, which keeps scoring with what it has
                    log.exception("active model check failed; retrying")
                    delay = self._poll_s
                self.loaded.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self) -> None:
        assert self._cache is not None
        delay = 0.5
        while True:
            pubsub = self._cache.client.pubsub()
            try:
                await pubsub.subscribe(keys.MODEL_PROMOTED_CHANNEL)
                self.subscribed.set()
                self._wake.set()  # a promotion may have gone by while we were not subscribed
                delay = 0.5
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        log.debug("model notice: %s", message.get("data"))
                        self._wake.set()
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed.is_set():
                    log.warning("lost the model channel (%s): re-subscribing", exc)
                self.subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
