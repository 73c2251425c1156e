"""Issue 12, item 3: near-duplicate leakage across CV folds and between training and test data.

The cohort is the issue's: 60 patients x 10 rows, each row the patient's base vector plus tiny
noise, the label random per patient, so any CV score above chance is leakage. All data is small
(at most 2000 rows); the one search uses the tiny MLP plugin for one trial.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from automed.data.dataset import Dataset
from automed.data.loaders import load_data
from automed.evaluation.cv import make_folds
from automed.evaluation.leakage import check_folds_leakage, check_test_leakage, leakage_warnings
from tests.conftest import SHARED_DATA

TINY = str(Path(__file__).with_name("tiny_arch.py"))


def cohort(n_patients=60, per_patient=10, features=12, noise=0.01, seed=0, groups=False,
           strings=False) -> Dataset:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_patients, features))
    labels = rng.integers(0, 2, n_patients)
    pid = np.repeat(np.arange(n_patients), per_patient)
    x = base[pid] + noise * rng.standard_normal((len(pid), features))
    if strings:  # what the CSV loader gives: strings, a categorical column, a missing value
        site = np.where(pid % 3 == 0, "north", "south")
        x = np.column_stack([x.round(4).astype(str), site]).astype(object)
        x[5, 0] = "NA"
    return Dataset(x, labels[pid], ["0", "1"], "tabular", "cohort",
                   groups=np.char.add("p", pid.astype(str)) if groups else None)


def near_warnings(report: dict) -> list[str]:
    return [w for w in leakage_warnings(report) if "near-identical" in w]


@pytest.mark.parametrize("strings", [False, True])
def test_near_duplicate_cohort_without_groups_warns(strings):
    data = cohort(strings=strings)
    report = check_folds_leakage(data, make_folds(data, 3))
    near = report["near_duplicates"]
    assert report["val_duplicates_per_fold"] == [0, 0, 0]  # no exact copies: only near ones
    assert near["leaky"] and near["near_twins"] > 0.9 * near["queries"]
    assert near["expected_by_chance"] < 1
    (line,) = near_warnings(report)
    assert line.startswith("LEAKAGE:") and "--group-col" in line and "de-duplicate" in line
    assert "\n" not in line
    assert json.loads(json.dumps(report)) == report  # stored with the search config


def test_grouped_folds_keep_the_cohort_free_of_near_twins():
    data = cohort(groups=True)
    splits = make_folds(data, 3)
    report = check_folds_leakage(data, splits)
    assert not report["near_duplicates"]["leaky"]
    assert report["near_duplicates"]["near_twins"] == 0
    assert leakage_warnings(report) == []


def test_near_twins_across_different_groups_still_count():
    # One id per visit instead of per patient: grouped folds, yet every patient on both sides.
    data = cohort(groups=True)
    data.groups = np.char.add(data.groups.astype(str), (np.arange(len(data)) % 2).astype(str))
    report = check_folds_leakage(data, make_folds(data, 3))
    assert report["near_duplicates"]["leaky"]
    (line,) = near_warnings(report)
    assert "one id per patient" in line and "--group-col" not in line


def test_iid_data_does_not_warn():
    x, y = make_classification(2000, 20, random_state=0)
    data = Dataset(x, y, ["0", "1"], "tabular", "iid")
    report = check_folds_leakage(data, make_folds(data, 5))
    assert report["near_duplicates"]["checked"] and not report["near_duplicates"]["leaky"]
    assert leakage_warnings(report) == []


def test_low_dimensional_iid_data_with_close_neighbours_does_not_warn():
    # 5000 points in 2-D: nearest neighbours are 1% of the typical distance apart by nature,
    # which the chance model must predict rather than call twins.
    rng = np.random.default_rng(3)
    data = Dataset(rng.standard_normal((5000, 2)), rng.integers(0, 2, 5000), ["0", "1"],
                   "tabular", "2d")
    near = check_folds_leakage(data, make_folds(data, 5))["near_duplicates"]
    assert near["median_nn_distance"] < 0.05 and not near["leaky"]
    assert near["queries"] == 2000  # validation queries are capped: linear cost in N
    assert sum(near["estimated_near_twins_per_part"]) >= sum(near["near_twins_per_part"])


@pytest.mark.parametrize("levels", [20, 100, 3000])
def test_independent_records_with_a_many_level_column_do_not_warn(levels):
    # QA: 500 independent rows of two numbers and a 100-level site column read as LEAKAGE
    # (61 of 500 with a twin, "where chance predicts 0.26"): its one-hot levels, hashed
    # into buckets, made records of one bucket far closer than the pairs' overall spread
    # predicted. Twins of the cohort above (one site column) are still found (strings=True).
    rng = np.random.default_rng(60)
    n = 6000 if levels == 3000 else 500
    x = np.column_stack([rng.standard_normal((n, 2)).round(3).astype(str),
                         np.char.add("S", rng.integers(0, levels, n).astype(str))])
    data = Dataset(x.astype(object), rng.integers(0, 2, n), ["0", "1"], "tabular", "site")
    report = check_folds_leakage(data, make_folds(data, 3))
    assert report["near_duplicates"]["checked"] and not report["near_duplicates"]["leaky"]
    assert near_warnings(report) == []


def test_twins_sharing_their_levels_are_found_among_many_sites():
    data = cohort(strings=True)
    site = np.array([f"S{p % 40}" for p in np.repeat(np.arange(60), 10)], dtype=object)
    data = Dataset(np.column_stack([data.x, site]), data.y, data.classes, "tabular", "c40")
    near = check_folds_leakage(data, make_folds(data, 3))["near_duplicates"]
    assert near["leaky"] and near["near_twins"] > 0.9 * near["queries"]


def _signals(n, seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 96)
    freq, phase = rng.uniform(1, 8, (n, 1)), rng.uniform(0, 6.3, (n, 1))
    x = np.sin(2 * np.pi * freq * t + phase) + 0.3 * rng.standard_normal((n, 96))
    return x[:, None, :].astype(np.float32), rng.integers(0, 2, n)


def test_test_set_near_copies_of_training_signals_warn():
    x, y = _signals(300, 0)
    train = Dataset(x, y, ["0", "1"], "signal", "train")
    fresh, fy = _signals(60, 1)
    clean = Dataset(fresh, fy, ["0", "1"], "signal", "test")
    report = check_test_leakage(train, clean)
    assert report["test_near_duplicates"]["checked"]
    assert not report["test_near_duplicates"]["leaky"] and leakage_warnings(report) == []

    rng = np.random.default_rng(2)
    copies = x[:30] + 0.01 * rng.standard_normal(x[:30].shape).astype(np.float32)
    leaky = Dataset(np.concatenate([copies, fresh[:30]]), np.concatenate([y[:30], fy[:30]]),
                    ["0", "1"], "signal", "test")
    report = check_test_leakage(train, leaky)
    near = report["test_near_duplicates"]
    assert report["test_duplicates"] == 0
    assert near["leaky"] and 15 < near["near_twins"] <= 30 and near["dims"] == 64  # projected
    (line,) = leakage_warnings(report)
    assert line.startswith(f"LEAKAGE: {near['near_twins']} of 60 test sample(s)")
    assert "de-duplicate" in line


def test_exact_copies_are_not_reported_twice():
    data = cohort(noise=0.0)  # ten identical rows per patient
    report = check_folds_leakage(data, make_folds(data, 3))
    assert sum(report["val_duplicates_per_fold"]) == 600
    assert report["near_duplicates"]["near_twins"] == 0
    assert len(leakage_warnings(report)) == 1


def test_identical_rows_of_a_coarse_table_are_leakage_only_beyond_chance():
    # QA: 200 independent patients of age (0.1-year steps) and sex were told "LEAKAGE ... CV
    # scores are inflated" for the rows that share both by chance
    rng = np.random.default_rng(3)
    n = 200
    x = np.column_stack([(rng.integers(400, 901, n) / 10).astype(str),
                         rng.choice(["M", "F"], n)]).astype(object)
    data = Dataset(x, rng.integers(0, 2, n), ["0", "1"], "tabular", "uni")
    report = check_folds_leakage(data, make_folds(data, 2))
    found = sum(report["val_duplicates_per_fold"])
    assert found > 0 and 0.5 * found < report["chance_duplicates"] < 2 * found
    (said,) = leakage_warnings(report)
    assert not said.startswith("LEAKAGE") and "about what chance gives" in said
    assert "give --group-col" in said
    # the same patients seen twice: far beyond chance, leakage
    twice = Dataset(np.concatenate([x, x]), np.concatenate([data.y, data.y]), ["0", "1"],
                    "tabular", "twice")
    report = check_folds_leakage(twice, make_folds(twice, 2))
    assert sum(report["val_duplicates_per_fold"]) > 1.5 * report["chance_duplicates"]
    assert leakage_warnings(report)[0].startswith("LEAKAGE: ")
    # two real copies in a table no row repeats by chance are copies (review: "+ 2" slack)
    fine = np.column_stack([rng.normal(size=(300, 3)).round(4).astype(str)]).astype(object)
    fine[1], fine[2] = fine[0], fine[0]
    data = Dataset(fine, np.arange(300) % 2, ["0", "1"], "tabular", "fine")
    report = check_folds_leakage(data, [(np.arange(1, 300), np.array([0]))])
    assert report["val_duplicates_per_fold"] == [1] and report["chance_duplicates"] < 0.01
    assert leakage_warnings(report)[0].startswith("LEAKAGE: 1 validation sample")


def test_test_rows_of_a_coarse_table_equal_to_training_rows_by_chance_are_no_leakage():
    rng = np.random.default_rng(4)

    def table(n):
        return np.column_stack([rng.integers(40, 91, n).astype(str),
                                rng.choice(["M", "F"], n)]).astype(object)

    train = Dataset(table(300), rng.integers(0, 2, 300), ["0", "1"], "tabular", "train")
    test = Dataset(table(60), rng.integers(0, 2, 60), ["0", "1"], "tabular", "test")
    report = check_test_leakage(train, test)
    assert report["test_duplicates"] > 30 and report["test_chance_duplicates"] > 30
    (said,) = leakage_warnings(report)
    assert not said.startswith("LEAKAGE") and "about what chance gives" in said
    # test rows copied from training rows with a fine-grained column: leakage
    fine = Dataset(np.column_stack([rng.normal(size=300).round(4).astype(str),
                                    train.x[:, 1]]).astype(object), train.y, train.classes,
                   "tabular", "fine")
    copied = fine.subset(np.arange(20))
    assert leakage_warnings(check_test_leakage(fine, copied))[0].startswith("LEAKAGE: 20 test")


def test_copies_across_groups_ask_for_better_groups_not_for_groups():
    # The exact-copy warning used to say "Give --group-col or --groups" when groups were given.
    texts = np.array([f"note {i} about patient" for i in range(8)] + ["note 0 about patient",
                                                                       "note 1 about patient"],
                     dtype=object)
    split = [(np.arange(8), np.arange(8, 10))]
    plain = Dataset(texts, [0, 1] * 5, ["0", "1"], "text", "notes")
    grouped = Dataset(texts, [0, 1] * 5, ["0", "1"], "text", "notes", groups=np.arange(10))
    (without,) = leakage_warnings(check_folds_leakage(plain, split))
    (with_groups,) = leakage_warnings(check_folds_leakage(grouped, split))
    assert "Give --group-col or --groups" in without
    assert "Give --group-col" not in with_groups and "one id per patient" in with_groups


def test_text_duplicates_ignore_case_and_whitespace():
    texts = np.array([f"note {i} about patient" for i in range(8)] * 1, dtype=object)
    copies = np.array([t.upper().replace(" ", "  ") for t in texts[:2]], dtype=object)
    data = Dataset(np.concatenate([texts, copies]), [0, 1] * 5, ["0", "1"], "text", "notes")
    split = [(np.arange(8), np.arange(8, 10))]
    report = check_folds_leakage(data, split)
    assert report["val_duplicates_per_fold"] == [2] and report["duplicate_samples"] == 2
    assert not report["near_duplicates"]["checked"]
    assert check_test_leakage(data.subset(np.arange(8)), data.subset(np.arange(8, 10)))[
        "test_duplicates"] == 2


@pytest.mark.skipif(not (SHARED_DATA / "ucr_ecg200").exists(), reason="needs ../shared/data")
def test_real_ecg200_does_not_warn():
    data = load_data(SHARED_DATA / "ucr_ecg200" / "ECG200_TRAIN.txt").train
    report = check_folds_leakage(data, make_folds(data, 5))
    assert report["near_duplicates"]["checked"] and leakage_warnings(report) == []


def test_a_search_on_the_cohort_file_prints_the_warning(tmp_path, monkeypatch):
    from automed.searching.runner import search

    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", TINY)
    data = cohort(features=32)
    np.savez(tmp_path / "cohort.npz", x=data.x[:, None, :].astype(np.float32), y=data.y)
    with pytest.warns(UserWarning, match="near-identical twin"):
        result = search(tmp_path / "cohort.npz", storage=f"sqlite:///{tmp_path / 'c.db'}",
                        folds=3, trials=1, architectures=["tinymlp"], device="cpu",
                        bootstrap=50, prune=False, save_model=False)
    assert any("near-identical" in w for w in result.warnings)
