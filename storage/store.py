"""The study database: automed's records beside Optuna's, behind one URL."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from automed.storage.schema import Base, CandidateRecord, DatasetRecord, SearchRecord
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from automed.errors import ConfigError, StorageError

DEFAULT_URL = "sqlite:///automed.db"
ENV_VAR = "AUTOMED_STORAGE"


def resolve_url(url: str | None = None) -> str:
    """``--storage``, else ``AUTOMED_STORAGE``, else ``sqlite:///automed.db``; a path is SQLite."""
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    return url


def redact_url(url: str) -> str:
    """The URL with any password masked: safe for output and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers work while a worker writes; busy_timeout waits instead of failing with
    # "database is locked" when several local workers share one file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    redacted = redact_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage URL {url!r} is not a database URL; use e.g. sqlite:///automed.db or "
            "postgresql://user@host/db"
        ) from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not Path(db).expanduser().resolve().parent.is_dir():
            raise StorageError(
                f"cannot create {redacted}: folder {Path(db).parent} does not exist; create it "
                "or choose another --storage path"
            )
        kwargs["connect_args"] = {"timeout": 60}
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        hint = {"postgresql": "pip install 'automed[postgres]'",
                "mysql": "pip install 'automed[mysql]'"}.get(parsed.get_backend_name(),
                                                             f"install {exc.name}")
        raise StorageError(f"no database driver for {redacted} ({exc.name}); {hint}") from None
    except (ArgumentError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot use {redacted}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """automed's records in the study database. Safe to share between processes."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        self.url = resolve_url(url)
        self.redacted = redact_url(self.url)
        self.engine = make_engine(self.url)
        try:
            with self.engine.connect():
                pass
            if create:
                Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StorageError(
                f"cannot open the study database {self.redacted}: {reason}; check --storage "
                f"or {ENV_VAR} and that the server is running"
            ) from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self):
        session: Session = self._session()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise StorageError(f"database error on {self.redacted}: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def optuna_storage(self, **kwargs: Any):
        """An Optuna RDBStorage on the same URL (same file, same server)."""
        import optuna

        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.url.startswith("sqlite"):
            engine_kwargs["connect_args"] = {"timeout": 60}
        try:
            return optuna.storages.RDBStorage(self.url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as exc:  # noqa: BLE001 - optuna wraps driver errors variously
            raise StorageError(
                f"cannot open Optuna storage {self.redacted}: {str(exc).splitlines()[0]}"
            ) from None

    # -- writing -------------------------------------------------------------------------
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

    def open_search(self, study_name: str, dataset_id: int, metric: str,
                    config: dict) -> tuple[int, bool]:
        """Create the search, or return the existing one when it is the same search resumed."""
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
            for key in ("metric", "average", "pos_label", "folds", "cv_seed"):
                if rec.config.get(key) != config.get(key):
                    raise ConfigError(
                        f"study {study_name!r} was searched with {key}={rec.config.get(key)!r}, "
                        f"not {config.get(key)!r}; scores would not compare: pick another "
                        "--study name or the same settings"
                    )
            rec.status = "running"
            return rec.id, True

    def record_candidate(self, search_id: int, trial_number: int, **fields: Any) -> None:
        with self.session() as s:
            rec = s.scalar(select(CandidateRecord).where(
                CandidateRecord.search_id == search_id,
                CandidateRecord.trial_number == trial_number))
            if rec is None:
                rec = CandidateRecord(search_id=search_id, trial_number=trial_number)
                s.add(rec)
            for key, value in fields.items():
                setattr(rec, key, value)

    def finish_search(self, search_id: int, *, status: str, best_trial: int | None = None,
                      test_scores: dict | None = None, test_size: int | None = None) -> None:
        with self.session() as s:
            rec = s.get(SearchRecord, search_id)
            rec.status = status
            if best_trial is not None:
                rec.best_trial = best_trial
            if test_scores is not None:
                rec.test_scores, rec.test_size = test_scores, test_size

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

    def studies(self) -> list[dict]:
        with self.session() as s:
            counts = dict(s.execute(
                select(CandidateRecord.search_id, func.count())
                .group_by(CandidateRecord.search_id)).all())
            rows = s.scalars(select(SearchRecord).order_by(SearchRecord.created_at)).all()
            return [dict(_search_dict(r), n_candidates=counts.get(r.id, 0)) for r in rows]

    def leaderboard(self, study: str | None = None, top: int | None = None,
                    states: tuple[str, ...] = ("complete",),
                    best_per_family: bool = False) -> list[dict]:
        """Candidates ranked by their mean CV score (best first), within one study or all.

        ``best_per_family`` keeps each architecture's best candidate (per study) and adds
        ``gap_to_best``: how far its mean score is below the winner's.
        """
        if best_per_family:
            return _best_per_family(self.leaderboard(study, states=states), top)
        with self.session() as s:
            q = (select(CandidateRecord, SearchRecord.study_name, SearchRecord.metric)
                 .join(SearchRecord, CandidateRecord.search_id == SearchRecord.id)
                 .where(CandidateRecord.state.in_(states)))
            if study is not None:
                self.search(study)  # a clear error for an unknown study
                q = q.where(SearchRecord.study_name == study)
            q = q.order_by(CandidateRecord.score_mean.desc().nulls_last(),
                           CandidateRecord.score_std.asc(), CandidateRecord.trial_number)
            if top:
                q = q.limit(top)
            out = []
            for rank, (c, study_name, metric) in enumerate(s.execute(q).all(), start=1):
                out.append({
                    "rank": rank, "study": study_name, "trial": c.trial_number,
                    "architecture": c.architecture, "metric": metric,
                    "score_mean": c.score_mean, "score_std": c.score_std,
                    "fold_scores": c.fold_scores, "metrics": c.metrics, "state": c.state,
                    "duration_s": c.duration_s, "params": c.params, "error": c.error,
                    "device": c.device,
                })
            return out

    def candidates(self, study: str) -> list[dict]:
        """Every candidate of a study, in trial order, whatever its state."""
        return sorted(self.leaderboard(study, states=("complete", "pruned", "failed")),
                      key=lambda r: r["trial"])


def _best_per_family(rows: list[dict], top: int | None) -> list[dict]:
    best: dict[tuple, dict] = {}
    for r in rows:  # ranked best first, so the first row of a family is its best
        best.setdefault((r["study"], r["architecture"]), r)
    kept = list(best.values())[:top] if top else list(best.values())
    leaders: dict[str, float | None] = {}
    for r in kept:
        leaders.setdefault(r["study"], r["score_mean"])
    out = []
    for rank, r in enumerate(kept, start=1):
        lead = leaders[r["study"]]
        gap = None if lead is None or r["score_mean"] is None else lead - r["score_mean"]
        out.append(dict(r, rank=rank, gap_to_best=gap))
    return out


def _search_dict(rec: SearchRecord) -> dict:
    return {
        "study": rec.study_name, "metric": rec.metric, "config": rec.config,
        "status": rec.status, "best_trial": rec.best_trial, "test_scores": rec.test_scores,
        "test_size": rec.test_size, "dataset": rec.dataset.name,
        "dataset_fingerprint": rec.dataset.fingerprint, "modality": rec.dataset.modality,
        "created_at": rec.created_at.isoformat(timespec="seconds"),
    }
