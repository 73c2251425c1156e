"""Text, biosequence and tabular loaders: formats, dispatch, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from automed.data.loaders import check_label_column, find_loader, load_data
from automed.errors import DataError
from automed.plugin_manager import reset_plugin_manager

SHARED_DATA = Path(os.environ.get(
    "AUTOMED_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"shared datasets not found at {SHARED_DATA}")


@pytest.fixture(autouse=True)
def fresh_plugins():
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _one_line_error(call, *words):
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message
    return message


# -- text --------------------------------------------------------------------------------------

def test_jsonl_split_field_gives_locked_test(tmp_path):
    rows = [{"text": f"patient {i} has fever", "label": "a" if i % 2 else "b",
             "split": "test" if i >= 6 else ("val" if i == 5 else "train")} for i in range(8)]
    path = _write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows))
    data = load_data(path)
    assert data.train.modality == "text" and len(data.train) == 6 and len(data.test) == 2
    assert data.train.classes == ["a", "b"] and data.test.classes == ["a", "b"]
    assert data.train.x[0] == "patient 0 has fever"


@pytest.mark.parametrize("kind", ["jsonl", "csv", "fasta", "tabular"])
def test_a_test_file_may_mark_every_row_test(tmp_path, kind):
    # A locked test file exported with its split column says "test" on every row: that is a
    # test file, not a training file without training rows.
    def rows(n, split):
        return [(f"patient {i} has {'fever' if i % 2 else 'rash'}", "ab"[i % 2],
                 "ACGTACGTAC"[i % 4:] + "GGTA", split) for i in range(n)]

    def write(name, items):
        if kind == "jsonl":
            text = "".join(json.dumps({"text": t, "label": y, **({"split": s} if s else {})})
                           + "\n" for t, y, _, s in items)
        elif kind == "fasta":
            text = "".join(f">r{i} {y}{' split=' + s if s else ''}\n{q}\n"
                           for i, (_, y, q, s) in enumerate(items))
        elif kind == "csv":
            text = "text,label,split\n" + "".join(f"{t},{y},{s}\n" for t, y, _, s in items)
        else:
            text = "age,sex,label,split\n" + "".join(
                f"{40 + i},{'MF'[i % 2]},{y},{s}\n" for i, (_, y, _, s) in enumerate(items))
        return _write(tmp_path / f"{name}.{'csv' if kind == 'tabular' else kind}", text)

    train, test = write("train", rows(10, "train")), write("test", rows(6, "test"))
    data = load_data(train, test=test)
    assert len(data.train) == 10 and len(data.test) == 6
    assert data.test.classes == data.train.classes == ["a", "b"]
    assert list(data.test.y) == [0, 1] * 3 and data.test.source == str(test)
    # as training data it is still refused: a search needs training rows
    _one_line_error(lambda: load_data(test), "every row is marked test", "--test")


def test_text_csv_tsv_with_named_columns(tmp_path):
    csv_path = _write(tmp_path / "notes.csv", 'note,diagnosis\n"cough, fever",flu\nrash,pox\n')
    data = load_data(csv_path, label_col="diagnosis")
    assert list(data.train.x) == ["cough, fever", "rash"]
    tsv = _write(tmp_path / "n.tsv", "id\ttext\tlabel\n1\tchest pain\tcardio\n2\tcough\tresp\n")
    assert load_data(tsv).train.classes == ["cardio", "resp"]


def test_text_errors_name_line_and_fix(tmp_path):
    missing = _write(tmp_path / "m.jsonl", '{"text": "a b", "label": "x"}\n'
                     '{"text": "c d", "label": ""}\n')
    _one_line_error(lambda: load_data(missing), "m.jsonl", "line 2", "no label")
    empty = _write(tmp_path / "e.jsonl", '{"text": "a b", "label": "x"}\n'
                   '{"text": "?! ...", "label": "y"}\n')
    _one_line_error(lambda: load_data(empty), "line 2", "empty after tokenization")
    nolabel = _write(tmp_path / "c.csv", "text,klass\nhello there,a\n")
    _one_line_error(lambda: load_data(nolabel), "c.csv", "no label column", "klass")
    _one_line_error(lambda: load_data(nolabel, label_col="outcome"), "'outcome'", "klass")


# -- biosequences ------------------------------------------------------------------------------

def test_fasta_label_formats_and_multiline(tmp_path):
    path = _write(tmp_path / "s.fasta", ">s1 EI\nACGT\nACGN\n>s2|IE\nacgtacgr\n"
                  ">s3 gene=x label=N\nTTTTGGGG\n>s4 N split=test\nAAAACCCC\n")
    data = load_data(path)
    assert data.train.modality == "biosequence"
    assert list(data.train.x) == ["ACGTACGN", "ACGTACGR", "TTTTGGGG"]
    assert data.train.classes == ["EI", "IE", "N"] and len(data.test) == 1
    assert data.train.meta["alphabet"] == "dna"


def test_uci_splice_format_and_csv_sequences(tmp_path):
    uci = _write(tmp_path / "splice.data",
                 "EI,  A-DONOR-1,  CCAGCTGCATCACAGGAGGC\nN,   B-NEG-2,   GGGCTGCGTTGCTGGTCACA\n")
    data = load_data(uci)
    assert data.train.classes == ["EI", "N"] and len(data.train.x[0]) == 20
    csv = _write(tmp_path / "p.csv", "sequence,label\nMKTAYIAKQR,toxin\nMLSRAVCGTS,safe\n")
    loaded = load_data(csv)
    assert loaded.train.modality == "biosequence" and loaded.train.meta["alphabet"] == "protein"
    rna = _write(tmp_path / "r.fa", ">a x\nACGUACGU\n>b y\nUUUGGGAA\n")
    assert load_data(rna).train.meta["alphabet"] == "rna"


def test_short_peptides_that_read_like_dna_are_protein_and_a_dna_files_typo_is_named(
        tmp_path):
    # QA: 500 random 9-mer epitopes were refused as "mixed alphabets": 14 of the 20 amino
    # acids' letters are nucleotide codes, so some short peptides (SCNNMCARS) read as DNA
    import random

    rng = random.Random(5)
    peptides = ["".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(9))
                for _ in range(500)]
    assert "SCNNMCARS" in peptides  # looks like DNA/RNA on its own
    epitopes = _write(tmp_path / "epi.csv", "peptide,label\n" + "".join(
        f"{p},{'binder' if i % 2 else 'non'}\n" for i, p in enumerate(peptides)))
    assert load_data(epitopes).train.meta["alphabet"] == "protein"
    # a DNA file with one protein letter is DNA with a stray character, said where it is
    oligos = ["".join(rng.choice("ACGT") for _ in range(20)) for _ in range(40)]
    oligos[7] = oligos[7][:5] + "E" + oligos[7][6:]
    typo = _write(tmp_path / "guides.csv", "sequence,label\n" + "".join(
        f"{o},{i % 2}\n" for i, o in enumerate(oligos)))
    _one_line_error(lambda: load_data(typo), "line 9", "'E' at position 6", "DNA alphabet")


def test_a_numeric_column_named_protein_is_a_lab_value_and_unread_columns_are_said(tmp_path):
    # QA: a lab table's 'protein' column (total protein, 6.8) made it a DNA file, refused at
    # '6'; and an 'age' column beside real sequences was dropped without a word
    from automed.searching.runner import _columns_said

    lab = _write(tmp_path / "lab.csv", "age,protein,label\n" + "".join(
        f"{40 + i},{6 + i / 10:.1f},{'ab'[i % 2]}\n" for i in range(20)))
    data = load_data(lab)
    assert data.train.modality == "tabular"
    assert data.train.meta["feature_names"] == ["age", "protein"]
    seqs = _write(tmp_path / "seqs.csv", "id,label,sequence,age\n" + "".join(
        f"p{i},{i % 2},{'ACGT' * 5}{'AC'[i % 2]},{40 + i}\n" for i in range(20)))
    data = load_data(seqs, id_col="id")
    assert data.train.modality == "biosequence"
    assert _columns_said(data.train) == ("; columns not read: age (a biosequence search reads "
                                         "the sequences and their labels only; --id-col names a "
                                         "record id, --group-col a patient id, --modality tabular "
                                         "reads a table of features, its sequences as "
                                         "categories)")
    assert "read: age (" in _columns_said(data.train)  # id: read as the records' ids
    assert "read: age (" in _columns_said(load_data(seqs, id_col="0").train)  # given by place
    # a numeric 'protein' beside the sequences in 'peptide': read from 'peptide' (review)
    both = _write(tmp_path / "both.csv", "id,protein,peptide,label\n" + "".join(
        f"p{i},{6 + i / 10:.1f},MKT{'AL'[i % 2]}VFFQ,{i % 2}\n" for i in range(20)))
    data = load_data(both, id_col="id")
    assert data.train.x[0] == "MKTAVFFQ" and data.train.meta["alphabet"] == "protein"
    assert _columns_said(data.train).startswith("; columns not read: protein ")


def test_biosequence_errors(tmp_path):
    mixed = _write(tmp_path / "mixed.fasta", f">a x\n{'ACGTACGTAC' * 3}\n>b y\nMKLVFFQEWIRP\n")
    _one_line_error(lambda: load_data(mixed), "mixed alphabets", "record a", "record b")
    tu = _write(tmp_path / "tu.fasta", ">a x\nACGTACGT\n>b y\nACGUACGU\n")
    _one_line_error(lambda: load_data(tu), "has T", "has U")
    bad = _write(tmp_path / "bad.fasta", ">a x\nACGTACGT\n>b y\nACG-ACGT\n")
    _one_line_error(lambda: load_data(bad), "record b", "'-'", "position 4")
    empty = _write(tmp_path / "empty.fasta", ">a x\nACGT\n>b y\n\n")
    _one_line_error(lambda: load_data(empty), "record b", "empty sequence")
    nolabel = _write(tmp_path / "nl.fasta", ">a\nACGT\n")
    _one_line_error(lambda: load_data(nolabel), "line 1", "no label")
    csv = _write(tmp_path / "s.csv", "seq,label\nACGT,a\nACGA,\n")
    _one_line_error(lambda: load_data(csv), "s.csv", "line 3", "no label")


def test_column_options_on_fasta_and_uci_name_a_fix_for_that_option(tmp_path):
    # The fix for --label-col used to be the one for groups ("give patient ids with --groups
    # FILE or use a CSV/TSV"): each refused option now gets its own.
    fasta = _write(tmp_path / "s.fa", ">a x\nACGTACGT\n>b y\nACGTTTGA\n")
    uci = _write(tmp_path / "splice.data", "EI, S1, ACGTACGTACGT\nIE, S2, ACGTTTGAACGT\n")
    msg = _one_line_error(lambda: load_data(fasta, label_col="x"), "--label-col",
                          "'>id LABEL'", "label=LABEL")
    assert "--groups" not in msg
    msg = _one_line_error(lambda: load_data(uci, label_col=0), "--label-col", "first field")
    assert "--groups" not in msg
    _one_line_error(lambda: load_data(fasta, group_col="p"), "--groups FILE")
    _one_line_error(lambda: load_data(uci, group_col="p", sequence_col="s"), "drop them",
                    "--groups FILE", "third field")


# -- tabular -----------------------------------------------------------------------------------

def test_tabular_numeric_categorical_missing(tmp_path):
    path = _write(tmp_path / "clinic.csv",
                  "age,sex,bp,smoker,outcome\n61,M,140,yes,1\n55,F,,no,0\n"
                  "70,F,130,NA,1\n48,M,120,no,0\n")
    data = load_data(path)
    assert data.train.modality == "tabular" and data.train.x.shape == (4, 4)
    kinds = [c["kind"] for c in data.train.meta["tabular_columns"]]
    assert kinds == ["numeric", "categorical", "numeric", "categorical"]
    assert data.train.classes == ["0", "1"]


def test_tabular_errors(tmp_path):
    path = _write(tmp_path / "c.csv", "age,sex,target\n61,M,1\n55,F,\n")
    _one_line_error(lambda: load_data(path), "c.csv", "line 3", "no label")
    _one_line_error(lambda: load_data(path, label_col="death"), "'death'", "age, sex, target")
    nolab = _write(tmp_path / "d.csv", "age,sex\n61,M\n")
    _one_line_error(lambda: load_data(nolab, modality="tabular"), "no label column",
                    "--label-col")


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e999"])
def test_tabular_infinity_is_refused_naming_column_and_line(tmp_path, value):
    # A blank is a missing value, imputed per fold; infinity is not, and used to pass the
    # loader and make every candidate diverge ("training loss became nan").
    rows = [f"{50 + i},{'MF'[i % 2]},{'ab'[i % 2]}" for i in range(8)]
    rows[3] = f"{value},F,b"
    path = _write(tmp_path / "c.csv", "age,sex,label\n" + "\n".join(rows) + "\n")
    _one_line_error(lambda: load_data(path), "c.csv", "column 'age'", "line 5", "infinite",
                    "blank")
    # also in a row marked test, and in new data the preprocessor is given (automed predict)
    split = _write(tmp_path / "s.csv", "age,sex,label,split\n" + "\n".join(
        f"{r},{'test' if i == 3 else 'train'}" for i, r in enumerate(rows)) + "\n")
    _one_line_error(lambda: load_data(split), "column 'age'", "line 5", "infinite")
    from automed.data.tabular import TabularPreprocessor
    good = load_data(_write(tmp_path / "g.csv", "age,sex,label\n" + "\n".join(
        r for i, r in enumerate(rows) if i != 3) + "\n")).train
    pre = TabularPreprocessor().fit(good)
    new = np.array([["52", "F"], [value, "M"]], dtype=object)
    _one_line_error(lambda: pre.transform(new), "column 'age'", "record 2", "infinite")


@pytest.mark.parametrize("kind", ["tabular", "sequence", "text"])
def test_duplicate_record_ids_are_refused_by_every_loader_taking_id_col(tmp_path, kind):
    # --id-col promises unique ids (a record listed twice would sit in two folds): tabular
    # records and sequence tables accepted duplicates silently, text refused them.
    value = {"tabular": lambda i: f"{50 + i}", "sequence": lambda i: "ACGTAC"[i % 3:] + "GATT",
             "text": lambda i: f"note {i} fever"}[kind]
    column = {"tabular": "age", "sequence": "sequence", "text": "text"}[kind]
    ids = [1, 1, 2, 3, 4, 5]
    path = _write(tmp_path / "d.csv", f"rid,{column},outcome\n" + "".join(
        f"{r},{value(i)},{'ab'[i % 2]}\n" for i, r in enumerate(ids)))
    _one_line_error(lambda: load_data(path, id_col="rid", label_col="outcome"), "d.csv",
                    "id '1' is on lines 2 and 3", "--group-col rid")
    grouped = load_data(path, id_col="rid", group_col="rid", label_col="outcome").train
    assert list(grouped.groups[:2]) == ["1", "1"]
    # QA: with another --group-col, ids repeated across patients were not checked (predict
    # wrote one id for several patients' rows); within one patient they may repeat
    patients = _write(tmp_path / "p.csv", f"pid,rid,{column},outcome\n" + "".join(
        f"P{i // 2},{r},{value(i)},{'ab'[i % 2]}\n" for i, r in enumerate([1, 2, 1, 3, 4, 5])))
    _one_line_error(lambda: load_data(patients, id_col="rid", group_col="pid",
                                      label_col="outcome"),
                    "id '1' is on lines 2 (pid 'P0') and 4 (pid 'P1')", "repeat within one group")
    within = _write(tmp_path / "w.csv", patients.read_text().replace("P1,1,", "P0,1,"))
    assert len(load_data(within, id_col="rid", group_col="pid", label_col="outcome").train) == 6
    unique = _write(tmp_path / "u.csv", path.read_text().replace("\n1,", "\n0,", 1))
    assert len(load_data(unique, id_col="rid", label_col="outcome").train) == 6
    _one_line_error(lambda: load_data(unique, id_col="pid", label_col="outcome"),
                    "no id column 'pid'", "--id-col")


# -- dispatch ----------------------------------------------------------------------------------

def test_loader_dispatch_by_content_and_forced_modality(tmp_path):
    ucr = _write(tmp_path / "ecg.csv", "\n".join(
        f"{i % 2}," + ",".join(str(v) for v in np.sin(np.arange(20) + i)) for i in range(6)))
    assert find_loader(ucr).name == "signal-table"
    # Forced tabular on a headerless numeric table: the signal table reads it as records.
    forced = load_data(ucr, modality="tabular", label_col=0).train
    assert forced.modality == "tabular" and forced.x.shape == (6, 20)
    wide = _write(tmp_path / "wide.csv", "label," + ",".join(f"t{j}" for j in range(80)) + "\n"
                  + "\n".join(f"{i % 2}," + ",".join("0.5" for _ in range(80)) for i in range(4)))
    assert find_loader(wide).name == "signal-table"
    assert find_loader(wide, modality="text").name == "text"  # forced: by suffix
    text = _write(tmp_path / "t.csv", "text,label\nsome words,a\n")
    assert find_loader(text).name == "text"
    seq = _write(tmp_path / "q.csv", "sequence,label\nACGT,a\n")
    assert find_loader(seq).name == "biosequence"
    records = _write(tmp_path / "r.csv", "age,sex,label\n3,F,a\n")
    assert find_loader(records).name == "tabular"
    # Numbers only, but named columns and a column named like a label: records (issue 15).
    numeric = _write(tmp_path / "n.csv", "age,bp,outcome\n3,,1\n4,120,0\n")
    assert find_loader(numeric).name == "tabular"
    unnamed = _write(tmp_path / "u.csv", "age,bp,score\n3,1,1\n4,120,0\n")
    assert find_loader(unnamed).name == "signal-table"  # no label column: a signal table...
    assert find_loader(unnamed, modality="tabular").name == "tabular"  # ...unless forced
    # ...or its label is named: --label-col score says the columns are records (QA: a float
    # label went to the signal table, which refused the text column 'sex' and told the user
    # to set the --label-col they had set, not that the label looks like a feature)
    assert find_loader(unnamed, label_col="score").name == "tabular"
    assert find_loader(wide, label_col="label").name == "signal-table"  # t0..t79: a series
    assert find_loader(ucr, label_col="0").name == "signal-table"  # an index names no header
    many = _write(tmp_path / "many.csv", "age,sex,bp,score\n" + "".join(
        f"{40 + i % 30},{'MF'[i % 2]},{100 + i},{i * 0.37:.2f}\n" for i in range(120)))
    data = load_data(many, label_col="score")
    assert data.train.modality == "tabular"
    with pytest.raises(DataError, match="looks like a feature, not a label"):
        check_label_column(data.train)


# -- the shared datasets -----------------------------------------------------------------------

@needs_shared
def test_shared_splice_and_ohsumed():
    splice = load_data(SHARED_DATA / "uci_splice_junction" / "splice.data").train
    assert len(splice) == 3190 and splice.classes == ["EI", "IE", "N"]
    assert splice.meta["alphabet"] == "dna"
    ohsumed = load_data(SHARED_DATA / "ohsumed_textgcn" / "ohsumed_23_textgcn.jsonl")
    assert (len(ohsumed.train), len(ohsumed.test)) == (3357, 4043)
    assert ohsumed.train.n_classes == 23


@pytest.mark.parametrize("forced", [None, "signal"])
def test_a_channels_last_ecg_is_a_signal_of_its_leads(tmp_path, forced):
    # QA: a 12-lead ECG saved (N, L, C), as Keras and wfdb save it, was trained as one-channel
    # 500 x 12 images; with --modality signal it was 500 channels of length 12.
    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((20, 12, 100)).astype(np.float32)
    y = np.arange(20) % 2
    np.savez(tmp_path / "first.npz", x=ecg, y=y)
    np.savez(tmp_path / "last.npz", x=ecg.transpose(0, 2, 1), y=y)
    np.savez(tmp_path / "one.npz", x=ecg[:, :1].transpose(0, 2, 1), y=y)  # (N, L, 1)
    first = load_data(tmp_path / "first.npz", modality=forced).train
    last = load_data(tmp_path / "last.npz", modality=forced).train
    assert last.modality == "signal" and last.x.shape == (20, 12, 100)
    assert np.array_equal(last.x, first.x)
    assert last.summary().startswith("20 signal samples of 12 x 100 (channels x length)")
    assert load_data(tmp_path / "one.npz", modality=forced).train.x.shape == (20, 1, 100)
    np.savez(tmp_path / "img.npz", x=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8), y=y)
    assert load_data(tmp_path / "img.npz").train.modality == "image"  # square: an image


def test_one_hot_labels_are_their_classes_and_multi_hot_stays_refused(tmp_path):
    # QA: one-hot labels (one 1 per row) were refused as multi-label
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 60)).astype(np.float32)
    y = np.arange(20) % 3
    np.savez(tmp_path / "onehot.npz", x=x, y=np.eye(3)[y])
    assert list(load_data(tmp_path / "onehot.npz").train.y) == list(y)
    multi = np.eye(3)[y]
    multi[0, 1] = 1
    np.savez(tmp_path / "multi.npz", x=x, y=multi)
    with pytest.raises(DataError, match="multi-label data is not supported"):
        load_data(tmp_path / "multi.npz")


def test_a_series_padded_with_nan_is_told_to_be_resampled_not_dropped(tmp_path):
    # QA: the UCR archive's NaN padding of shorter series was told "fill or drop rows with
    # missing values" (every row), and ragged rows "pad" (with what?)
    rows = [" ".join(["1"] + ["0.5"] * 20), " ".join(["2"] + ["0.1"] * 16 + ["NaN"] * 4),
            " ".join(["1"] + ["0.3"] * 20)]
    path = tmp_path / "padded.txt"
    path.write_text("\n".join(rows * 4) + "\n")
    with pytest.raises(DataError, match=r"line 2 ends in 4 missing values from line 2, column "
                                        r"18, the padding of a shorter series; .* resample"):
        load_data(path)
    rows[1] = " ".join(["2"] + ["0.1"] * 8 + ["NaN"] + ["0.1"] * 11)
    path.write_text("\n".join(rows * 4) + "\n")
    with pytest.raises(DataError, match=r"missing value at line 2, column 10; fill it"):
        load_data(path)


@pytest.mark.parametrize("keys", [("test_images", "test_labels"), ("x_test", "y_test")])
def test_an_npz_of_test_arrays_alone_is_a_test_set(tmp_path, keys):
    # QA: predict dropped the labels of a MedMNIST-style file holding test arrays only (and
    # refused x_test/y_test alone with "no training arrays found")
    rng = np.random.default_rng(0)
    path = tmp_path / "locked.npz"
    np.savez(path, **{keys[0]: rng.integers(0, 255, (6, 8, 8), dtype=np.uint8),
                      keys[1]: np.array([0, 1] * 3)})
    data = load_data(path, for_prediction=True)
    assert len(data.train) == 0 and len(data.test) == 6 and list(data.test.y) == [0, 1] * 3
    with pytest.raises(DataError, match="holds test arrays only .* give it as --test beside"):
        load_data(path)


def test_uci_layout_files_of_residues_read_and_a_header_of_words_is_no_uci_line(tmp_path):
    # review: a protein file in the UCI layout was no longer read; QA: a header whose third
    # field was 'transcription' made a table a DNA file
    proteins = _write(tmp_path / "p.data", "".join(
        f"{'neg' if i % 2 else 'pos'}, P{i:05d}, MKT{'AL'[i % 2]}YIAKQRQISFVKSHFSRQ\n"
        for i in range(20)))
    assert load_data(proteins).train.modality == "biosequence"
    from automed.data.loaders.sequences import _is_uci

    header = _write(tmp_path / "h.csv", "sample_name,medical_specialty,transcription\ns1,a,b\n")
    assert not _is_uci(header)
