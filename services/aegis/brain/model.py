"""The model hook: run the learning loop's ``ActiveModelWatcher`` when ``aegis.learning`` provides one.

Whether it exists is checked once, at import time of this module, with :func:`importlib.util.find_spec`
(``aegis.learning.watcher``, then ``aegis.learning``); the learning package is only imported when it is there.
Without it the strategy keeps its rule-based estimate (``model_version = "rules-v1"``).

``aegis.learning.watcher.ActiveModelWatcher(db, cache, *, poll_s=30.0, on_change=None)`` follows the active model
(PostgreSQL, woken by the Redis notice ``aegis:models:promoted``) in its ``async run()`` and calls
``on_change(predictor)`` with each newly loaded model (None when no model is active); the predictor is the
strategy's ``Callable[[FeatureVector], tuple[float, str]]`` and carries its ``version``. The hook builds it with
the keyword arguments its constructor names among ``db``, ``cache``, ``settings``, ``poll_s`` and ``on_change`` /
``on_reload`` (so a later constructor keeps working), passes :meth:`ModelHook.on_reload` as the callback, and on
each call hands the predictor to :meth:`Strategy.set_predictor` and records the version and load time for
GetBrainStatus (``active_model_version``, ``model_loaded_time``).

A watcher that does not fit (its constructor refuses these arguments, ``run`` is missing) is logged once and the
brain carries on rule-based; one whose ``run`` raises is logged and not restarted (the signals keep the last
predictor loaded).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("aegis.brain.model")

LEARNING_MODULES = ("aegis.learning.watcher", "aegis.learning")
"""Where ``ActiveModelWatcher`` may live, in the order they are tried."""


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_PRESENT = tuple(name for name in LEARNING_MODULES if _find(name))
LEARNING_AVAILABLE = bool(_PRESENT)
"""Whether the learning package is installed (checked once, when this module is imported)."""


def watcher_class() -> type | None:
    """Return ``ActiveModelWatcher``, or None when the learning package (or the class) is absent."""
    for name in _PRESENT:
        cls = getattr(importlib.import_module(name), "ActiveModelWatcher", None)
        if cls is not None:
            return cls
    return None


class ModelHook:
    """Keep the strategy's predictor in step with the active model (see the module doc)."""

    def __init__(
        self,
        set_predictor: Callable[[Any], None],
        *,
        dependencies: dict[str, Any] | None = None,
        watcher_cls: type | None = None,
    ) -> None:
        self._set_predictor = set_predictor
        self._dependencies = dependencies or {}
        self._cls = watcher_cls
        self.version = ""
        """Version of the model in use; empty while the rule-based estimate is used."""
        self.loaded_at_ns: int | None = None
        self.reloads = 0
        self.state = "rules"

    def on_reload(self, predictor: Any, version: str | None = None) -> None:
        """Use ``predictor`` for the next signals (called by the watcher on every reload)."""
        self._set_predictor(predictor)
        self.reloads += 1
        self.version = (version or getattr(predictor, "version", "") or "") if predictor is not None else ""
        self.loaded_at_ns = time.time_ns()
        if predictor is None:
            log.info("no active model: signals use the rule-based estimate")
        else:
            log.info("model %s in use for the predicted returns", self.version or "(unnamed)")

    def _build(self, cls: type) -> Any:
        offered = {**self._dependencies, "on_change": self.on_reload, "on_reload": self.on_reload}
        try:
            params = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            params = {}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {name: value for name, value in offered.items() if takes_any or name in params}
        return cls(**kwargs)

    async def run(self) -> None:
        """Run the watcher if there is one; return at once (rule-based) otherwise."""
        cls = self._cls if self._cls is not None else watcher_class()
        if cls is None:
            log.info("no aegis.learning.ActiveModelWatcher: signals use the rule-based estimate")
            return
        if "db" in self._dependencies and self._dependencies["db"] is None:
            self.state = "no database"
            log.info("no PostgreSQL to read the active model from: signals use the rule-based estimate")
            return
        try:
            watcher = self._build(cls)
            run = watcher.run
        except Exception as exc:
            self.state = "unusable"
            log.error("cannot start ActiveModelWatcher (%s): signals use the rule-based estimate", exc)
            return
        self.state = "watching"
        try:
            result = run()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.state = "failed"
            log.exception("ActiveModelWatcher stopped: signals keep the last predictor loaded")

    def stats(self) -> dict[str, Any]:
        return {"state": self.state, "version": self.version, "reloads": self.reloads}
