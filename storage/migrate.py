"""Schema versions of automed's tables: create at head, check on open, upgrade on request.

Alembic keeps automed's revision in its own table (``automed_alembic_version``): Optuna's
migrations own ``alembic_version`` in the same database and must never see ours.
"""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from automed.errors import StorageError

VERSION_TABLE = "automed_alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")
# Tables that exist in every revision: finding them without a version table means a database
# written before migrations existed, which is revision 0001.
FIRST_REVISION = "0001"
_CORE_TABLES = {"automed_datasets", "automed_searches", "automed_candidates"}


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The stored revision; ``"0001"`` for a pre-migration database, None for an empty one."""
    rev = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if rev is None and _CORE_TABLES <= set(inspect(connection).get_table_names()):
        return FIRST_REVISION
    return rev


def ensure_schema(engine: Engine, redacted: str) -> None:
    """Create the tables at head in an empty database; refuse one at another revision.

    Race-free: processes creating one new database at once take turns (SQLite: ``BEGIN
    IMMEDIATE``; PostgreSQL: a transaction-level advisory lock), and a creation that still
    collides with another ("already exists", a duplicate row) is retried.
    """
    head = head_revision()
    for attempt in range(_ATTEMPTS):
        try:
            rev = _create_if_empty(engine)
            break
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if attempt == _ATTEMPTS - 1 or not _is_race(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    if rev == head:
        return
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if rev not in known:
        raise StorageError(
            f"the study database {redacted} has automed schema revision {rev}, newer than this "
            f"automed knows (head {head}); upgrade automed"
        )
    raise StorageError(
        f"the study database {redacted} has automed schema revision {rev}, this automed needs "
        f"{head}; run `automed db upgrade --storage {redacted}` (back the file up first)"
    )


_ATTEMPTS = 8
_RACE = ("already exists", "unique", "duplicate", "database is locked")
_PG_LOCK = 0x6175746F6D6564  # "automed": the advisory lock id for schema creation


def _is_race(exc: Exception) -> bool:
    return any(word in str(exc).lower() for word in _RACE)


def _create_if_empty(engine: Engine) -> str | None:
    """The revision found; in an empty database the tables are created first, under a lock."""
    from automed.storage.schema import Base

    backend = engine.dialect.name
    in_memory = engine.url.database in (None, "", ":memory:")  # one process: no race
    if backend == "sqlite" and not in_memory:
        with engine.connect() as conn:
            if current_revision(conn) is not None:
                return current_revision(conn)
        lock = _sqlite_locked(engine)
        try:
            with lock.begin() as conn:  # BEGIN IMMEDIATE: one creator at a time
                return _create(conn, Base)
        finally:
            lock.dispose()
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        return _create(conn, Base)


def _create(conn: Connection, base) -> str | None:
    rev = current_revision(conn)
    if rev is None:
        # create_all + stamp is what the migrations add up to (tests check that), in one
        # transaction, and much faster than replaying every revision.
        base.metadata.create_all(conn)
        command.stamp(_config(conn), "head")
        return head_revision()
    return rev


def _sqlite_locked(engine: Engine) -> Engine:
    """An engine on the same file whose transactions start with ``BEGIN IMMEDIATE``.

    pysqlite runs DDL outside any transaction by default, so two processes could each see an
    empty file and both create tables; an immediate transaction takes the write lock first.
    """
    locked = create_engine(engine.url, connect_args={"timeout": 60}, poolclass=NullPool)

    @event.listens_for(locked, "connect")
    def _manual(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below be the one

    @event.listens_for(locked, "begin")
    def _immediate(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return locked


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Apply the migrations up to ``target``; return the revisions before and after."""
    with engine.begin() as conn:
        before = current_revision(conn)
        cfg = _config(conn)
        if before == FIRST_REVISION and MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}).get_current_revision() is None:
            command.stamp(cfg, FIRST_REVISION)  # a pre-migration database: record what it is
        command.upgrade(cfg, target)
        after = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    return before, after
