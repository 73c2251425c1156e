"""The leaderboard as one SQL query: filters, sort key, top-N and best per family.

The database sorts and limits, so only the rows shown are loaded and their JSON decoded: that
is what keeps a top-N query fast with 100,000 stored candidates.
"""

from __future__ import annotations

from typing import Any

from automed.storage.schema import CandidateRecord as C
from automed.storage.schema import DatasetRecord as D
from automed.storage.schema import SearchRecord as S
from sqlalchemy import Select, func, or_, select

from automed.errors import ConfigError

STATES = ("complete", "pruned", "failed")
# Sort keys that are columns; any other key is a metric inside the ``metrics`` JSON.
SCORE, DURATION = "score", "duration_s"
_DURATION_ALIASES = {"duration", "duration_s", "time"}


def sort_key(sort: str | None) -> tuple[str, bool]:
    """``(key, descending)`` for a ``--sort`` value; scores descend, durations ascend."""
    if sort is None or sort.lower() in (SCORE, "score_mean"):
        return SCORE, True
    if sort.lower() in _DURATION_ALIASES:
        return DURATION, False
    from automed.metrics import ALIASES, METRICS  # sklearn: only when a metric is named

    key = ALIASES.get(sort.lower(), sort.lower())
    if key not in METRICS:
        raise ConfigError(f"cannot sort by {sort!r}; choose score, duration or a metric: "
                          f"{', '.join(METRICS)}")
    return key, True


def _order(key: tuple[str, bool]) -> list:
    name, descending = key
    if name == SCORE:
        expr = C.score_mean
    elif name == DURATION:
        expr = C.duration_s
    else:
        expr = C.metrics[name].as_float()
    first = expr.desc() if descending else expr.asc()
    # Ties: the steadier candidate first, then a stable order (older search, earlier trial).
    return [first.nulls_last(), C.score_std.asc().nulls_last(), C.search_id, C.trial_number]


def _filtered(stmt: Select, *, studies: list[str], states: list[str], datasets: list[str],
              architectures: list[str], metrics: list[str],
              trials: list[int] | None) -> Select:
    stmt = stmt.join(S, C.search_id == S.id).join(D, S.dataset_id == D.id)
    stmt = stmt.where(C.state.in_(states))
    if studies:
        stmt = stmt.where(S.study_name.in_(studies))
    if datasets:
        prefixes = [D.fingerprint.startswith(d) for d in datasets if len(d) >= 6]
        stmt = stmt.where(or_(D.name.in_(datasets), D.fingerprint.in_(datasets), *prefixes))
    if architectures:
        stmt = stmt.where(C.architecture.in_(architectures))
    if metrics:
        stmt = stmt.where(S.metric.in_(metrics))
    if trials is not None:
        stmt = stmt.where(C.trial_number.in_(trials))
    return stmt


def leaderboard_query(*, studies: list[str], states: list[str], datasets: list[str] = (),
                      architectures: list[str] = (), metrics: list[str] = (),
                      sort: tuple[str, bool] = (SCORE, True), best_per_family: bool = False,
                      top: int | None = None, trials: list[int] | None = None) -> Select:
    """Rows of ``(candidate, study name, objective metric, dataset name)``, best first."""
    for state in states:
        if state not in STATES:
            raise ConfigError(f"unknown state {state!r}; choose from {', '.join(STATES)}")
    filters: dict[str, Any] = dict(studies=studies, states=states, datasets=list(datasets),
                                   architectures=list(architectures), metrics=list(metrics),
                                   trials=trials)
    order = _order(sort)
    stmt = _filtered(select(C, S.study_name, S.metric, D.name), **filters)
    if best_per_family:
        rank = func.row_number().over(partition_by=C.architecture, order_by=order)
        best = _filtered(select(C.id.label("cid"), rank.label("family_rank")),
                         **filters).subquery()
        stmt = stmt.join(best, best.c.cid == C.id).where(best.c.family_rank == 1)
    stmt = stmt.order_by(*order)
    if top:
        stmt = stmt.limit(top)
    return stmt


def row_dict(rank: int, c: C, study: str, metric: str, dataset: str) -> dict:
    return {
        "rank": rank, "study": study, "dataset": dataset, "trial": c.trial_number,
        "architecture": c.architecture, "metric": metric, "score_mean": c.score_mean,
        "score_std": c.score_std, "fold_scores": c.fold_scores, "metrics": c.metrics,
        "state": c.state, "duration_s": c.duration_s, "params": c.params, "error": c.error,
        "device": c.device,
        "created_at": c.created_at.isoformat(timespec="seconds") if c.created_at else None,
    }
