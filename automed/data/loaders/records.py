"""Shared reading of record files (CSV/TSV with a header, JSONL) for the text, biosequence and
tabular loaders: columns found by name, labels checked row by row, errors naming file and line.
"""

from __future__ import annotations

import contextvars
import csv
import io
import json
from pathlib import Path
from typing import Any

from automed.data.dataset import Dataset, LoadedData, encode_labels
from automed.errors import DataError

LABEL_NAMES = ("label", "labels", "class", "target", "y", "outcome", "diagnosis", "category")
SPLIT_NAMES = ("split", "subset", "fold_split")
# Split values that mean "locked test data"; train/val/dev rows all join the CV training set.
TEST_SPLITS = ("test", "testing", "holdout")
_MISSING = ("", "na", "n/a", "nan", "null", "?")  # not "none": it can be a class


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {not_utf8(path)}") from exc


def not_utf8(path: Path) -> str:
    """Why a file that is no UTF-8 text cannot be read: an encoding, or no text at all (QA:
    an .xlsx or an EDF recording given with --format was told to be re-saved as UTF-8)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    if head.startswith(b"PK\x03\x04"):
        return ("a zip archive (an Excel .xlsx workbook?), not a text table; save the sheet "
                "as CSV UTF-8 and give the .csv")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a binary file, not a text table; check that it is the file you meant"
    return NOT_UTF8


# QA: a Latin-1 CSV and an Excel "Unicode Text" (UTF-16) .tsv were told to "export the table
# as text", which they are; the fix is the encoding.
NOT_UTF8 = ("not a UTF-8 text file (Latin-1 or UTF-16, as Excel writes?); re-save it as UTF-8 "
            "(Excel: Save As \"CSV UTF-8 (comma delimited)\")")


FIRST_LINE_CHARS = 4_000_000  # what sniffing reads of a first line (a wide header fits)


def first_line(path: Path) -> str:
    """The file's first non-blank line (with its line end; at most FIRST_LINE_CHARS of it),
    or "" when unreadable. QA: a 1 GB file without a line end was read whole, 5.5 GB of
    memory, before anything was said."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            while True:
                line = f.readline(FIRST_LINE_CHARS)
                if not line or line.strip():
                    return line
    except (OSError, UnicodeDecodeError):
        return ""


def delimiter_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        # A .txt table is read this way only when forced (--format tabular/text): take the
        # delimiter its first line uses (QA: a tab-separated .txt with a header).
        first = first_line(path)
        return "\t" if "\t" in first and "," not in first else ","
    return "\t" if suffix in (".tsv", ".tab") else ","


def named(names: list[str]) -> bool:
    """Whether header ``names`` name columns: most are words. One number-like name among
    words (a column called ``2019``) still names a table (QA: "age,bp,1,outcome" went to
    the signal reader); a header of numbers (``label,0,1,...``) or a row of values does not.
    """
    numbers = sum(1 for n in names if n.strip() and is_number(n))
    return bool(names) and any(n.strip() for n in names) and 2 * numbers < len(names)


def is_number(text: str) -> bool:
    try:
        float(text.strip().strip("\"'"))
    except ValueError:
        return False
    return True


def header(path: Path) -> list[str]:
    """The first line's column names, or [] when unreadable (used by ``sniff``)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            first = next(csv.reader(f, delimiter=delimiter_for(path)), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [c.strip() for c in first]


FIELD_LIMIT = 16 * 2**20  # characters in one CSV field (csv's default is 131,072)


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Column names and ``(line number, values)`` rows of a delimited file with a header."""
    text = read_text(path)
    # The csv module splits the lines itself: a quoted field may hold line breaks (a clinical
    # note over several lines; QA: split per line first, its lines were glued together), and
    # only \n and \r end a line (str.splitlines also breaks at \f, \x1c-\x1e, U+2028, ...).
    # Each row is numbered by the file line it starts on.
    delimiter = delimiter_for(path)
    # A clinical note or a full-text article may be longer than csv's 128 KB field default
    # (QA: a 260,000-character text was refused as "check the quoting")
    limit = csv.field_size_limit(FIELD_LIMIT)
    try:
        try:
            # strict first: a closing quote followed by more text, or a quote still open at
            # the end, is how a quote left open swallows the next records (QA: one record
            # lost its label, unsaid) ...
            numbered = _numbered(path, text, delimiter, strict=True)
        except csv.Error as exc:
            if "expected after" not in str(exc) and "unexpected end of data" not in str(exc):
                raise
            # ... or a harmless quirk ('"a" ,1', a TSV text starting with a quotation; review:
            # refused): read as before, and refused only where records ran together
            numbered = _numbered(path, text, delimiter, strict=False)
            _refuse_run_together(path, numbered, delimiter)
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV/TSV file ({exc}); check the quoting") from exc
    finally:
        csv.field_size_limit(limit)
    if not numbered:
        raise DataError(f"{path}: the file is empty; add a header row and one record per row")
    names = [c.strip() for c in numbered[0][1]]
    body = numbered[1:]
    if not body:
        raise DataError(f"{path}: only a header row, no records; add one record per row")
    for lineno, row in body:
        if len(row) != len(names):
            raise DataError(
                f"{path}: line {lineno} has {len(row)} fields but the header has {len(names)}; "
                "quote fields that contain the delimiter"
            )
    return _without_unnamed(path, names, body)


