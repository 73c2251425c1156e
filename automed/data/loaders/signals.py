"""UCR-style signal tables: one series per row, one column holding the label."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from automed.data.dataset import Dataset, LoadedData, encode_labels
from automed.data.loaders import records
from automed.data.loaders.base import Loader
from automed.data.loaders.records import LABEL_NAMES, not_utf8
from automed.errors import DataError
from automed.hookspecs import hookimpl

_MISSING = ("", "nan", "na", "n/a", "null", "none", "?")


class SignalTableLoader(Loader):
    """Reads ``.txt`` (whitespace, or comma/tab), ``.tsv`` and ``.csv`` signal tables.

    Each row is one series; the label is column 0 unless ``label_col`` names a header column
    or gives an index (negative counts from the end). A first line with a non-numeric value
    outside the label column is a header. ``group_col`` (name or index) names a column of
    patient or study ids: it becomes ``Dataset.groups`` and is not part of the signal.
    Returns float32 ``(N, 1, L)`` signals, or ``(N, L)`` when the modality is forced to tabular.
    """

    name = "signal-table"
    description = "UCR-style table, one series per row with a label column (.txt/.tsv/.csv)"
    suffixes = (".txt", ".tsv", ".csv")
    modalities = frozenset({"signal", "tabular"})
    options = frozenset({"label_col", "group_col"})

    def load(self, path: Path, **options: Any) -> LoadedData:
        modality = options.get("modality") or "signal"
        if modality not in ("signal", "tabular"):
            raise DataError(
                f"{path}: a signal table holds numeric series, not {modality}; use modality "
                "signal or tabular"
            )
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: {not_utf8(path)}") from exc
        # (1-based line number, line) so error messages point at the line in the file.
        lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
        if not lines:
            raise DataError(f"{path}: the file is empty; point automed at a table with rows")
        delimiter = _delimiter(path, lines[0][1])
        first = _split(lines[0][1], delimiter)
        label_col, group_col, names = _layout(path, first, options.get("label_col"),
                                              options.get("group_col"))
        if names is not None:
            lines = lines[1:]
        if not lines:
            raise DataError(f"{path}: only a header row, no data; add one series per row")
        rows = [_split(ln, delimiter) for _, ln in lines]
        width = len(rows[0])
        for (lineno, _), row in zip(lines, rows, strict=True):
            if len(row) != width:
                raise DataError(
                    f"{path}: line {lineno} has {len(row)} values but line {lines[0][0]} has "
                    f"{width}; all series must have the same length (resample them to one "
                    "length)"
                )
        if not 0 <= label_col < width:
            raise DataError(
                f"{path}: --label-col {options.get('label_col')} is out of range for {width} "
                f"columns; give an index from 0 to {width - 1}"
            )
        if modality == "signal" and names is not None:
            _refuse_columns_beside_the_series(path, names, {label_col, group_col})
        if width < 2:
            raise DataError(f"{path}: rows have only a label and no signal values")
        skip = {label_col} if group_col is None else {label_col, group_col}
        x = _values(path, lines, rows, delimiter, skip, width, names)
        labels = [_unquote(row[label_col]) for row in rows]
        for (lineno, _), label in zip(lines, labels, strict=True):
            if label.lower() in _MISSING:
                raise DataError(
                    f"{path}: line {lineno} has no label in column {label_col + 1}; fill or "
                    "drop unlabeled rows"
                )
        y, classes = encode_labels(_numeric_or_str(labels), str(path))
        if modality == "signal":
            x = x[:, None, :]
        groups = None if group_col is None else np.array([_unquote(r[group_col]) for r in rows])
        label_name = names[label_col] if names else f"column {label_col}"
        return LoadedData(Dataset(x, y, classes, modality, str(path), groups=groups,
                                  meta={"label_col": label_col, "label_name": label_name}))

    def explain(self, path: Path, label_col: Any = None) -> str:
        first = _split(_first_line(path), _delimiter(path, _first_line(path)))
        if label_col is not None:  # QA: "the label in column 0" of a --label-col -1 table
            return f"it is a table of series, one per row, the label in --label-col {label_col}"
        label = _named_label(first)
        if label is None and all(_is_number(v) for v in first[1:]):
            return ("it has no header naming a label column: one series per row (UCR style), "
                    "the label in column 0")
        names = [_unquote(v) for v in first]
        features = [n for j, n in enumerate(names) if j != label]
        if label is not None and series_names(features):
            # the numbered names only: a patient id or split column may stand beside them
            series = [n for n in features if re.search(r"\d+$", n)]
            return (f"its header names a numbered series ({series[0]} to {series[-1]}) "
                    f"beside the label {names[label]!r}; use --modality tabular to read the "
                    "columns as features")
        if label is None:
            return ("its header names no label column (label, class, target, outcome, ...), "
                    "so column 0 is the label; set --label-col otherwise")
        return f"its values are all numbers, the label in column {names[label]!r}"


def _first_line(path: Path) -> str:
    return records.first_line(path).strip()


# Numbered column names: "t0, t1, ..." number the points of a series; "f0, f1, ..." features.
_TIME_STEMS = frozenset({"t", "time", "timestep", "step", "sample", "point", ""})
_FEATURE_STEMS = frozenset({"f", "feat", "feature", "var", "v", "col", "column", "attr", "x",
                            "pc", "gene", "g"})
SERIES_LENGTH = 32  # a longer run of one numbered stem is a series whatever the stem


def series_names(names: list[str]) -> bool:
    """Whether column names number one series (``t0, t1, ...``) rather than name features.

    Up to two other columns (a patient id, a split) may stand beside the series. Feature-like
    stems (``f0, f1, ...``, ``x1, x2, ...``) never make a series; time-like stems (``t``,
    ``time``, ``step``, ``sample``) or bare numbers always do; any other stem does from
    :data:`SERIES_LENGTH` columns on.
    """
    numbered = [(re.sub(r"\d+$", "", n).strip("_ ").lower(), re.search(r"(\d+)$", n))
                for n in names]
    numbered = [(stem, int(m.group(1))) for stem, m in numbered if m]
    stems = {s for s, _ in numbered}
    if len(numbered) < 3 or len(names) - len(numbered) > 2 or len(stems) != 1:
        return False
    values = [v for _, v in numbered]
    if values != list(range(values[0], values[0] + len(values))):
        return False
    stem = stems.pop()
    if stem in _FEATURE_STEMS:
        return False
    return stem in _TIME_STEMS or len(numbered) >= SERIES_LENGTH


def _delimiter(path: Path, first_line: str) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix == ".tsv":
        return "\t"
    # .txt: UCR uses whitespace, but comma-separated exports are common too. Tabs are
    # whitespace, so whitespace splitting covers them.
    return "," if "," in first_line else None


def _split(line: str, delimiter: str | None) -> list[str]:
    return line.split(delimiter) if delimiter else line.split()


def _unquote(value: str) -> str:
    return value.strip().strip("\"'").strip()


def _is_number(value: str) -> bool:
    try:
        float(_unquote(value))
    except ValueError:
        return False
    return True


def _layout(path: Path, first: list[str], option: Any,
            group_option: Any = None) -> tuple[int, int | None, list[str] | None]:
    """Label column index, group column index (or None) and, for a header, the column names."""
    named_label = option is None and _named_label(first) is not None
    label_col = _named_label(first) if named_label else _label_col(option, first)
    if label_col is not None and label_col < 0:
        label_col += len(first)  # negative indexes count from the end
    group_col = None if group_option is None else _label_col(group_option, first)
    if group_col is not None and group_col < 0:
        group_col += len(first)
    # Patient ids are often words, so the group column never makes a line a header; nor does
    # a missing value (QA: a first series with one empty or "?" cell was taken for a header
    # and dropped without a word, in search and predict alike).
    header = any(not _is_number(v) and _unquote(v).lower() not in _MISSING
                 for j, v in enumerate(first) if j not in (label_col, group_col))
    header = header or named_label  # a column called "label" names the columns
    for named in (option, group_option):
        if isinstance(named, str) and not _is_number(named):
            # A column picked by name means the first line names columns, even when the
            # other names are numbers (pandas writes "label,0,1,2,...").
            header = header or _unquote(named) in map(_unquote, first)
    names = [_unquote(v) for v in first] if header else None
    if group_option is not None and (group_col is None or not 0 <= group_col < len(first)
                                     or group_col == label_col):
        raise DataError(
            f"{path}: no usable group column {group_option!r}; columns are "
            f"{', '.join(names) if names else f'0 to {len(first) - 1}'} (not the label column)"
        )
    if label_col is None:
        if names is None:
            raise DataError(f"{path}: no header row, so --label-col must be a column index "
                            f"(e.g. --label-col 0), not {option!r}")
        raise DataError(
            f"{path}: no column named {option!r}; columns are {', '.join(names)}"
        )
    return label_col, group_col, names


def _refuse_columns_beside_the_series(path: Path, names: list[str], taken: set) -> None:
    """A header numbering a series (t0, t1, ...) beside another named column: that column
    is no point of the series (QA: a patient id column became every series' first step, and
    predict took series without it)."""
    rest = [n for j, n in enumerate(names) if j not in taken]
    if not series_names(rest):
        return
    other = [n for n in rest if not re.search(r"\d+$", n)]
    if other:
        series = [n for n in rest if re.search(r"\d+$", n)]
        raise DataError(
            f"{path}: column {other[0]!r} is not a point of the series ({series[0]} to "
            f"{series[-1]}); give it as --group-col {other[0]} if it is a patient id, or drop "
            "it (--modality tabular reads every column as a feature)")


def _named_label(first: list[str]) -> int | None:
    """The index of a column named like a label (``label``, ``class``, ``target``, ...)."""
    lower = [_unquote(v).lower() for v in first]
    return next((lower.index(n) for n in LABEL_NAMES if n in lower), None)


def _label_col(option: Any, first: list[str]) -> int | None:
    """The label column as an index into ``first``; None when a name is not in ``first``."""
    if option is None:
        return 0
    if isinstance(option, (int, np.integer)):
        return int(option)
    text = str(option).strip()
    if text.lstrip("-").isdigit():
        # "--group-col 1" arrives as a string: an index, never a value of the first line,
        # which is a row of data when the file has no header (QA: "1" matched the label
        # value 1 of the first series and the group column was taken for the label's)
        return int(text)
    names = [_unquote(v) for v in first]
    return names.index(text) if text in names else None


def _values(path: Path, lines: list[tuple[int, str]], rows: list[list[str]],
            delimiter: str | None, skip: set[int], width: int,
            names: list[str] | None) -> np.ndarray:
    cols = [j for j in range(width) if j not in skip]
    try:
        x = np.loadtxt([ln for _, ln in lines], delimiter=delimiter, usecols=cols,
                       dtype=np.float32, comments=None, ndmin=2, quotechar='"')
    except ValueError as exc:
        _locate_bad(path, lines, rows, cols, names)
        raise DataError(f"{path}: cannot read the signal values ({exc})") from exc
    if np.isnan(x).any():
        _locate_bad(path, lines, rows, cols, names)
    return x


def _locate_bad(path: Path, lines: list[tuple[int, str]], rows: list[list[str]],
                cols: list[int], names: list[str] | None) -> None:
    """Slow per-value parse that raises a DataError at the first bad value."""
    def missing(lineno: int, row: list[str], where: str) -> DataError:
        values = [_unquote(row[j]).lower() for j in cols]
        gap = [v in _MISSING or v == "nan" for v in values]
        if any(gap) and gap[gap.index(True):] == [True] * (len(gap) - gap.index(True)):
            # QA: the UCR archive pads variable-length series with NaN at their end
            return DataError(
                f"{path}: line {lineno} ends in {len(gap) - gap.index(True)} missing values "
                f"from {where}, the padding of a shorter series; automed needs series of one "
                "length: resample each series to one length (or truncate all to the shortest)")
        return DataError(f"{path}: missing value at {where}; fill it (interpolate) or drop "
                         "that series")

    for (lineno, _), row in zip(lines, rows, strict=True):
        for j in cols:
            raw = _unquote(row[j])
            where = f"line {lineno}, column {j + 1}" + (f" ({names[j]!r})" if names else "")
            if raw.lower() in _MISSING:
                raise missing(lineno, row, where)
            try:
                value = float(raw)
            except ValueError:
                raise DataError(
                    f"{path}: non-numeric value {raw!r} at {where}; signal values must be "
                    "numbers (is this the label column? set --label-col; a patient id? set "
                    "--group-col)"
                ) from None
            if math.isnan(value):
                raise missing(lineno, row, where)


def _numeric_or_str(labels: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in labels])
    except ValueError:
        return np.array(labels, dtype=object)


@hookimpl
def register_loaders(register):
    register(SignalTableLoader())
