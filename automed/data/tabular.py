"""Tabular records: numeric columns imputed and standardized, categorical ones one-hot encoded.

The encoded width must be known before any fold is fitted, so the *layout* (which columns are
numeric, each categorical column's levels, which columns ever miss a value) is read once from
the whole training set and cached in ``dataset.meta``, shared by every fold subset. The
*statistics* (medians, means, standard deviations, levels actually seen) are fitted on each
fold's training part only: a level that a fold's training part never saw encodes as all zeros,
exactly like a missing value, so validation data cannot leak into the encoding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from automed.data.dataset import Dataset
from automed.data.preprocess import PREPROCESSORS, Preprocessor
from automed.errors import DataError
from automed.spec import Spec

MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "-", ".")


_MISSING = frozenset(MISSING)


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip().lower() in _MISSING


def to_float(value: Any) -> float | None:
    """The number in ``value``; NaN when missing; None when it is not a number."""
    if type(value) is str:  # the common case, parsed once (QA: 200,000 rows took 110 s)
        try:
            return float(value)  # surrounding spaces allowed, as before; "nan" is NaN
        except ValueError:
            return math.nan if value.strip().lower() in _MISSING else None
    if is_missing(value):
        return math.nan
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def is_infinite(value: Any) -> bool:
    """Whether ``value`` reads as an infinite number (``inf``, ``-Infinity``, ``1e999``)."""
    f = to_float(value)
    return f is not None and math.isinf(f)


def infer_columns(x: np.ndarray, names: list[str]) -> list[dict]:
    """Column layout: numeric when every present value is a number, else categorical."""
    columns = []
    for j, name in enumerate(names):
        values = x[:, j]
        floats = [to_float(v) for v in values]
        missing = any(f != f for f in floats if f is not None)  # NaN: what to_float misses
        if all(f is not None for f in floats):
            columns.append({"name": name, "kind": "numeric", "missing": missing})
        else:
            levels = sorted({str(v).strip() for v in values if not is_missing(v)})
            columns.append({"name": name, "kind": "categorical", "levels": levels})
    return columns


def encoded_width(columns: list[dict]) -> int:
    return sum(1 + int(c["missing"]) if c["kind"] == "numeric" else len(c["levels"])
               for c in columns)


def records_by_name(x: Any, names: list[str]) -> Any:
    """Records given with their column names, as an array in the model's column order
    ``names``: a pandas DataFrame (or any frame with ``columns`` and ``to_numpy``), a dict of
    columns, one record as a dict or a pandas Series, or a list of dicts. Columns are found by
    name, as `automed predict` finds a file's; other columns (the label, an id) are left out.
    Anything else (arrays, lists of values) is returned as given, read by position. QA: a
    DataFrame with its columns in another order was read by position, and predicted wrongly
    without a word."""
    def missing_said(have: list[str], where: str) -> None:
        gone = [n for n in names if n not in have]
        if gone:
            raise DataError(f"{where} no column(s) {', '.join(map(repr, gone))}; the model was "
                            f"trained on {', '.join(names)}: give records with those columns")

    if hasattr(x, "columns") and hasattr(x, "to_numpy") and getattr(x, "ndim", 2) == 2:
        keys = {str(c): c for c in x.columns}
        if all(isinstance(c, (int, np.integer)) for c in x.columns) and not set(keys) & set(
                names):
            return x.to_numpy()  # a frame made from an array: its columns have no names
        if len(keys) < len(x.columns):
            raise DataError("the records name a column twice; give each column once")
        missing_said(list(keys), "the records have")
        return x[[keys[n] for n in names]].to_numpy()
    if hasattr(x, "index") and hasattr(x, "to_numpy") and getattr(x, "ndim", None) == 1:
        if all(isinstance(k, (int, np.integer)) for k in x.index):
            return x.to_numpy()  # values by position (a RangeIndex): no names to find
        # one record, as a Series named by column (review: a misspelt name was read by
        # position, where the same dict was refused)
        keys = {str(k): k for k in x.index}
        missing_said(list(keys), "the record has")
        return np.asarray([x[keys[n]] for n in names], dtype=object)
    if isinstance(x, dict):
        keys = {str(k): k for k in x}
        one = [np.ndim(v) == 0 for v in x.values()]
        if any(one) and not all(one):  # review: a bare TypeError
            raise DataError("the record mixes single values and lists: give one record (a "
                            "value per column) or records (a list per column)")
        missing_said(list(keys), "the record has" if all(one) else "the records have")
        if all(one):  # one record
            return np.asarray([x[keys[n]] for n in names], dtype=object)
        columns = [list(x[keys[n]]) for n in names]
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            raise DataError(f"the columns have {sorted(lengths)} values: give each column "
                            "one value per record")
        out = np.empty((lengths.pop(), len(names)), dtype=object)
        for j, column in enumerate(columns):
            out[:, j] = column
        return out
    if isinstance(x, (list, tuple)) and x and any(isinstance(r, dict) for r in x):
        other = next((i for i, r in enumerate(x) if not isinstance(r, dict)), len(x))
        if other < len(x):  # review: record 1 was blamed for record 2's None
            raise DataError(f"record {other + 1} is {type(x[other]).__name__}, not a dict of "
                            "column values like the others: give every record as one")
        out = np.empty((len(x), len(names)), dtype=object)
        for i, record in enumerate(x):
            keys = {str(k): k for k in record}
            missing_said(list(keys), f"record {i + 1} has")
            out[i] = [record[keys[n]] for n in names]
        return out
    return x


class TabularPreprocessor(Preprocessor):
    """Median imputation (+ a missing-indicator column), z-scores, and one-hot levels."""

    modality = "tabular"

    def __init__(self) -> None:
        self.columns: list[dict] = []
        self.stats: list[dict] = []

    @staticmethod
    def layout(dataset: Dataset) -> list[dict]:
        if "tabular_columns" not in dataset.meta:
            x = np.asarray(dataset.x)
            names = dataset.meta.get("feature_names") or [f"x{j}" for j in range(x.shape[1])]
            dataset.meta["tabular_columns"] = infer_columns(x, names)
        return dataset.meta["tabular_columns"]

    def spec(self, dataset: Dataset) -> Spec:
        return Spec("tabular", (encoded_width(self.layout(dataset)),), dataset.n_classes)

    def fit(self, dataset: Dataset) -> TabularPreprocessor:
        self.columns = self.layout(dataset)
        x = np.asarray(dataset.x)
        self.stats = []
        for j, col in enumerate(self.columns):
            if col["kind"] == "numeric":
                v = self._numeric(x[:, j], col["name"])
                present = v[~np.isnan(v)]
                median = float(np.median(present)) if present.size else 0.0
                filled = np.where(np.isnan(v), median, v)
                std = float(filled.std())
                self.stats.append({"median": median, "mean": float(filled.mean()),
                                   "std": std if std > 1e-8 else 1.0})
            else:
                seen = {str(v).strip() for v in x[:, j] if not is_missing(v)}
                self.stats.append({"seen": [lv for lv in col["levels"] if lv in seen]})
        return self

    def _numeric(self, values: np.ndarray, name: str) -> np.ndarray:
        if values.dtype.kind in "fiu":
            out = values.astype(np.float64)
        else:
            out = np.empty(len(values))
            for i, v in enumerate(values):
                f = to_float(v)
                if f is None:
                    raise DataError(
                        f"column {name!r}: value {v!r} (record {i + 1}) is not a number, but "
                        "the column was numeric in the training data; fix or blank the value"
                    )
                out[i] = f
        # NaN is a missing value, imputed; infinity is not, and would poison every score.
        if np.isinf(out).any():
            i = int(np.flatnonzero(np.isinf(out))[0])
            raise DataError(f"column {name!r}: value {values[i]!r} (record {i + 1}) is "
                            "infinite; replace it with a number, or blank it to impute it")
        return out

    def transform(self, x: Any) -> torch.Tensor:
        x = np.asarray(records_by_name(x, [c["name"] for c in self.columns]))
        if x.ndim == 1 and len(self.columns) > 1 and len(x) == len(self.columns):
            x = x[None]  # one record (QA: "records have () columns")
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            got = (f"records have {x.shape[1]} columns" if x.ndim == 2 else
                   f"records of shape {x.shape}")
            raise DataError(f"{got}, expected {len(self.columns)} columns "
                            f"({', '.join(c['name'] for c in self.columns)}): give shape "
                            f"(n, {len(self.columns)}), the training data's columns")
        parts = []
        for j, (col, st) in enumerate(zip(self.columns, self.stats)):
            if col["kind"] == "numeric":
                v = self._numeric(x[:, j], col["name"])
                missing = np.isnan(v)
                filled = np.where(missing, st["median"], v)
                parts.append(((filled - st["mean"]) / st["std"])[:, None])
                if col["missing"]:
                    parts.append(missing[:, None].astype(np.float64))
            else:
                index = {lv: k for k, lv in enumerate(col["levels"])}
                seen = set(st["seen"])
                block = np.zeros((len(x), len(col["levels"])))
                for i, v in enumerate(x[:, j]):
                    level = str(v).strip()
                    if not is_missing(v) and level in seen:
                        block[i, index[level]] = 1.0
                parts.append(block)
        out = np.concatenate(parts, axis=1) if parts else np.zeros((len(x), 0))
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def state(self) -> dict:
        return {"columns": self.columns, "stats": self.stats}

    @classmethod
    def from_state(cls, state: dict) -> TabularPreprocessor:
        obj = cls()
        obj.columns, obj.stats = list(state["columns"]), list(state["stats"])
        return obj


PREPROCESSORS["tabular"] = TabularPreprocessor


def unseen_levels(column: dict, values) -> str | None:
    """The values of a categorical ``column`` (a fitted layout's entry) that its training
    rows never had, said as "'U' (1 row), 'X' (3 rows) and 2 more", or None. Read as missing
    by every model: the search says it of its test rows, predict of new files."""
    from collections import Counter

    if column.get("kind") == "numeric":
        return None
    known = set(column.get("levels") or [])
    new = Counter(str(v).strip() for v in values
                  if not is_missing(v) and str(v).strip() not in known)
    if not new:
        return None
    shown = ", ".join(f"{v!r} ({n} row{'s' if n > 1 else ''})" for v, n in new.most_common(3))
    return shown + (f" and {len(new) - 3} more" if len(new) > 3 else "")
