"""Leakage checks: the same patient or the same sample on both sides of a split.

Grouped splits keep a group on one side by construction, but nothing stops a file from holding
the same image twice under two names, or a test file from sharing patients with the training
data. These checks run before the search and their findings are stored with it.

Exact copies are found by content hash (text and biosequences after normalising case and
whitespace). Near-identical copies of images, signals and tabular records (the same patient twice)
are found by nearest-neighbour distance against a chance model, in
``automed.evaluation.near_duplicates``,
whose docstring explains the statistic.
"""

from __future__ import annotations

import hashlib

import numpy as np

from automed.data.dataset import Dataset
from automed.errors import DataError
from automed.evaluation.near_duplicates import fold_near_twins, holdout_near_twins


def _normalise(item):
    """Text and sequences compare case- and whitespace-blind: "A  b" is a copy of "a b"."""
    return " ".join(item.split()).lower() if isinstance(item, str) else item


def sample_hashes(x, normalise: bool = False) -> np.ndarray:
    """A content hash per sample (its bytes, shape and dtype); equal samples, equal hashes."""
    if normalise and not (isinstance(x, np.ndarray) and x.dtype != object):
        x = [_normalise(item) for item in x]
    if isinstance(x, np.ndarray) and x.dtype != object:
        flat = np.ascontiguousarray(x.reshape(len(x), -1))
        tag = f"{x.shape[1:]}{x.dtype}".encode()
        return np.array([hashlib.blake2b(tag + row.tobytes(), digest_size=12).hexdigest()
                         for row in flat])
    return np.array([hashlib.blake2b(_key(item).encode(), digest_size=12).hexdigest()
                     for item in x])


def _key(item) -> str:
    """A sample as text for its hash: a record's values joined (QA: numpy's repr of 200,000
    rows took a third of a big table's reading), anything else its repr."""
    if isinstance(item, (np.ndarray, list, tuple)) and np.ndim(item) == 1:
        return "\x1f".join(v if type(v) is str else repr(v) for v in item)
    return repr(item)


