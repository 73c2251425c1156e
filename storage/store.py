"""The study database: automed's records beside Optuna's, behind one URL.

Why one module of ~750 lines: it is the whole read/write surface of automed's tables (one
class, one session discipline, one error translation, and the checks that turn a mistyped
``--storage`` into one line naming the fix); the query building lives in ``ranking.py`` and
the schema in ``schema.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from automed.errors import ConfigError, StorageError, visible
from automed.storage import fleet, ranking
from automed.storage.schema import (
    CandidateRecord,
    DatasetRecord,
    OutOfFoldRecord,
    SearchRecord,
    _now,
)

DEFAULT_URL = "sqlite:///automed.db"
ENV_VAR = "AUTOMED_STORAGE"
# What a storage URL may be (QA: a misspelt scheme got SQLAlchemy's "Can't load plugin").
URL_FORMS = ("sqlite:///PATH (or a plain path), postgresql://USER@HOST/DB, "
             "mysql+pymysql://USER@HOST/DB, or grpc://HOST:PORT (an `automed proxy`)")
# sqlite:///~/x.db: SQLite itself would open a folder named "~" (QA), so expand it here.
_SQLITE_HOME = re.compile(r"^(sqlite(?:\+\w+)?:///)(~[^?]*)(\?.*)?$")
BUSY_TIMEOUT_S = 60  # how long SQLite waits for another process's write lock


def resolve_url(url: str | None = None) -> str:
    """``--storage``, else ``AUTOMED_STORAGE``, else ``sqlite:///automed.db``; a path is SQLite.

    ``~`` is expanded in a path and in a SQLite URL alike."""
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{_expand_home(url)}"
    found = _SQLITE_HOME.match(url)
    if found:
        url = f"{found[1]}{_expand_home(found[2])}{found[3] or ''}"
    return url


def _expand_home(path: str) -> str:
    try:
        return str(Path(path).expanduser())
    except RuntimeError:  # ~someone without a home: left as given, named by the error later
        return path


def redact_url(url: str) -> str:
    """The URL with any password masked: safe for output and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_password(url)


def mask_password(text: str) -> str:
    """``user:secret@`` becomes ``user:***@`` even in a URL too malformed to parse."""
    return re.sub(r"([^:/@\s]*):[^@/\s]*@", r"\1:***@", text)


def _sqlite_pragmas(dbapi_connection, _record, *, wal: bool = True) -> None:
    # WAL lets readers work while a worker writes; busy_timeout waits instead of failing with
    # "database is locked" when several local workers share one file. WAL is the file's own
    # setting, switched once by the search that writes it: a command that only reads or joins
    # (``wal=False``) leaves the file as it is (QA: it turned an empty file into a database and
    # failed with "attempt to write a readonly database" in a read-only folder).
    cursor = dbapi_connection.cursor()
    if wal:
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _immediate_transactions(engine: Engine) -> None:
    """Make every transaction on ``engine`` take SQLite's write lock when it begins.

    SQLite otherwise lets two processes both read a queued trial as WAITING and both claim
    it; PostgreSQL's ``SELECT ... FOR UPDATE`` (which Optuna uses) has no SQLite equivalent.
    With ``BEGIN IMMEDIATE`` the read and the update of a claim are one atomic step. This is
    SQLAlchemy's documented pysqlite recipe; the pool is reset so every connection gets it.
    """
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database, an in-memory or a URI one."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or parsed.host or not db or db == ":memory:" \
            or "uri" in parsed.query or db.startswith("file:"):
        return None
    return Path(db).expanduser()


def require_existing(url: str, *, allow_empty: bool = False) -> None:
    """Refuse a SQLite file that is not there: a command that only reads must not create it.

    An empty file (0 bytes) is refused too, unless ``allow_empty``: reading it finds nothing,
    and SQLite would make it a database."""
    db = sqlite_file(url)
    if db is None or db.is_dir():
        return  # not a file of SQLite's, or a folder: make_engine names the problem
    if not db.exists():
        raise StorageError(f"no study database at {db}; run `automed search DATA` first, or "
                           f"check --storage or {ENV_VAR}")
    if not allow_empty and db.stat().st_size == 0:
        raise StorageError(f"{db} is an empty file: it holds no automed searches; run `automed "
                           f"search DATA --storage {db}` to make it a study database, or check "
                           f"--storage or {ENV_VAR}")


def unwritable(path: Path) -> str | None:
    """Why SQLite cannot write the database file ``path`` (None: it can). SQLite writes its
    journal (``-wal``, ``-shm``) beside the file, so the folder must be writable too."""
    folder = path.absolute().parent
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return (f"its folder {folder} is not writable (SQLite writes its journal beside the "
                "file)")
    return None


