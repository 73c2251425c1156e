"""Cross-validation splits: stratified always, grouped when samples share a patient."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from automed.dataset import Dataset
from automed.errors import ConfigError, DataError


def check_folds(dataset: Dataset, folds: int) -> None:
    """Refuse a fold count the data cannot honour, before anything is written anywhere."""
    if folds < 2:
        raise ConfigError(f"--folds {folds} is too few; cross-validation needs at least 2")
    counts = dataset.class_counts()
    rare = {c: n for c, n in counts.items() if n < folds}
    if rare:
        smallest = min(counts.values())
        hint = (f"use --folds {smallest} or fewer" if smallest >= 2
                else "add samples of that class or drop it")
        raise DataError(
            f"{dataset.source}: class {', '.join(f'{c!r} has {n}' for c, n in rare.items())} "
            f"sample(s), fewer than the {folds} folds; {hint}"
        )
    if dataset.groups is not None:
        n_groups = len(np.unique(dataset.groups))
        if n_groups < folds:
            raise DataError(
                f"{dataset.source}: only {n_groups} groups for {folds} folds; "
                f"use --folds {n_groups} or fewer"
            )


def make_folds(dataset: Dataset, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (stratified group k-fold when ``dataset.groups`` is set)."""
    check_folds(dataset, folds)
    index = np.zeros(len(dataset))
    if dataset.groups is not None:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [(a, b) for a, b in splitter.split(index, dataset.y, dataset.groups)]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(a, b) for a, b in splitter.split(index, dataset.y)]
