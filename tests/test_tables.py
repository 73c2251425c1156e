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


def _search(monkeypatch, capsys, path, url: str, *extra: str) -> str:
    """A tiny CLI search of ``path`` (one mlp candidate); its stderr."""
    from clirun import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "search", str(path), "--trials", "1", "--folds",
                           "2", "--max-epochs", "1", "--bootstrap", "0", "--arch", "mlp",
                           "--storage", url, *extra)
    assert code in (0, None), err
    return err


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


def _with_column(tmp_path, name, values, label=None):
    header, rows = _table()
    rows = [[v, *r] for v, r in zip(values, rows)]
    if label is not None:
        rows = [[*r[:-1], label(i, r[-1])] for i, r in enumerate(rows)]
    return _write(tmp_path / f"{name}.csv", [name, *header], rows)


def test_labels_written_as_whole_floats_are_the_integers_they_are(tmp_path):
    # QA: "1" and "1.0" in one label column (a spreadsheet with a gap writes floats) were two
    # classes: a 2-class table became 4, CV accuracy 0.29.
    header, rows = _table()
    rows = [[*r[:-1], f"{r[-1]}.0" if i % 3 == 0 else r[-1]] for i, r in enumerate(rows)]
    train = load_data(_write(tmp_path / "float.csv", header, rows)).train
    assert train.classes == ["0", "1"]
    assert list(train.y) == [r[-1] if isinstance(r[-1], int) else int(float(r[-1]))
                             for r in rows]


def test_columns_and_classes_that_are_no_features_or_one_class_are_said(tmp_path):
    from automed.searching.prepare import _label_warnings, _table_warnings

    ids = _with_column(tmp_path, "patient_id", [f"P{1000 + i}" for i in range(60)])
    [said] = _table_warnings(load_data(ids).train)
    assert said.startswith("column 'patient_id' has a different value in 60 of 60 rows, like "
                           "an identifier; if it identifies records or patients, give --id-col "
                           "patient_id")
    shared = _with_column(tmp_path, "pid", [f"P{i // 2}" for i in range(60)])
    [said] = _table_warnings(load_data(shared).train)
    assert said.startswith("column 'pid' has 30 values in 60 rows, each in at most 2, like a "
                           "patient or record id; if it identifies records or patients")
    assert _table_warnings(load_data(shared, group_col="pid").train) == []
    numbered = _with_column(tmp_path, "record_no", list(range(1, 61)))
    [said] = _table_warnings(load_data(numbered).train)
    assert said.startswith("column 'record_no' numbers the rows (1 to 60, each once)")
    assert load_data(numbered, id_col="record_no").train.meta["feature_names"][0] == "age"
    assert _table_warnings(load_data(numbered, id_col="record_no").train) == []
    bp = _with_column(tmp_path, "pressure",
                      ["<90" if i % 10 == 0 else str(100 + i) for i in range(60)])
    [said] = _table_warnings(load_data(bp).train)
    assert said == ("column 'pressure' is read as categories: 6 of its 60 values are no numbers "
                    "(such as '<90'); fix or blank them to read it as numbers")
    plain = _write(tmp_path / "plain.csv", *_table())
    assert _table_warnings(load_data(plain).train) == []  # age, bp, sex, smoking are features
    spelt = _with_column(tmp_path, "site", ["A"] * 60,
                         label=lambda i, y: ("Yes" if y else "No") if i % 3 else
                         ("yes " if y else "no"))
    [said] = _label_warnings(load_data(spelt).train)
    assert said.startswith("classes 'No' and 'no'; 'Yes' and 'yes' differ only in case or "
                           "spacing, and are searched as different classes (4 in all)")
    assert _label_warnings(load_data(plain).train) == []