def _numbered(path: Path, text: str, delimiter: str, *,
              strict: bool) -> list[tuple[int, list[str]]]:
    """``(line number, values)`` of each record; a record is numbered by its first line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    numbered, start = [], 1
    try:
        for row in reader:
            # A blank line, or a row of empty cells (Excel's trailing ",,,"), is no record; a
            # one-column file's quoted empty value ("") is one (QA: skipped, the records after
            # it were predicted under the index of the one before).
            if any(v.strip() for v in row) or (
                    row == [""] and numbered and len(numbered[0][1]) == 1):
                numbered.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise DataError(f"{path}: the record of line {start} holds a field over "
                            f"{FIELD_LIMIT // 2**20} MB: a quote (\") left open there runs on "
                            "through the file; close it, or double the quotes inside the "
                            "field") from None
        raise
    return numbered


def _refuse_run_together(path: Path, numbered: list, delimiter: str) -> None:
    """A field over several lines one of which holds a whole record's delimiters: a quote
    left open that swallowed the records after it (QA)."""
    if not numbered:
        return
    need = max(1, len(numbered[0][1]) - 1)
    for lineno, row in numbered:
        for value in row:
            lines = value.split("\n")
            if len(lines) > 1 and any(line.count(delimiter) >= need for line in lines[:-1]):
                raise DataError(f"{path}: the record of line {lineno} opens a quote (\") that "
                                "does not close at the end of its field, so the records after "
                                "it run into it; close the quote, or double the quotes inside "
                                "the field (\"\")")


def _without_unnamed(path: Path, names: list[str], body: list[tuple[int, list[str]]]
                     ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Drop a column with no name and no values (QA: a comma at the end of every line made an
    empty column a feature, and predict on the file without it failed); refuse one with no
    name but values: what it holds is unknown."""
    keep = []
    for j, name in enumerate(names):
        if name:
            keep.append(j)
        elif any(row[j].strip() for _, row in body):
            raise DataError(f"{path}: column {j + 1} has no name in the header but holds "
                            "values; name it in the header row")
    if len(keep) == len(names):
        return names, body
    return [names[j] for j in keep], [(n, [row[j] for j in keep]) for n, row in body]


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    out = []
    # JSON Lines end at \n only: a JSON string may hold U+2028 or \x1c, where
    # str.splitlines would cut the record (QA)
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {lineno} is not valid JSON ({exc.msg}); write one "
                            "JSON object per line") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {lineno} is not a JSON object; write one object "
                            "per line, e.g. {\"text\": ..., \"label\": ...}")
        out.append((lineno, record))
    if not out:
        raise DataError(f"{path}: the file is empty; write one JSON object per line")
    return out


def find_column(path: Path, names: list[str], option: Any, candidates: tuple[str, ...],
                role: str, flag: str) -> str:
    """The column named by ``option`` (name or index), else the first known name present."""
    if option is not None:
        text = str(option).strip()
        if text in names:
            return text
        if text.lstrip("-").isdigit() and -len(names) <= int(text) < len(names):
            return names[int(text)]
        # QA: "--label-col Outcome" for a column "outcome" ended "(set --label-col)"
        close = [n for n in names if n.lower() == text.lower()]
        hint = (f"did you mean {close[0]!r}? (column names match with their case)" if close
                else f"columns are {', '.join(names)}")
        raise DataError(f"{path}: no {role} column {text!r} (given with {flag}); {hint}")
    lower = {n.lower(): n for n in names}
    found = [lower[c] for c in candidates if c in lower]
    if len(found) > 1 and role == "label" and not (PREDICTING.get() or FIRST_LABEL.get()):
        # QA: "age,sex,class,outcome" searched the NYHA class feature as the label and the
        # outcome as a feature, without a word; the first known name is a guess, not a choice
        shown = " and ".join(map(repr, found[:3]))
        raise DataError(f"{path}: columns {shown} could each be the label; name the label "
                        f"with {flag} (the others are read as data)")
    if found:
        return found[0]
    raise DataError(
        f"{path}: no {role} column found (looked for {', '.join(candidates)}); columns are "
        f"{', '.join(names)}; name it with {flag}"
    )


def optional_column(path: Path, names: list[str], option: Any, role: str,
                    flag: str) -> str | None:
    """The column ``option`` names (never guessed), or None when the option is unset."""
    return None if option is None else find_column(path, names, option, (), role, flag)


def group_of(path: Path, lineno: int, value: Any, column: str) -> str:
    group = "" if value is None else str(value).strip()
    if group.lower() in _MISSING:
        raise DataError(f"{path}: line {lineno} has no group id in column {column!r}; every "
                        "row needs its patient/study id")
    return group


