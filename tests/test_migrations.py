"""automed's schema revisions: created at head, checked on open, upgraded from old files."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine

from automed.cli import cli
from automed.errors import StorageError
from automed.storage import Store, upgrade_database
from automed.storage.migrate import VERSION_TABLE, head_revision, upgrade
from automed.storage.schema import Base

FIXTURE = Path(__file__).with_name("fixtures") / "schema_0001.db"


@pytest.fixture
def old_db(tmp_path) -> str:
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    return f"sqlite:///{path}"


def _revision(url: str) -> str | None:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()[0]


def test_fresh_database_is_created_at_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url)
    assert _revision(url) == head_revision()
    Store(url)  # opening again at head is quiet


def test_migrations_build_exactly_the_declared_schema(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diffs = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert [d for d in diffs if VERSION_TABLE not in str(d)] == []


def test_old_schema_is_refused_with_the_upgrade_command(old_db):
    with pytest.raises(StorageError, match=r"revision 0001.*automed db upgrade"):
        Store(old_db)


def test_upgrade_from_the_old_fixture_keeps_the_data(old_db):
    result = CliRunner().invoke(cli, ["db", "upgrade", "--storage", old_db])
    assert result.exit_code == 0, result.output
    assert "0001 -> 0003" in result.output
    assert _revision(old_db) == head_revision()
    store = Store(old_db)
    rows = store.leaderboard("old-study")
    assert [(r["architecture"], r["score_mean"]) for r in rows] == [("cnn", 0.81), ("mlp", 0.74)]
    assert store.test_predictions("old-study") is None
    assert upgrade_database(old_db) == ("0003", "0003")  # idempotent


def test_database_from_before_migrations_is_treated_as_0001(old_db):
    with sqlite3.connect(old_db.removeprefix("sqlite:///")) as conn:
        conn.execute(f"DROP TABLE {VERSION_TABLE}")
    with pytest.raises(StorageError, match="automed db upgrade"):
        Store(old_db)
    assert upgrade_database(old_db) == ("0001", head_revision())
    assert len(Store(old_db).leaderboard("old-study")) == 2


def test_newer_schema_than_this_automed_is_refused(old_db):
    with sqlite3.connect(old_db.removeprefix("sqlite:///")) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(StorageError, match="newer than this automed"):
        Store(old_db)


def test_db_current_reports_the_revision(old_db):
    out = CliRunner().invoke(cli, ["db", "current", "--storage", old_db])
    assert out.exit_code == 0 and "0001" in out.output and "behind" in out.output


def test_every_storage_subpackage_is_packaged():
    # An unlisted subpackage silently misses the wheel: migrations would vanish on install.
    import tomllib

    root = Path(__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"automed.storage." + ".".join(p.parent.relative_to(root / "storage").parts)
             for p in (root / "storage").rglob("__init__.py") if p.parent != root / "storage"}
    assert found <= set(config["packages"])
    assert "script.py.mako" in config["package-data"]["automed.storage.migrations"]


def test_fast_head_constant_is_alembics_head():
    from automed.storage import migrate

    assert migrate.HEAD == head_revision()  # a new revision must bump HEAD too
