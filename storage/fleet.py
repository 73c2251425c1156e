"""Storage for fleets: pool sizes, race-free creation, and Optuna's gRPC storage proxy.

(About 420 lines: the proxy's server side, its client side with the heartbeat Optuna's gRPC
client lacks, and the creation locks share one set of connection and retry rules.)

Three ways to share a study, from small to large (README, "Choosing a database"):

* **SQLite** (one machine): a file; WAL and a busy timeout let local workers share it.
* **PostgreSQL, direct**: every worker opens its own connections. Per worker automed holds
  at most ``PER_WORKER_CONNECTIONS`` (``FLEET_POOL``: one idle connection kept per engine,
  with pre-ping, two engines: Optuna's and automed's), so a server with
  ``max_connections`` = M takes about M / 3 workers.
* **gRPC proxy** (``automed proxy``): one process serves Optuna's storage API to every
  worker (``--storage grpc://host:port``), and automed's own calls (read the search, write a
  candidate row) as one more gRPC method on the same server (:class:`RemoteStore`). The
  database then sees the proxy's two pools, at most ``2 * --threads`` connections, whatever
  the number of workers. A worker may instead write automed's tables itself
  (``--results-db URL`` or ``AUTOMED_RESULTS_DB``): it then connects only for each write
  (``RESULTS_POOL``: no connection held between them).

Optuna's ``GrpcStorageProxy`` has no heartbeat. ``GrpcHeartbeatStorage`` adds one through
the same API (a trial system attribute), so a worker that dies behind the proxy has its
candidate retried exactly as with a direct database. Stale trials are judged by the clocks
of the workers (keep them in sync, e.g. NTP; the grace period is at least 3 heartbeats).
"""

from __future__ import annotations

import functools
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from automed.errors import StorageError

RESULTS_ENV_VAR = "AUTOMED_RESULTS_DB"
GRPC_SCHEME = "grpc://"

# A server database (PostgreSQL, MySQL) shared by many worker processes: keep one idle
# connection per engine, allow two more for the heartbeat thread and the creation lock, check
# a connection before use (servers and proxies drop idle ones) and renew it every 30 minutes.
FLEET_POOL: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 1, "max_overflow": 2,
                              "pool_recycle": 1800, "pool_timeout": 60}
# Idle connections a direct worker keeps (Optuna's engine + automed's), and the most it opens.
PER_WORKER_CONNECTIONS = {"idle": 2, "max": 6}
# automed's tables behind a gRPC proxy: connect for a write, close after it. 0 held between
# candidates, 1 while writing (2 while creating the schema under the creation lock).
RESULTS_POOL: dict[str, Any] = {"poolclass": NullPool}
# Optuna's heartbeat attribute on a trial behind the proxy (seconds since the epoch).
HEARTBEAT_ATTR = "automed:heartbeat"
# Any 64-bit number: the PostgreSQL advisory lock that serialises schema and study creation.
_CREATION_LOCK = 0x6175746F6D6564  # "automed"

T = TypeVar("T")


def is_grpc(url: str) -> bool:
    return url.startswith(GRPC_SCHEME)


