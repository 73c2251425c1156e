"""Clinical tables as outside users export them: columns found by name, labels as meant, and
columns that are no features said before a search runs (QA sweep of real-world CSV files)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from automed.data.loaders import load_data
from automed.errors import DataError


def _table(n: int = 60, seed: int = 0) -> tuple[list[str], list[list]]:
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 90, n)
    y = ((age > 55) ^ (rng.random(n) < 0.15)).astype(int)
    rows = [[int(age[i]), round(float(rng.normal(120, 15)), 1), rng.choice(["M", "F"]),
             rng.choice(["never", "former", "current"]), int(y[i])] for i in range(n)]
    return ["age", "bp", "sex", "smoking", "outcome"], rows


def _write(path, header, rows, order=None):
    order = order or list(range(len(header)))
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[header[i] for i in order]]
                                + [[r[i] for i in order] for r in rows])
    return path


def test_a_test_files_columns_are_found_by_name_not_by_place(tmp_path):
    # QA: a --test file with age and bp swapped was scored by position (test accuracy 0.55
    # where the same rows in the training order scored 0.90).
    header, rows = _table()
    train = _write(tmp_path / "train.csv", header, rows[:40])
    same = _write(tmp_path / "test.csv", header, rows[40:])
    expected = load_data(train, test=same).test.x
    for order in ([1, 0, 2, 3, 4], [4, 3, 2, 1, 0]):
        moved = _write(tmp_path / f"test_{order[0]}.csv", header, rows[40:], order)
        test = load_data(train, test=moved).test
        assert np.array_equal(np.asarray(test.x), np.asarray(expected))
        assert test.meta["feature_names"] == ["age", "bp", "sex", "smoking"]
    no_bp = _write(tmp_path / "no_bp.csv", header, rows[40:], [0, 2, 3, 4])
    with pytest.raises(DataError, match=r"no column\(s\) 'bp'; a test file has the training "
                                        r"data's feature columns \(age, bp, sex, smoking\)"):
        load_data(train, test=no_bp)
    extra = _write(tmp_path / "extra.csv", [*header, "site"],
                   [[*r, "A"] for r in rows[40:]])
    with pytest.raises(DataError, match=r"column\(s\) 'site' the training data does not have"):
        load_data(train, test=extra)


def test_a_test_value_that_is_no_number_in_a_numeric_column_is_refused_before_the_search(
        tmp_path):
    # QA: it was found only when the answer was scored, after the whole search had run.
    header, rows = _table()
    train = _write(tmp_path / "train.csv", header, rows[:40])
    bad = [list(r) for r in rows[40:]]
    bad[3][1] = "<90"
    test = _write(tmp_path / "test.csv", header, bad)
    with pytest.raises(DataError, match=r"column 'bp' holds '<90' \(test record 4\), but it "
                                        "is numeric in the training data"):
        load_data(train, test=test)
