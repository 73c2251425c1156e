"""Near-duplicate leakage: validation (or test) samples with a near-identical twin in training.

An exact-copy check misses the common leak: the same patient seen twice (two slices, two beats,
two visits, a re-encoded image), which gives samples that are *almost* equal. This module finds
them for numeric data (images, signals, tabular records) without labels or groups.
(About 340 lines, most of them this docstring: the statistic has to be explained to be trusted.)

**Embedding.** Each sample becomes a point in at most ``DIMS`` (64) dimensions: tabular numeric
columns are imputed (median) and standardised; images and signals are flattened as they are.
Categorical columns are left out: one-hot levels make the pair distances a mixture (pairs that
share a level sit a whole step closer than the rest), which the power law below does not
follow, so independent rows with a 100-level site column read as leaky (QA: 61 of 500 with a
"twin" where chance said 0.26). Twins share their numbers, which is what is measured. Wider
data goes through a fixed Gaussian random projection, which keeps Euclidean distances (within
about 10% at 64 dims, Johnson-Lindenstrauss) where PCA would shrink them and invent twins.

**Statistic.** For each queried validation sample ``v`` (at most ``max_queries`` spread over the
folds), ``d(v)`` is the distance to its nearest neighbour in its fold's training part (exact,
brute force, chunked: linear in the data size per query). The scale ``S`` is the median distance
between random pairs of samples (pairs from *different* groups when groups are known), which a
few twins cannot move. A sample has a near-twin at radius ``r = tau * S`` when ``d(v) < r``.

**Chance.** Under "no twins" (samples independent), the probability that ``v`` has a training
sample within ``r`` is at most ``n_train * F(r)`` (union bound, no assumption on the density),
where ``F`` is the CDF of the distance between two independent samples. ``F`` at tiny radii is
not measurable from random pairs (and twins would contaminate it), so it is extrapolated down
from the 5% quantile ``r_a`` of random-pair distances as ``F(r) = 0.05 * (r / r_a) ** D``, with
``D`` the log-slope of ``F`` between its 5% and 20% quantiles. For ordinary data the local slope
only grows towards the intrinsic dimension at smaller radii, so this over-estimates chance: the
test errs towards silence. Twins (a cluster far tighter than the data's sampling resolution)
break the power law and show up as a large excess.

**Decision.** Over a ladder of radii ``tau`` in ``TAUS`` (0.3 down to 0.001 of ``S``) the
observed count ``k`` of queried samples with a near-twin (exact copies left out: they have their
own warning) is compared with its chance expectation ``lam``; the split is flagged as leaky when,
at some radius, ``k >= max(5, 1% of the queries)``, ``k >= 10 * lam`` and the Poisson tail
``P(X >= k | lam) < 1e-6``. The radius with the smallest tail probability (then the lowest
``lam / k``) is reported.

Limits: twins that make up more than ~5% of all random pairs (e.g. fewer than ~20 patients)
push the 5% quantile into the twin cluster and the check goes silent; twins more than ~20% of
the typical distance apart are rarely told from chance. Genuinely low-dimensional data with many
samples has tiny nearest-neighbour distances by nature; the chance model then predicts them and
only much closer (or exact) twins are flagged.

**Why not just compare with within-training NN distances?** Because a leak is symmetric: when
every patient has rows on both sides of a stratified split, a training row's nearest neighbour
is its own twin too, so the within-training and the cross-split distributions agree for a leaky
cohort exactly as they do for i.i.d. data. Only an absolute notion ("far closer than independent
samples come, given how many there are") tells them apart; the report still gives the median
cross-split NN distance (relative to ``S``) for comparison.

Text and biosequences only get the exact (normalised) duplicate check in
``automed.evaluation.leakage``.
"""

from __future__ import annotations

import math

import numpy as np

DIMS = 64
TAUS = (0.3, 0.2, 0.1, 0.03, 0.01, 0.003, 0.001)
NUMERIC_MODALITIES = ("image", "signal", "tabular")
_MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-", "."}
_LOW_Q, _HIGH_Q = 0.05, 0.20


def _to_float(value) -> float | None:
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.number)):
        return float(value)
    text = str(value).strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