def grpc_address(url: str) -> tuple[str, int]:
    """``grpc://host:port`` -> ``(host, port)``; a one-line error for anything else."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "grpc" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise StorageError(f"storage URL {url!r} is not a gRPC proxy address; use "
                           "grpc://HOST:PORT as printed by `automed proxy`")
    return parts.hostname, port


def results_url(url: str, results: str | None = None) -> str | None:
    """The database of automed's own tables: the storage URL itself; behind a proxy, the
    ``--results-db`` given, or None: then they go through the proxy too (:class:`RemoteStore`)."""
    results = results or os.environ.get(RESULTS_ENV_VAR)
    if not is_grpc(url):
        return url
    if results and is_grpc(results):
        raise StorageError(f"--results-db must be a database URL, not the proxy {results}; "
                           "give the URL `automed proxy --storage` was started with")
    return results or None


@contextmanager
def results_db_env(results: str | None, storage: str | None) -> Iterator[None]:
    """``--results-db`` (``results_db=`` in Python) for one search or worker: refused unless
    ``storage`` is a proxy (as is a set ``$AUTOMED_RESULTS_DB``: QA, it was silently
    ignored), and handed on through ``$AUTOMED_RESULTS_DB`` so the worker processes started
    from here inherit it; the variable is restored afterwards."""
    from automed.errors import ConfigError
    from automed.storage.store import resolve_url

    if (results or os.environ.get(RESULTS_ENV_VAR)) and not is_grpc(resolve_url(storage)):
        given = "--results-db" if results else f"${RESULTS_ENV_VAR} (set)"
        fix = "drop it" if results else "unset it"
        raise ConfigError(f"{given} applies to --storage grpc://HOST:PORT (an `automed "
                          f"proxy`) only; {fix}, or give the proxy's address as --storage")
    if not results:
        yield
        return
    before = os.environ.get(RESULTS_ENV_VAR)
    os.environ[RESULTS_ENV_VAR] = results
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RESULTS_ENV_VAR, None)
        else:
            os.environ[RESULTS_ENV_VAR] = before


def engine_kwargs(url: str, *, results_only: bool = False) -> dict[str, Any]:
    """Pool settings for one worker's engine on ``url`` (SQLite keeps SQLAlchemy's own)."""
    if url.startswith("sqlite"):
        return {"pool_pre_ping": True}
    return dict(RESULTS_POOL if results_only else FLEET_POOL)


# -- creation: once, whoever comes first ------------------------------------------------------
@contextmanager
def creation_lock(engine: Engine) -> Iterator[None]:
    """Serialise creation across processes: an advisory lock on PostgreSQL, else nothing.

    SQLite and other servers rely on :func:`retry_creation` instead.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _CREATION_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _CREATION_LOCK})
            conn.commit()


def optuna_creation_lock(engine: Engine):
    """The creation lock, only while Optuna's tables are missing (joining takes no lock)."""
    from contextlib import nullcontext

    from sqlalchemy import inspect

    with engine.connect() as conn:
        found = inspect(conn)
        if found.has_table("version_info") and found.has_table("studies"):
            return nullcontext()
    return creation_lock(engine)


_RACES = (IntegrityError, ProgrammingError, OperationalError)


def retry_creation(create: Callable[[], T], *, tries: int = 8) -> T:
    """Call ``create``; when a concurrent creator won a race (table or row already exists,
    SQLite busy), wait a little and call it again: the second call finds and joins it."""
    for attempt in range(tries):
        try:
            return create()
        except _RACES as exc:
            if attempt == tries - 1 or not _is_race(exc):
                raise
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise AssertionError("unreachable")


