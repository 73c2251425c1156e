"""Cross-validation splits: stratified always, grouped when samples share a patient."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from automed.data.dataset import Dataset
from automed.errors import ConfigError, DataError


def check_folds(dataset: Dataset, folds: int) -> None:
    """Refuse a fold count the data cannot honour, before anything is written anywhere."""
    from automed.data.loaders import check_label_column

    if folds < 2:
        raise ConfigError(f"--folds {folds} is too few; cross-validation needs at least 2")
    check_label_column(dataset)
    where = dataset.source or "the data"  # QA: in-memory data said ": class ..."
    counts = dataset.class_counts()
    rare = {c: n for c, n in counts.items() if n < folds}
    if rare:
        smallest = min(counts.values())
        hint = (f"use --folds {smallest} or fewer" if smallest >= 2
                else "add samples of that class or drop it")
        shown = ", ".join(f"{c!r} has {n}" for c, n in list(rare.items())[:5])
        more = f" (and {len(rare) - 5} more classes)" if len(rare) > 5 else ""
        raise DataError(
            f"{where}: class {shown} sample(s){more}, fewer than the {folds} folds; "
            f"{hint}"
        )
    if dataset.groups is not None:
        n_groups = len(np.unique(dataset.groups))
        if n_groups < folds:
            # QA: one group was told "use --folds 1 or fewer", which is refused
            fix = (f"use --folds {n_groups} or fewer" if n_groups >= 2 else
                   "grouped cross-validation needs at least 2 groups (patients): check the "
                   "group column, or drop it if every row is its own patient")
            raise DataError(f"{where}: only {n_groups} group(s) for {folds} folds; {fix}")
        _check_classes_span_groups(dataset)


def _check_classes_span_groups(dataset: Dataset) -> None:
    """Refuse groups that hold a whole class: grouped CV would validate that class only on
    models that never saw it (scores near 0). The common cause is the label named as the group
    column; the other, a class seen in one patient only."""
    groups = np.asarray(dataset.groups)
    one = {}  # class -> its only group
    for k, name in enumerate(dataset.classes):
        found = np.unique(groups[dataset.y == k])
        if len(found) == 1:
            one[name] = str(found[0])
    if not one:
        return
    if len(one) == dataset.n_classes:  # every class is one group: the groups are the labels
        raise DataError(
            f"{dataset.source}: every class is one group (e.g. class {next(iter(one))!r} is "
            "group " f"{next(iter(one.values()))!r}): the group ids are the labels themselves; "
            "give the patient id column as --group-col (or a --groups file of patient ids)"
        )
    name, group = next(iter(one.items()))
    raise DataError(
        f"{dataset.source}: every sample of class {name!r} is in one group ({group!r}), so "
        "grouped CV would score it only on models that never saw it; add samples of that class "
        "from other patients, or drop the class"
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


def split_test(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Carve a locked test set out of ``dataset`` before any search sees it.

    Stratified by class, and grouped when ``dataset.groups`` is set, so a patient is either in
    the test set or in the training data, never both. Returns ``(train, test)``.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"--test-fraction {fraction} must be between 0 and 1 (e.g. 0.2)")
    if dataset.groups is not None:
        n_groups = len(np.unique(dataset.groups))
        splits = max(2, round(1 / fraction))
        if n_groups < splits:
            raise DataError(
                f"{dataset.source}: {n_groups} groups are too few for --test-fraction "
                f"{fraction}; use a larger fraction or pass --test"
            )
        splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
        train_idx, test_idx = next(splitter.split(np.zeros(len(dataset)), dataset.y,
                                                  dataset.groups))
    else:
        counts = np.bincount(dataset.y)
        if counts.min() < 2:
            raise DataError(
                f"{dataset.source}: a class has a single sample; it cannot be in both the "
                "training data and the test set"
            )
        try:
            train_idx, test_idx = train_test_split(np.arange(len(dataset)), test_size=fraction,
                                                   stratify=dataset.y, random_state=seed)
        except ValueError as exc:  # too few samples for a stratified split of that size
            raise DataError(f"{dataset.source}: cannot hold out {fraction:g} ({exc})") from None
    test = dataset.subset(np.sort(test_idx))
    test.source = f"{dataset.source} (held-out {fraction:g})"
    # Which rows of the file: saved with the model, so that `automed predict` on the same file
    # can tell the held-out rows (the only ones the search never saw) from the rest.
    test.meta = {**dataset.meta, "held_out_rows": np.sort(test_idx).tolist()}
    return dataset.subset(np.sort(train_idx)), test
