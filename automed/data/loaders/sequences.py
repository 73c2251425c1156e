"""Labeled DNA, RNA and protein sequences: FASTA, CSV/TSV, and the UCI splice-junction format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from automed.data.alphabets import detect_alphabet
from automed.data.dataset import LoadedData
from automed.data.loaders import records
from automed.data.loaders.base import Loader
from automed.errors import DataError
from automed.hookspecs import hookimpl

FASTA_SUFFIXES = (".fasta", ".fa", ".fna", ".faa", ".fas", ".ffn")
SEQUENCE_NAMES = ("sequence", "seq", "dna", "rna", "protein", "peptide", "nucleotides")
# UCI splice.data: "CLASS, INSTANCE-NAME, SEQUENCE" padded with spaces, no header.
_UCI_LINE = re.compile(r"^\s*[^,\s]+\s*,\s*[^,]+,\s*[A-Za-z]{8,}\s*$")


def _is_fasta(path: Path) -> bool:
    return path.suffix.lower() in FASTA_SUFFIXES or records.first_line(path).startswith(">")


def _is_uci(path: Path) -> bool:
    """A ``CLASS, NAME, SEQUENCE`` first line, not a header such as ``id,label,sequence``."""
    first = records.first_line(path)
    named = any(f.strip().lower() in SEQUENCE_NAMES for f in first.split(","))
    if not _UCI_LINE.match(first) or named:
        return False
    # the third field is a sequence in capitals (nucleotides or residues), not a header's
    # word (QA: 'sample_name,medical_specialty,transcription' made a table of notes a DNA
    # file; review: a protein file in this layout must still read)
    seq = first.rsplit(",", 1)[1].strip()
    return seq.isalpha() and seq.isupper()


def _sequence_column(path: Path) -> str | None:
    """The column a table's header names like sequences (``sequence``, ``seq``, ``protein``,
    ...) whose first values are letters; None without one. QA: a lab table's numeric
    'protein' column (total protein, 6.8 g/dL) made it a DNA file, refused at '6'."""
    import csv
    import itertools

    from automed.data.tabular import to_float

    names = records.header(path)
    for j, name in enumerate(names):
        if name.lower() not in SEQUENCE_NAMES:
            continue
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                rows = list(itertools.islice(
                    csv.reader(f, delimiter=records.delimiter_for(path)), 1, 51))
        except (OSError, UnicodeDecodeError, csv.Error):
            return name
        values = [r[j].strip() for r in rows if len(r) > j and r[j].strip()]
        if not values or not all(to_float(v) is not None for v in values):
            return name
    return None


class BioSequenceLoader(Loader):
    """Reads sequences with labels; detects the alphabet (DNA, RNA or protein, IUPAC codes ok).

    - FASTA (``.fasta``, ``.fa``, ..., or a ``.txt`` starting with ``>``): the label is in
      the header, as ``label=X``, or the last word after the id (whose ``|`` fields may be an
      NCBI or UniProt id: ``>gi|123|ref|NM_1.1 EI``), or the last ``|`` field of a header
      without spaces (``>seq1|EI``); ``split=test`` in a header marks a locked test record.
    - CSV/TSV with a header: the sequence column is ``sequence_col`` or the first of
      ``sequence``, ``seq``, ``dna``, ...; the label is ``label_col`` or ``label``, ``class``...
    - UCI ``splice.data`` style (``.data``, or a headerless CSV): ``CLASS, NAME, SEQUENCE``.
    """

    name = "biosequence"
    description = "DNA/RNA/protein: FASTA (label in header), CSV/TSV, UCI splice .data"
    suffixes = FASTA_SUFFIXES + (".data", ".csv", ".tsv", ".txt")
    modalities = frozenset({"biosequence"})
    options = frozenset({"label_col", "group_col", "sequence_col", "id_col"})

    def sniff(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if path.is_dir() or suffix not in self.suffixes:
            return False
        if suffix in FASTA_SUFFIXES or (
                suffix == ".txt" and records.first_line(path).startswith(">")):
            return True  # QA: a FASTA file saved as .txt went to the signal reader
        if _is_uci(path):
            return True
        return suffix in (".csv", ".tsv") and _sequence_column(path) is not None

    def explain(self, path: Path) -> str:
        if _is_fasta(path):
            return "it is a FASTA file"
        if path.suffix.lower() == ".data" or _is_uci(path):
            return "its lines read 'CLASS, NAME, SEQUENCE' (UCI splice style)"
        return f"its header names a sequence column {_sequence_column(path) or 'sequence'!r}"

    def load(self, path: Path, **options: Any) -> LoadedData:
        modality = options.get("modality") or "biosequence"
        if modality != "biosequence":
            raise DataError(f"{path}: the biosequence loader reads sequences, not {modality}; "
                            "drop --format biosequence or use --modality biosequence")
        suffix = path.suffix.lower()
        groups = ids = None
        unread: list[str] = []
        fasta = _is_fasta(path)
        if fasta or suffix == ".data" or _is_uci(path):
            columns = [k for k in ("label_col", "group_col", "sequence_col", "id_col")
                       if options.get(k) is not None]
            if columns:
                kind = "FASTA" if fasta else "UCI splice"
                flags = ", ".join("--" + k.replace("_", "-") for k in columns)
                fixes = "; ".join(dict.fromkeys(
                    (_FASTA_FIXES if fasta else _UCI_FIXES)[k] for k in columns))
                raise DataError(f"{path}: a {kind} file has no columns, so {flags} cannot "
                                f"apply; drop {'it' if len(columns) == 1 else 'them'}: {fixes}")
            if fasta:
                rows, ids = _fasta(path)
            else:
                rows = _uci(path)
        else:
            rows, groups, ids, unread = _table(path, options)
        where = [w for w, _, _, _ in rows]
        seqs = []
        for w, seq, _, _ in rows:
            seq = "".join(seq.split()).upper()
            if not seq:
                raise DataError(f"{path}: {w} has an empty sequence; fill or drop that record")
            seqs.append(seq)
        alphabet = detect_alphabet(seqs, str(path), where)
        return records.build(path, "biosequence", seqs, [r[2] for r in rows],
                             [r[3] for r in rows], meta={
                                 "alphabet": alphabet,
                                 # QA: an 'age' column beside the sequences was dropped
                                 # without a word: the search's data line names it
                                 **({"unread_columns": unread} if unread else {})},
                             groups=groups, ids=ids)


# What to do instead of a column option a FASTA or UCI splice file cannot honour.
_FASTA_FIXES = {
    "label_col": "the label is read from each header ('>id LABEL', '>id|LABEL' or "
                 "'>id label=LABEL')",
    "group_col": "give patient ids with --groups FILE (one per record)",
    "sequence_col": "the sequence is the lines under each header",
    "id_col": "use a CSV/TSV with an id column to check ids",
}
_UCI_FIXES = {
    "label_col": "the label is the first field of each 'CLASS, NAME, SEQUENCE' line",
    "group_col": "give patient ids with --groups FILE (one per line)",
    "sequence_col": "the sequence is the third field of each line",
    "id_col": "use a CSV/TSV with an id column to check ids",
}

Row = tuple[str, str, str, bool]  # (where, sequence, label, is_test)
_LABEL_TAG = re.compile(r"(?:^|[\s|;])label=([^\s|;]+)", re.IGNORECASE)
# This many FASTA records or more, each with a label of its own: the headers hold ids.
ALL_DISTINCT = 20


def _fasta(path: Path) -> tuple[list[Row], list[str]]:
    """The records and each one's id (its header's first word; predict writes it)."""
    rows: list[Row] = []
    names: list[str] = []
    header, lineno, parts = None, 0, []

    def flush() -> None:
        if header is None:
            return
        words = header.split()
        test = any(w.lower() in ("split=test", "split=holdout") for w in words)
        words = [w for w in words if not w.lower().startswith("split=")]
        # label= anywhere ('>seq1|label=EI' too); else the last word after the id, whose
        # '|' fields are NCBI or UniProt ids ('>gi|12345|ref|NM_000.1 EI'); else the last
        # '|' field of a header without spaces ('>seq1|EI'). QA: the last '|' field was taken
        # first, so '>gi|...|NM_000.1 EI' gave each record its own label 'NM_000.1 EI'.
        tagged = _LABEL_TAG.search(header)
        if tagged:
            label = tagged.group(1)
        elif len(words) > 1:
            label = words[-1]
        elif "|" in header:
            label = header.rsplit("|", 1)[1].strip()
        else:
            label = ""
        name = words[0] if words else "?"
        if len(words) == 1 and "|" in name and not tagged:
            name = name.rsplit("|", 1)[0]  # '>seq1|EI': its label was the last '|' field
        where = f"record {name} (line {lineno})"
        if not label:
            raise DataError(f"{path}: line {lineno}: FASTA header has no label; write "
                            "'>id label', '>id|label' or '>id label=LABEL'")
        rows.append((where, "".join(parts), records.label_of(path, lineno, label, "header"),
                     test))
        names.append(name)

    for i, line in enumerate(records.read_text(path).splitlines(), 1):
        if line.startswith(">"):
            flush()
            header, lineno, parts = line[1:].strip(), i, []
        elif line.strip() and not line.startswith(";"):
            if header is None:
                raise DataError(f"{path}: line {i} has sequence before any '>' header; "
                                "start each record with '>id label'")
            parts.append(line.strip())
    flush()
    if not rows:
        raise DataError(f"{path}: no FASTA records found; start each record with '>id label'")
    if len(rows) >= ALL_DISTINCT and len({r[2] for r in rows}) == len(rows):
        raise DataError(f"{path}: each of its {len(rows)} FASTA headers gives another label "
                        f"(the first: {rows[0][2]!r}): they hold ids, not classes; write the "
                        "class in each header as '>id LABEL' or '>id label=LABEL'")
    return rows, names


def _uci(path: Path) -> list[Row]:
    rows: list[Row] = []
    for i, line in enumerate(records.read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3:
            raise DataError(f"{path}: line {i} has {len(fields)} fields; the UCI splice format "
                            "is 'CLASS, NAME, SEQUENCE'")
        label = records.label_of(path, i, fields[0], "class")
        rows.append((f"line {i} ({fields[1]})", fields[2], label, False))
    if not rows:
        raise DataError(f"{path}: the file is empty; write 'CLASS, NAME, SEQUENCE' lines")
    return rows


def _table(path: Path, options: dict) -> tuple[list[Row], list[str] | None, list[str] | None,
                                               list[str]]:
    """A sequence table's rows, groups, ids, and the columns it does not read."""
    names, table = records.read_table(path)
    # found as detection found it: a numeric 'protein' column beside 'peptide' is a lab value
    # (review: the file was claimed by 'peptide', then read from 'protein')
    found = _sequence_column(path) if options.get("sequence_col") is None else None
    seq_col = found or records.find_column(path, names, options.get("sequence_col"),
                                           SEQUENCE_NAMES, "sequence", "--sequence-col")
    label_col = records.find_column(path, names, options.get("label_col"), records.LABEL_NAMES,
                                    "label", "--label-col")
    split_col = records.split_column(names)
    s, lab = names.index(seq_col), names.index(label_col)
    sp = names.index(split_col) if split_col else None
    group_col = records.optional_column(path, names, options.get("group_col"), "group",
                                        "--group-col")
    groups = None if group_col is None else [
        records.group_of(path, i, v[names.index(group_col)], group_col) for i, v in table]
    id_col = records.optional_column(path, names, options.get("id_col"), "id", "--id-col")
    if id_col is not None:
        records.check_unique_ids(path, [(i, v[names.index(id_col)]) for i, v in table], id_col,
                                 groups, group_col)
    ids = None if id_col is None else [str(v[names.index(id_col)]).strip() for _, v in table]
    used = {seq_col, label_col, split_col, group_col, id_col}
    return ([(f"line {i}", v[s], records.label_of(path, i, v[lab], label_col),
              sp is not None and records.is_test_split(v[sp])) for i, v in table], groups, ids,
            [n for n in names if n and n not in used])


@hookimpl
def register_loaders(register):
    register(BioSequenceLoader())