def test_the_search_says_how_a_tables_columns_are_read(tmp_path, monkeypatch, capsys):

    path = _with_column(tmp_path, "patient_id", [f"P{i}" for i in range(60)])
    err = _search(monkeypatch, capsys, path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert ("features: numeric age, bp; categorical patient_id (60 levels), sex (2 levels), "
            "smoking (3 levels); label: outcome") in err
    assert "WARNING: column 'patient_id' has a different value in 60 of 60 rows" in err


@pytest.mark.parametrize("name,values,said", [
    ("count", [f"{1000 + 37 * i:,}" for i in range(60)],  # QA: 381 levels, "like an identifier"
     "column 'count' holds numbers written with separators or units (such as '1,000', "
     "'1,037'), read as 60 categories; write them as plain numbers"),
    ("dose", [f"{10 + i % 25 * 0.5:.1f} mg" for i in range(60)],
     "column 'dose' holds numbers written with separators or units (such as '10.0 mg', "
     "'10.5 mg'), read as 25 categories; write them as plain numbers"),
    ("admitted", [f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(60)],
     "column 'admitted' holds dates (such as '2021-01-01'), read as 60 categories; derive "
     "numbers from them"),
])
def test_numbers_with_units_or_separators_and_dates_are_said(tmp_path, name, values, said):
    from automed.searching.prepare import _table_warnings

    [line] = _table_warnings(load_data(_with_column(tmp_path, name, values)).train)
    assert line.startswith(said), line


def test_stages_and_grades_are_categories_unsaid(tmp_path):
    from automed.searching.prepare import _table_warnings

    stage = _with_column(tmp_path, "stage", [["1A", "2B", "3A", "4"][i % 4] for i in range(60)])
    assert _table_warnings(load_data(stage).train) == []


def test_a_measurement_named_as_the_label_is_told_to_be_binned(tmp_path):
    # QA: "name the label with --label-col" was the hint when --label-col had named it.
    from automed.evaluation.cv import check_folds

    header, rows = _table()
    rows = [[*r[:-1], round(100 + 0.37 * i, 2)] for i, r in enumerate(rows)]
    path = _write(tmp_path / "measured.csv", header, rows)
    for given, said in ((None, "name the label with --label-col"),
                        ("outcome", "automed classifies: bin the measurement into classes")):
        train = load_data(path, label_col=given).train
        with pytest.raises(DataError, match="60 distinct values in label column 'outcome'") as e:
            check_folds(train, 3)
        assert said in str(e.value)


def test_a_rounded_measurement_as_the_label_is_refused_however_many_rows(tmp_path):
    # QA: a measurement rounded to one decimal (32 values in 1,500 rows) was searched as 32
    # classes at accuracy 0.24, unsaid: 3 rows per value or more passed the check above.
    from automed.evaluation.cv import check_folds

    header, rows = _table(n=120)
    rows = [[*r[:-1], round(-0.6 + 0.1 * (i % 12), 1)] for i, r in enumerate(rows)]
    train = load_data(_write(tmp_path / "rounded.csv", header, rows)).train
    assert train.n_classes == 12
    with pytest.raises(DataError, match=r"12 distinct values in label column 'outcome' of 120 "
                                        r"rows \(non-integer numbers, a measurement\)"):
        check_folds(train, 3)
    # whole numbers, or a few non-integer classes (1.5 / 2.5), are classes
    for labels in ([i % 12 for i in range(120)], [1.5 + i % 2 for i in range(120)]):
        rows = [[*r[:-1], v] for r, v in zip(rows, labels)]
        check_folds(load_data(_write(tmp_path / "classes.csv", header, rows)).train, 3)


@pytest.mark.parametrize("labels,classes,y", [
    (["01", "1", "0", "00"], ["0", "1"], [1, 1, 0, 0]),             # QA: 4 classes, unsaid
    (["-0.0", "0.0", "0.5", "0.5"], ["0.0", "0.5"], [0, 0, 1, 1]),  # QA: -0.0, 0.0 two classes
    (["2", "10", "2", "10"], ["2", "10"], [0, 1, 0, 1]),  # QA: "10" sorted first: "2" positive
    (["k10", "k2", "k1", "k2"], ["k1", "k2", "k10"], [2, 1, 0, 1]),
    (["001", "002", "001", "002"], ["001", "002"], [0, 1, 0, 1]),  # one spelling each: kept
])
def test_number_labels_are_one_class_per_number_in_number_order(labels, classes, y):
    from automed.data.dataset import encode_labels

    found_y, found = encode_labels(np.array(labels, dtype=object), "t")
    assert found == classes and found_y.tolist() == y


@pytest.mark.parametrize("given", ["-1.0000000e+00", "-1.0", " -1"])
def test_pos_label_is_found_as_the_file_writes_it(given):
    # QA: a UCR file's "-1.0000000e+00" was refused ("classes: ['-1', '1']"), as was " Disease"
    from automed.errors import ConfigError
    from automed.searching.prepare import _resolve_pos_label

    assert _resolve_pos_label(given, ["-1", "1"]) == 0
    assert _resolve_pos_label(" Disease", ["disease", "healthy"]) == 0
    assert _resolve_pos_label("1", ["1", "01x"]) == 0
    with pytest.raises(ConfigError, match=r"^--pos-label 'sick' is not a class; give one of "
                                          r"'disease', 'healthy'$"):
        _resolve_pos_label("sick", ["disease", "healthy"])


def test_a_label_column_named_in_another_case_is_pointed_at(tmp_path):
    header, rows = _table()
    path = _write(tmp_path / "t.csv", header, rows)
    with pytest.raises(DataError, match=r"no label column 'Outcome' \(given with --label-col\); "
                                        r"did you mean 'outcome'\?"):
        load_data(path, label_col="Outcome")


@pytest.mark.parametrize("kind", ["table", "text", "sequences"])
def test_two_columns_named_like_a_label_are_refused_until_one_is_named(tmp_path, kind):
    # QA: "age,sex,class,outcome" searched the NYHA class feature as the label and the
    # outcome as a feature, without a word
    header, rows = _table()
    if kind == "table":
        header, rows = [*header[:3], "class", "outcome"], [[*r[:3], r[3], r[4]] for r in rows]
    elif kind == "text":
        header = ["text", "class", "outcome"]
        rows = [[f"note {r[2]} {r[3]}", r[3], r[4]] for r in rows]
    else:
        header = ["sequence", "class", "outcome"]
        rows = [["ACGT" * 3 + ("A" if r[4] else "C"), r[3], r[4]] for r in rows]
    path = _write(tmp_path / f"{kind}.csv", header, rows)
    with pytest.raises(DataError, match=r"columns 'class' and 'outcome' could each be the "
                                        r"label; name the label with --label-col"):
        load_data(path)
    data = load_data(path, label_col="outcome")
    assert data.train.classes == ["0", "1"]
    if kind == "table":  # the other is a feature
        assert data.train.meta["feature_names"] == ["age", "bp", "sex", "class"]


def test_test_rows_with_a_category_the_training_rows_lack_are_said(tmp_path):
    # QA: a 'U' in the sex column of one split=test row went unsaid until predict
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare

    header, rows = _table()
    rows = [[*r, "train"] for r in rows] + [[50, 120.5, "U", "never", 1, "test"],
                                            [60, 130.5, "M", "never", 0, "test"]]
    path = _write(tmp_path / "split.csv", [*header, "split"], rows)
    p = prepare(SearchPlan(data=DataPlan(path=str(path)), folds=2, trials=1))
    assert any("column 'sex' of the test rows holds values the training rows never have "
               "('U' (1 row)); every model reads them as missing" in w for w in p.warnings)


def test_a_study_made_before_the_refusal_still_resumes_and_is_joined(tmp_path):
    # review: a study searched (by an older automed) on "class" and "outcome", the first
    # known name its label, could be neither resumed nor joined, with or without --label-col
    from automed.data.loaders import records
    from automed.searching.runner import search
    from automed.searching.workers import objective_from_store
    from automed.storage import Store

    header, rows = _table()
    path = _write(tmp_path / "t.csv", [*header[:3], "class", "outcome"],
                  [[*r[:3], r[3], r[4]] for r in rows])
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    common = dict(folds=2, max_epochs=1, bootstrap=0, architectures=["mlp"], storage=url,
                  refit=False)
    token = records.FIRST_LABEL.set(True)  # as automed read it before
    try:
        search(path, trials=1, **common)
    finally:
        records.FIRST_LABEL.reset(token)
    again = search(path, trials=2, **common)  # the same command, as a user resumes
    assert again.resumed and len(Store(url).candidates(again.study)) == 2
    objective = objective_from_store(Store(url), again.study, "cpu", allowed_plugins=None)
    assert objective.p.train.classes == ["current", "former", "never"]  # 'class' (smoking)
    with pytest.raises(DataError, match="could each be the label"):  # a new study: refused
        search(path, trials=1, study="new", **common)
    # QA: ... and so is a new study under its default name (another --metric), which took
    # the older study's label where a fresh database refused the two columns
    with pytest.raises(DataError, match="could each be the label"):
        search(path, trials=1, metric="auroc", **common)


def test_the_data_line_says_rows_a_split_column_keeps_out(tmp_path, monkeypatch, capsys):
    # QA: "96 tabular samples" said nothing of the 24 rows the split column made the test set

    header, rows = _table()
    rows = [[*r, "test" if i % 5 == 0 else "train"] for i, r in enumerate(rows)]
    path = _write(tmp_path / "split.csv", [*header, "split"], rows)
    err = _search(monkeypatch, capsys, path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert "; 12 more rows its split column marks test (the locked test set); features:" in err


def test_the_model_card_lists_the_input_columns_a_new_file_must_carry(tmp_path):
    # QA: the card said "input: tabular of shape (7,)", not which columns
    from automed.results.model_card import export_model
    from automed.searching.runner import search
    from automed.storage import Store

    path = _write(tmp_path / "t.csv", *_table())
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(path, trials=1, folds=2, max_epochs=1, bootstrap=0, architectures=["mlp"],
           storage=url, study="t")
    card = (export_model(Store(url), "t", tmp_path / "out") / "MODEL_CARD.md").read_text()
    assert ("- input columns, found by name in a new file: numeric `age`, `bp`; categorical "
            "`sex` (F, M), `smoking` (current, former, never); label `outcome`") in card


def test_the_positive_class_and_the_grouping_are_said_where_users_read(tmp_path, monkeypatch,
                                                                        capsys):
    # QA: --pos-label was named only in `show --json`, and grouped CV only in the model card
    from clirun import run_cli

    from automed.results.model_card import export_model
    from automed.results.report import build_report
    from automed.storage import Store

    header, rows = _table()
    rows = [[*r[:-1], ("healthy", "sick")[r[-1]], f"pt{i // 2}"] for i, r in enumerate(rows)]
    path = _write(tmp_path / "t.csv", [*header, "patient"], rows)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    err = _search(monkeypatch, capsys, path, url, "--study", "t", "--metric", "f1", "--average",
                  "binary", "--pos-label", "healthy", "--group-col", "patient")
    said = ("2-fold CV by f1 (binary, positive class 'healthy'); folds grouped by 'patient' "
            "(30 groups)")
    assert said in err
    code, out, _ = run_cli(monkeypatch, capsys, "show", "t", "--storage", url)
    assert said in out
    code, out, _ = run_cli(monkeypatch, capsys, "leaderboard", "--study", "t", "--storage", url)
    assert said in out.splitlines()[0]  # QA: "2-fold CV by f1" there
    import html

    assert said in html.unescape(build_report(Store(url), "t"))
    card = (export_model(Store(url), "t", tmp_path / "out") / "MODEL_CARD.md").read_text()
    assert "- cross-validation f1 (binary, positive class 'healthy'): " in card


def test_leakage_the_search_printed_is_in_show_the_report_and_the_card(tmp_path, monkeypatch,
                                                                      capsys):
    # QA: the report and show left out the LEAKAGE line the search printed, and the card said
    # the test set was "never seen by the search" beside it
    import html

    from clirun import run_cli

    from automed.results.model_card import export_model
    from automed.results.report import build_report
    from automed.storage import Store

    header, rows = _table()
    rows = [[*r, "train"] for r in rows] + [[*r, "test"] for r in rows[:10]]
    path = _write(tmp_path / "copies.csv", [*header, "split"], rows)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    err = _search(monkeypatch, capsys, path, url, "--study", "c")
    said = "LEAKAGE: 10 test sample(s) are identical to training samples"
    assert said in err
    code, out, _ = run_cli(monkeypatch, capsys, "show", "c", "--storage", url)
    assert f"WARNING: {said}" in out
    assert said in html.unescape(build_report(Store(url), "c"))
    card = (export_model(Store(url), "c", tmp_path / "out") / "MODEL_CARD.md").read_text()
    assert "never seen by the search" not in card
    assert "never trained on by the search (though some are copies of training samples" in card


def test_predict_indexes_a_split_column_files_rows_by_their_place_in_the_file(
        tmp_path, monkeypatch, capsys):
    # QA: the index counted within each part (train 0.., test 0..), so a file without ids
    # could not be joined back to its predictions
    import csv as csvmod
    import io

    from clirun import run_cli

    header, rows = _table()
    rows = [[*r, "test" if i % 4 == 0 else "train"] for i, r in enumerate(rows)]
    path = _write(tmp_path / "split.csv", [*header, "split"], rows)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _search(monkeypatch, capsys, path, url, "--study", "s")
    code, out, err = run_cli(monkeypatch, capsys, "predict", str(path), "--study", "s",
                             "--storage", url)
    assert code in (0, None), err
    got = [(int(r["index"]), r["split"]) for r in csvmod.DictReader(io.StringIO(out))]
    assert got == [(i, "test" if i % 4 == 0 else "train") for i in range(len(rows))]


def test_an_answer_predicting_one_class_is_said_in_the_result_show_and_the_card(
        tmp_path, monkeypatch, capsys):
    from clirun import run_cli

    from automed.results.model_card import export_model
    from automed.searching import runner
    from automed.storage import Store

    said = "the answer predicts class '0' for every one of the 12 test samples: ..."
    seen = []

    def one_class(predictions):
        seen.append(predictions)
        return said

    monkeypatch.setattr(runner, "_one_class_answer", one_class)
    header, rows = _table()
    rows = [[*r, "test" if i % 5 == 0 else "train"] for i, r in enumerate(rows)]
    path = _write(tmp_path / "t.csv", [*header, "split"], rows)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with pytest.warns(UserWarning, match="predicts class '0' for every one"):
        result = runner.search(path, trials=1, folds=2, max_epochs=1, bootstrap=0,
                               architectures=["mlp"], storage=url, study="one")
    assert seen and seen[0]["y_true"] and said in result.warnings
    code, out, _ = run_cli(monkeypatch, capsys, "show", "one", "--storage", url)
    assert f"WARNING: {said}" in out
    card = (export_model(Store(url), "one", tmp_path / "out") / "MODEL_CARD.md").read_text()
    assert f"- {said}" in card


@pytest.mark.parametrize("where", ["label", "header"])
@pytest.mark.parametrize("control", ["\x1b[2J", "\u202egnp.exe", "a\x07b"])
def test_control_characters_in_class_or_column_names_are_refused(tmp_path, where, control):
    # QA (hostile inputs): a class name holding ESC [2J cleared the terminal of whoever ran
    # `automed show`; U+202E showed "gnp.exe" as "exe.png" in reports and model cards.
    header, rows = _table()
    if where == "label":
        rows = [[*r[:-1], f"x{control}" if r[-1] else "y"] for r in rows]
    else:
        header = [f"b{control}p" if h == "bp" else h for h in header]
    with pytest.raises(DataError, match=r"(class|column) name .* holds the control character "
                                        r".*; remove it from the (labels|header)"):
        load_data(_write(tmp_path / "c.csv", header, rows))


def test_a_time_axis_column_of_a_long_format_recording_is_said(tmp_path):
    # QA (formats): "time,ECG,label" was searched as a table with time as a feature
    from automed.searching.prepare import _table_warnings

    t = [round(0.004 * i, 3) for i in range(60)]
    [said] = _table_warnings(load_data(_with_column(tmp_path, "time", t)).train)
    assert said.startswith("column 'time' rises in even steps (0, 0.004, ...), like the time "
                           "axis of one recording in long format")
    rng = np.random.default_rng(1)
    rising = np.cumsum(rng.exponential(1.0, 60)).round(3).tolist()  # uneven: no time axis
    assert _table_warnings(load_data(_with_column(tmp_path, "dose", rising)).train) == []


def test_a_grouped_searchs_card_says_its_test_intervals_resampled_whole_patients(
        tmp_path, monkeypatch, capsys):
    # QA: "grouped stratified cross-validation ... 95 % percentile bootstrap intervals", and
    # the intervals were exactly a per-row bootstrap of three rows per patient
    import json

    from automed.results.model_card import export_model
    from automed.storage import Store

    header, rows = _table(90)
    rows = [[*r, f"pt{i // 3}"] for i, r in enumerate(rows)]
    path = _write(tmp_path / "t.csv", [*header, "patient"], rows)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _search(monkeypatch, capsys, path, url, "--study", "t", "--group-col", "patient",
            "--test-fraction", "0.3", "--bootstrap", "50")
    out = export_model(Store(url), "t", tmp_path / "out")
    config = json.loads((out / "automed_model.json").read_text())
    assert config["test"]["resampled"] == "groups" and config["test"]["ci"]
    assert "50 resamples of whole groups" in (out / "MODEL_CARD.md").read_text()


def test_a_cohort_of_few_patients_says_why_it_has_no_intervals_and_no_ensemble(
        tmp_path, monkeypatch):
    # QA (grouped end to end): with under 10 patients the report gave the ensemble's "50 %
    # of paired resamples" (none were drawn), and the search, the leaderboard, the report
    # and the card printed interval headings over no intervals
    import html
    import json

    from automed.results.leaderboard import format_test_ci
    from automed.results.model_card import export_model
    from automed.results.report import build_report
    from automed.searching import ensemble
    from automed.searching.runner import search
    from automed.storage import Store

    real = ensemble.greedy_select

    def two_members(oof, y, objective, order, **kw):  # a blend of two, to be judged
        chosen = real(oof, y, objective, order, **kw)
        return ensemble.Selection(order[:2], chosen.score, chosen.single)

    monkeypatch.setattr(ensemble, "greedy_select", two_members)
    header, rows = _table(48)
    rows = [[*r, f"pt{i // 4}"] for i, r in enumerate(rows)]  # 12 patients, 4 visits each
    path = _write(tmp_path / "t.csv", [*header, "patient"], rows)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = search(path, group_col="patient", test_fraction=0.25, trials=3, folds=2,
                    max_epochs=1, architectures=["mlp"], bootstrap=50, storage=url,
                    study="few")
    assert result.test_intervals == {"resampled": "too few groups", "groups": 3}
    assert all(v["low"] is None for v in result.test_ci.values())
    assert format_test_ci(result.test_ci, how=result.test_intervals).startswith(
        "test metrics with 95% bootstrap intervals: none, the test set holds 3 patients")
    config = Store(url).search("few")["config"]
    assert config["ensemble"]["lead_note"] == \
        "9 patients (groups) are too few to tell (at least 10)"
    page = html.unescape(build_report(Store(url), "few"))
    assert "but 9 patients (groups) are too few to tell" in page
    assert "in only 50%" not in page and "95 % CI" not in page
    assert "95 % intervals: none, the test set holds 3 patients (groups)" in page
    card = (export_model(Store(url), "few", tmp_path / "out") / "MODEL_CARD.md").read_text()
    assert "no bootstrap intervals (the test set holds 3 patients (groups), too few to " \
           "resample)" in card and "- – -" not in card
    assert json.loads((tmp_path / "out" / "automed_model.json").read_text())["test"][
        "resampled"] == "too few groups"
    # with --bootstrap 0 that is the reason (review: "too few to resample" was given)
    search(path, group_col="patient", test_fraction=0.25, trials=1, folds=2, max_epochs=1,
           architectures=["mlp"], bootstrap=0, storage=url, study="none", ensemble=False)
    card = (export_model(Store(url), "none", tmp_path / "none") / "MODEL_CARD.md").read_text()
    assert "no bootstrap intervals (--bootstrap 0)" in card and "too few" not in card


def test_a_grouped_search_says_when_its_test_data_names_no_patients(tmp_path):
    from automed.data.dataset import Dataset
    from automed.searching.prepare import _test_groups_warnings

    train = Dataset(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["a", "b"], "tabular", "t.csv",
                    groups=np.array(["p1", "p1", "p2", "p2"]))
    test = Dataset(np.zeros((2, 2)), np.array([0, 1]), ["a", "b"], "tabular", "test.csv")
    [said] = _test_groups_warnings(train, test, 1000)
    assert said.startswith("test.csv: the test data names no patients, so its 95 % intervals "
                           "resample single samples")
    assert _test_groups_warnings(train, test, 0) == []  # no intervals, nothing to say


def test_a_label_col_other_than_the_label_like_column_is_said(tmp_path, monkeypatch, capsys):
    # QA: `--label-col smoking` was told "'outcome' is the label column", and outcome was
    # read as a feature, unsaid
    path = _write(tmp_path / "t.csv", *_table())
    err = _search(monkeypatch, capsys, path, f"sqlite:///{tmp_path / 'db.sqlite'}",
                  "--label-col", "smoking")
    assert ("because its header names the columns and --label-col names the label; 'outcome', "
            "named like a label, is read as a feature (drop it if it gives the label away)") in err
    assert "'outcome' is the label column" not in err


def test_a_resume_may_restate_what_automed_detected_but_not_read_other_labels(tmp_path):
    # QA: `--label-col outcome` on a study that had found 'outcome' itself was refused, in a
    # message printing Python dicts
    from automed.errors import ConfigError
    from automed.searching.runner import search
    from automed.storage import Store

    path = _write(tmp_path / "t.csv", *_table())
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    common = dict(folds=2, max_epochs=1, bootstrap=0, architectures=["mlp"], storage=url,
                  refit=False, study="s")
    search(path, trials=1, **common)
    again = search(path, trials=2, label_col="outcome", modality="tabular", **common)
    assert again.resumed and len(Store(url).candidates("s")) == 2
    with pytest.raises(ConfigError, match=r"study 's' read its data with modality='tabular' "
                                          r"and --label-col outcome, not no modality and "
                                          r"--label-col smoking; use the same data options"):
        search(path, trials=3, label_col="smoking", **common)