class Embedder:
    """Fit on training samples, then map any samples of the same kind to ``(n, <=DIMS)`` floats."""

    def __init__(self, modality: str, dims: int = DIMS, seed: int = 0) -> None:
        self.modality, self.dims, self.seed = modality, dims, seed
        self.columns: list[dict] = []
        self.proj: np.ndarray | None = None

    def fit(self, x) -> Embedder:
        if self.modality == "tabular":
            x = np.asarray(x)
            x = x.reshape(len(x), -1)
            for j in range(x.shape[1]):
                col = x[:, j]
                values = self._numeric(col)
                if values is not None:
                    med = float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
                    values = np.where(np.isfinite(values), values, med)
                    std = float(values.std())
                    if std > 0:
                        self.columns.append({"kind": "num", "j": j, "median": med,
                                             "mean": float(values.mean()), "std": std})
            width = len(self.columns)  # numeric columns only (see the module docstring)
        else:
            width = int(np.prod(np.shape(x)[1:]))
        if width > self.dims:
            rng = np.random.default_rng(self.seed)
            self.proj = rng.standard_normal((width, self.dims)) / math.sqrt(self.dims)
        return self

    @staticmethod
    def _numeric(col: np.ndarray) -> np.ndarray | None:
        """The column as floats (NaN where missing), or None when it holds a non-number."""
        if col.dtype.kind in "fiub":
            return col.astype(np.float64)
        try:
            return col.astype(np.float64)
        except (TypeError, ValueError):
            values = [_to_float(v) for v in col]
            if any(v is None for v in values):
                return None
            return np.array(values, dtype=np.float64)

    def _tabular(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(len(x), -1)
        parts = []
        for c in self.columns:
            col = x[:, c["j"]]
            values = self._numeric(col)
            if values is None:  # a new file with text in a numeric column
                floats = [_to_float(v) for v in col]
                values = np.array([math.nan if f is None else f for f in floats])
            values = np.where(np.isfinite(values), values, c["median"])
            parts.append(((values - c["mean"]) / c["std"])[:, None])
        return np.hstack(parts) if parts else np.zeros((len(x), 0))

    def transform(self, x) -> np.ndarray:
        width = max(1, int(np.prod(np.shape(x)[1:])))
        chunk = max(16, min(4096, 2 ** 24 // width))  # at most ~128 MB of float64 at a time
        out = []
        for start in range(0, len(x), chunk):
            part = x[start:start + chunk]
            if self.modality == "tabular":
                flat = self._tabular(part)
            else:
                flat = np.asarray(part, dtype=np.float64).reshape(len(part), -1)
                flat = np.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)
            out.append(flat @ self.proj if self.proj is not None else flat)
        return np.vstack(out) if out else np.zeros((0, self.dims))


def embeddable(x, modality: str) -> bool:
    """Numeric data with one fixed shape per sample: what the near-twin check can measure."""
    if modality not in NUMERIC_MODALITIES:
        return False
    if modality == "tabular":
        return np.asarray(x).ndim == 2
    return isinstance(x, np.ndarray) and x.dtype != object and x.ndim >= 2


def nn_distances(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from each query to its nearest training point (brute force)."""
    from sklearn.metrics import pairwise_distances_argmin_min

    if len(queries) == 0:
        return np.zeros(0)
    _, dist = pairwise_distances_argmin_min(queries, train, metric="euclidean")
    return np.asarray(dist, dtype=np.float64)


class Reference:
    """Random-pair distance distribution: the scale ``S`` and the chance model ``F``."""

    def __init__(self, z: np.ndarray, groups=None, n_pairs: int = 20000, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        n = len(z)
        a = rng.integers(0, n, 2 * n_pairs)
        b = rng.integers(0, n, 2 * n_pairs)
        keep = a != b
        if groups is not None:  # unless (almost) all samples share one group
            g = np.asarray(groups).astype(str)
            other = keep & (g[a] != g[b])
            keep = other if other.sum() >= min(1000, n_pairs) else keep
        a, b = a[keep][:n_pairs], b[keep][:n_pairs]
        d = np.sqrt(((z[a] - z[b]) ** 2).sum(axis=1))
        self.pairs = np.sort(d)
        self.scale = float(np.median(d)) if len(d) else 0.0
        self.r_low = float(np.quantile(d, _LOW_Q)) if len(d) else 0.0
        r_high = float(np.quantile(d, _HIGH_Q)) if len(d) else 0.0
        self.dim = (math.log(_HIGH_Q / _LOW_Q) / math.log(r_high / self.r_low)
                    if self.r_low > 0 and r_high > self.r_low else 0.0)

    def cdf(self, r: float) -> float:
        """``F(r)``: empirical at or above the 5% quantile, a power law below it."""
        if r >= self.r_low or self.r_low <= 0:
            return float(np.searchsorted(self.pairs, r, side="left")) / max(len(self.pairs), 1)
        return _LOW_Q * (r / self.r_low) ** self.dim

    def chance(self, r: float, n_train: int) -> float:
        """Upper bound on the chance that an independent sample has a training point within r."""
        return min(1.0, n_train * self.cdf(r))


def _poisson_tail(k: int, lam: float) -> float:
    """``P(X >= k)`` for ``X ~ Poisson(lam)``, summed in log space (no scipy needed)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0

    def term(i: int) -> float:
        return math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1))

    if k <= lam:  # the tail holds most of the mass: one minus the head
        return max(0.0, 1.0 - sum(term(i) for i in range(k)))
    total, i = 0.0, k
    while True:  # terms shrink from k on, since k > lam
        t = term(i)
        total += t
        if t == 0.0 or t < 1e-15 * total:
            return min(1.0, total)
        i += 1


def near_twin_report(ref: Reference, dists: list[np.ndarray], exact: list[np.ndarray],
                     n_train: list[int], sizes: list[int]) -> dict:
    """The decision over the radius ladder, as plain JSON-ready values.

    ``dists[i]`` are the queried samples' NN distances for part ``i`` (a fold, or the test set),
    ``exact[i]`` marks those with an exact copy in training, ``n_train[i]`` the training size
    and ``sizes[i]`` how many samples part ``i`` has in all (queries are a subsample of them).
    """
    n_queries = int(sum(len(d) for d in dists))
    best = None
    if ref.scale > 0 and n_queries:
        for tau in TAUS:
            r = tau * ref.scale
            counts = [int(((d < r) & ~e).sum()) for d, e in zip(dists, exact)]
            lam = float(sum(len(d) * ref.chance(r, n) for d, n in zip(dists, n_train)))
            k = sum(counts)
            p = _poisson_tail(k, lam)
            key = (p, (lam + 1e-12) / max(k, 1))  # ties (p underflows to 0): least chance
            if best is None or key < best["key"]:
                best = {"tau": tau, "counts": counts, "k": k, "lam": lam, "p_value": p,
                        "key": key}
    if best is None:
        return {"checked": False, "reason": "too few samples or all samples identical"}
    k, lam = best["k"], best["lam"]
    leaky = bool(k >= max(5, 0.01 * n_queries) and k >= 10 * lam and best["p_value"] < 1e-6)
    estimated = [int(round(c * s / max(len(d), 1)))
                 for c, s, d in zip(best["counts"], sizes, dists)]
    return {
        "checked": True,
        "leaky": leaky,
        "queries": n_queries,
        "radius": best["tau"],  # as a fraction of the median distance between samples
        "near_twins": k,
        "near_twins_per_part": best["counts"],
        "estimated_near_twins_per_part": estimated,
        "expected_by_chance": round(lam, 4),
        "p_value": float(f"{best['p_value']:.3g}"),
        "median_nn_distance": round(float(np.median(np.concatenate(dists)) / ref.scale), 4),
        "dims": None,  # filled in by the caller
        "chance_dim": round(ref.dim, 2),
    }


def fold_near_twins(x, modality: str, groups, splits, exact_in_train: list[np.ndarray],
                    max_queries: int = 2000, seed: int = 0) -> dict:
    """Near-twins of validation samples in their fold's training part (see module docstring).

    ``exact_in_train[i]`` is a boolean mask over fold ``i``'s validation indices marking those
    with an exact copy in that fold's training part.
    """
    if not embeddable(x, modality):
        return {"checked": False, "reason": f"no near-duplicate check for {modality} data"}
    if len(x) < 20:
        return {"checked": False, "reason": "fewer than 20 samples"}
    emb = Embedder(modality, seed=seed).fit(x)
    z = emb.transform(x)
    if not z.shape[1]:
        return {"checked": False, "reason": "no numeric columns to measure"}
    ref = Reference(z, groups, seed=seed)
    rng = np.random.default_rng(seed)
    per_fold = max(1, max_queries // max(len(splits), 1))
    dists, exact, n_train, sizes = [], [], [], []
    for (train_idx, val_idx), ex in zip(splits, exact_in_train):
        pick = np.arange(len(val_idx))
        if len(pick) > per_fold:
            pick = np.sort(rng.choice(len(val_idx), per_fold, replace=False))
        dists.append(nn_distances(z[train_idx], z[val_idx[pick]]))
        exact.append(np.asarray(ex, dtype=bool)[pick])
        n_train.append(len(train_idx))
        sizes.append(len(val_idx))
    report = near_twin_report(ref, dists, exact, n_train, sizes)
    if report.get("checked"):
        report["dims"] = int(z.shape[1])
        report["grouped"] = groups is not None
    return report


def holdout_near_twins(train_x, test_x, modality: str, groups, exact_in_train: np.ndarray,
                       max_queries: int = 2000, seed: int = 0) -> dict:
    """Near-twins of test samples in the training data (see module docstring)."""
    if not embeddable(train_x, modality) or not embeddable(test_x, modality):
        return {"checked": False, "reason": f"no near-duplicate check for {modality} data"}
    if len(train_x) < 20 or len(test_x) == 0:
        return {"checked": False, "reason": "fewer than 20 training samples"}
    if np.shape(test_x)[1:] != np.shape(train_x)[1:]:
        return {"checked": False, "reason": "test samples differ in shape from training samples"}
    emb = Embedder(modality, seed=seed).fit(train_x)
    z_train = emb.transform(train_x)
    z_test = emb.transform(test_x)
    if not z_train.shape[1]:
        return {"checked": False, "reason": "no numeric columns to measure"}
    ref = Reference(z_train, groups, seed=seed)
    pick = np.arange(len(z_test))
    if len(pick) > max_queries:
        pick = np.sort(np.random.default_rng(seed).choice(len(pick), max_queries, replace=False))
    dist = nn_distances(z_train, z_test[pick])
    report = near_twin_report(ref, [dist], [np.asarray(exact_in_train, dtype=bool)[pick]],
                              [len(z_train)], [len(z_test)])
    if report.get("checked"):
        report["dims"] = int(z_train.shape[1])
        report["grouped"] = groups is not None
    return report