# Set while data to predict on is read: a record id given twice is no leak there, and its
# rows keep their ids (QA: the refusal made predict read the file again without the id
# column, and every id came out blank).
PREDICTING: contextvars.ContextVar[bool] = contextvars.ContextVar("predicting", default=False)
# Set while a study made before two label-like columns were refused reads its data again (a
# resume, a joining worker): the first known name is its label, as it was (review: such a
# study could be neither resumed nor joined, with or without --label-col).
FIRST_LABEL: contextvars.ContextVar[bool] = contextvars.ContextVar("first_label", default=False)


def check_unique_ids(path: Path, ids: list[tuple[int, Any]], column: str,
                     groups: list[str] | None = None, group_col: str | None = None) -> None:
    """Refuse a record id given twice (``(line number, id)`` pairs): the record would sit in
    two folds, or in training and test data. Rows sharing a patient id belong to
    ``--group-col``, which keeps them together: with ``groups`` (another column's) an id may
    repeat within its group only (QA: note ids repeated across patients were written out
    for several patients' rows). Data read to predict on is not checked."""
    if PREDICTING.get() or group_col == column:
        return
    seen: dict[str, tuple[int, str | None]] = {}
    for k, (lineno, value) in enumerate(ids):
        key = str(value).strip()
        group = None if groups is None else groups[k]
        if key in seen and (groups is None or seen[key][1] != group):
            first, other = seen[key]
            if groups is None:
                raise DataError(f"{path}: id {key!r} is on lines {first} and {lineno}; drop "
                                f"the duplicate, or pass --group-col {column} to keep its rows "
                                "in one fold")
            raise DataError(f"{path}: id {key!r} is on lines {first} ({group_col} {other!r}) "
                            f"and {lineno} ({group_col} {group!r}); give each record an id of "
                            "its own (an id may repeat within one group only)")
        seen.setdefault(key, (lineno, group))


def label_of(path: Path, lineno: int, value: Any, column: str) -> str:
    if isinstance(value, (list, dict)):  # a JSONL record's (QA: "['C04', 'C01']" a class)
        kind = "list" if isinstance(value, list) else "object"
        raise DataError(f"{path}: line {lineno}: the label in {column!r} is a JSON {kind} "
                        f"({str(value)[:60]}); automed learns one class per record: give each "
                        "record one label (multi-label data is not supported)")
    label = "" if value is None else str(value).strip()
    if label.lower() in _MISSING:
        raise DataError(f"{path}: line {lineno} has no label in column {column!r}; fill or drop "
                        "unlabeled rows")
    return label


def is_test_split(value: Any) -> bool:
    return str(value).strip().lower() in TEST_SPLITS


def split_column(names: list[str]) -> str | None:
    lower = {n.lower(): n for n in names}
    return next((lower[s] for s in SPLIT_NAMES if s in lower), None)


def build(path: Path, modality: str, x: list, labels: list[str], is_test: list[bool],
          meta: dict | None = None, groups: list[str] | None = None,
          ids: list[str] | None = None) -> LoadedData:
    """Training data and, when some rows are marked test, a locked test set on its classes.

    ``groups`` (one patient/study id per row) go to both sides; shared ids are refused later.
    ``ids`` (one record id per row, ``--id-col``) too: ``automed predict`` writes them out.
    A file whose rows are all marked test (a ``--test`` file, data to predict on) gives an
    empty training part; :func:`automed.data.loaders.load_data` refuses it as training data.
    """
    import numpy as np

    test_idx = [i for i, t in enumerate(is_test) if t]
    train_idx = [i for i, t in enumerate(is_test) if not t]

    def make(idx: list[int], source: str) -> Dataset:
        xs = np.empty(len(idx), dtype=object) if isinstance(x[0], str) else None
        if xs is not None:
            xs[:] = [x[i] for i in idx]
        else:
            xs = np.array([x[i] for i in idx], dtype=object)
        y, classes = encode_labels(np.array([labels[i] for i in idx], dtype=object), source)
        g = None if groups is None else np.array([groups[i] for i in idx])
        ident = None if ids is None else np.array([ids[i] for i in idx], dtype=object)
        # each sample's record in the file, for predict's index when a split column parts it
        # (QA: the index counted within each part, so rows could not be joined back)
        part_meta = {**(meta or {}), "file_rows": list(idx)} if is_test and any(is_test) \
            else dict(meta or {})
        return Dataset(xs, y, classes, modality, source, groups=g, meta=part_meta, ids=ident)

    if not train_idx:
        test = make(test_idx, f"{path} (test split)")
        empty = test.subset(np.arange(0))
        train = Dataset(empty.x, empty.y, test.classes, modality, str(path), groups=empty.groups,
                        meta=dict(meta or {}), ids=empty.ids)
        return LoadedData(train, test)
    train = make(train_idx, str(path))
    test = make(test_idx, f"{path} (test split)").with_classes(train.classes) if test_idx else None
    return LoadedData(train, test)
