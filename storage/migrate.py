"""Schema versions of automed's tables: create at head, check on open, upgrade on request.

Alembic keeps automed's revision in its own table (``automed_alembic_version``): Optuna's
migrations own ``alembic_version`` in the same database and must never see ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from automed.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions (a test checks it is Alembic's head). Opening a
# database at this revision needs no Alembic import: most commands only read.
HEAD = "0003"

VERSION_TABLE = "automed_alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")
# Tables that exist in every revision: finding them without a version table means a database
# written before migrations existed, which is revision 0001.
FIRST_REVISION = "0001"
_CORE_TABLES = {"automed_datasets", "automed_searches", "automed_candidates"}


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The stored revision; ``"0001"`` for a pre-migration database, None for an empty one."""
    from alembic.runtime.migration import MigrationContext

    rev = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if rev is None and _CORE_TABLES <= set(inspect(connection).get_table_names()):
        return FIRST_REVISION
    return rev


def ensure_schema(engine: Engine, redacted: str) -> None:
    """Create the tables at head in an empty database; refuse one at another revision."""
    if _stored_revision(engine) == HEAD:
        return  # the common case, without importing Alembic
    from alembic import command
    from alembic.script import ScriptDirectory

    from automed.storage.schema import Base

    head = head_revision()
    with engine.begin() as conn:
        rev = current_revision(conn)
        if rev is None:
            # create_all + stamp is what the migrations add up to (tests check that), in one
            # transaction, and much faster than replaying every revision.
            Base.metadata.create_all(conn)
            cfg = _config(conn)
            command.stamp(cfg, "head")
            return
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


def _stored_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()
    except SQLAlchemyError:
        return None


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Apply the migrations up to ``target``; return the revisions before and after."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
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
