"""Versioned schema migrations: `identity-worker db migrate` (DESIGN §5, §7).

Migrations are the files `migrations/NNNN_name.sql`, applied in version order, each in
its own transaction together with its row in `schema_migrations`. The whole run holds a
PostgreSQL advisory lock, so several processes (replicas starting together, a deploy job)
may run it at once: one applies, the others wait and then find nothing left to do.
An applied file whose text changed since is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import asyncpg

from worker.store.db import MIGRATE_HINT, SchemaMissing, StoreError, translate

#: pg_advisory_lock key: "idwk" in ASCII, held for the whole run.
MIGRATION_LOCK_KEY: Final = 0x6964776B
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found = []
    for entry in (resources.files("worker.store") / "migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError("two migration files share a version number")
    return found


LATEST_VERSION: Final = max(m.version for m in available_migrations())

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply what is missing; returns the migrations applied by this call (idempotent)."""
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            applied = {r["version"]: r for r in rows}
            newer = sorted(v for v in applied if v > LATEST_VERSION)
            if newer:
                raise StoreError(
                    f"the database has schema version {newer[-1]}, newer than this release knows "
                    f"({LATEST_VERSION}); upgrade identity-worker"
                )
            done = []
            for migration in available_migrations():
                row = applied.get(migration.version)
                if row is not None:
                    if row["checksum"] != migration.checksum:
                        raise StoreError(
                            f"migration {migration.version:04d}_{migration.name} was changed after it was "
                            "applied; never edit an applied migration, add a new one"
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
                done.append(migration)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    except StoreError:
        raise
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        raise translate(exc) from None


async def check_schema(conn: asyncpg.Connection) -> int:
    """The applied schema version; SchemaMissing when the database is not (fully) migrated."""
    try:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    except asyncpg.UndefinedTableError:
        raise SchemaMissing(f"the configuration schema is missing in this database: {MIGRATE_HINT}") from None
    version = max(applied, default=None)
    # Every shipped migration, not only the highest: versions are numbered as they are written
    # and may land out of order (a database at 0007 may still lack 0006).
    if version is None or any(m.version not in applied for m in available_migrations()):
        raise SchemaMissing(
            f"the configuration schema is at version {version or 0}, this release needs "
            f"{LATEST_VERSION}: {MIGRATE_HINT}"
        )
    return int(version)
