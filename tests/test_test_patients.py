"""A --test file that shares patients with the training data is refused, for every loader
that reads a patient column (issue 15: it was accepted when the loader ignored --group-col)."""

from __future__ import annotations

import numpy as np
import pytest

from automed.data.loaders import load_data
from automed.errors import DataError
from automed.searching.runner import search


def _records(path, patients, *, split=None):
    rows = ["patient,age,sex,label" + (",split" if split else "")]
    for i, p in enumerate(patients):
        rows.append(f"{p},{50 + i},{'MF'[i % 2]},{i % 2}" + (f",{split[i]}" if split else ""))
    path.write_text("\n".join(rows) + "\n")
    return path


def _series(path, patients, seed=0):
    rng = np.random.default_rng(seed)
    rows = ["patient,label," + ",".join(f"t{j}" for j in range(16))]
    rows += [f"{p},{i % 2}," + ",".join(f"{v:.3f}" for v in rng.normal(size=16))
             for i, p in enumerate(patients)]
    path.write_text("\n".join(rows) + "\n")
    return path


TRAIN = [f"p{i // 2}" for i in range(20)]  # 10 patients, two visits each


def test_tabular_patient_column_is_groups_not_a_feature(tmp_path):
    train = _records(tmp_path / "train.csv", TRAIN)
    data = load_data(train, test=_records(tmp_path / "test.csv", ["q1", "q2", "q3", "q4"]),
                     group_col="patient")
    assert data.train.meta["feature_names"] == ["age", "sex"]
    assert data.train.groups.tolist() == TRAIN and data.test.groups.tolist()[:2] == ["q1", "q2"]


@pytest.mark.parametrize("make", [_records, _series], ids=["tabular", "signal"])
@pytest.mark.parametrize("shared", [["p0", "p1", "p2", "p3"], ["p0", "q1", "q2", "q3"]],
                         ids=["all-shared", "one-shared"])
def test_a_test_file_sharing_patients_is_refused(tmp_path, storage_url, make, shared):
    train, test = make(tmp_path / "train.csv", TRAIN), make(tmp_path / "test.csv", shared)
    with pytest.raises(DataError, match=r"test\.csv: \d group\(s\) are in both the training "
                                        r"and the test data \(e\.g\. p0"):
        search(train, test=test, group_col="patient", trials=1, folds=2, storage=storage_url)


def test_a_test_split_inside_a_test_file_keeps_its_patients(tmp_path):
    # The test file marks some of its own rows "test": both parts are test data, with ids.
    test = _records(tmp_path / "test.csv", ["q1", "q2", "p3", "q4"],
                    split=["train", "test", "test", "train"])
    data = load_data(_records(tmp_path / "train.csv", TRAIN), test=test, group_col="patient")
    assert sorted(data.test.groups.tolist()) == ["p3", "q1", "q2", "q4"]


def test_group_col_on_text_and_a_missing_id(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("text,label,subject\nchest pain at rest,a,s1\nno pain,b,s1\n"
                    "short of breath,a,s2\nfine today,b,\n")
    with pytest.raises(DataError, match=r"line 5 has no group id in column 'subject'"):
        load_data(path, group_col="subject")
    fasta = tmp_path / "x.fasta"
    fasta.write_text(">s1 a\nACGT\n>s2 b\nACGA\n")
    with pytest.raises(DataError, match="--group-col cannot apply"):
        load_data(fasta, group_col="subject")
