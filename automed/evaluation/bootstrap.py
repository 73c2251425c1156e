"""Percentile bootstrap intervals for every metric, fast enough for 1000 resamples.

Calling scikit-learn once per resample and metric costs tens of seconds for 1000 resamples; here
a resample is a row of sample multiplicities ``w`` (how often each sample was drawn), and every
metric is computed for all rows at once from weighted confusion matrices (threshold metrics) or
weighted cumulative sums over the score-sorted samples (AUROC, AUPRC). A resample that misses a
class, where the ranking metrics have special cases, is scored by
:func:`automed.evaluation.metrics.score`
itself, so the numbers agree with the CV scores exactly.
"""

from __future__ import annotations

import numpy as np

from automed.evaluation import metrics as M

CHUNK = 200  # resamples per batch: bounds memory at CHUNK x n_samples floats per array


def _weights(draws: np.ndarray, m: int) -> np.ndarray:
    rows = np.arange(len(draws))[:, None] * m
    return np.bincount((draws + rows).ravel(), minlength=len(draws) * m).reshape(-1, m)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _average(per_class: np.ndarray, support: np.ndarray, average: str, pos: int,
             counted: np.ndarray | None = None) -> np.ndarray:
    """``counted``: the classes a macro average counts in each resample (as metrics does:
    recall those present, precision and f1 those present or predicted); None: all."""
    if average == "binary":
        return per_class[:, pos]
    if average == "weighted":
        return _ratio((per_class * support).sum(1), support.sum(1))
    if counted is None:
        return per_class.mean(1)
    return _ratio((per_class * counted).sum(1), counted.sum(1))


def _threshold_scores(w: np.ndarray, y: np.ndarray, proba: np.ndarray, average: str,
                      pos: int) -> dict[str, np.ndarray]:
    k = proba.shape[1]
    pred = proba.argmax(1)
    cells = np.zeros((len(y), k * k))
    cells[np.arange(len(y)), y * k + pred] = 1.0
    cm = (w @ cells).reshape(-1, k, k)  # (resamples, true, predicted)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted, total = cm.sum(2), cm.sum(1), cm.sum((1, 2))
    recall, precision = _ratio(tp, support), _ratio(tp, predicted)
    f1 = _ratio(2 * tp, support + predicted)
    tn = total[:, None] - support - predicted + tp
    specificity = _ratio(tn, tn + (predicted - tp))
    present = support > 0
    out = {
        "accuracy": tp.sum(1) / total,
        # scikit-learn averages balanced accuracy over the classes present in y only.
        "balanced_accuracy": _ratio((recall * present).sum(1), present.sum(1)),
        "specificity": (_ratio(tn.sum(1), (tn + predicted - tp).sum(1)) if average == "micro"
                        else _average(specificity, support, average, pos)),
    }
    seen = present | (predicted > 0)
    for name, per_class, counted in (("recall", recall, present), ("precision", precision, seen),
                                     ("f1", f1, seen)):
        # Single-label micro averaging of recall, precision and F1 is the accuracy. Macro
        # averages count the classes metrics.score counts (QA: an interval that left out its
        # own value, on a test set lacking a class).
        out[name] = out["accuracy"] if average == "micro" else _average(
            per_class, support, average, pos, counted)
    return out