def refuse_unwritable(url: str, doing: str) -> None:
    """A one-line refusal for a command that writes (``doing``) a SQLite file it cannot."""
    db = sqlite_file(url)
    why = None if db is None else unwritable(db)
    if why:
        fix = ("make the folder writable, or give --storage a path in a writable folder"
               if "folder" in why else "make it writable (chmod u+w), or give another --storage")
        raise StorageError(f"cannot {doing} {redact_url(url)}: {why}; {fix}")


def _readonly_creator(path: Path):
    """Connections that only read ``path``; immutable (no ``-shm`` file needed, which a
    read-only folder cannot hold) unless a writer's ``-wal`` file is there to be read."""
    import sqlite3

    uri = f"{path.absolute().as_uri()}?mode=ro"
    if not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return lambda: sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)


def require_automed_tables(engine: Engine, redacted: str) -> None:
    """Refuse a database without automed's tables (Optuna's own, say): a command that only
    reads must not create them there."""
    from sqlalchemy import inspect

    from automed.storage.migrate import _CORE_TABLES, VERSION_TABLE

    tables = set(inspect(engine).get_table_names())
    if VERSION_TABLE not in tables and not _CORE_TABLES <= tables:
        raise StorageError(f"{redacted} holds no automed searches (a database without "
                           f"automed's tables); run `automed search DATA --storage {redacted}` "
                           f"first, or check --storage or {ENV_VAR}")


def _refuse_proxy(url: str, command: str) -> None:
    if fleet.is_grpc(url):
        raise StorageError(f"automed db {command} needs the database itself, not the proxy "
                           f"{url}; run it with --storage DB_URL, the URL `automed proxy "
                           "--storage` serves")


def _check_sqlite_url(url: str, parsed: Any) -> None:
    """A SQLite URL names a file: refuse a malformed or in-memory one in one line."""
    shown = mask_password(url)
    if parsed.host:  # sqlite://rel.db: two slashes make the name a host, which SQLite has not
        name = "/".join(p for p in (parsed.host, parsed.database) if p)
        raise StorageError(f"storage URL {shown!r} has two slashes: a SQLite URL has three "
                           f"before a relative path, sqlite:///{name} (four before an absolute "
                           "one, sqlite:////PATH)")
    db = parsed.database or ""
    if not db or db == ":memory:" or "memory" in str(parsed.query.get("mode", "")) \
            or db.startswith("file::memory:"):
        raise StorageError(f"storage URL {shown!r} is an in-memory database, which is gone when "
                           "the command ends; give a file, e.g. --storage sqlite:///automed.db")
    path = sqlite_file(url)
    if path is not None and path.is_dir():
        raise StorageError(f"--storage {path} is a folder, not a database file; give a file, "
                           f"e.g. {path / 'automed.db'}")


def _driver_hint(parsed: Any, redacted: str, missing: str) -> str:
    """The fix for a missing driver module: the extras install psycopg 3 and PyMySQL, so a
    URL naming another driver needs another URL, not the extra (QA)."""
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    rest = redacted.split("://", 1)[-1]
    if backend == "postgresql":
        if driver == "psycopg":
            return "pip install 'automed[postgres]'"
        return (f"pip install 'automed[postgres]' installs psycopg 3, which this URL does not "
                f"use: give postgresql+psycopg://{rest} (or install the module {missing})")
    if backend == "mysql":
        if driver == "pymysql":
            return "pip install 'automed[mysql]'"
        return (f"pip install 'automed[mysql]' installs PyMySQL, which this URL does not use: "
                f"give mysql+pymysql://{rest} (or install the module {missing})")
    return f"pip install {missing}"


def _unknown_scheme(url: str, redacted: str) -> StorageError:
    scheme = url.split("://", 1)[0]
    if scheme.split("+")[0] == "postgres":
        return StorageError(f"storage URL {redacted!r}: the scheme is postgresql://, not "
                            f"postgres://; give postgresql://{redacted.split('://', 1)[-1]}")
    return StorageError(f"storage URL {redacted!r} has the unknown scheme {scheme}://; give "
                        f"{URL_FORMS}")


