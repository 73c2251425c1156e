"""Tables as spreadsheets write them: number-like column names, semicolons, compression, tab
.txt, other encodings, trailing commas, a notes column (QA findings, one test each)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from automed.data.loaders import load_data
from automed.errors import DataError
from automed.plugin_manager import reset_plugin_manager

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HEADER = ["patient_id", "age", "bp", "sex", "smoking", "outcome"]


def _rows(n: int = 24) -> list[list[str]]:
    return [[f"p{i}", str(30 + i), f"{110 + i % 7}.5", "MF"[i % 2],
             ("never", "former", "current")[i % 3], str(i % 2)] for i in range(n)]


def _write(path: Path, header=HEADER, sep=",", end="", rows=None, encoding="utf-8") -> Path:
    lines = [sep.join(header) + end] + [sep.join(r) + end for r in rows or _rows()]
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


@pytest.mark.parametrize("name", ["2019", "1"])
def test_one_number_like_column_name_keeps_a_named_table(tmp_path, name):
    # QA: "age,bp,1,outcome" (or a column named 2019) went to the signal reader, and
    # --modality tabular could not take it back.
    path = _write(tmp_path / "t.csv", header=["patient_id", "age", name, "sex", "smoking",
                                              "outcome"])
    for modality in (None, "tabular"):
        data = load_data(path, modality=modality)
        assert data.train.modality == "tabular"
        assert data.train.meta["feature_names"] == ["patient_id", "age", name, "sex", "smoking"]


def test_a_header_of_numbers_is_still_a_signal_table(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("label,0,1,2,3\n" + "".join(f"{i % 2},0.{i},1.5,2.5,3.{i}\n"
                                                for i in range(10)))
    assert load_data(path).train.modality == "signal"


def test_a_semicolon_separated_csv_says_so(tmp_path):
    # QA: "line 2 has 2 values but line 1 has 1", or "no column named 'outcome'"
    rows = [[v.replace(".", ",") for v in r] for r in _rows()]
    path = _write(tmp_path / "eu.csv", sep=";", rows=rows)
    for options in ({}, {"label_col": "outcome"}, {"format": "tabular"}):
        with pytest.raises(DataError, match=r"semicolon-separated.*re-save it comma-separated"):
            load_data(path, **options)


@pytest.mark.parametrize("suffix", [".csv.gz", ".gz"])
def test_a_compressed_file_says_decompress_it(tmp_path, suffix):
    # QA: "unknown data format '.gz'", then with --format tabular "not a UTF-8 text file"
    plain = _write(tmp_path / "t.csv")
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    for options in ({}, {"format": "tabular"}):
        with pytest.raises(DataError, match=r"compressed \(\.gz\) file; decompress it first "
                                            r"\(e\.g\. gunzip "):
            load_data(path, **options)


GZ_LOADER = '''
import gzip
import numpy as np
from automed import hookimpl
from automed.data.dataset import Dataset, LoadedData
from automed.data.loaders.base import Loader

class Gz(Loader):
    name = "gzrows"
    suffixes = (".gz",)
    modalities = frozenset({"tabular"})

    def load(self, path, modality=None, **options):
        f = gzip.open(path, "rt") if path.suffix == ".gz" else open(path)
        rows = np.loadtxt(f, delimiter=";")
        return LoadedData(Dataset(rows[:, 1:].astype(np.float32), rows[:, 0].astype(int),
                                  ["a", "b"], "tabular", str(path)), None)

@hookimpl
def register_loaders(register):
    register(Gz())
'''


def test_a_loader_plugin_still_reads_compressed_and_semicolon_files(tmp_path, monkeypatch):
    plugin = tmp_path / "gz_loader.py"
    plugin.write_text(GZ_LOADER)
    monkeypatch.setenv("AUTOMED_PLUGINS_PATH", str(plugin))
    reset_plugin_manager()
    path = tmp_path / "rows.gz"
    path.write_bytes(gzip.compress("".join(f"{i % 2};{i};1.5\n" for i in range(10)).encode()))
    assert len(load_data(path).train) == 10
    semi = tmp_path / "rows.csv"
    semi.write_bytes(gzip.decompress(path.read_bytes()))
    with pytest.raises(DataError, match="semicolon"):
        load_data(semi)
    # --format names the plugin: it may read semicolons
    assert len(load_data(semi, format="gzrows").train) == 10


def test_a_tab_separated_txt_with_a_header_says_rename_it(tmp_path):
    # QA: "signal values must be numbers (is this the label column? ...)", and the hints failed
    path = _write(tmp_path / "t.txt", sep="\t")
    for modality in (None, "tabular"):
        with pytest.raises(DataError, match=r"tab-separated table with a header .*rename it "
                                            r"\.tsv, or give --format tabular"):
            load_data(path, modality=modality)
    data = load_data(path, format="tabular")  # the way out the message gives works
    assert data.train.meta["feature_names"] == HEADER[:-1]
    # texts: the text loader's format (QA: "--format tabular" read them as categories)
    notes = tmp_path / "notes.txt"
    notes.write_text("label\ttext\n" + "".join(f"{'ab'[i % 2]}\tchest pain {i}\n"
                                                for i in range(12)))
    for modality in (None, "text"):
        with pytest.raises(DataError, match=r"rename it \.tsv, or give --format text$"):
            load_data(notes, modality=modality)
    assert load_data(notes, format="text").train.modality == "text"
    other = tmp_path / "other.txt"  # review: with --text-col, told "--format tabular"
    other.write_text(notes.read_text().replace("\ttext\n", "\ttranscription\n", 1))
    with pytest.raises(DataError, match=r"or give --format text$"):
        load_data(other, text_col="transcription")


def test_tab_separated_signal_txt_files_still_read(tmp_path):
    series = tmp_path / "s.txt"
    series.write_text("label\tt0\tt1\tt2\n" + "".join(f"{i % 2}\t0.{i}\t1.5\t2.{i}\n"
                                                      for i in range(10)))
    assert load_data(series).train.x.shape == (10, 1, 3)
    ucr = SHARED_DATA / "ucr_ecg200" / "ECG200_TRAIN.txt"
    if ucr.exists():
        assert load_data(ucr).train.modality == "signal"


@pytest.mark.parametrize("suffix, header, encoding", [
    (".csv", ["patient_id", "Größe", "bp", "sex", "smoking", "outcome"], "latin-1"),
    (".tsv", HEADER, "utf-16"),
])
def test_a_table_not_in_utf8_says_resave_it_as_utf8(tmp_path, suffix, header, encoding):
    # QA: "not a UTF-8 text file; export the table as text" (it is text), even with
    # --modality tabular
    path = _write(tmp_path / f"t{suffix}", header=header, sep="\t" if suffix == ".tsv" else
                  ",", encoding=encoding)
    for modality in (None, "tabular"):
        with pytest.raises(DataError, match="not a UTF-8 text file.*re-save it as UTF-8"):
            load_data(path, modality=modality)


def test_a_trailing_comma_adds_no_empty_feature(tmp_path):
    # QA: an unnamed all-empty column became a feature; predict without it then failed
    path = _write(tmp_path / "t.csv", end=",")
    data = load_data(path, id_col="patient_id")
    assert data.train.meta["feature_names"] == ["age", "bp", "sex", "smoking"]
    assert data.train.x.shape == (24, 4)


def test_an_unnamed_column_with_values_is_refused(tmp_path):
    rows = [r + ["7"] for r in _rows()]
    path = _write(tmp_path / "t.csv", header=HEADER + [""], rows=rows)
    with pytest.raises(DataError, match=r"column 7 has no name in the header but holds values; "
                                        "name it"):
        load_data(path)


def test_a_notes_column_names_the_features_it_leaves_out(tmp_path):
    # QA: a "notes" column turned a table of features into a text dataset, silently
    header = ["age", "bp", "notes", "outcome"]
    rows = [[str(30 + i), str(120 + i), f"patient reports pain {i}", str(i % 2)]
            for i in range(12)]
    path = _write(tmp_path / "t.csv", header=header, rows=rows)
    from automed.searching.runner import _columns_said

    train = load_data(path).train
    assert "its header names a text column" in train.meta["reason"]
    assert _columns_said(train) == ("; text column 'notes'; columns not read: age, bp (a text "
                                    "search reads the texts and their labels only; --id-col "
                                    "names a record id, --group-col a patient id, --modality "
                                    "tabular reads a table of features, its texts as "
                                    "categories)")
    # the column read is the one named, not the first in the file (QA: 'note' named, 'text'
    # read), and --text-col alone chooses the text loader (QA: "the tabular loader does not
    # support --text-col")
    both = _write(tmp_path / "both.csv", header=["note", "text", "dx"],
                  rows=[["x", f"chest pain {i}", str(i % 2)] for i in range(12)])
    train = load_data(both, label_col="dx").train
    assert _columns_said(train).startswith("; text column 'text'; columns not read: note (")
    custom = _write(tmp_path / "custom.csv", header=["pid", "note_text", "dx"],
                    rows=[[f"P{i}", f"chest pain {i}", str(i % 2)] for i in range(12)])
    train = load_data(custom, label_col="dx", text_col="note_text").train
    assert train.modality == "text" and list(train.x[:1]) == ["chest pain 0"]
    assert train.meta["reason"] == ("read as text by the text loader because --text-col names "
                                    "its column")
    assert load_data(path, modality="tabular").train.meta["feature_names"] == ["age", "bp",
                                                                             "notes"]


def test_a_note_over_several_lines_keeps_its_line_breaks_and_lines_are_file_lines(tmp_path):
    # QA: rows were split per line before the csv module saw them: a quoted note over three
    # lines came back glued ("notestable"), a form feed in a note broke its row in two, and
    # errors counted records, not file lines.
    path = tmp_path / "notes.csv"
    rows = [f'"visit {i}\nstable\fnote",{("MI", "normal")[i % 2]}' for i in range(10)]
    rows[6] = '"visit 6\nstable\nnote",'
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 14 has no label"):  # rows start on lines 2, 4, ...
        load_data(path)
    rows[6] = '"visit 6\nstable\nnote",MI'
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    train = load_data(path).train
    assert train.x[0] == "visit 0\nstable\fnote" and len(train) == 10


def test_a_jsonl_text_holding_a_line_separator_is_one_record(tmp_path):
    import json

    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"text": f"pain\u2028radiating {i}", "label": i % 2},
                                       ensure_ascii=False) + "\n" for i in range(10)),
                    encoding="utf-8")
    assert load_data(path).train.x[0] == "pain\u2028radiating 0"


@pytest.mark.parametrize("role, options", [("label", {"text_col": ["note", "label"]}),
                                           ("group", {"text_col": ["note", "site"],
                                                      "group_col": "site"})])
def test_a_text_column_that_is_the_label_or_group_is_refused(tmp_path, role, options):
    # QA: --text-col note --text-col label scored CV 1.0 on random labels
    path = tmp_path / "rand.csv"
    path.write_text("note,site,label\n" + "".join(f"word{i} other,s{i % 3},{('MI', 'no')[i % 2]}\n"
                                                  for i in range(12)), encoding="utf-8")
    with pytest.raises(DataError, match=rf"--text-col '\w+' is the {role} column"):
        load_data(path, **options)


def test_fasta_headers_with_ids_of_pipes_give_the_label_after_the_id(tmp_path):
    # QA: '>gi|12345|ref|NM_000.1 pos' took the last '|' field, 'NM_000.1 pos', as the label:
    # one class per record; '>seq1|label=pos' gave the class 'label=pos'.
    headers = ["gi|1{i}|ref|NM_00{i}.1 {y}", "sp|P0{i}|PROT_{i}_HUMAN label={y} extra",
               "seq{i}|label={y}", "seq{i}|{y}", "seq{i} {y} split=train"]
    for form in headers:
        path = tmp_path / "h.fasta"
        path.write_text("".join(f">{form.format(i=i, y=('pos', 'neg')[i % 2])}\nACGTACGTAC\n"
                                for i in range(8)), encoding="utf-8")
        assert load_data(path).train.classes == ["neg", "pos"], form


def test_fasta_headers_holding_ids_only_are_refused_as_ids_and_a_txt_fasta_is_fasta(tmp_path):
    path = tmp_path / "ids.fasta"
    path.write_text("".join(f">gi|{i}|ref|NM_{i}.1\nACGTACGTAC\n" for i in range(25)),
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"each of its 25 FASTA headers gives another label "
                                        r"\(the first: 'NM_0.1'\): they hold ids, not classes"):
        load_data(path)
    txt = tmp_path / "seqs.txt"  # QA: read as a signal table ("line 3 has 2 values ...")
    txt.write_text("".join(f">s{i} {('pos', 'neg')[i % 2]}\nACGTACGTAC\n" for i in range(8)),
                   encoding="utf-8")
    data = load_data(txt)
    assert data.train.modality == "biosequence" and data.train.classes == ["neg", "pos"]


def test_a_binary_or_endless_first_line_is_refused_before_it_is_read(tmp_path, monkeypatch):
    # QA (hostile inputs): 1 GB of zero bytes named .csv was read whole (5.5 GB of memory,
    # 50 s) and ended in a MemoryError traceback.
    from automed.data.loaders import load_data, records
    from automed.errors import DataError

    binary = tmp_path / "zeros.csv"
    binary.write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="holds NUL bytes: not a text table"):
        load_data(binary)
    monkeypatch.setattr(records, "FIRST_LINE_CHARS", 100)
    endless = tmp_path / "endless.csv"
    endless.write_text("a," * 200)
    with pytest.raises(DataError, match="has a first line of over 100 characters"):
        load_data(endless)


def test_a_space_aligned_txt_table_is_told_to_be_saved_as_csv(tmp_path):
    # QA (formats): read as a signal file, "signal values must be numbers"
    from automed.data.loaders import load_data
    from automed.errors import DataError

    path = tmp_path / "cohort.txt"
    path.write_text("patient_id    age  sex    bmi  outcome\n"
                    + "".join(f"P{i:03d}          {40 + i}  M    {22 + i % 5}.1  {i % 2}\n"
                              for i in range(20)))
    with pytest.raises(DataError, match=r"looks like a space-aligned table with a header "
                                        r"\(patient_id, age, sex, bmi, \.\.\.\); save it as CSV"):
        load_data(path)


@pytest.mark.parametrize("fmt", ["tabular", "signal-table"])
def test_a_binary_file_given_a_text_format_is_called_binary_not_latin1(tmp_path, fmt):
    # QA (formats): an .xlsx or an EDF with --format was told to be re-saved as UTF-8
    from automed.data.loaders import load_data
    from automed.errors import DataError

    xlsx = tmp_path / "t.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="a zip archive \\(an Excel .xlsx workbook\\?\\)"):
        load_data(xlsx, format=fmt)
    edf = tmp_path / "r.edf"
    edf.write_bytes(b"0       X\x00\x00\xff\xfe" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="a binary file, not a text table"):
        load_data(edf, format=fmt)


@pytest.mark.parametrize("gap", ["", "?", "NA"])
@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_a_first_series_with_a_missing_value_is_no_header(tmp_path, gap, suffix):
    # QA: a first line with one empty (or "?") cell was taken for a header: the first series
    # was dropped without a word, in search and predict alike (its index shifted)
    sep = "," if suffix == ".csv" or gap == "" else " "
    rows = [[str(i % 2), *(f"{(i + j) / 10:.2f}" for j in range(8))] for i in range(12)]
    rows[0][4] = gap
    path = tmp_path / f"ecg{suffix}"
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    with pytest.raises(DataError, match="missing value at line 1, column"):
        load_data(path)
    rows[0][4] = "0.5"  # filled: every series is read, the first one too
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    assert len(load_data(path).train) == 12


def test_a_quoted_empty_value_in_a_one_column_file_is_a_record(tmp_path):
    # QA: a one-column file's "" row was skipped, so the records after it were predicted
    # under the index of the one before; a blank line or a row of empty cells is still none
    from automed.data.loaders import records

    path = tmp_path / "seqs.csv"
    path.write_text('sequence\n""\nACGT\n\n   \nTTGA\n')
    names, rows = records.read_table(path)
    assert names == ["sequence"] and [(n, r) for n, r in rows] == \
        [(2, [""]), (3, ["ACGT"]), (6, ["TTGA"])]
    wide = tmp_path / "wide.csv"
    wide.write_text('a,b,label\n1,2,x\n,,\n""\n3,4,y\n')  # review: "" in a wide file is none
    assert [n for n, _ in records.read_table(wide)[1]] == [2, 5]


def test_the_data_line_says_the_label_column_given(tmp_path):
    # QA: a --label-col -1 signal table was said to have "the label in column 0"
    rows = [[*(f"{(i + j) / 10:.2f}" for j in range(8)), str(i % 2)] for i in range(12)]
    path = tmp_path / "ecg.csv"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    data = load_data(path, label_col=-1)
    assert data.train.classes == ["0", "1"]
    reason = data.train.meta["reason"]
    assert "the label in --label-col -1" in reason and "column 0" not in reason, reason


def test_a_long_text_reads_and_an_open_quote_is_named_with_its_line(tmp_path):
    # QA: a 300,000-character text was refused as "field larger than field limit (131072);
    # check the quoting"
    from automed.data.loaders import records

    long = tmp_path / "long.csv"
    long.write_text('text,label\n"' + "word " * 60000 + '",a\n"short",b\n')
    assert [len(r[0]) for _, r in records.read_table(long)[1]] == [300000, 5]
    opened = tmp_path / "open.csv"
    opened.write_text('text,label\nfine,a\n"unclosed,a\n' + ("x" * 1000 + "\n") * 20000)
    with pytest.raises(DataError, match=r"open.csv: the record of line 3 holds a field over "
                       r"16 MB: a quote \(\"\) left open there runs on"):
        records.read_table(opened)


def test_a_quote_left_open_is_refused_not_merged_into_the_next_record(tmp_path):
    # QA: an unclosed quote swallowed the next record (8 records read as 7), its label lost
    rows = ["Heart failure,C14", "Lung tumor,C04", "Coronary stenosis,C14", "Colon tumor,C04"]
    (tmp_path / "open.csv").write_text('text,label\n"Chest pain and angina,C14\n'
                                       '"Breast tumor biopsy",C04\n' + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"open\.csv: the record of line 2 opens a quote \(\"\) "
                                        r"that does not close at the end of its field, so the "
                                        r"records after it run into it"):
        load_data(tmp_path / "open.csv")
    (tmp_path / "end.csv").write_text('text,label\n"never closed,C04\n' + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 2 opens a quote \(\"\) that does not close"):
        load_data(tmp_path / "end.csv")
    # review: quirks strict reading refused, though no record runs into another
    (tmp_path / "quirks.csv").write_text('text,label\n"a" ,C14\n"Smith" Jr,C04\n'
                                         + "\n".join(rows) + "\n")
    assert len(load_data(tmp_path / "quirks.csv").train) == 6
    (tmp_path / "quoted.tsv").write_text("text\tlabel\n\"I feel dizzy\" says the patient\tC14\n"
                                         + "\n".join(r.replace(",", "\t") for r in rows) + "\n")
    assert len(load_data(tmp_path / "quoted.tsv").train) == 5
    # quotes inside fields, doubled or in an unquoted field, read as before
    (tmp_path / "ok.csv").write_text('text,label\n"a ""quoted"" word, and more",C14\n'
                                     'a 5" lesion,C04\n' + "\n".join(rows) + "\n")
    assert len(load_data(tmp_path / "ok.csv").train) == 6


def test_a_table_with_a_free_text_column_says_search_it_as_text(tmp_path):
    # QA: an MTSamples-like 'sample_name,medical_specialty,transcription' header was taken for
    # a UCI splice line (a DNA file), and with --label-col the notes were 90 categories whose
    # only hint was "like an identifier: give --id-col"
    from automed.searching.prepare import _table_warnings

    notes = ["patient presents with chest pain radiating to the left arm",
             "biopsy of the breast mass shows a benign fibroadenoma today"]
    path = _write(tmp_path / "mts.csv", header=["sample_name", "medical_specialty",
                                                "transcription"],
                  rows=[[f"s{i}", "ab"[i % 2], f"{notes[i % 2]} visit {i}"] for i in range(24)])
    train = load_data(path, label_col="medical_specialty").train
    assert train.modality == "tabular"
    said = [w for w in _table_warnings(train) if "'transcription'" in w]
    assert said == ["column 'transcription' holds free text (24 different values of 12 words "
                    "or so), read as categories, each its own; to learn from its words search "
                    "it as text: --text-col transcription"]
    text = load_data(path, label_col="medical_specialty", text_col="transcription").train
    assert text.modality == "text"
    # review: three long phrases are categories, not free text
    phrases = ["former smoker quit over ten years ago", "never smoked a single cigarette ever",
               "current smoker of one pack a day"]
    table = _write(tmp_path / "smoke.csv", header=["age", "smoking_status", "outcome"],
                   rows=[[str(40 + i % 7), phrases[i % 3], "ab"[i % 2]] for i in range(24)])
    assert _table_warnings(load_data(table).train) == []
