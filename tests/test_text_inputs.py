"""Text inputs as people have them: named fields, title + abstract, ids, groups, long texts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from automed.cli import cli
from automed.data.dataset import Dataset
from automed.data.loaders import load_data
from automed.data.preprocess import preprocessor_for
from automed.data.tokens import clip
from automed.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:Fixed parameter:UserWarning")


def _records(path, n=24):
    words = {0: "fever cough sputum", 1: "fracture bone cast"}
    with open(path, "w") as f:
        for i in range(n):
            y = i % 2
            f.write(json.dumps({"pmid": f"p{i}", "patient": f"pt{i // 4}",
                                "title": f"case {i} {words[y].split()[0]}",
                                "abstract": f"the patient had {words[y]}",
                                "category": f"c{y}"}) + "\n")


def test_title_and_abstract_are_joined_in_order(tmp_path):
    _records(tmp_path / "r.jsonl")
    data = load_data(tmp_path / "r.jsonl", text_col=["title", "abstract"],
                     label_col="category")
    assert data.train.x[0] == "case 0 fever\nthe patient had fever cough sputum"
    assert data.train.meta["text_col"] == "title, abstract"
    only = load_data(tmp_path / "r.jsonl", text_col="title", label_col="category")
    assert only.train.x[0] == "case 0 fever"


def test_unknown_text_field_names_the_flag(tmp_path):
    _records(tmp_path / "r.jsonl")
    with pytest.raises(DataError, match=r"no text column 'summary'.*--text-col"):
        load_data(tmp_path / "r.jsonl", text_col=["title", "summary"], label_col="category")


def test_duplicate_ids_are_refused_unless_grouped(tmp_path):
    path = tmp_path / "d.jsonl"
    _records(path)
    with open(path, "a") as f:  # the first record again
        f.write(json.dumps({"pmid": "p0", "patient": "pt0", "title": "case 0 fever",
                            "abstract": "again", "category": "c0"}) + "\n")
    with pytest.raises(DataError, match=r"id 'p0' is on lines 1 and 25.*--group-col pmid"):
        load_data(path, text_col="abstract", label_col="category", id_col="pmid")
    grouped = load_data(path, text_col="abstract", label_col="category", id_col="pmid",
                        group_col="pmid")
    assert list(grouped.train.groups[[0, 24]]) == ["p0", "p0"]


def test_group_column_of_text_records(tmp_path):
    _records(tmp_path / "r.jsonl")
    data = load_data(tmp_path / "r.jsonl", label_col="category", group_col="patient")
    assert list(data.train.groups[:5]) == ["pt0"] * 4 + ["pt1"]


def test_long_texts_keep_head_and_tail():
    words = [f"w{i}" for i in range(100)]
    assert clip(words, 8) == ["w0", "w1", "w2", "w3", "w4", "w5", "w98", "w99"]
    assert clip(words[:5], 8) == words[:5]
    assert clip(words, 8, tail=0.0) == words[:8]


def test_conclusion_words_of_a_long_text_are_seen():
    # 300 filler words then the deciding word: a head-only cut at 256 tokens would lose it.
    texts = [" ".join(["filler"] * 300 + [w]) for w in ("malignant", "benign") * 4]
    data = Dataset(np.array(texts, dtype=object), np.array([0, 1] * 4), ["m", "b"], "text")
    pre = preprocessor_for("text")
    pre.spec(data)
    pre.fit(data)
    assert pre.length == 256 and {"malignant", "benign"} <= set(pre.vocab)
    ids = pre.transform(texts[:2])
    assert ids[0, -1] == pre._index["malignant"] and ids[1, -1] == pre._index["benign"]
    again = type(pre).from_state(pre.state())
    assert again.transform(texts[:2]).equal(ids)


def test_cli_text_col_and_id_col(tmp_path):
    _records(tmp_path / "r.jsonl")
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    out = CliRunner().invoke(cli, [
        "search", str(tmp_path / "r.jsonl"), "--text-col", "title", "--text-col", "abstract",
        "--label-col", "category", "--id-col", "pmid", "--arch", "fasttext", "--trials", "1",
        "--folds", "2", "--max-epochs", "2", "--storage", storage, "--bootstrap", "0",
        "--artifacts", str(tmp_path / "m"), "-q"])
    assert out.exit_code == 0, out.output
    card = json.loads(next((tmp_path / "m").glob("*/automed_model.json")).read_text())  # answer
    assert "title" in json.dumps(card) and "pmid" in json.dumps(card)


def _id_titles(path, n=24):
    with open(path, "w") as f:
        f.write("rid,title,text,label\n")
        for i in range(n):
            f.write(f"R{i},t{i},fever cough pain rash,{i % 2}\n")


def test_a_text_column_without_shared_words_is_said_and_a_family_that_cannot_read_it_left_out(
        tmp_path, monkeypatch, capsys):
    """QA: --text-col naming an id column (no word in two texts) stopped the search with
    scikit-learn's traceback from tfidf's vocabulary ("After pruning, no terms remain"),
    --workers 0 included. Now the family that cannot read the texts is left out with a
    warning, the texts are said to share no word, each once; a search of that family
    alone is refused in one line."""
    from clirun import run_cli

    _id_titles(tmp_path / "t.csv")
    url = f"sqlite:///{tmp_path / 't.db'}"
    common = ["--text-col", "title", "--trials", "2", "--folds", "2", "--storage", url]
    code, out, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "t.csv"), *common,
                             "--workers", "0", "--study", "ids")
    assert code in (0, None), err
    assert "Traceback" not in err
    warned = [ln for ln in err.splitlines() if ln.startswith("WARNING:")]
    assert len(warned) == 2, err
    assert "no word occurs in two of the training texts (text column 'title')" in warned[0]
    assert warned[1].startswith("WARNING: left out tfidf: ") and "--text-col" in warned[1]
    assert "UserWarning" not in err  # once, as the progress line
    assert "tfidf" not in (out + err).split("architectures:")[1].splitlines()[0]
    code, out, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "t.csv"), *common,
                             "--workers", "0", "--study", "only", "--arch", "tfidf")
    assert code not in (0, None) and "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no family can read these text samples" in errors[0], err
    # the texts themselves: no warning
    code, out, err = run_cli(monkeypatch, capsys, "search", str(tmp_path / "t.csv"), *common,
                             "--workers", "0", "--study", "texts", "--text-col", "text")
    assert code in (0, None) and "WARNING" not in err, err


def test_predict_of_unlabeled_texts_joins_every_text_column_and_says_wordless_rows(
        tmp_path, monkeypatch, capsys):
    # QA: a study of --text-col title --text-col abstract predicted unlabeled records from one
    # column (or none); a record without a word was predicted at 0.5 / 0.5, unsaid.
    import csv
    import io

    from clirun import run_cli

    from automed.searching.runner import search

    words = {0: "fever cough sputum", 1: "fracture bone cast"}
    rows = [{"title": words[i % 2].split()[i % 3], "abstract": f"had {words[i % 2]}",
             "label": f"c{i % 2}"} for i in range(24)]
    labeled = tmp_path / "notes.csv"
    with open(labeled, "w", newline="") as f:
        w = csv.DictWriter(f, ["title", "abstract", "label"])
        w.writeheader()
        w.writerows(rows)
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    search(labeled, text_col=["title", "abstract"], trials=1, folds=2, max_epochs=1,
           bootstrap=0, storage=storage, study="two", architectures=["tfidf"])
    unlabeled = tmp_path / "new.csv"
    with open(unlabeled, "w", newline="") as f:
        w = csv.DictWriter(f, ["title", "abstract"])
        w.writeheader()
        w.writerows([{k: r[k] for k in ("title", "abstract")} for r in rows]
                    + [{"title": "", "abstract": "?"}])
    outs = []
    for data in (labeled, unlabeled):
        code, out, err = run_cli(monkeypatch, capsys, "predict", str(data), "--study", "two",
                                 "--storage", storage)
        assert code in (0, None), err
        outs.append([(r["p_c0"], r["p_c1"]) for r in csv.DictReader(io.StringIO(out))])
    assert outs[1][:24] == outs[0]  # the same texts, joined the same way
    assert ("1 record(s) have no word in 'title, abstract' (index 24): their predictions say "
            "nothing of them") in err


def test_json_lists_as_labels_or_texts_are_refused_and_joined_labels_are_said(tmp_path):
    # QA: a JSONL label ["C04", "C01"] became the class "['C04', 'C01']", a list text its
    # Python spelling, and CSV labels "C04;C01" classes of their own, all unsaid
    words = ["fever cough", "broken arm", "chest pain", "skin rash"] * 3
    (tmp_path / "multi.jsonl").write_text("".join(
        json.dumps({"text": t, "label": ["C04", "C01"] if i == 3 else ["C04"]}) + "\n"
        for i, t in enumerate(words)))
    with pytest.raises(DataError, match=r"multi\.jsonl: line 1: the label in 'label' is a JSON "
                                        r"list \(\['C04'\]\); automed learns one class per "
                                        r"record"):
        load_data(tmp_path / "multi.jsonl")
    (tmp_path / "parts.jsonl").write_text("".join(
        json.dumps({"text": [t, "more"] if i == 2 else t, "label": "ab"[i % 2]}) + "\n"
        for i, t in enumerate(words)))
    with pytest.raises(DataError, match=r"line 3: the 'text' field is a JSON list, not text; "
                                        r"give it as one string"):
        load_data(tmp_path / "parts.jsonl")
    from automed.searching.prepare import _label_warnings

    labels = ["C04", "C01", "C04;C01"] * 4
    data = Dataset(x=words, y=[["C01", "C04", "C04;C01"].index(v) for v in labels],
                   classes=["C01", "C04", "C04;C01"], modality="text")
    assert _label_warnings(data) == [
        "classes 'C04;C01' join other classes' names: multi-label records are searched as "
        "classes of their own; automed learns one class per record, so give each one label"]
    assert _label_warnings(Dataset(x=words, y=[0, 1] * 6, classes=["a;b", "c"],
                                   modality="text")) == []
    # review: decimal-comma grades are no joined labels
    assert _label_warnings(Dataset(x=words, y=[0, 1, 2] * 4, classes=["1", "1,5", "5"],
                                   modality="text")) == []


def test_a_folder_of_text_files_per_class_says_how_to_give_texts(tmp_path):
    # QA: it was told to "add images"
    for cls in ("cardio", "onco"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "a.txt").write_text("chest pain")
    with pytest.raises(DataError, match="texts in class folders are not read: write them to a "
                                        r"\.jsonl or \.csv with text and label columns"):
        load_data(tmp_path)