def make_engine(url: str, *, wal: bool = True, readonly: bool = False, **pool: Any) -> Engine:
    """An engine on ``url``. SQLite: ``wal`` switches the file to WAL (a command that writes
    it); ``readonly`` opens it for reading only (a file or folder this user cannot write)."""
    redacted = redact_url(url)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port fails here, not deep in a driver
    except (ArgumentError, ValueError):
        raise StorageError(
            f"storage URL {redacted!r} is not a database URL (host, port and database name "
            "included); use e.g. sqlite:///automed.db or postgresql://user@host:5432/db"
        ) from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True, **pool}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        _check_sqlite_url(url, parsed)
        db = parsed.database
        if not Path(db).expanduser().resolve().parent.is_dir():
            raise StorageError(
                f"cannot create {redacted}: folder {Path(db).parent} does not exist; create it "
                "or choose another --storage path"
            )
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
        path = sqlite_file(url)
        if readonly and path is not None:
            kwargs["creator"] = _readonly_creator(path)
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise _unknown_scheme(url, redacted) from None
    except ModuleNotFoundError as exc:
        hint = _driver_hint(parsed, redacted, exc.name)
        raise StorageError(f"no database driver for {redacted} ({exc.name}); {hint}") from None
    except (ArgumentError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot use {redacted}: {str(exc).splitlines()[0]}") from None
    if sqlite:
        keep_wal = wal and not readonly

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, record) -> None:
            _sqlite_pragmas(dbapi_connection, record, wal=keep_wal)
    return engine


def open_problem(url: str, reason: str) -> str:
    """One line for a database that would not open: for SQLite the file's or the folder's
    problem; only a server's needs to be running (QA: SQLite's errors said so too)."""
    redacted = redact_url(url)
    db = sqlite_file(url)
    if db is None and not url.startswith("sqlite"):
        return (f"cannot open the study database {redacted}: {reason}; check --storage or "
                f"{ENV_VAR} and that the server is running")
    if db is not None:
        folder = db.absolute().parent
        if "file is not a database" in reason:
            return (f"{db} is not a SQLite database ({reason}); check --storage or {ENV_VAR}, "
                    "or give a search a new file name to create")
        why = unwritable(db)
        if why and ("readonly" in reason or "unable to open" in reason):
            return (f"cannot open the study database {redacted} ({reason}): {why}; make it "
                    "writable, or copy it to a writable folder")
        if "unable to open" in reason and not folder.is_dir():
            return (f"cannot open {redacted}: folder {folder} does not exist; create it or "
                    "choose another --storage path")
    return f"cannot open the study database {redacted}: {reason}; check --storage or {ENV_VAR}"


def upgrade_database(url: str | None = None) -> tuple[str | None, str]:
    """``automed db upgrade``: migrate automed's tables to the newest schema revision."""
    from alembic.util import CommandError

    from automed.storage.migrate import upgrade

    resolved = resolve_url(url)
    _refuse_proxy(resolved, "upgrade")
    # A missing (mistyped) file would be created and "upgraded" from nothing (QA): a search
    # creates databases, at the newest schema; an upgrade only migrates automed's tables.
    require_existing(resolved)
    make_engine(resolved, wal=False).dispose()  # a malformed URL or a folder: its own message
    refuse_unwritable(resolved, "upgrade")
    engine = make_engine(resolved)
    try:
        try:
            require_automed_tables(engine, redact_url(resolved))
        except DatabaseError as exc:
            raise StorageError(open_problem(resolved, _first_line(exc))) from None
        return upgrade(engine)
    except CommandError as exc:
        raise StorageError(f"cannot upgrade {redact_url(resolved)}: {exc}; its automed schema "
                           "is newer than this automed or damaged (upgrade automed)") from None
    except DatabaseError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StorageError(f"cannot upgrade {redact_url(resolved)}: {reason}") from None
    finally:
        engine.dispose()


def schema_revision(url: str | None = None) -> tuple[str | None, str]:
    """``(stored revision, revision this automed needs)`` for automed's tables."""
    from automed.storage.migrate import current_revision, head_revision

    resolved = resolve_url(url)
    _refuse_proxy(resolved, "current")
    require_existing(resolved, allow_empty=True)  # it says "empty", and leaves it so
    db = sqlite_file(resolved)
    engine = make_engine(resolved, wal=False, readonly=db is not None and bool(unwritable(db)))
    try:
        with engine.connect() as conn:
            return current_revision(conn), head_revision()
    except DatabaseError as exc:
        raise StorageError(open_problem(resolved, _first_line(exc))) from None
    finally:
        engine.dispose()


def _first_line(exc: DatabaseError) -> str:
    return (str(exc.orig).strip() if exc.orig else str(exc)).splitlines()[0]


