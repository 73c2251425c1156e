"""What ``automed predict`` does with new files that differ from the training file: a file
without the training file's patient column, and a file of another modality."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from clirun import run_cli

from automed.searching.runner import search

N = 24


def _rows(with_patient: bool) -> str:
    rng = np.random.default_rng(3)
    head = "age,patient,bp,label" if with_patient else "age,bp,label"
    lines = [head]
    for i in range(N):
        label = "sick" if i % 2 else "well"
        age = 50 + 15 * (label == "sick") + int(rng.integers(-5, 5))
        bp = 120 + int(rng.integers(-10, 10))
        lines.append(f"{age},p{i // 2},{bp},{label}" if with_patient else f"{age},{bp},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_inputs")
    storage = f"sqlite:///{root / 'studies.db'}"
    (root / "visits.csv").write_text(_rows(with_patient=True))
    (root / "new_visits.csv").write_text(_rows(with_patient=False))
    words = {"sick": ["fever", "cough", "pain"], "well": ["routine", "normal", "checkup"]}
    rng = np.random.default_rng(4)
    (root / "notes.jsonl").write_text("".join(
        json.dumps({"text": " ".join(rng.choice(words[y], 5)), "label": y}) + "\n"
        for y in ["sick", "well"] * (N // 2)))
    common = dict(trials=1, folds=2, max_epochs=1, storage=storage, bootstrap=0,
                  architectures=["mlp"])
    search(root / "visits.csv", study="grouped", group_col="patient", **common)
    search(root / "notes.jsonl", study="text", **common)
    return root, storage


def _predict(monkeypatch, capsys, *argv: str) -> tuple[int | None, str, str]:
    return run_cli(monkeypatch, capsys, "predict", *argv)


def test_new_data_need_not_carry_the_patient_column(studies, monkeypatch, capsys):
    # A group column is never a feature: a grouped model predicts a file without it, and the
    # file's labels come through.
    root, storage = studies
    code, out, err = _predict(monkeypatch, capsys, str(root / "new_visits.csv"),
                              "--study", "grouped", "--storage", storage)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == N
    assert [r["label"] for r in rows] == ["well", "sick"] * (N // 2)


@pytest.mark.parametrize("name", ["visits.csv", "new_visits.csv"])
def test_a_file_of_another_modality_is_refused(studies, monkeypatch, capsys, name):
    # Tabular records given to a text model used to come back as confident-looking
    # probabilities with exit 0.
    root, storage = studies
    code, out, err = _predict(monkeypatch, capsys, str(root / name), "--study", "text",
                              "--storage", storage)
    assert code not in (0, None) and out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "tabular" in lines[0] and "text" in lines[0], err


@pytest.mark.parametrize("labeled", [True, False])
def test_infinity_in_new_records_is_refused(studies, monkeypatch, capsys, labeled, tmp_path):
    # An infinite value is no missing value: predicting on it refuses, naming the column,
    # instead of writing probabilities computed from it.
    root, storage = studies
    lines = _rows(with_patient=False).splitlines()
    lines[3] = "inf," + lines[3].split(",", 1)[1]
    if not labeled:
        lines = [ln.rsplit(",", 1)[0] for ln in lines]
    path = tmp_path / "inf_visits.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code not in (0, None) and out == "", err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "'age'" in errors[0] and "infinite" in errors[0], err


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_locked_test_file_is_predicted_with_its_labels(studies, monkeypatch, capsys, suffix,
                                                         tmp_path):
    # Every row marked split=test: predict used to fall back to unlabeled reading and write
    # split=all with an empty label column although every row is labelled.
    root, storage = studies
    items = [("fever cough pain fever", "sick"), ("routine normal checkup", "well")] * 3
    path = tmp_path / f"locked.{suffix}"
    if suffix == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": y, "split": "test"}) + "\n"
                                for t, y in items))
    else:
        path.write_text("text,label,split\n" + "".join(f"{t},{y},test\n" for t, y in items))
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "text",
                              "--storage", storage)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["split"] for r in rows] == ["test"] * 6
    assert [r["label"] for r in rows] == [y for _, y in items]
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "text",
                              "--storage", storage, "--split", "train")
    assert code not in (0, None) and out == "" and "every sample is marked test" in err


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_labels_of_one_class_are_kept_in_predictions(studies, monkeypatch, capsys, suffix,
                                                     tmp_path):
    # New data of one class (e.g. a batch of positive cases) is legitimate data to predict on:
    # the one-class refusal is for training data, and predict fell back to unlabeled reading.
    root, storage = studies
    texts = ["fever cough pain fever", "cough fever", "pain fever cough"]
    path = tmp_path / f"sick.{suffix}"
    if suffix == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": "sick"}) + "\n" for t in texts))
    else:
        path.write_text("text,label\n" + "".join(f"{t},sick\n" for t in texts))
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "text",
                              "--storage", storage)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    # new rows, never trained on: "all" (QA: written as "train"); --split train still takes them
    assert [r["label"] for r in rows] == ["sick"] * 3 and {r["split"] for r in rows} == {"all"}
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "text",
                              "--storage", storage, "--split", "train")
    assert code in (0, None) and len(list(csv.DictReader(io.StringIO(out)))) == 3, err


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_predict_on_the_searched_file_tells_the_held_out_rows(tmp_path, monkeypatch, capsys,
                                                               fmt):
    # With --test-fraction, predict on the same file marked every row "train": the rows the
    # search never saw could not be told apart. They are its test part now, in the search's
    # split: their probabilities are the ones the search scored as its locked test set.
    from automed.demo import make_demo
    from automed.storage import Store

    storage = f"sqlite:///{tmp_path / 'held.db'}"
    if fmt == "csv":
        data = tmp_path / "visits.csv"
        data.write_text(_rows(with_patient=True))
        opts = dict(group_col="patient", architectures=["mlp"])
    else:
        demo = np.load(make_demo("signal", tmp_path / "demo.npz", n=40, seed=1))
        data = tmp_path / "ecg.npz"  # its training part only: no test split of its own
        np.savez(data, x=demo["train_images"], y=demo["train_labels"])
        opts = dict(architectures=["cnn"])
    result = search(data, trials=1, folds=2, max_epochs=1, storage=storage, bootstrap=0,
                    study="held", test_fraction=0.25, **opts)
    scored = np.asarray(Store(storage).test_predictions("held")["proba"])
    n = N if fmt == "csv" else len(np.load(data)["y"])
    parts = {}
    for split in ("test", "train", "all"):
        code, out, err = _predict(monkeypatch, capsys, str(data), "--study", "held",
                                  "--split", split, "--storage", storage)
        assert code in (0, None), err
        parts[split] = list(csv.DictReader(io.StringIO(out)))
    assert len(parts["test"]) == result.test_size == len(scored) and 0 < len(scored) < n
    assert len(parts["train"]) == n - len(scored)
    assert [int(r["index"]) for r in parts["all"]] == list(range(n))  # the file's order
    columns = [c for c in parts["test"][0] if c.startswith("p_")]
    got = np.array([[float(r[c]) for c in columns] for r in parts["test"]])
    np.testing.assert_allclose(got, scored, atol=2e-6)
    # The index is the row in the file (QA: each part counted from 0, so rows were untraceable)
    config = json.loads((Path(result.artifact) / "automed_model.json").read_text())
    held = config["data"]["held_out_rows"]
    assert [int(r["index"]) for r in parts["test"]] == held
    assert [i for i, r in enumerate(parts["all"]) if r["split"] == "test"] == held
    # Another file (its first row changed) is not the searched one: no rows are held out.
    other = tmp_path / f"other.{fmt}"
    if fmt == "csv":
        lines = data.read_text().splitlines()
        lines[1] = "99," + lines[1].split(",", 1)[1]
        other.write_text("\n".join(lines) + "\n")
    else:
        z = dict(np.load(data))
        z["x"] = z["x"].copy()
        z["x"][0] += 1.0
        np.savez(other, **z)
    code, out, err = _predict(monkeypatch, capsys, str(other), "--study", "held", "--split",
                              "test", "--storage", storage)
    assert code not in (0, None)
    assert f"{other}: not the file the search held rows out of ({data}: its contents " in err


def test_predict_on_the_searched_test_file_marks_it_test(tmp_path, monkeypatch, capsys):
    # QA: the study's own --test file was predicted as "train" rows (and --split test refused).
    rng = np.random.default_rng(5)
    rows = [f"{1 + i % 2}\t" + "\t".join(f"{v:.4f}" for v in rng.normal(i % 2, 1, 20))
            for i in range(36)]
    train, test = tmp_path / "tr.tsv", tmp_path / "te.tsv"
    train.write_text("\n".join(rows[:24]) + "\n")
    test.write_text("\n".join(rows[24:]) + "\n")
    storage = f"sqlite:///{tmp_path / 'te.db'}"
    search(train, test=test, trials=1, folds=2, max_epochs=1, storage=storage, bootstrap=0,
           study="t", architectures=["cnn"])
    for split in ("test", "all"):
        code, out, err = _predict(monkeypatch, capsys, str(test), "--study", "t", "--split",
                                  split, "--storage", storage)
        assert code in (0, None), err
        got = list(csv.DictReader(io.StringIO(out)))
        assert [r["split"] for r in got] == ["test"] * 12
    code, out, err = _predict(monkeypatch, capsys, str(train), "--study", "t", "--storage",
                              storage)
    assert {r["split"] for r in csv.DictReader(io.StringIO(out))} == {"train"}


def _id_files(root: Path, kind: str) -> dict[str, Path]:
    """A labeled file with a record id column, the same records without labels, and
    without ids, for one loader that takes --id-col."""
    rng = np.random.default_rng(5)
    ids = [f"rec-{900 - 7 * i}" for i in range(N)]  # not in sort order, not the row number
    labels = ["sick" if i % 3 else "well" for i in range(N)]
    if kind == "tabular":
        head, values = ["visit", "age", "bp"], [
            [str(60 + 15 * (y == "sick") + int(rng.integers(-5, 5))),
             str(120 + int(rng.integers(-10, 10)))] for y in labels]
    elif kind == "text":
        words = {"sick": ["fever", "cough", "pain"], "well": ["routine", "normal", "checkup"]}
        head, values = ["visit", "text"], [[" ".join(rng.choice(words[y], 5))] for y in labels]
    else:
        motif = {"sick": "ACGTTGCA", "well": "TTTTAAAA"}
        head, values = ["visit", "sequence"], [
            ["".join(rng.choice(list("ACGT"), 6)) + motif[y] + "".join(rng.choice(list("ACGT"), 6))]
            for y in labels]
    files = {}
    for name, with_label, with_id in (("labeled", True, True), ("unlabeled", False, True),
                                      ("no_ids", True, False)):
        cols = [c for c in [*head, "label"] if (with_label or c != "label")
                and (with_id or c != "visit")]
        lines = [",".join(cols)]
        for rid, y, v in zip(ids, labels, values):
            row = dict(zip([*head, "label"], [rid, *v, y]))
            lines.append(",".join(row[c] for c in cols))
        files[name] = root / f"{kind}_{name}.csv"
        files[name].write_text("\n".join(lines) + "\n")
    files["ids"], files["labels"] = ids, labels
    return files


@pytest.mark.parametrize("kind,family", [("tabular", "mlp"), ("text", "mlp"),
                                         ("sequence", "textcnn")])
def test_predictions_carry_the_record_ids_of_id_col(tmp_path, monkeypatch, capsys, kind, family):
    # --id-col was checked for uniqueness and dropped from the features, but predict wrote only
    # row numbers: a user could not join the probabilities back to the records. Every loader
    # that takes --id-col writes the ids, for labeled and unlabeled files and the held-out rows
    # of a --test-fraction search; a file without the column gets an empty id, labels kept.
    files = _id_files(tmp_path, kind)
    storage = f"sqlite:///{tmp_path / 'ids.db'}"
    search(files["labeled"], study="ids", id_col="visit", trials=1, folds=2, max_epochs=1,
           storage=storage, bootstrap=0, architectures=[family], test_fraction=0.25)

    def predicted(name: str, *extra: str) -> list[dict]:
        code, out, err = _predict(monkeypatch, capsys, str(files[name]), "--study", "ids",
                                  "--storage", storage, *extra)
        assert code in (0, None), err
        return list(csv.DictReader(io.StringIO(out)))

    rows = predicted("labeled")
    assert [r["id"] for r in rows] == files["ids"]
    assert [r["label"] for r in rows] == files["labels"]
    assert {r["split"] for r in rows} == {"train", "test"}
    held = predicted("labeled", "--split", "test")
    assert 0 < len(held) < N
    assert [r["id"] for r in held] == [files["ids"][int(r["index"])] for r in held]
    rows = predicted("unlabeled")
    assert [r["id"] for r in rows] == files["ids"] and {r["label"] for r in rows} == {""}
    rows = predicted("no_ids")
    assert {r["id"] for r in rows} == {""} and [r["label"] for r in rows] == files["labels"]


def test_predictions_without_id_col_have_no_id_column(studies, monkeypatch, capsys):
    root, storage = studies
    code, out, err = _predict(monkeypatch, capsys, str(root / "notes.jsonl"), "--study", "text",
                              "--storage", storage)
    assert code in (0, None), err
    assert out.splitlines()[0].split(",")[:4] == ["split", "index", "label", "predicted"]


def test_a_new_file_with_a_column_twice_is_refused_as_training_refuses_it(studies, monkeypatch,
                                                                          capsys, tmp_path):
    # QA: predict used the last copy of a duplicated column (and read the file unlabeled).
    root, storage = studies
    lines = _rows(with_patient=False).splitlines()
    lines = [lines[0] + ",age"] + [ln + ",5" for ln in lines[1:]]
    path = tmp_path / "twice.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code not in (0, None) and out == "", err
    assert "column 'age' appears twice in the header; rename one" in err


def test_a_new_file_with_one_blank_label_says_its_labels_are_not_used(studies, monkeypatch,
                                                                      capsys, tmp_path):
    # QA: one blank label dropped every label of the output, silently.
    root, storage = studies
    lines = _rows(with_patient=False).splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ","
    path = tmp_path / "one_blank.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code in (0, None), err
    assert len(list(csv.DictReader(io.StringIO(out)))) == N
    said = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(said) == 1 and "its label column 'label' is not used" in said[0], err
    assert "line 5 has no label" in said[0] or "no label" in said[0], err


def test_predict_to_dash_writes_standard_output(studies, monkeypatch, capsys, tmp_path):
    # QA: `predict -o -` wrote a file named '-'
    root, storage = studies
    monkeypatch.chdir(tmp_path)
    code, out, err = _predict(monkeypatch, capsys, str(root / "new_visits.csv"), "--study",
                              "grouped", "--storage", storage, "-o", "-")
    assert code in (0, None), err
    assert len(list(csv.DictReader(io.StringIO(out)))) == N
    assert not (tmp_path / "-").exists()


def test_a_new_table_without_the_label_column_is_unlabeled_whatever_else_it_names(
        studies, monkeypatch, capsys, tmp_path):
    # QA: a new file without the study's label column 'label' had another column named like
    # a label ('class', here beside the features) read as the labels, or said "its label
    # column 'class' is not used"
    root, storage = studies
    lines = _rows(with_patient=False).splitlines()
    path = tmp_path / "new.csv"
    path.write_text("".join(f"{ln.rsplit(',', 1)[0]},{'class' if i == 0 else 'IV'}\n"
                            for i, ln in enumerate(lines)))
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == N and {r["label"] for r in rows} == {""}, out
    assert "its column 'class' is not the study's label column 'label'" in err, err
    # the label column in another case is the label column (review)
    path.write_text(_rows(with_patient=False).replace("age,bp,label", "age,bp,Label"))
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code in (0, None), err
    assert {r["label"] for r in csv.DictReader(io.StringIO(out))} == {"sick", "well"}, out


def test_new_categories_and_bad_values_are_said_with_the_file(tmp_path, monkeypatch, capsys):
    # QA: a category never seen in training was read as missing, unsaid; a value that is no
    # number in a numeric column was refused as "(record 4)" without the file.
    rows = ["age,smoking,label"] + [f"{40 + i},{('never', 'former')[i % 2]},"
                                    f"{('well', 'sick')[i % 2]}" for i in range(N)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(tmp_path / "train.csv", trials=1, folds=2, max_epochs=1, storage=storage,
           bootstrap=0, architectures=["mlp"], study="smoke")
    new = tmp_path / "new.csv"
    new.write_text("age,smoking\n50,heavy\n51,heavy\n52,never\n53,vape\n")
    code, out, err = _predict(monkeypatch, capsys, str(new), "--study", "smoke",
                              "--storage", storage)
    assert code in (0, None), err
    assert len(list(csv.DictReader(io.StringIO(out)))) == 4
    assert (f"warning: {new}: column 'smoking' holds values the model never saw in training "
            "('heavy' (2 rows), 'vape' (1 row)); they are read as missing") in err
    bad = tmp_path / "bad.csv"
    bad.write_text("age,smoking\n50,never\nold,never\n")
    code, out, err = _predict(monkeypatch, capsys, str(bad), "--study", "smoke",
                              "--storage", storage)
    assert code not in (0, None) and out == ""
    assert f"error: {bad}: column 'age': value 'old' (record 2) is not a number" in err


def test_labels_that_are_none_of_the_models_classes_are_said(studies, monkeypatch, capsys,
                                                           tmp_path):
    # QA: a folder of new images in one sub-folder came out labeled with its name, unsaid
    root, storage = studies
    lines = _rows(with_patient=False).replace(",sick", ",unknown").splitlines()
    path = tmp_path / "foreign.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code in (0, None), err
    assert (f"warning: {path}: its label(s) 'unknown' are none of the model's classes (sick, "
            "well); the label column holds them as read") in err
    code, out, err = _predict(monkeypatch, capsys, str(root / "new_visits.csv"), "--study",
                              "grouped", "--storage", storage)
    assert "warning" not in err


def test_a_refusal_naming_search_options_says_they_are_the_searchs(studies, monkeypatch, capsys,
                                                                   tmp_path):
    # QA: predict said "force one with --format", an option predict does not have
    root, storage = studies
    path = tmp_path / "visits.xyz"  # a suffix no hint names (.xlsx has its own advice)
    path.write_bytes(b"PK\x03\x04 not really")
    code, out, err = _predict(monkeypatch, capsys, str(path), "--study", "grouped",
                              "--storage", storage)
    assert code not in (0, None) and out == ""
    [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "unknown data format '.xyz'" in line
    assert line.endswith("(--format is an `automed search` option: predict reads a file as its "
                         "study's search read the training data; give it a file of that kind)")


def test_unlabeled_series_of_another_length_say_their_own_length(tmp_path, monkeypatch,
                                                                 capsys):
    # QA: rows of 80 values for a model of 60 were refused as "(1, 79)": a label taken off
    rng = np.random.default_rng(0)
    y = np.arange(20) % 2
    x = rng.standard_normal((20, 60)) + y[:, None]
    np.savetxt(tmp_path / "train.txt", np.c_[y, x])
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(tmp_path / "train.txt", trials=1, folds=2, max_epochs=1, storage=storage,
           bootstrap=0, architectures=["rocket"], study="sig")
    np.savetxt(tmp_path / "long.txt", rng.standard_normal((5, 80)))
    code, out, err = _predict(monkeypatch, capsys, str(tmp_path / "long.txt"), "--study", "sig",
                              "--storage", storage)
    assert code not in (0, None) and out == ""
    assert "its rows hold 80 values; the model reads series of 60 (or 61 with the label " \
           "first); resample them to 60" in err
    # QA: 61 values without a label: the first point was read as a label, 5 "labels" none a
    # class, and the shifted rest predicted with a warning
    np.savetxt(tmp_path / "longer.txt", rng.standard_normal((5, 61)))
    code, out, err = _predict(monkeypatch, capsys, str(tmp_path / "longer.txt"), "--study",
                              "sig", "--storage", storage)
    assert code not in (0, None) and out == ""
    assert ("was read as its label, but none is one of the model's classes (0, 1) and they "
            "read as points of a series: rows without a label are one point longer than the 60 "
            "the model reads; resample them to 60 points") in err
    # review: whole-number series (raw ADC counts) and an infinite first point
    counts = rng.integers(-500, 500, (30, 61)).astype(float)
    counts[0, 0] = np.inf
    for rows in (counts[1:], counts):
        np.savetxt(tmp_path / "counts.txt", rows, fmt="%g")
        code, out, err = _predict(monkeypatch, capsys, str(tmp_path / "counts.txt"),
                                  "--study", "sig", "--storage", storage)
        assert code not in (0, None) and "read as points of a series" in err, err
    np.savetxt(tmp_path / "labeled.txt", np.c_[y[:5], rng.standard_normal((5, 60))])
    code, out, err = _predict(monkeypatch, capsys, str(tmp_path / "labeled.txt"), "--study",
                              "sig", "--storage", storage)
    assert code in (0, None) and len(out.splitlines()) == 6, err


def test_a_signal_table_without_labels_but_with_its_patient_column_is_unlabeled(
        tmp_path, monkeypatch, capsys):
    # QA: a grouped signal study predicting "patient,t0..t59" wrote the patient ids as labels
    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    x = rng.standard_normal((24, 30)) + y[:, None]
    head = "patient,label," + ",".join(f"t{i}" for i in range(30))
    body = [f"P{i // 2},{('a', 'b')[y[i]]}," + ",".join(f"{v:.4f}" for v in x[i])
            for i in range(24)]
    (tmp_path / "grp.csv").write_text("\n".join([head, *body]) + "\n")
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(tmp_path / "grp.csv", group_col="patient", trials=1, folds=2, max_epochs=1,
           storage=storage, bootstrap=0, architectures=["rocket"], study="grp")
    lines = [ln.split(",") for ln in (tmp_path / "grp.csv").read_text().splitlines()]
    (tmp_path / "new.csv").write_text("\n".join(",".join([r[0], *r[2:]]) for r in lines) + "\n")
    code, out, err = _predict(monkeypatch, capsys, str(tmp_path / "new.csv"), "--study", "grp",
                              "--storage", storage)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 24 and {r["label"] for r in rows} == {""}, rows[:2]
    assert "none of the model's classes" not in err


def test_what_new_records_make_of_predictions_is_said_by_cli_and_api(tmp_path, monkeypatch,
                                                                      capsys):
    # QA: a column empty in every new record was imputed unsaid; the Python API said nothing
    # of categories never seen in training (the CLI did); duplicate ids in a file to predict
    # blanked the whole id column; -o into the model folder wrote over its config
    import warnings

    from automed.errors import DataWarning
    from automed.results.artifact import LoadedModel

    rows = ["visit,age,bp,smoking,label"] + [
        f"v{i},{40 + (7 * i) % 23},{120 + i % 5},{('never', 'former')[i % 2]},"
        f"{('well', 'sick')[i % 2]}" for i in range(N)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(tmp_path / "train.csv", trials=1, folds=2, max_epochs=1, storage=storage,
           bootstrap=0, architectures=["mlp"], study="smoke", id_col="visit")
    new = tmp_path / "new.csv"
    new.write_text("visit,age,bp,smoking\nv1,50,,never\nv1,51,,heavy\nv2,52,,former\n")
    code, out, err = _predict(monkeypatch, capsys, str(new), "--study", "smoke",
                              "--storage", storage)
    assert code in (0, None), err
    assert [r["id"] for r in csv.DictReader(io.StringIO(out))] == ["v1", "v1", "v2"]
    assert (f"warning: {new}: column 'bp' is empty in every record; the model reads it as "
            "missing") in err
    assert "column 'smoking' holds values the model never saw in training ('heavy'" in err
    from automed.results.artifact import saved_answer
    from automed.storage import Store

    store = Store(storage)
    folder = saved_answer(store, store.search("smoke"))
    model = LoadedModel(folder)
    for samples, where in ((np.array([[50, "", "heavy"], [51, "", "never"]], dtype=object),
                            "the samples"),
                           (str(new), str(new))):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            proba = model.predict_proba(samples)
        assert proba.shape[1] == 2
        lines = [str(w.message) for w in said if issubclass(w.category, DataWarning)]
        assert any(line.startswith(f"{where}: column 'smoking' holds values the model never "
                                   "saw in training ('heavy' (1 row))") for line in lines), lines
        assert any("column 'bp' is empty in every record" in line for line in lines), lines
    # QA: a free-text column beside the records made the file read as texts, labels dropped
    notes = tmp_path / "notes.csv"
    notes.write_text("visit,age,bp,smoking,label,notes\nv1,50,121,never,well,seen twice\n"
                     "v2,61,124,former,sick,follow up in 3 weeks\n")
    code, out, err = _predict(monkeypatch, capsys, str(notes), "--study", "smoke",
                              "--storage", storage)
    assert code in (0, None), err
    assert [r["label"] for r in csv.DictReader(io.StringIO(out))] == ["well", "sick"]
    config = folder / "automed_model.json"
    before = config.read_bytes()
    code, _, err = _predict(monkeypatch, capsys, str(new), "--study", "smoke", "--storage",
                            storage, "-o", str(config))
    assert code == 2 and "is a file of the model folder" in err and config.read_bytes() == before
    code, _, err = _predict(monkeypatch, capsys, str(new), "--study", "smoke", "--storage",
                            storage, "-o", str(folder / "new_predictions.csv"))
    assert code in (0, None), err  # a new file there overwrites nothing (review)


def test_new_sequences_empty_or_longer_than_the_model_reads_are_said(tmp_path, monkeypatch,
                                                                     capsys):
    # QA: a one-column file's empty sequence was skipped (the next ones took its index), and
    # sequences three times the training length were cut to it, unsaid
    files = _id_files(tmp_path, "sequence")
    storage = f"sqlite:///{tmp_path / 'seq.db'}"
    search(files["no_ids"], study="seq", trials=1, folds=2, max_epochs=1, storage=storage,
           bootstrap=0, architectures=["textcnn"])
    new = tmp_path / "new.csv"
    new.write_text('sequence\n""\nACGTACGTTGCAACGTAC\n' + "ACGTACGTTGCAACGTAC" * 3 + "\n")
    code, out, err = _predict(monkeypatch, capsys, str(new), "--study", "seq",
                              "--storage", storage)
    assert code in (0, None), err
    assert [r["index"] for r in csv.DictReader(io.StringIO(out))] == ["0", "1", "2"]
    assert f"warning: {new}: 1 sequence(s) (index 0) have no letter" in err
    assert (f"warning: {new}: 1 sequence(s) (index 2) are longer than the 20 letters the "
            "model reads: only their first 20 are read") in err


def test_labels_that_are_no_class_stay_labels_in_a_file_with_the_id_column(tmp_path,
                                                                           monkeypatch, capsys):
    # QA: a text file with the study's id column and labels none of the model's classes had
    # its labels dropped unsaid (taken for ids read as labels)
    files = _id_files(tmp_path, "text")
    storage = f"sqlite:///{tmp_path / 'ids.db'}"
    search(files["labeled"], study="ids", id_col="visit", trials=1, folds=2, max_epochs=1,
           storage=storage, bootstrap=0, architectures=["mlp"])
    new = tmp_path / "new.csv"
    new.write_text("visit,text,label\nr1,fever cough pain,flu\nr2,routine checkup,flu\n")
    code, out, err = _predict(monkeypatch, capsys, str(new), "--study", "ids",
                              "--storage", storage)
    assert code in (0, None), err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["id"], r["label"]) for r in rows] == [("r1", "flu"), ("r2", "flu")]
    assert "its label(s) 'flu' are none of the model's classes" in err


def test_the_model_files_predict_never_writes_over_are_the_models():
    from automed.results.artifact import CONFIG, STAMP, WEIGHTS
    from automed.results.outputs import MODEL_FILES

    assert {WEIGHTS, CONFIG, STAMP} <= set(MODEL_FILES)


@pytest.mark.parametrize("study, file", [("text", "notes.jsonl"), ("grouped", "new_visits.csv")])
def test_a_big_input_is_predicted_a_chunk_at_a_time_with_the_same_answer(studies, monkeypatch,
                                                                         study, file):
    # QA (scale): a text model encoded every row at once (up to 32 KB a document per fold
    # model): memory grew with the input
    from automed.results import artifact
    from automed.results.artifact import LoadedModel, saved_answer
    from automed.storage import Store

    root, storage = studies
    store = Store(storage)
    model = LoadedModel(saved_answer(store, store.search(study)))
    whole = model.predict_proba(str(root / file))
    seen = []
    encode = LoadedModel._encoded_proba

    def counted(self, x, device):
        seen.append(len(x))
        return encode(self, x, device)

    monkeypatch.setattr(artifact, "PREDICT_CHUNK", 7)
    monkeypatch.setattr(LoadedModel, "_encoded_proba", counted)
    chunked = model.predict_proba(str(root / file))
    assert max(seen) == 7 and sum(seen) % len(whole) == 0
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)


def test_a_chunk_says_where_in_the_input_its_bad_record_is(studies, monkeypatch):
    from automed.errors import DataError
    from automed.results import artifact
    from automed.results.artifact import LoadedModel, saved_answer
    from automed.storage import Store

    _, storage = studies
    store = Store(storage)
    model = LoadedModel(saved_answer(store, store.search("grouped")))
    rows = np.array([[str(50 + i), "120"] for i in range(14)], dtype=object)
    rows[9, 1] = "inf"
    monkeypatch.setattr(artifact, "PREDICT_CHUNK", 7)
    with pytest.raises(DataError, match=r"\(record 3\) is infinite.*\(in samples 8-14 of 14\)"):
        model.predict_proba(rows)
    monkeypatch.setattr(artifact, "PREDICT_CHUNK", 1)
    one = np.array(["50", "120"], dtype=object)  # one record: never split into its columns
    assert model.predict_proba(one).shape == (1, 2)
    assert model.predict_proba(["50", "120"]).shape == (1, 2)
    # a ragged list of records: the readable refusal, not numpy's (review)
    with pytest.raises(DataError, match="expected 2 columns"):
        model.predict_proba([["50", "120"], ["51"]])


def test_records_with_column_names_are_read_by_name_not_by_position(studies, monkeypatch):
    # QA: a DataFrame with its columns in another order was read by position and predicted
    # wrongly without a word; a file's columns were found by name
    pd = pytest.importorskip("pandas")
    from automed.errors import DataError, DataWarning
    from automed.results import artifact
    from automed.results.artifact import LoadedModel, saved_answer
    from automed.storage import Store

    root, storage = studies
    store = Store(storage)
    model = LoadedModel(saved_answer(store, store.search("grouped")))  # trained on age, bp
    from_file = model.predict_proba(str(root / "new_visits.csv"))
    frame = pd.read_csv(root / "new_visits.csv")
    assert not np.allclose(model.predict_proba(frame[["bp", "age"]].to_numpy()), from_file)
    import warnings

    for given in (frame[["label", "bp", "age"]], frame[["bp", "age"]],
                  {"bp": list(frame["bp"]), "age": list(frame["age"])},
                  frame[["bp", "age", "label"]].to_dict("records")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing said of columns read in another order
            np.testing.assert_allclose(model.predict_proba(given), from_file, rtol=1e-6)
    np.testing.assert_allclose(model.predict_proba(frame.iloc[3][["bp", "age"]]),
                               from_file[3:4], rtol=1e-6)
    np.testing.assert_allclose(model.predict_proba({"bp": frame["bp"][3], "age": frame["age"][3]}),
                               from_file[3:4], rtol=1e-6)
    monkeypatch.setattr(artifact, "PREDICT_CHUNK", 7)  # chunked, still by name
    np.testing.assert_allclose(model.predict_proba(frame[["bp", "label", "age"]]), from_file,
                               rtol=1e-6)
    with pytest.raises(DataError, match=r"the records have no column\(s\) 'age'; the model was "
                                        r"trained on age, bp: give records with those columns"):
        model.predict_proba(frame[["bp", "label"]])
    with pytest.raises(DataError, match=r"record 2 has no column\(s\) 'bp'"):
        model.predict_proba([{"age": 50, "bp": 120}, {"age": 51}])
    for bad in (None, 5):
        with pytest.raises(DataError, match=f"samples of type {type(bad).__name__}: give a "
                                            "list or an array of samples"):
            model.predict_proba(bad)
    # review: a named Series with a misspelt column was read by position; mixed records
    with pytest.raises(DataError, match=r"the record has no column\(s\) 'age'"):
        model.predict_proba(pd.Series({"bp": 100, "Age": 70}))
    np.testing.assert_allclose(model.predict_proba(pd.Series([50, 120])),
                               model.predict_proba([[50, 120]]), rtol=1e-6)  # by position
    with pytest.raises(DataError, match="the record mixes single values and lists"):
        model.predict_proba({"age": 70, "bp": [100, 110]})
    with pytest.raises(DataError, match="record 2 is NoneType, not a dict of column values"):
        model.predict_proba([{"age": 70, "bp": 100}, None])
    text = LoadedModel(saved_answer(store, store.search("text")))
    with pytest.warns(DataWarning, match=r"the samples: 1 record\(s\) have no word in the "
                                         r"texts \(index 1\): their predictions say nothing"):
        text.predict_proba(["fever cough", ""])  # QA: said by predict, not by the API
    with pytest.raises(DataError, match="sample 2 is NoneType 'None', not a text string"):
        text.predict_proba(["fever cough", None])
    with pytest.raises(DataError, match="sample 2 is (NoneType|float)"):  # by position
        text.predict_proba(pd.Series(["fever", None], index=[10, 11]))
    for frame_like in (pd.DataFrame({"text": ["fever", "arm"]}), {"text": "fever"}):
        with pytest.raises(DataError, match=r"give a list of text strings, e\.g\. "
                                            r"df\['text'\]\.tolist\(\)"):
            text.predict_proba(frame_like)


def test_a_text_model_given_a_table_without_a_texts_column_says_how_to_name_it(
        studies, monkeypatch, capsys, tmp_path):
    # QA: "reads as tabular data, but the model was trained on text data", or "no label
    # column found", for a file whose texts sat in a column named otherwise
    _, storage = studies
    new = tmp_path / "findings.csv"
    new.write_text("text_body,label\nchest pain radiating,sick\nroutine checkup,well\n")
    code, out, err = _predict(monkeypatch, capsys, str(new), "--study", "text", "--storage",
                              storage)
    assert code not in (0, None) and out == ""
    assert ("findings.csv: no column of texts among text_body, label; the model reads them "
            "from a column named text, abstract, document, sentence, note, ... as its search "
            "did: name the texts' column 'text'") in err
    new.write_text("text,label\nchest pain radiating,sick\nroutine checkup,well\n")
    code, out, err = _predict(monkeypatch, capsys, str(new), "--study", "text", "--storage",
                              storage)
    assert code in (0, None) and len(out.splitlines()) == 3, err
