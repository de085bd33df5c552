"""The learned model, shared by the trainer (which makes it) and the brain (which uses it).

* :mod:`aegis.learning.artifact` — a trained model as plain arrays, and its stable byte format.
* :mod:`aegis.learning.inference` — numpy inference of one signal in a few microseconds.
* :mod:`aegis.learning.network` — the torch definition and training (imported by the trainer only: torch is heavy).
* :mod:`aegis.learning.store` — reading model versions from PostgreSQL, the source of truth.
* :mod:`aegis.learning.watcher` — :class:`ActiveModelWatcher`, the brain's hot reload.

docs/learning.md explains the whole loop.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # ``aegis.learning.ActiveModelWatcher`` without importing Redis and the brain's features for every user of the
    # package (the trainer imports aegis.learning.network, which must stay light until a run starts)
    if name == "ActiveModelWatcher":
        from aegis.learning.watcher import ActiveModelWatcher

        return ActiveModelWatcher
    raise AttributeError(f"module 'aegis.learning' has no attribute {name!r}")
