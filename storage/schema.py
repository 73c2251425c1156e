"""automed's own tables. Optuna's live beside them in the same database.

Any change here needs a migration in ``migrations/versions`` (``automed db upgrade`` applies
it); ``tests/test_migrations.py`` fails when the two disagree.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class DatasetRecord(Base):
    """A dataset, identified by its content fingerprint wherever it was loaded from."""

    __tablename__ = "automed_datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    modality: Mapped[str] = mapped_column(String(32))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int] = mapped_column(Integer)
    classes: Mapped[list] = mapped_column(JSON)
    class_counts: Mapped[dict] = mapped_column(JSON)
    input_shape: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class SearchRecord(Base):
    """One search: an Optuna study of the same name plus what automed needs to rank it."""

    __tablename__ = "automed_searches"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(String(255), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("automed_datasets.id"), index=True)
    metric: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default="running")
    best_trial: Mapped[int | None] = mapped_column(Integer, nullable=True)
    test_scores: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    test_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The refit best on the test set: {"classes", "y_true", "proba"}, for ROC/PR/confusion.
    test_predictions: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)

    dataset: Mapped[DatasetRecord] = relationship()


class CandidateRecord(Base):
    """One candidate model: an Optuna trial with its per-fold scores, state and error."""

    __tablename__ = "automed_candidates"
    __table_args__ = (
        UniqueConstraint("search_id", "trial_number", name="uq_automed_candidate_trial"),
        Index("ix_automed_candidates_rank", "search_id", "state", "score_mean"),
        # Cross-study ranking, optionally within one family (migration 0002).
        Index("ix_automed_candidates_state_score", "state", "score_mean"),
        Index("ix_automed_candidates_family_score", "architecture", "state", "score_mean"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("automed_searches.id"), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(128), index=True)
    params: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # ranking.STATES
    fold_scores: Mapped[list] = mapped_column(JSON)
    score_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_std: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON)  # every metric, mean over the folds run
    duration_s: Mapped[float] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)

    search: Mapped[SearchRecord] = relationship()


class OutOfFoldRecord(Base):
    """A complete candidate's out-of-fold class probabilities, for ensemble selection.

    A table of its own (migration 0003) so the candidate rows the leaderboard scans stay small.
    ``proba`` is float16, row-major ``(n_samples, n_classes)``: 4 bytes a sample for a binary
    task, about 19 KB per PneumoniaMNIST candidate.
    """

    __tablename__ = "automed_oof"
    __table_args__ = (
        UniqueConstraint("search_id", "trial_number", name="uq_automed_oof_trial"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("automed_searches.id"), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int] = mapped_column(Integer)
    proba: Mapped[bytes] = mapped_column(LargeBinary)
