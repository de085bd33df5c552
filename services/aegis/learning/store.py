"""Model versions in PostgreSQL (``ml_models``), the source of truth for which model is active.

Redis only carries the notice that the active model changed (:data:`aegis.storage.keys.MODEL_PROMOTED_CHANNEL`);
whoever hears it reads the active version here.
"""

from __future__ import annotations

from typing import Any

from aegis.learning.artifact import ModelArtifact

ACTIVE_VERSION_SQL = "SELECT version FROM ml_models WHERE status = 'active'"
_WEIGHTS_SQL = "SELECT version, weights FROM ml_models WHERE version = $1"


async def active_version(conn: Any) -> str | None:
    """Return the version of the active model, or None when there is none."""
    return await conn.fetchval(ACTIVE_VERSION_SQL)


async def load_version(conn: Any, version: str) -> ModelArtifact | None:
    """Return the stored model ``version``, or None when no such version exists."""
    row = await conn.fetchrow(_WEIGHTS_SQL, version)
    if row is None:
        return None
    artifact = ModelArtifact.from_bytes(row["weights"])
    if artifact.version != row["version"]:
        # the artifact names its own version; a mismatch means the row was tampered with or mis-copied
        raise ValueError(f"ml_models row {row['version']!r} holds the artifact of {artifact.version!r}")
    return artifact


async def load_active(conn: Any) -> ModelArtifact | None:
    """Return the active model, or None when there is none."""
    version = await active_version(conn)
    return None if version is None else await load_version(conn, version)