def _ranking(w: np.ndarray, positive: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted AUROC and average precision of one class, for each resample row of ``w``."""
    order = np.argsort(-s, kind="stable")
    s_sorted, t = s[order], positive[order].astype(float)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # the end of each group of tied scores
    ws = w[:, order]
    tps, fps = np.cumsum(ws * t, 1)[:, last], np.cumsum(ws * (1 - t), 1)[:, last]
    p, n = tps[:, -1:], fps[:, -1:]
    prev_tp = np.c_[np.zeros((len(w), 1)), tps[:, :-1]]
    prev_fp = np.c_[np.zeros((len(w), 1)), fps[:, :-1]]
    auc = ((fps - prev_fp) * (tps + prev_tp) / 2).sum(1) / (p * n)[:, 0]
    ap = ((tps - prev_tp) * _ratio(tps, tps + fps)).sum(1) / p[:, 0]
    return auc, ap


def _ranking_scores(w: np.ndarray, y: np.ndarray, proba: np.ndarray, average: str,
                    pos: int) -> dict[str, np.ndarray]:
    k = proba.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        if k == 2 or average == "binary":
            auc, ap = _ranking(w, y == pos, proba[:, pos])
            return {"auroc": auc if k == 2 else _ovr_auroc(w, y, proba, average), "auprc": ap}
        if average == "micro":
            return _micro_ranking(w, y, proba)
        return {"auroc": _ovr_auroc(w, y, proba, average), "auprc": _ovr_auprc(w, y, proba,
                                                                               average)}


def _micro_ranking(w, y, proba):
    """Micro AUROC and AUPRC (metrics._pooled): each sample's weight on each of its k
    (sample, class) pairs, a few resamples at a time to keep CHUNK x n_samples floats."""
    k = proba.shape[1]
    positive, s = M._pooled(y, proba)
    step = max(1, CHUNK // k)
    parts = [_ranking(np.repeat(w[i:i + step], k, axis=1), positive, s)
             for i in range(0, len(w), step)]
    return {"auroc": np.concatenate([a for a, _ in parts]),
            "auprc": np.concatenate([b for _, b in parts])}


def _per_class(w, y, proba):
    pairs = [_ranking(w, y == c, proba[:, c]) for c in range(proba.shape[1])]
    support = np.stack([w[:, y == c].sum(1) for c in range(proba.shape[1])], 1)
    return np.stack([a for a, _ in pairs], 1), np.stack([b for _, b in pairs], 1), support


def _ovr_auroc(w, y, proba, average):
    auc, _, support = _per_class(w, y, proba)
    return _ratio((auc * support).sum(1), support.sum(1)) if average == "weighted" \
        else auc.mean(1)


def _ovr_auprc(w, y, proba, average):
    _, ap, support = _per_class(w, y, proba)
    present = support > 0  # classes missing from a resample drop out, as in metrics._auprc
    ap = np.where(present, ap, 0.0)
    if average == "weighted":
        return _ratio((ap * support).sum(1), support.sum(1))
    return _ratio(ap.sum(1), present.sum(1))


# Fewer groups than this give no interval: a cluster bootstrap of 1-3 patients has almost no
# distinct resamples, so its interval was narrow or of zero width (review), not honest.
MIN_GROUPS = 10


def n_groups(groups: np.ndarray) -> int:
    return len(np.unique(np.asarray(groups).astype(str)))


def group_weights(rng: np.random.Generator, size: int, groups: np.ndarray) -> np.ndarray:
    """``size`` cluster-bootstrap resamples as sample multiplicities ``(size, n_samples)``:
    whole groups (patients) drawn with replacement, each drawn group's samples together.
    Samples of one patient are not independent, so resampling them one by one gives
    intervals (and paired leads) that are too sure (QA: grouped CV, per-sample intervals)."""
    codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1
    return _weights(rng.integers(0, n_groups, size=(size, n_groups)), n_groups)[:, codes]


def resample_scores(y: np.ndarray, proba: np.ndarray, draws: np.ndarray | None, average: str,
                    pos_label: int, metrics: list[str], *,
                    weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric in ``metrics`` for each resample: a row of sample indexes in ``draws``,
    or a row of sample multiplicities in ``weights`` (:func:`group_weights`)."""
    w = (_weights(draws, len(y)) if weights is None else weights).astype(float)
    out = _threshold_scores(w, y, proba, average, pos_label)
    if {"auroc", "auprc"} & set(metrics):
        out.update(_ranking_scores(w, y, proba, average, pos_label))
        counts = np.stack([w[:, y == c].sum(1) for c in range(proba.shape[1])], 1)
        for r in np.flatnonzero((counts == 0).any(1)):
            rows = draws[r] if weights is None else np.repeat(np.arange(len(y)),
                                                              w[r].astype(np.int64))
            for name in ("auroc", "auprc"):
                out[name][r] = M.score(name, y[rows], proba[rows], average, pos_label)
    return {name: out[name] for name in metrics}


def bootstrap_scores(y: np.ndarray, proba: np.ndarray, average: str = "macro",
                     pos_label: int = 1, *, metrics: list[str] | None = None, n: int = 1000,
                     seed: int = 0, level: float = 0.95,
                     groups: np.ndarray | None = None) -> dict[str, dict]:
    """``{metric: {value, low, high}}``; low/high are None when under 10 resamples scored.
    With ``groups`` (a patient id per sample) whole groups are resampled; with fewer than
    MIN_GROUPS groups there is no interval (low/high None)."""
    y, proba = np.asarray(y, dtype=np.int64), np.asarray(proba, dtype=np.float64)
    metrics = list(metrics or M.METRICS)
    rng = np.random.default_rng(seed)
    if groups is not None and n_groups(groups) < MIN_GROUPS:
        return {name: {"value": M.score(name, y, proba, average, pos_label), "low": None,
                       "high": None} for name in metrics}
    if groups is None:
        draws = rng.integers(0, len(y), size=(n, len(y)))
        chunks = [resample_scores(y, proba, draws[i:i + CHUNK], average, pos_label, metrics)
                  for i in range(0, n, CHUNK)]
    else:
        chunks = [resample_scores(y, proba, None, average, pos_label, metrics,
                                  weights=group_weights(rng, min(CHUNK, n - i), groups))
                  for i in range(0, n, CHUNK)]
    tail = (1.0 - level) / 2 * 100
    out = {}
    for name in metrics:
        values = np.concatenate([c[name] for c in chunks])
        values = values[np.isfinite(values)]
        value = M.score(name, y, proba, average, pos_label)
        if len(values) < 10:
            out[name] = {"value": value, "low": None, "high": None}
            continue
        low, high = np.percentile(values, [tail, 100 - tail])
        out[name] = {"value": value, "low": float(low), "high": float(high)}
    return out


def bootstrap_ci(metric: str, y: np.ndarray, proba: np.ndarray, average: str = "macro",
                 pos_label: int = 1, *, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, float | None]:
    """``{value, low, high}``: the score and its percentile bootstrap interval (95 %).

    The samples are resampled with replacement ``n`` times from a seeded generator, so the
    interval is reproducible.
    """
    name = M.resolve_metric(metric)
    return bootstrap_scores(y, proba, average, pos_label, metrics=[name], n=n, seed=seed,
                            level=level)[name]


def bootstrap_all(y: np.ndarray, proba: np.ndarray, average: str = "macro",
                  pos_label: int = 1, *, n: int = 1000, seed: int = 0,
                  level: float = 0.95, groups: np.ndarray | None = None) -> dict[str, dict]:
    """:func:`bootstrap_ci` for every metric, all on the same resamples (of whole groups
    when ``groups`` is given)."""
    return bootstrap_scores(y, proba, average, pos_label, n=n, seed=seed, level=level,
                            groups=groups)
