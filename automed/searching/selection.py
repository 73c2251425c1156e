"""Whether one candidate's lead over another is more than chance: a paired bootstrap.

Both candidates were cross-validated on the same folds, so their out-of-fold predictions
cover the same training samples; resampling those samples (both candidates' predictions
together) gives the distribution of the difference in the search's metric that a fresh
sample of the same size would show. A fold standard deviation mixes in how hard each fold
is, which both candidates share; the paired difference leaves it out, so it resolves leads
that per-fold intervals cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
ROWS = 20_000_000  # resamples x samples at most: about 5 s for AUROC at 100k out-of-fold rows
# One-sided, family-wise: the leader is the best of m challengers, so its lead must hold in
# 1 - (1 - CONFIDENCE) / m of the resamples (Bonferroni) for the chance that any of m equal
# challengers passes to stay under 5 %.
CONFIDENCE = 0.95


@dataclass
class Lead:
    diff: float  # challenger - incumbent, on all out-of-fold rows
    p_better: float  # share of resamples in which the challenger scores higher (ties: half)
    beats: bool  # p_better >= the confidence asked (default CONFIDENCE)
    note: str = ""  # why the lead was not measured (too few patients): it never beats


def paired_lead(y: np.ndarray, challenger: np.ndarray, incumbent: np.ndarray, metric: str,
                average: str = "macro", pos_label: int | None = None,
                resamples: int = RESAMPLES, confidence: float | None = None,
                seed: int = 0, groups: np.ndarray | None = None) -> Lead:
    """The challenger's lead over the incumbent at ``metric`` on out-of-fold probabilities
    ``(n, k)``, with the share of paired bootstrap resamples in which it holds: both are
    scored on the same resamples, all at once (evaluation.bootstrap.resample_scores). With
    ``groups`` (grouped CV) whole patients are resampled."""
    from automed.evaluation import metrics as M
    from automed.evaluation.bootstrap import (
        CHUNK,
        MIN_GROUPS,
        group_weights,
        n_groups,
        resample_scores,
    )

    y = np.asarray(y, dtype=np.int64)
    a, b = np.asarray(challenger, dtype=np.float64), np.asarray(incumbent, dtype=np.float64)
    full = M.score(metric, y, a, average, pos_label) - M.score(metric, y, b, average, pos_label)
    if groups is not None and (g := n_groups(groups)) < MIN_GROUPS:
        # a resample of 1-3 patients is one of a handful: any lead would look sure (review)
        return Lead(float(full) if np.isfinite(full) else 0.0, 0.5, False,
                    note=f"{g} patients (groups) are too few to tell (at least {MIN_GROUPS})")
    resamples = min(resamples, max(200, ROWS // max(len(y), 1)))
    rng = np.random.default_rng(seed)

    def lead(size: int) -> np.ndarray:  # drawn a chunk at a time: memory stays CHUNK x n
        if groups is not None:
            w = group_weights(rng, size, groups)
            return (resample_scores(y, a, None, average, pos_label, [metric], weights=w)[metric]
                    - resample_scores(y, b, None, average, pos_label, [metric],
                                      weights=w)[metric])
        draws = rng.integers(0, len(y), size=(size, len(y)))
        return (resample_scores(y, a, draws, average, pos_label, [metric])[metric]
                - resample_scores(y, b, draws, average, pos_label, [metric])[metric])

    diffs = np.concatenate([lead(min(CHUNK, resamples - i)) for i in range(0, resamples, CHUNK)])
    diffs = np.where(np.isfinite(diffs), diffs, 0.0)  # a resample one of them cannot score
    p_better = float(np.mean(diffs > 0) + 0.5 * np.mean(diffs == 0))
    return Lead(float(full) if np.isfinite(full) else 0.0, p_better,
                p_better >= (CONFIDENCE if confidence is None else confidence))


def incumbent(trials) -> object | None:
    """The first portfolio start that completed (usually trial 0): the configuration chosen
    offline as the best start for this kind of data, which a challenger must beat."""
    from automed.searching.fidelity import PORTFOLIO_ATTR
    from automed.searching.study import place

    # In budget order: a retry of the first start (a resume after Ctrl-C, a lost worker) is
    # numbered after the other starts but stands in its place (QA: after a resume another
    # family's start became the one to beat, and the answer changed).
    starts = [t for t in trials if t.user_attrs.get(PORTFOLIO_ATTR)]
    return min(starts, key=lambda t: (t.user_attrs.get("retry_root", place(t)), t.number)) \
        if starts else None


def choose_single(p, store, search_id: int, trials: dict, leader) -> tuple[object, dict | None]:
    """The single candidate that answers: the leaderboard's leader, unless the first
    portfolio start is within chance of it (:func:`paired_lead` on their out-of-fold
    predictions, at a confidence corrected for the leader being the best of the ``trials``
    that challenged the start), then that start.

    The leader is the best of many noisy estimates, so its lead is biased upward (the
    winner's curse): over rounds 7 and 8 (BENCHMARKS.md) a leader ahead of the first start
    by 1.1 CV points or less lost to it on the test set 5 times of 5, and in round 9 a
    PneumoniaMNIST leader past an uncorrected 95 % (in 95.7 % of resamples, the best of 4
    challengers) lost to it again. Returns the chosen trial and what decided it (None when
    there was nothing to compare)."""
    first = incumbent(trials.values())
    if first is None or first.number == leader.number:
        return leader, None
    oof = store.oof(search_id, [leader.number, first.number])
    oof = {int(t): np.asarray(a, dtype=np.float64) for t, a in oof.items()}
    if len(oof) < 2 or not all(np.isfinite(a).all() for a in oof.values()):
        return leader, None
    challengers = sum(t.number != first.number for t in trials.values())
    confidence = 1 - (1 - CONFIDENCE) / max(challengers, 1)
    lead = paired_lead(np.asarray(p.train.y), oof[leader.number], oof[first.number], p.metric,
                       p.average, p.pos_label, confidence=confidence, groups=p.train.groups)
    info = {"leader": leader.number, "incumbent": first.number, "diff": lead.diff,
            "p_better": lead.p_better, "confidence": confidence, "challengers": challengers,
            "answer": leader.number if lead.beats else first.number,
            **({"note": lead.note} if lead.note else {})}
    return (leader if lead.beats else first), info
