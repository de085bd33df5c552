"""Versioned, forward-only, idempotent migrations, and a safe schema repair.

Migrations are the ``NNNN_name.sql`` files beside this module. :func:`migrate` applies the ones a database lacks,
each in its own transaction, under an advisory lock so that two migrators never interleave, and records them in
``schema_migrations`` with a checksum: a migration edited after it was applied stops the run with a clear error.

:func:`repair` then compares the live schema with a reference copy built by running every migration in a scratch
schema inside the same transaction, and adds back what is missing: tables, columns (with their types, defaults and
identity), constraints and indexes. It never drops or retypes anything; a difference it will not fix safely (a
column of another type, a NOT NULL column without a default on a table that has rows, a constraint the existing
rows break) is reported instead. This is the seeds' "schema auto-sync", done without guessing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from importlib import resources

import asyncpg

from aegis.errors import AegisError

log = logging.getLogger(__name__)

_LOCK_KEY = 0x4AE615  # advisory lock id shared by every AEGIS migrator
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(AegisError):
    """The database's migration history does not match the migrations this code ships."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(slots=True)
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    schema_version: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.repaired)


def shipped_migrations() -> list[Migration]:
    """Return the migrations shipped with this package, in version order."""
    found = []
    for entry in resources.files("aegis.storage").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


def expected_schema_version() -> int:
    """Return the schema version this code needs (the newest shipped migration)."""
    migrations = shipped_migrations()
    return migrations[-1].version if migrations else 0


_HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def current_schema_version(conn: asyncpg.Connection) -> int:
    """Return the newest applied migration (0 when the history table does not exist yet)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")


async def migrate(conn: asyncpg.Connection, *, repair_schema: bool = True) -> MigrationReport:
    """Apply missing migrations, then repair missing tables, columns, constraints and indexes."""
    report = MigrationReport()
    migrations = shipped_migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_HISTORY_TABLE)
        applied = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
        known = {m.version for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this version of AEGIS does not know; upgrade AEGIS"
            )
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was applied "
                        "(checksums differ); migrations are forward-only: add a new one instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            report.applied.append(f"{migration.version:04d}_{migration.name}")
            log.info("applied migration %04d_%s", migration.version, migration.name)
        if repair_schema:
            await repair(conn, migrations, report)
        report.schema_version = await current_schema_version(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return report


# --------------------------------------------------------------------------------------------- repair

_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr, a.attidentity AS identity
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
SELECT c.relname AS table_name, k.conname AS name, k.contype AS kind, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND k.contype IN ('c', 'f', 'u', 'p')
ORDER BY CASE k.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'c' THEN 2 ELSE 3 END, k.conname
"""

_INDEXES = """
SELECT i.relname AS name, t.relname AS table_name, pg_get_indexdef(i.oid) AS definition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid)
"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def repair(conn: asyncpg.Connection, migrations: list[Migration], report: MigrationReport) -> None:
    """Add back what the live schema lacks compared with a reference copy of the migrations."""
    target = await conn.fetchval("SELECT current_schema()")
    scratch = f"aegis_reference_{secrets.token_hex(4)}"
    async with conn.transaction():
        original_path = await conn.fetchval("SHOW search_path")
        await conn.execute(f"CREATE SCHEMA {_q(scratch)}")
        await conn.execute(f"SET LOCAL search_path TO {_q(scratch)}")
        for migration in migrations:
            await conn.execute(migration.sql)
        # Read the reference while it is first on the search path, so that expressions print unqualified.
        ref_columns = await conn.fetch(_COLUMNS, scratch)
        ref_constraints = await conn.fetch(_CONSTRAINTS, scratch)
        ref_indexes = await conn.fetch(_INDEXES, scratch)
        await conn.execute(f"SET LOCAL search_path TO {original_path}")

        live_columns = {(r["table_name"], r["column_name"]): r for r in await conn.fetch(_COLUMNS, target)}
        live_tables = {t for t, _ in live_columns}
        ref_tables = list(dict.fromkeys(r["table_name"] for r in ref_columns))

        for table in ref_tables:
            if table not in live_tables:
                await conn.execute(
                    f"CREATE TABLE {_q(target)}.{_q(table)} (LIKE {_q(scratch)}.{_q(table)} "
                    "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)"
                )
                # Constraints and indexes follow below, under their reference names.
                report.repaired.append(f"created missing table {table}")
                live_tables.add(table)
                for r in await conn.fetch(_COLUMNS, target):
                    live_columns.setdefault((r["table_name"], r["column_name"]), r)

        for ref in ref_columns:
            key = (ref["table_name"], ref["column_name"])
            live = live_columns.get(key)
            if live is None:
                await _add_column(conn, target, ref, report)
            elif live["type"] != ref["type"]:
                report.left_alone.append(
                    f"{key[0]}.{key[1]} is {live['type']}, expected {ref['type']}: not changed automatically"
                )

        live_constraints = {(r["table_name"], r["name"]) for r in await conn.fetch(_CONSTRAINTS, target)}
        for ref in ref_constraints:
            if (ref["table_name"], ref["name"]) in live_constraints:
                continue
            statement = (
                f"ALTER TABLE {_q(target)}.{_q(ref['table_name'])} ADD CONSTRAINT {_q(ref['name'])} {ref['definition']}"
            )
            await _try(conn, statement, f"added constraint {ref['name']} on {ref['table_name']}", report)

        live_indexes = {r["name"] for r in await conn.fetch(_INDEXES, target)}
        for ref in ref_indexes:
            if ref["name"] in live_indexes:
                continue
            definition = ref["definition"].replace(f"{_q(scratch)}.", "").replace(f"{scratch}.", "")
            await _try(conn, definition, f"created index {ref['name']} on {ref['table_name']}", report)

        await conn.execute(f"DROP SCHEMA {_q(scratch)} CASCADE")
    for line in report.repaired:
        log.warning("schema repair: %s", line)
    for line in report.left_alone:
        log.warning("schema repair: %s", line)


async def _add_column(conn: asyncpg.Connection, schema: str, ref: asyncpg.Record, report: MigrationReport) -> None:
    table, column = ref["table_name"], ref["column_name"]
    parts = [f"ALTER TABLE {_q(schema)}.{_q(table)} ADD COLUMN {_q(column)} {ref['type']}"]
    identity = _char(ref["identity"])
    if identity in ("a", "d"):
        parts.append("GENERATED " + ("ALWAYS" if identity == "a" else "BY DEFAULT") + " AS IDENTITY")
    elif ref["default_expr"] is not None:
        parts.append(f"DEFAULT {ref['default_expr']}")
    note = ""
    if ref["not_null"]:
        has_rows = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_q(schema)}.{_q(table)})")
        if identity or ref["default_expr"] is not None or not has_rows:
            parts.append("NOT NULL")
        else:
            note = " (left nullable: the table has rows and the column has no default)"
            report.left_alone.append(f"{table}.{column} should be NOT NULL but existing rows have no value")
    await conn.execute(" ".join(parts))
    report.repaired.append(f"added missing column {table}.{column} {ref['type']}{note}")


def _char(value: object) -> str:
    """Return a PostgreSQL "char" column value as str ('' for none): asyncpg may hand it over as bytes."""
    if isinstance(value, bytes):
        value = value.decode()
    return str(value or "").strip("\x00 ")


async def _try(conn: asyncpg.Connection, statement: str, what: str, report: MigrationReport) -> None:
    try:
        async with conn.transaction():  # a savepoint: a failure here must not undo the rest of the repair
            await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        report.left_alone.append(f"not {what}: {exc}")
    else:
        report.repaired.append(what)
