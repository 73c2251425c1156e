"""The leaderboard as one SQL query: filters, sort key, top-N and best per family.

The database sorts and limits, so only the rows shown are loaded and their JSON decoded: that
is what keeps a top-N query fast with 100,000 stored candidates.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from automed.errors import ConfigError
from automed.evaluation.names import ALIASES, METRIC_NAMES
from automed.storage.schema import CandidateRecord as C
from automed.storage.schema import DatasetRecord as D
from automed.storage.schema import SearchRecord as S

# "collapsed": stopped for predicting (nearly) one class; "ensemble": a search's greedy
# ensemble of complete candidates (trial -1), ranked beside them; "running": training now, or
# its process died without a word (SIGKILL) and a resume retries it.
STATES = ("complete", "ensemble", "pruned", "collapsed", "failed", "interrupted", "running")
# The states whose candidates always have a mean score.
SCORED = ("complete", "ensemble")
_COLUMNS = (C.trial_number, C.architecture, C.score_mean, C.score_std, C.fold_scores,
            C.metrics, C.state, C.duration_s, C.params, C.error, C.device, C.created_at)
# Sort keys that are columns; any other key is a metric inside the ``metrics`` JSON.
SCORE, DURATION = "score", "duration_s"
_DURATION_ALIASES = {"duration", "duration_s", "time"}


def sort_key(sort: str | None) -> tuple[str, bool]:
    """``(key, descending)`` for a ``--sort`` value; scores descend, durations ascend."""
    if sort is None or sort.lower() in (SCORE, "score_mean"):
        return SCORE, True
    if sort.lower() in _DURATION_ALIASES:
        return DURATION, False
    key = ALIASES.get(sort.lower(), sort.lower())
    if key not in METRIC_NAMES:
        raise ConfigError(f"cannot sort by {sort!r}; choose score, duration or a metric: "
                          f"{', '.join(METRIC_NAMES)}")
    return key, True


class _NullsLast(ColumnElement):
    """``ORDER BY x NULLS LAST`` where the database has it; MySQL and MariaDB have not (QA:
    every search on MariaDB failed with a syntax error), so there ``x IS NULL, x``."""

    inherit_cache = True
    _traverse_internals = [("ordered", InternalTraversal.dp_clauseelement)]

    def __init__(self, ordered: Any) -> None:
        self.ordered = ordered


@compiles(_NullsLast)
def _nulls_last(element: _NullsLast, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.ordered, **kw)} NULLS LAST"


@compiles(_NullsLast, "mysql")
def _nulls_last_mysql(element: _NullsLast, compiler: Any, **kw: Any) -> str:
    bare = compiler.process(element.ordered.element, **kw)
    return f"{bare} IS NULL, {compiler.process(element.ordered, **kw)}"


def _order(key: tuple[str, bool], *, scored_only: bool = False) -> list:
    name, descending = key
    if name == SCORE:
        expr = C.score_mean
    elif name == DURATION:
        expr = C.duration_s
    else:
        expr = C.metrics[name].as_float()
    first = expr.desc() if descending else expr.asc()
    # NULLS LAST stops PostgreSQL from walking the (state, score_mean) index backwards; when
    # no row can be NULL (the caller filtered them) the plain order is the same ranking.
    if not (scored_only or name == DURATION):
        first = _NullsLast(first)
    # Ties: the steadier candidate first, then a stable order (older search, earlier trial).
    order = [first, _NullsLast(C.score_std.asc()), C.search_id, C.trial_number]
    if not scored_only and name != DURATION:
        # Complete candidates and ensembles rank above the rest: a pruned candidate's mean of
        # its one good fold is no measure beside a winner's full CV (QA: `--all` ranked such a
        # one-fold 0.98 first, above the 0.95 winner, and `show` called it rank 1).
        order.insert(0, case((C.state.in_(SCORED), 0), else_=1))
    return order


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
                      sort: tuple[str, bool] = (SCORE, True), top: int | None = None,
                      trials: list[int] | None = None) -> Select:
    """Rows of candidate columns plus ``study``, ``metric`` and ``dataset``, best first."""
    for state in states:
        if state not in STATES:
            raise ConfigError(f"unknown state {state!r}; choose from {', '.join(STATES)}")
    # Plain columns, not ORM objects: no identity map, so loading many rows stays cheap.
    stmt = _filtered(select(*_COLUMNS, S.study_name.label("study"), S.metric,
                            D.name.label("dataset")),
                     studies=studies, states=states, datasets=list(datasets),
                     architectures=list(architectures), metrics=list(metrics), trials=trials)
    # Complete candidates and ensembles always have a mean score: rank them on the bare index
    # order. Others may lack one (stopped before their first fold ended).
    scored_only = sort[0] == SCORE and set(states) <= set(SCORED)
    if scored_only:
        stmt = stmt.where(C.score_mean.is_not(None))
    stmt = stmt.order_by(*_order(sort, scored_only=scored_only))
    if top:
        stmt = stmt.limit(top)
    return stmt


def rank_query(study: str) -> Select:
    """The trial numbers of one study in the order of its ``leaderboard --all``."""
    stmt = _filtered(select(C.trial_number), studies=[study], states=list(STATES),
                     datasets=[], architectures=[], metrics=[], trials=None)
    return stmt.order_by(*_order((SCORE, True)))


def sort_rows(rows: list, sort: tuple[str, bool]) -> list:
    """Rows from several queries in the order one query would give them."""
    name, descending = sort

    def key(row: Any) -> tuple:
        c = row._mapping
        value = c["score_mean"] if name == SCORE else c["duration_s"] if name == DURATION \
            else (c["metrics"] or {}).get(name)
        missing = value is None
        value = 0.0 if missing else (-value if descending else value)
        std = c["score_std"]
        partial = name != DURATION and c["state"] not in SCORED  # as _order ranks them
        return (partial, missing, value, std is None, std or 0.0, c["study"],
                c["trial_number"])

    return sorted(rows, key=key)


def row_dict(rank: int, row: Any) -> dict:
    """One result row of :func:`leaderboard_query` as the leaderboard's dictionary."""
    c = row._mapping
    return {
        "rank": rank, "study": c["study"], "dataset": c["dataset"], "trial": c["trial_number"],
        "architecture": c["architecture"], "metric": c["metric"],
        "score_mean": c["score_mean"], "score_std": c["score_std"],
        "fold_scores": c["fold_scores"], "metrics": c["metrics"], "state": c["state"],
        "duration_s": c["duration_s"], "params": c["params"], "error": c["error"],
        "device": c["device"],
        "created_at": c["created_at"].isoformat(timespec="seconds") if c["created_at"] else None,
    }