def _is_race(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    message = str(getattr(exc, "orig", exc)).lower()
    return any(s in message for s in ("already exists", "database is locked", "duplicate",
                                      "deadlock", "could not serialize"))


LOCK_WAITED_S = 10.0  # an attempt that waited this long met a held lock, not a race


def race_free(method: Callable[..., T]) -> Callable[..., T]:
    """A Store method that inserts a row others may insert at the same moment (the dataset,
    the search): when a unique constraint says another process won, run it again to join."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        for attempt in range(8):
            started = time.monotonic()
            try:
                return method(*args, **kwargs)
            except StorageError as exc:  # Store.session wraps the driver's error
                if attempt == 7 or not isinstance(exc.__cause__, _RACES) \
                        or not _is_race(exc.__cause__):
                    raise
                if time.monotonic() - started > LOCK_WAITED_S and "database is locked" in \
                        str(getattr(exc.__cause__, "orig", exc.__cause__)).lower():
                    # a lock held through SQLite's whole busy timeout is no race: 8 of them
                    # were 8 minutes of silence (QA), the same error at the end
                    raise
                time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
        raise AssertionError("unreachable")
    return wrapper


def ensure_schema_once(engine: Engine, redacted: str) -> None:
    """automed's tables at head: checked without a lock, created under the creation lock."""
    from automed.storage.migrate import HEAD, _stored_revision, ensure_schema

    if _stored_revision(engine) == HEAD:
        return  # the common case: no lock, no Alembic import
    if engine.dialect.name == "sqlite":
        # SQLite's driver commits each CREATE TABLE on its own, so a second process could see
        # half a schema. One real transaction that takes the write lock first makes it atomic:
        # the others wait for it (busy timeout) and then find the schema complete.
        engine = _transactional_sqlite(engine)
    try:
        with creation_lock(engine):
            retry_creation(lambda: ensure_schema(engine, redacted))
    finally:
        if engine.dialect.name == "sqlite":
            engine.dispose()


def _transactional_sqlite(engine: Engine) -> Engine:
    from sqlalchemy import create_engine, event

    one = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(one, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(one, "begin")
    def _begin_immediate(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return one


# -- the gRPC proxy -----------------------------------------------------------------------------
def _grpc_storage_class():
    from optuna.storages import GrpcStorageProxy
    from optuna.storages._heartbeat import BaseHeartbeat

    class GrpcHeartbeatStorage(GrpcStorageProxy, BaseHeartbeat):
        """Optuna's gRPC client with a heartbeat kept in a trial system attribute."""

        def __init__(self, *, host: str, port: int, heartbeat_interval: int | None = None,
                     grace_period: int | None = None,
                     heartbeat_stale_trial_callback: Callable | None = None) -> None:
            super().__init__(host=host, port=port)
            self.heartbeat_interval = heartbeat_interval
            self.grace_period = grace_period or (2 * heartbeat_interval
                                                 if heartbeat_interval else None)
            self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback

        def record_heartbeat(self, trial_id: int) -> None:
            import optuna

            try:
                self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished (or failed as stale by another worker) meanwhile

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            from optuna.trial import TrialState

            now = time.time()
            stale = []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                # A retried trial inherits its parent's attribute: its own start counts too.
                last = max(float(t.system_attrs.get(HEARTBEAT_ATTR, 0.0)),
                           t.datetime_start.timestamp() if t.datetime_start else 0.0)
                if now - last > self.grace_period:
                    stale.append(t._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable | None:
            return self.heartbeat_stale_trial_callback

    return GrpcHeartbeatStorage


def grpc_module(url: str):
    """The ``grpc`` module, or a one-line refusal naming the extra (QA: a grpc:// storage
    without it ended in a traceback, everywhere but `automed proxy`)."""
    try:
        import grpc
    except ModuleNotFoundError:
        raise StorageError(f"--storage {url} needs gRPC; pip install 'automed[grpc]'") from None
    return grpc


def grpc_storage(url: str, *, timeout: float = 30.0, **heartbeat: Any):
    """A client of ``automed proxy`` at ``grpc://host:port``, waiting up to ``timeout`` s."""
    import optuna

    host, port = grpc_address(url)
    grpc_module(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _grpc_storage_class()(host=host, port=port, **heartbeat)
    try:
        storage.wait_server_ready(timeout=timeout)
    except ConnectionError:
        storage.close()
        raise StorageError(f"no automed proxy answers at {url} within {timeout:.0f} s; start "
                           "`automed proxy --storage DB_URL --port PORT` there") from None
    return storage


def make_proxy_server(storage_url: str, *, host: str = "127.0.0.1", port: int = 13000,
                      threads: int = 10):
    """The gRPC server of ``automed proxy``, not yet started, and the database it serves.

    Creates automed's schema, Optuna's schema and nothing else: the study is created by
    ``automed search --workers 0 --storage grpc://...`` before the workers start. The database
    sees at most ``threads`` connections: one per server thread.
    """
    from concurrent.futures import ThreadPoolExecutor

    try:
        import grpc  # noqa: F401
    except ModuleNotFoundError:
        raise StorageError("automed proxy needs gRPC; pip install 'automed[grpc]'") from None
    import optuna
    from optuna.storages._grpc.server import make_server

    from automed.storage import Store

    if is_grpc(storage_url):
        raise StorageError("automed proxy --storage must be the database URL, not a proxy")
    store = Store(storage_url)  # automed's tables, created once here
    if not store.url.startswith("sqlite"):  # the proxy's own pool: bounded by its threads
        from automed.storage.store import make_engine

        store.engine.dispose()

        store.engine = make_engine(store.url, **dict(FLEET_POOL, pool_size=threads,
                                                      max_overflow=0))
        store._session.configure(bind=store.engine)
    kwargs = engine_kwargs(store.url)
    if not store.url.startswith("sqlite"):
        kwargs.update(pool_size=threads, max_overflow=0)
    else:
        kwargs["connect_args"] = {"timeout": 60}
    with creation_lock(store.engine):
        rdb = retry_creation(lambda: optuna.storages.RDBStorage(store.url, engine_kwargs=kwargs))
    if store.url.startswith("sqlite"):
        # The server threads share one file: without BEGIN IMMEDIATE two of them could both
        # claim the same queued trial (two workers ran one candidate; the second tell failed
        # with "Cannot tell a COMPLETE trial"), as between local workers (see Store).
        from automed.storage.store import _immediate_transactions

        _immediate_transactions(rdb.engine)
    storage = optuna.storages.get_storage(rdb)  # Optuna's recommended in-process cache
    try:
        server = make_server(storage, host, port, ThreadPoolExecutor(max_workers=threads))
        server.add_generic_rpc_handlers((results_handler(store),))
    except RuntimeError as exc:  # grpc: "Failed to bind to address"
        raise StorageError(f"automed proxy cannot listen on {host}:{port} ({exc}); pick another "
                           "--port or stop what uses it") from None
    return server, store


# -- automed's tables through the proxy -------------------------------------------------------
# Optuna's gRPC API carries Optuna's tables only. automed's few calls per candidate (read the
# search, write the candidate row) travel as one more gRPC method on the same server, JSON in
# and out, and run on the proxy's own Store: the database sees the proxy's pools, not N.
RESULTS_METHOD = "/automed.Results/Call"
def _plain(value: Any) -> Any:
    """JSON for what Store methods take and give besides plain values: numpy arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


REMOTE_METHODS = ("search", "record_candidate", "candidates", "candidate", "leaderboard",
                  "studies", "upsert_dataset", "open_search", "update_search_config",
                  "finish_search", "test_predictions", "latest_study", "record_oof", "oof",
                  "delete_candidate")


def results_handler(store):
    """The proxy's side: run a whitelisted Store method, answer with its JSON result or its
    automed error (class name and message)."""
    import json

    import grpc

    from automed import errors

    def call(request: bytes, _context) -> bytes:
        name, args, kwargs = json.loads(request)
        if name not in REMOTE_METHODS:
            return json.dumps({"error": ["StorageError", f"no Store method {name!r}"]}).encode()
        try:
            return json.dumps({"result": getattr(store, name)(*args, **kwargs)},
                              default=_plain).encode()
        except errors.AutomedError as exc:
            return json.dumps({"error": [type(exc).__name__, str(exc)]}).encode()

    return grpc.method_handlers_generic_handler("automed.Results", {
        "Call": grpc.unary_unary_rpc_method_handler(call)})


class _Remote:
    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, store, _owner=None):
        if store is None:
            return self
        return lambda *args, **kwargs: store._call(self.name, args, kwargs)


@functools.cache
def remote_store_class(base: type) -> type:
    """``Store`` for ``--storage grpc://HOST:PORT`` without ``--results-db``: the same methods,
    carried out by the proxy."""

    class RemoteStore(base):
        def __init__(self, url: str | None = None, *, create: bool = True,
                     results_db: str | None = None, existing: bool = False,
                     timeout: float = 30.0) -> None:
            from automed.storage.store import resolve_url

            self.url = self.redacted = resolve_url(url)
            grpc = grpc_module(self.url)
            host, port = grpc_address(self.url)
            self._channel = grpc.insecure_channel(
                f"{host}:{port}", options=[("grpc.max_receive_message_length", -1)])
            try:
                grpc.channel_ready_future(self._channel).result(timeout=timeout)
            except grpc.FutureTimeoutError:
                self._channel.close()
                raise StorageError(f"no automed proxy answers at {url} within {timeout:.0f} s; "
                                   "start `automed proxy --storage DB_URL --port PORT` "
                                   "there") from None
            self._rpc = self._channel.unary_unary(RESULTS_METHOD)

        def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
            import json

            import grpc

            from automed import errors

            try:
                reply = json.loads(self._rpc(json.dumps([name, args, kwargs],
                                                        default=_plain).encode()))
            except grpc.RpcError as exc:
                raise StorageError(f"the automed proxy at {self.url} failed on {name}: "
                                   f"{exc.details() or exc.code()}") from None
            if "error" in reply:
                kind, message = reply["error"]
                raise getattr(errors, kind, StorageError)(message)
            return reply["result"]

        def session(self):
            raise StorageError("automed's tables are behind the proxy: no direct session; use "
                               "--results-db DB_URL for direct access")

    for name in REMOTE_METHODS:
        setattr(RemoteStore, name, _Remote(name))
    return RemoteStore