def _require_head(engine: Engine, redacted: str) -> None:
    """automed's schema at head in a database this user cannot write (nothing is created)."""
    from automed.storage.migrate import HEAD, _stored_revision

    if _stored_revision(engine) != HEAD:
        raise StorageError(f"the study database {redacted} is read-only here and its automed "
                           f"schema is not {HEAD}, the one this automed reads; make it writable "
                           f"and run `automed db upgrade --storage {redacted}`, or read it with "
                           "the automed that wrote it")


_OPEN_TRIES = 30  # about 45 s of waiting in all, for a creator holding a new file's lock


class Store:
    """automed's records in the study database. Safe to share between processes.

    ``existing``: the commands that only read (or join a search) refuse a SQLite file that is
    not there instead of creating an empty one. ``readonly``: a SQLite file this user cannot
    write, opened for reading only.
    """

    readonly = False
    _file: Path | None = None

    def __new__(cls, url: str | None = None, **kwargs: Any):
        # Behind `automed proxy` without --results-db, the proxy also carries automed's tables.
        resolved = resolve_url(url)
        if cls is Store and fleet.results_url(resolved, kwargs.get("results_db")) is None:
            return super().__new__(fleet.remote_store_class(cls))
        return super().__new__(cls)

    def __init__(self, url: str | None = None, *, create: bool = True,
                 results_db: str | None = None, existing: bool = False) -> None:
        self.url = resolve_url(url)
        self.redacted = redact_url(self.url)
        # A grpc:// proxy carries Optuna's tables only: automed's go to a database of their own.
        sql_url = fleet.results_url(self.url, results_db)
        if existing:
            require_existing(sql_url)
        # A file or folder this user cannot write: a search is refused at once (QA: it failed
        # at its first write with SQLAlchemy's many lines); the commands that read open it
        # read-only (QA: they failed with "attempt to write a readonly database").
        self._file = db = sqlite_file(sql_url)
        self.readonly = db is not None and unwritable(db) is not None
        if self.readonly and not existing:
            make_engine(sql_url).dispose()  # a malformed URL or a folder: its own message
            refuse_unwritable(sql_url, "write the study database")
        self.engine = make_engine(sql_url, wal=not existing, readonly=self.readonly,
                                  **fleet.engine_kwargs(sql_url,
                                                        results_only=fleet.is_grpc(self.url)))
        for attempt in range(_OPEN_TRIES):
            try:
                with self.engine.connect():
                    pass
                if existing:
                    require_automed_tables(self.engine, self.redacted)
                if create and self.readonly:
                    _require_head(self.engine, self.redacted)
                elif create:
                    fleet.ensure_schema_once(self.engine, self.redacted)
                break
            except DatabaseError as exc:
                reason = _first_line(exc)
                # A new SQLite file being created by another process: switching it to WAL
                # needs the lock that process holds, and SQLite answers "locked" at once
                # (no busy wait, to avoid a deadlock). Wait for it instead of failing.
                if "database is locked" in reason and attempt < _OPEN_TRIES - 1:
                    self.engine.dispose()
                    time.sleep(0.1 * (attempt + 1))
                    continue
                raise StorageError(open_problem(sql_url, reason)) from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self):
        session: Session = self._session()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            # One line (QA: the statement and its parameters followed); the cause is kept for
            # fleet.race_free, which retries a lost insert race.
            orig = getattr(exc, "orig", None)
            reason = (str(orig).strip() if orig else str(exc)).splitlines()[0]
            why = self._file and unwritable(self._file)
            if "readonly database" in reason and why:
                raise StorageError(f"cannot write the study database {self.redacted}: {why}; "
                                   "make it writable, or give --storage a file in a writable "
                                   "folder") from exc
            if "database is locked" in reason and self._file:
                raise StorageError(
                    f"the study database {self.redacted} is locked: another process holds its "
                    f"write lock (SQLite waits up to {BUSY_TIMEOUT_S:g} s; a program with an "
                    "open transaction on it?); let it finish or stop it, then run the command "
                    "again") from exc
            if "Could not decode to UTF-8" in reason:  # damaged text: not its whole value
                raise StorageError(f"{self._file or self.redacted} is damaged ({reason[:80]}"
                                   "...); restore it from a backup") from exc
            raise StorageError(f"database error on {self.redacted}: {reason}") from exc
        except json.JSONDecodeError as exc:  # QA: a hand-edited row: a traceback everywhere
            session.rollback()
            raise StorageError(f"the study database {self.redacted} holds a damaged record "
                               f"(not JSON: {exc}); restore it from a copy") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def optuna_storage(self, **kwargs: Any):
        """An Optuna RDBStorage on the same URL (same file, same server)."""
        import optuna

        if fleet.is_grpc(self.url):
            return fleet.grpc_storage(self.url, **kwargs)
        engine_kwargs: dict[str, Any] = fleet.engine_kwargs(self.url)
        if self.url.startswith("sqlite"):
            engine_kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
            if self.readonly:
                engine_kwargs["creator"] = _readonly_creator(sqlite_file(self.url))
        try:
            with fleet.optuna_creation_lock(self.engine):  # Optuna creates its tables once
                storage = fleet.retry_creation(lambda: optuna.storages.RDBStorage(
                    self.url, engine_kwargs=engine_kwargs, **kwargs))
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - optuna wraps driver errors variously
            raise StorageError(
                f"cannot open Optuna storage {self.redacted}: {str(exc).splitlines()[0]}"
            ) from None
        if self.url.startswith("sqlite") and not self.readonly:
            _immediate_transactions(storage.engine)
        return storage

    # -- writing -------------------------------------------------------------------------
    @fleet.race_free
    def upsert_dataset(self, *, fingerprint: str, name: str, source: str, modality: str,
                       n_samples: int, classes: list[str], class_counts: dict,
                       input_shape: list[int]) -> int:
        with self.session() as s:
            rec = s.scalar(select(DatasetRecord).where(DatasetRecord.fingerprint == fingerprint))
            if rec is None:
                rec = DatasetRecord(fingerprint=fingerprint, name=name, source=source,
                                    modality=modality, n_samples=n_samples,
                                    n_classes=len(classes), classes=list(classes),
                                    class_counts=class_counts, input_shape=list(input_shape))
                s.add(rec)
                s.flush()
            return rec.id

    @fleet.race_free
    def open_search(self, study_name: str, dataset_id: int, metric: str,
                    config: dict) -> tuple[int, bool]:
        """Create the search, or return the existing one when it is the same search resumed.

        Two processes opening one new study at once both succeed: the loser of the insert
        race finds the winner's row on its retry (``fleet.race_free``) and resumes it.
        """
        with self.session() as s:
            rec = s.scalar(select(SearchRecord).where(SearchRecord.study_name == study_name))
            if rec is None:
                rec = SearchRecord(study_name=study_name, dataset_id=dataset_id, metric=metric,
                                   config=config, status="running")
                s.add(rec)
                s.flush()
                return rec.id, False
            if rec.dataset_id != dataset_id:
                raise ConfigError(
                    f"study {study_name!r} already holds a search on another dataset; pick "
                    "another --study name"
                )
            for key in ("metric", "average", "pos_label", "folds", "cv_seed", "test_fraction",
                        "grouped"):
                if rec.config.get(key) != config.get(key):
                    raise ConfigError(
                        f"study {study_name!r} was searched with {key}={rec.config.get(key)!r}, "
                        f"not {config.get(key)!r}; scores would not compare: pick another "
                        "--study name or the same settings"
                    )
            rec.status = "running"
            return rec.id, True

    @fleet.race_free  # a worker and the stale-trial sweep of another may write it together
    def record_candidate(self, search_id: int, trial_number: int, **fields: Any) -> None:
        with self.session() as s:
            rec = _trial_row(s, CandidateRecord, search_id, trial_number)
            if rec is None:
                rec = CandidateRecord(search_id=search_id, trial_number=trial_number)
                s.add(rec)
            else:
                # When its latest state was recorded: a candidate listed "running" when it
                # started is recorded again when it ends (the report's anytime curve).
                rec.created_at = _now()
            if fields.get("error"):
                # An exception's text, maybe a plugin's: its escape sequences would reach the
                # terminal of whoever reads the leaderboard, and PostgreSQL refuses NUL.
                fields["error"] = visible(fields["error"], keep="\n\t")
            for key, value in fields.items():
                setattr(rec, key, value)

    def delete_candidate(self, search_id: int, trial_number: int) -> None:
        """Drop one candidate row (a search's previous ensemble, rebuilt on every run)."""
        with self.session() as s:
            rec = _trial_row(s, CandidateRecord, search_id, trial_number)
            if rec is not None:
                s.delete(rec)

    def record_oof(self, search_id: int, trial_number: int, proba: Any) -> None:
        """Store a complete candidate's out-of-fold probabilities ``(n, k)`` as float16."""
        import numpy as np

        arr = np.ascontiguousarray(proba, dtype=np.float16)
        with self.session() as s:
            rec = _trial_row(s, OutOfFoldRecord, search_id, trial_number)
            if rec is None:
                rec = OutOfFoldRecord(search_id=search_id, trial_number=trial_number)
                s.add(rec)
            rec.n_samples, rec.n_classes = arr.shape
            rec.proba = arr.tobytes()

    def oof(self, search_id: int, trials: Sequence[int] | None = None) -> dict:
        """``{trial: float32 (n, k) array}`` of the search's stored out-of-fold predictions."""
        import numpy as np

        stmt = select(OutOfFoldRecord).where(OutOfFoldRecord.search_id == search_id)
        if trials is not None:
            stmt = stmt.where(OutOfFoldRecord.trial_number.in_(list(trials)))
        with self.session() as s:
            return {r.trial_number: np.frombuffer(r.proba, dtype=np.float16)
                    .reshape(r.n_samples, r.n_classes).astype(np.float32)
                    for r in s.scalars(stmt)}

    def update_search_config(self, search_id: int, **items: Any) -> None:
        """Merge ``items`` into the search's config JSON (manifest, artifact, test intervals)."""
        with self.session() as s:
            rec = s.get(SearchRecord, search_id)
            rec.config = {**rec.config, **items}  # a new dict: JSON columns miss in-place edits

    def finish_search(self, search_id: int, *, status: str, best_trial: int | None = None,
                      test_scores: dict | None = None, test_size: int | None = None,
                      test_predictions: dict | None = None) -> None:
        with self.session() as s:
            rec = s.get(SearchRecord, search_id)
            rec.status = status
            if best_trial is not None:
                rec.best_trial = best_trial
            if test_scores is not None:
                rec.test_scores, rec.test_size = test_scores, test_size
            if test_predictions is not None:
                rec.test_predictions = test_predictions

    # -- reading -------------------------------------------------------------------------
    def search(self, study_name: str) -> dict:
        with self.session() as s:
            rec = s.scalar(select(SearchRecord).where(SearchRecord.study_name == study_name))
            if rec is None:
                known = s.scalars(select(SearchRecord.study_name)).all()
                raise ConfigError(
                    f"no study {study_name!r} in {self.redacted}; known: "
                    f"{', '.join(known) or 'none'}"
                )
            return _search_dict(rec)

    def latest_study(self) -> str:
        """The most recently created study's name (what commands default to)."""
        with self.session() as s:
            name = s.scalar(select(SearchRecord.study_name).order_by(SearchRecord.id.desc())
                            .limit(1))
        if name is None:
            raise ConfigError(f"no searches in {self.redacted} yet; run `automed search DATA` "
                              "first")
        return name

    def test_predictions(self, study_name: str) -> dict | None:
        """The refit best's test labels and probabilities, or None without a test set."""
        self.search(study_name)
        with self.session() as s:
            return s.scalar(select(SearchRecord.test_predictions)
                            .where(SearchRecord.study_name == study_name))

    def studies(self) -> list[dict]:
        """Every search, oldest first, with its candidate counts per state, its best mean CV
        score (``best_score``) and whose it is (``leader``: ``"#7"``, or an answering
        ensemble's label). The leader need not be the answer (``best_trial``, whose
        ``test_scores`` these are): see :func:`automed.results.describe.answer_label`.

        An answering ensemble's row is no candidate (no trial of the search), but its score is
        the best when it leads, as in the leaderboard."""
        with self.session() as s:
            counts: dict[int, dict[str, int]] = {}
            best: dict[int, float | None] = {}
            # One pass over the (search_id, state, score_mean) index answers both questions.
            for sid, state, n, top in s.execute(
                    select(CandidateRecord.search_id, CandidateRecord.state, func.count(),
                           func.max(CandidateRecord.score_mean))
                    .group_by(CandidateRecord.search_id, CandidateRecord.state)):
                if state != "ensemble":
                    counts.setdefault(sid, {})[state] = n
                if state in ("complete", "ensemble") and top is not None:
                    best[sid] = max(top, best.get(sid) or top)
            # Whose that best score is (QA: `studies --format json` put the answer's
            # best_trial beside the leader's score): the candidate, or the ensemble's label.
            top = (select(CandidateRecord.search_id, func.max(CandidateRecord.score_mean)
                          .label("top"))
                   .where(CandidateRecord.state.in_(("complete", "ensemble")))
                   .group_by(CandidateRecord.search_id).subquery())
            tied: dict[int, list] = {}
            for sid, number, state, arch, std in s.execute(
                    select(CandidateRecord.search_id, CandidateRecord.trial_number,
                           CandidateRecord.state, CandidateRecord.architecture,
                           CandidateRecord.score_std)
                    .join(top, (CandidateRecord.search_id == top.c.search_id)
                          & (CandidateRecord.score_mean == top.c.top))
                    .where(CandidateRecord.state.in_(("complete", "ensemble")))):
                tied.setdefault(sid, []).append(
                    (math.inf if std is None else std, number,
                     arch if state == "ensemble" else f"#{number}"))
            # the leaderboard's tie-break: the lower spread, then the lower trial (review: a
            # tie named the lower trial, not the leader)
            leader = {sid: min(rows)[2] for sid, rows in tied.items()}
            rows = s.scalars(select(SearchRecord).order_by(SearchRecord.created_at,
                                                           SearchRecord.id)).all()
            return [dict(_search_dict(r), n_candidates=sum(counts.get(r.id, {}).values()),
                         states=counts.get(r.id, {}), best_score=best.get(r.id),
                         leader=leader.get(r.id))
                    for r in rows]

    def leaderboard(self, study: str | Sequence[str] | None = None, top: int | None = None,
                    states: Sequence[str] = ("complete",), *,
                    dataset: str | Sequence[str] | None = None,
                    architecture: str | Sequence[str] | None = None,
                    metric: str | Sequence[str] | None = None, sort: str | None = None,
                    best_per_family: bool = False) -> list[dict]:
        """Candidates ranked best first, within the given studies or across all of them.

        Filters take one value or several: ``study`` (names), ``dataset`` (name or
        fingerprint), ``architecture`` (family), ``metric`` (the searches' objective) and
        ``states``. ``sort`` is ``None`` (each search's own objective), a stored metric such
        as ``"auroc"`` (higher is better) or ``"duration_s"`` (shorter first).
        ``best_per_family`` keeps the best candidate of each architecture family.
        """
        studies = _as_list(study)
        for name in studies:
            self.search(name)  # a clear error for an unknown study
        filters = dict(studies=studies, states=list(states), datasets=_as_list(dataset),
                       metrics=_as_list(metric), sort=ranking.sort_key(sort))
        families = _as_list(architecture)
        with self.session() as s:
            if filters["datasets"]:
                filters["datasets"] += self._searched_files(s, filters["datasets"])
            if best_per_family:
                # One indexed top-1 query per family beats a window over every candidate.
                found = families or s.scalars(
                    select(CandidateRecord.architecture).distinct()).all()
                # Ranked by each search's objective, a family's best is its best at each
                # objective: one f1 is not better than another search's accuracy (QA: mlp's
                # best was a constant predictor whose recall 1.0 beat others' accuracy).
                objectives = [None]
                if filters["sort"][0] == ranking.SCORE:
                    searched = select(SearchRecord.metric).distinct()
                    if studies:
                        searched = searched.where(SearchRecord.study_name.in_(studies))
                    objectives = filters["metrics"] or sorted(s.scalars(searched).all()) \
                        or [None]
                rows = [row for fam in found for objective in objectives
                        for row in s.execute(ranking.leaderboard_query(
                            architectures=[fam], top=1, **{
                                **filters, "metrics": [objective] if objective else
                                filters["metrics"]})).all()]
                rows = ranking.sort_rows(rows, filters["sort"])[:top or None]
            else:
                rows = s.execute(ranking.leaderboard_query(
                    architectures=families, top=top, **filters)).all()
            out = [ranking.row_dict(rank, row) for rank, row in enumerate(rows, start=1)]
            if best_per_family:
                _add_gaps(out)
            if not out:
                self._check_filters(s, filters["datasets"], families, filters["metrics"])
            return out

    @staticmethod
    def _searched_files(s: Session, names: list[str]) -> list[str]:
        """The fingerprints of the data searched from a file named ``names`` (its stem or
        name): one dataset record serves every file of the same content, named after the
        first (QA: `--dataset notest` of a study on notest.npz, a copy of ecg.npz's training
        part, was "no dataset notest; known: ecg")."""
        wanted = set(names)
        found = []
        for config, fingerprint in s.execute(select(SearchRecord.config, DatasetRecord.fingerprint)
                                             .join(DatasetRecord)).all():
            source = str((config or {}).get("source") or "")
            if source and (Path(source).stem in wanted or Path(source).name in wanted):
                found.append(fingerprint)
        return found

    def _check_filters(self, s: Session, datasets: list[str], families: list[str],
                       metrics: list[str] = ()) -> None:
        # Only consulted when nothing matched: a misspelt name deserves the list of choices.
        if datasets:
            known = s.execute(select(DatasetRecord.name, DatasetRecord.fingerprint)).all()
            if not any(d in (n, f) or (len(d) >= 6 and f.startswith(d))
                       for d in datasets for n, f in known):
                raise ConfigError(f"no dataset {', '.join(datasets)} in {self.redacted}; "
                                  f"known: {', '.join(sorted({n for n, _ in known})) or 'none'}")
        if families:
            # an answering ensemble's row holds its label, no family (QA: listed as one)
            known = s.scalars(select(CandidateRecord.architecture).distinct()
                              .where(CandidateRecord.state != "ensemble")).all()
            if not set(families) & set(known):
                raise ConfigError(f"no candidates of architecture {', '.join(families)}; "
                                  f"stored: {', '.join(sorted(known)) or 'none'}")
        if metrics:  # QA: "0 candidate(s) from 0 study(ies)", exit 0, where --dataset errs
            known = s.scalars(select(SearchRecord.metric).distinct()).all()
            if not set(metrics) & set(known):
                raise ConfigError(f"no search optimises {', '.join(metrics)} in "
                                  f"{self.redacted}; searched: {', '.join(sorted(known)) or 'none'}"
                                  " (or --sort METRIC to rank by a stored metric)")

    def candidates(self, study: str) -> list[dict]:
        """Every candidate of a study, in trial order, whatever its state."""
        return sorted(self.leaderboard(study, states=ranking.STATES), key=lambda r: r["trial"])

    def candidate(self, study: str, trial: int) -> dict:
        """One candidate of a study by its trial number, whatever its state."""
        self.search(study)
        with self.session() as s:
            row = s.execute(ranking.leaderboard_query(
                studies=[study], states=list(ranking.STATES), trials=[trial])).first()
            if row is None:
                numbers = s.scalars(select(CandidateRecord.trial_number)
                                    .join(SearchRecord)
                                    .where(SearchRecord.study_name == study)).all()
                span = f"{min(numbers)}..{max(numbers)}" if numbers else "none yet"
                raise ConfigError(f"study {study!r} has no candidate #{trial}; trials: {span}")
            # Its place in the study's `leaderboard --all` (every state, best score first).
            order = s.scalars(ranking.rank_query(study)).all()
            return ranking.row_dict(order.index(trial) + 1, row)