def check_folds_leakage(dataset: Dataset, splits: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Count validation samples with an exact or near-identical copy in their fold's training part.

    Near-twins count whatever their group: with grouped folds, a twin across folds means two
    group ids for one patient.
    """
    hashes = sample_hashes(dataset.x, normalise=_textual(dataset))
    per_fold, exact = [], []
    for train_idx, val_idx in splits:
        seen = set(hashes[train_idx].tolist())
        exact.append(np.array([h in seen for h in hashes[val_idx].tolist()], dtype=bool))
        per_fold.append(int(exact[-1].sum()))
    unique = len(set(hashes.tolist()))
    near = fold_near_twins(dataset.x, dataset.modality, dataset.groups, splits, exact)
    chance = (_chance_copies(dataset.x, splits) if dataset.modality == "tabular"
              and sum(per_fold) else None)
    return {"duplicate_samples": len(hashes) - unique, "val_duplicates_per_fold": per_fold,
            "grouped": dataset.groups is not None, "near_duplicates": near,
            **({"chance_duplicates": chance} if chance is not None else {})}


def _chance_copies(x: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """How many validation rows of a table would have an identical training row by chance,
    were its columns independent: a row of values ``v`` occurs with probability ``p(v)``, the
    product of each value's share in its column, so it has a copy among ``n`` training rows
    with probability ``1 - (1 - p(v)) ** n``. QA: a cohort of age (0.1-year steps) and sex,
    independent patients, was told "LEAKAGE ... CV scores are inflated" for 29 such rows."""
    if not len(x):
        return 0.0
    codes = []  # each column's values as integers
    for column in zip(*x):
        index: dict = {}
        codes.append(np.fromiter((index.setdefault(v, len(index)) for v in column),
                                 dtype=np.int64, count=len(x)))
    expected = 0.0
    for train, val in splits:  # shares in the training part (a row counts not for itself)
        p = np.ones(len(val))
        for c in codes:
            p *= np.bincount(c[train], minlength=int(c.max()) + 1)[c[val]] / max(1, len(train))
        expected += float((1.0 - (1.0 - p) ** len(train)).sum())
    return expected


def at_chance(found: int, chance: float | None) -> bool:
    """Whether ``found`` copies are about what ``chance`` gives: at most the 99.9th
    percentile of a Poisson count of that mean (two copies where chance gives 1e-9 are
    copies, review)."""
    if chance is None:
        return False
    from scipy.stats import poisson

    return found <= poisson.ppf(0.999, chance)


def _textual(dataset: Dataset) -> bool:
    return dataset.modality in ("text", "biosequence")


def check_test_leakage(train: Dataset, test: Dataset) -> dict:
    """Refuse shared groups between training and test data; count identical samples."""
    if train.groups is not None and test.groups is not None:
        shared = sorted(set(map(str, train.groups)) & set(map(str, test.groups)))
        if shared:
            raise DataError(
                f"{test.source}: {len(shared)} group(s) are in both the training and the test "
                f"data (e.g. {', '.join(shared[:3])}); a patient must be on one side only"
            )
    norm = _textual(train)
    seen = set(sample_hashes(train.x, normalise=norm).tolist())
    exact = np.array([h in seen for h in sample_hashes(test.x, normalise=norm).tolist()],
                     dtype=bool)
    near = holdout_near_twins(train.x, test.x, train.modality, train.groups, exact)
    chance = None
    if train.modality == "tabular" and exact.any():
        both = np.empty(len(train) + len(test), dtype=object)
        both[:len(train)], both[len(train):] = list(train.x), list(test.x)
        chance = _chance_copies(both, [(np.arange(len(train)),
                                        np.arange(len(train), len(both)))])
    return {"test_duplicates": int(exact.sum()), "test_near_duplicates": near,
            **({"test_chance_duplicates": chance} if chance is not None else {})}


def leakage_warnings(report: dict) -> list[str]:
    """One line per finding, for stderr and the stored search config."""
    out = []
    folds = report.get("val_duplicates_per_fold") or []
    if sum(folds) and at_chance(sum(folds), report.get("chance_duplicates")):
        out.append(
            f"{sum(folds)} validation row(s) have the same values as a row of their fold's "
            f"training data (per fold: {folds}), about what chance gives for columns this "
            f"coarse (about {report['chance_duplicates']:.0f}); "
            + ("if they are one patient's, check that the groups give one id per patient"
               if report.get("grouped") else "if they are repeat visits of one patient, "
               "give --group-col so a patient's rows stay in one fold"))
    elif sum(folds):
        out.append(
            f"LEAKAGE: {sum(folds)} validation sample(s) have an identical copy in their fold's "
            f"training data (per fold: {folds}); CV scores are inflated. "
            + ("The groups put copies in different groups: check that they give one id per "
               "patient, or remove the duplicates" if report.get("grouped") else
               "Give --group-col or --groups so copies stay together, or remove the duplicates")
        )
    if report.get("test_duplicates") and at_chance(report["test_duplicates"],
                                                   report.get("test_chance_duplicates")):
        out.append(
            f"{report['test_duplicates']} test row(s) have the same values as a training row, "
            "about what chance gives for columns this coarse (about "
            f"{report['test_chance_duplicates']:.0f}); if they are the same patients, keep "
            "each patient on one side (--group-col)")
    elif report.get("test_duplicates"):
        out.append(
            f"LEAKAGE: {report['test_duplicates']} test sample(s) are identical to training "
            "samples; the test score is inflated. Remove them from one side"
        )
    near = report.get("near_duplicates") or {}
    if near.get("leaky"):
        out.append(
            f"LEAKAGE: {near['near_twins']} of {near['queries']} validation sample(s) checked "
            f"(per fold: {near['near_twins_per_part']}) have a near-identical twin in their "
            f"fold's training data, where chance predicts {_chance(near)}; CV scores are likely "
            + ("inflated. Check that your groups give one id per patient (twins across groups "
               "mean one patient has several ids), or de-duplicate" if near.get("grouped") else
               "inflated. Give --group-col or --groups (one id per patient) so a patient's "
               "samples stay in one fold, or de-duplicate")
        )
    near = report.get("test_near_duplicates") or {}
    if near.get("leaky"):
        out.append(
            f"LEAKAGE: {near['near_twins']} of {near['queries']} test sample(s) checked have a "
            f"near-identical twin in the training data, where chance predicts {_chance(near)}; "
            "the test score is likely inflated. Keep each patient on one side "
            + ("(check that the groups give one id per patient)" if near.get("grouped") else
               "(--group-col/--groups)") + ", or de-duplicate"
        )
    return out


def _chance(near: dict) -> str:
    lam = near["expected_by_chance"]
    return "under 0.01" if lam < 0.01 else f"{lam:.2g}"
