"""Leaderboard test data written straight into the store: no training, milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from automed.storage import Store

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def add_search(store: Store, study: str, *, dataset: str = "chest", metric: str = "accuracy",
               candidates: list[tuple] = (), status: str = "complete",
               average: str = "macro") -> int:
    """A search and its candidates: ``(architecture, state, score_mean, metrics, error)``."""
    dataset_id = store.upsert_dataset(
        fingerprint=(dataset * 64)[:64], name=dataset, source=f"{dataset}.npz",
        modality="image", n_samples=60, classes=["normal", "opacity"],
        class_counts={"normal": 40, "opacity": 20}, input_shape=[1, 28, 28])
    search_id, _ = store.open_search(study, dataset_id, metric,
                                     {"metric": metric, "average": average, "pos_label": 1,
                                      "folds": 2, "cv_seed": 0})
    for trial, (arch, state, score, metrics, error) in enumerate(candidates):
        folds = [] if score is None else [score - 0.02, score + 0.02]
        store.record_candidate(
            search_id, trial, architecture=arch, params={"width": 16 + trial}, state=state,
            fold_scores=folds, score_mean=score, score_std=None if score is None else 0.02,
            metrics=metrics, duration_s=1.0 + trial, device="cpu", error=error)
    store.finish_search(search_id, status=status)
    return search_id


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards; skips if no server."""
    with _fresh_database(POSTGRES, "postgresql://postgres@127.0.0.1:5432", "PostgreSQL at "
                         "127.0.0.1:5432", drop="DROP DATABASE IF EXISTS {} WITH (FORCE)") as url:
        yield url


MYSQL = "mysql+pymysql://root@127.0.0.1:3306"


@contextmanager
def mysql_url() -> Iterator[str]:
    """A fresh, empty MySQL/MariaDB database for one test, dropped afterwards; skips if no
    server answers or PyMySQL is not installed."""
    with _fresh_database(f"{MYSQL}/", MYSQL, "MySQL/MariaDB at 127.0.0.1:3306",
                         drop="DROP DATABASE IF EXISTS {}") as url:
        yield url


@contextmanager
def _fresh_database(admin_url: str, base: str, server: str, *, drop: str) -> Iterator[str]:
    import pytest
    import sqlalchemy

    try:
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"automed_test_{uuid.uuid4().hex[:12]}"
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except ModuleNotFoundError as exc:
        pytest.skip(f"no driver for {server} installed ({exc.name})")
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"{server} does not answer: {str(exc.orig).strip()}")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop.format(name))
        admin.dispose()
