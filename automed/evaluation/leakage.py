"""Leakage checks: the same patient or the same sample on both sides of a split.

Grouped splits keep a group on one side by construction, but nothing stops a file from holding
the same image twice under two names, or a test file from sharing patients with the training
data. These checks run before the search and their findings are stored with it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from automed.data.dataset import Dataset
from automed.errors import DataError


def sample_hashes(x) -> np.ndarray:
    """A content hash per sample (its bytes, shape and dtype); equal samples, equal hashes."""
    if isinstance(x, np.ndarray) and x.dtype != object:
        flat = np.ascontiguousarray(x.reshape(len(x), -1))
        tag = f"{x.shape[1:]}{x.dtype}".encode()
        return np.array([hashlib.blake2b(tag + row.tobytes(), digest_size=12).hexdigest()
                         for row in flat])
    return np.array([hashlib.blake2b(repr(item).encode(), digest_size=12).hexdigest()
                     for item in x])


def check_folds_leakage(dataset: Dataset, splits: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Count validation samples whose exact content is also in their fold's training part."""
    hashes = sample_hashes(dataset.x)
    per_fold = []
    for train_idx, val_idx in splits:
        seen = set(hashes[train_idx].tolist())
        per_fold.append(int(sum(h in seen for h in hashes[val_idx].tolist())))
    unique = len(set(hashes.tolist()))
    return {"duplicate_samples": len(hashes) - unique, "val_duplicates_per_fold": per_fold}


def check_test_leakage(train: Dataset, test: Dataset) -> dict:
    """Refuse shared groups between training and test data; count identical samples."""
    if train.groups is not None and test.groups is not None:
        shared = sorted(set(map(str, train.groups)) & set(map(str, test.groups)))
        if shared:
            raise DataError(
                f"{test.source}: {len(shared)} group(s) are in both the training and the test "
                f"data (e.g. {', '.join(shared[:3])}); a patient must be on one side only"
            )
    seen = set(sample_hashes(train.x).tolist())
    return {"test_duplicates": int(sum(h in seen for h in sample_hashes(test.x).tolist()))}


def leakage_warnings(report: dict) -> list[str]:
    """One line per finding, for stderr and the stored search config."""
    out = []
    folds = report.get("val_duplicates_per_fold") or []
    if sum(folds):
        out.append(
            f"LEAKAGE: {sum(folds)} validation sample(s) have an identical copy in their fold's "
            f"training data (per fold: {folds}); CV scores are inflated. Give --group-col or "
            "--groups so copies stay together, or remove the duplicates"
        )
    if report.get("test_duplicates"):
        out.append(
            f"LEAKAGE: {report['test_duplicates']} test sample(s) are identical to training "
            "samples; the test score is inflated. Remove them from one side"
        )
    return out