def _trial_row(s: Session, model: type, search_id: int, trial_number: int) -> Any:
    """The row of ``model`` (a candidate or its out-of-fold predictions) for one trial."""
    return s.scalar(select(model).where(model.search_id == search_id,
                                        model.trial_number == trial_number))


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _add_gaps(rows: list[dict]) -> None:
    """Per family rows: how far each trails the best shown row of its objective on its
    dataset (its study's winner, in one study), so a user sees by how much. Across studies
    the best of each metric and dataset leads (QA: each family's best came from another
    study and led it: "0.0000" on every row; review: not across datasets)."""
    def key(r: dict) -> tuple:
        return r.get("dataset"), r["metric"]

    leaders: dict[tuple, float] = {}
    # The winner is a complete candidate or ensemble; a partial one leads only where none is.
    ranked = [r for r in rows if r["state"] in ranking.SCORED]
    ranked_keys = {key(r) for r in ranked}
    ranked += [r for r in rows if key(r) not in ranked_keys]
    for r in ranked:
        if r["score_mean"] is not None and (key(r) not in leaders
                                             or r["score_mean"] > leaders[key(r)]):
            leaders[key(r)] = r["score_mean"]
    # The rows are each family's best across datasets: on several datasets a family's best
    # on one hides its rows on the others, so no row there is measured (review).
    several = len({r.get("dataset") for r in rows}) > 1
    for r in rows:
        lead = None if several else leaders.get(key(r))
        partial = r["state"] not in ranking.SCORED and key(r) in ranked_keys
        # a partial candidate's mean of its folds so far is not measured against the winner
        # (review: a pruned one-fold 0.98 was "-0.13 behind" a complete 0.85)
        r["gap_to_best"] = (None if lead is None or r["score_mean"] is None or partial
                            else lead - r["score_mean"])



def _search_dict(rec: SearchRecord) -> dict:
    return {
        "id": rec.id, "study": rec.study_name, "metric": rec.metric, "config": rec.config,
        "status": rec.status, "best_trial": rec.best_trial, "test_scores": rec.test_scores,
        "test_size": rec.test_size, "dataset": rec.dataset.name,
        "dataset_fingerprint": rec.dataset.fingerprint, "modality": rec.dataset.modality,
        "classes": rec.dataset.classes, "n_samples": rec.dataset.n_samples,
        "created_at": rec.created_at.isoformat(timespec="seconds"),
        "updated_at": rec.updated_at.isoformat(timespec="seconds"),
    }
