"""Tabular clinical records: a CSV/TSV with a header, numeric and categorical columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automed.data.dataset import LoadedData
from automed.data.loaders import records
from automed.data.loaders.base import Loader
from automed.data.loaders.signals import series_names
from automed.data.tabular import infer_columns, is_infinite, to_float
from automed.errors import DataError
from automed.hookspecs import hookimpl


class TabularLoader(Loader):
    """Reads ``.csv``/``.tsv`` records: one row per patient/visit, a header naming the columns.

    The label is ``label_col`` or the first of ``label``, ``class``, ``target``, ``outcome``,
    .... ``id_col`` names a column to drop (identifiers are not features); a ``split`` column
    marks locked test rows. Missing values (empty, ``NA``, ``?``, ...) are allowed in features.
    Columns whose values are all numbers are numeric, the others categorical; scaling and
    encoding are fitted per fold (see :mod:`automed.data.tabular`).
    """

    name = "tabular"
    description = "clinical records: .csv/.tsv with a header, numeric and categorical columns"
    suffixes = (".csv", ".tsv")
    modalities = frozenset({"tabular"})
    options = frozenset({"label_col", "group_col", "id_col"})

    def _named_header(self, path: Path) -> list[str]:
        if path.is_dir() or path.suffix.lower() not in self.suffixes:
            return []
        names = records.header(path)
        # Column names are mostly words: a header of numbers ("label,0,1,...") is a signal
        # table, but one number-like name ("2019") among words is not (QA: "age,bp,1,outcome"
        # went to the signal reader, and --modality tabular could not take it back).
        return names if records.named(names) else []

    def claims_label(self, path: Path, label_col: str) -> bool:
        # "age,sex,bp,score" with --label-col score: named columns and the label the user
        # named are records, though no column is called label and only one holds text.
        names = self._named_header(path)
        if not names or label_col.strip() not in names:
            return False
        return not series_names([n for n in names if n != label_col.strip()])

    def _kind(self, path: Path) -> tuple[str, str] | None:
        """Why this is a record table (``(kind, label name)``), or None when it is not."""
        names = self._named_header(path)
        if not names:
            return None
        label = next((j for j, n in enumerate(names) if n.lower() in records.LABEL_NAMES), None)
        if series_names([n for j, n in enumerate(names) if j != label]):
            return None  # t0, t1, ...: one series per row, beside a label and maybe an id
        if label is not None:
            # Named columns and a named label: records, even when every value is a number.
            return "named", names[label]
        try:
            _, rows = records.read_table(path)
        except DataError:
            return None
        textual = {j for _, row in rows[:200] for j, v in enumerate(row) if to_float(v) is None}
        if len(textual) >= 2:
            return "text", ""
        return None

    def sniff(self, path: Path) -> bool:
        """Claim a named-header table with a column named like a label (``label``, ``class``,
        ``target``, ``outcome``, ...) or with categorical features (text in two columns).

        A header that numbers one series (``label,t0,t1,...``) or numbers instead of names,
        and a table without a header, stay signal tables unless ``--modality tabular`` is
        given (see ``accepts_forced``).
        """
        return self._kind(path) is not None

    def explain(self, path: Path, label_col: Any = None) -> str:
        kind = self._kind(path)
        if kind is None:
            return "its header names its columns"
        how, label = kind
        if label_col is not None:
            # QA: "--label-col diag" was told "'outcome' is the label column", and outcome
            # was read as a feature, unsaid
            given = str(label_col)
            feature = (f"; {label!r}, named like a label, is read as a feature (drop it if it "
                       "gives the label away)" if how == "named" and label and label != given
                       and not given.isdigit() else "")
            return f"its header names the columns and --label-col names the label{feature}"
        if how == "named":
            return (f"its header names the columns and {label!r} is the label column; use "
                    "--modality signal to read each row as a series")
        return "its header names the columns and some of them hold text (categorical values)"

    def accepts_forced(self, path: Path) -> bool:
        return bool(self._named_header(path))

    def load(self, path: Path, **options: Any) -> LoadedData:
        modality = options.get("modality") or "tabular"
        if modality != "tabular":
            raise DataError(f"{path}: the tabular loader reads records, not {modality}; drop "
                            "--format tabular or use --modality tabular")
        names, table = records.read_table(path)
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"{path}: column {dup!r} appears twice in the header; rename one")
        label_col = records.find_column(path, names, options.get("label_col"),
                                        records.LABEL_NAMES, "label", "--label-col")
        split_col = records.split_column(names)
        group_col = records.optional_column(path, names, options.get("group_col"), "group",
                                            "--group-col")
        if group_col == label_col:
            raise DataError(f"{path}: {group_col!r} is both the label and the group column; "
                            "name another --group-col")
        drop = {label_col, split_col, group_col}
        ids = None
        if options.get("id_col") is not None:
            id_col = records.find_column(path, names, options["id_col"], (), "id", "--id-col")
            drop.add(id_col)
            records.check_unique_ids(
                path, [(n, v[names.index(id_col)]) for n, v in table], id_col,
                None if group_col is None else [str(v[names.index(group_col)]).strip()
                                                for _, v in table], group_col)
            ids = [str(v[names.index(id_col)]).strip() for _, v in table]
        features = [n for n in names if n not in drop]
        if not features:
            raise DataError(f"{path}: no feature columns besides {label_col!r}; add features")
        idx = [names.index(n) for n in features]
        lab, sp = names.index(label_col), names.index(split_col) if split_col else None
        gi = None if group_col is None else names.index(group_col)
        rows, labels, is_test, groups = [], [], [], []
        for lineno, values in table:
            labels.append(records.label_of(path, lineno, values[lab], label_col))
            if gi is not None:
                groups.append(records.group_of(path, lineno, values[gi], group_col))
            rows.append([values[j].strip() for j in idx])
            is_test.append(sp is not None and records.is_test_split(values[sp]))
        x = np.array(rows, dtype=object)
        train_rows = x[[not t for t in is_test]]
        # The layout (numeric or categorical, levels) comes from training rows only; test
        # values never decide how the model's input is shaped (a file of test rows only, a
        # --test file or data to predict on, has its own layout).
        columns = infer_columns(train_rows if len(train_rows) else x, features)
        _refuse_infinite(path, table, x, columns)
        # (a test split shares the training rows' layout: records.build gives it this meta)
        return records.build(path, "tabular", list(x), labels, is_test,
                             meta={"feature_names": features, "tabular_columns": columns,
                                   "label_name": label_col},
                             groups=groups if gi is not None else None, ids=ids)


_INF_LETTERS = frozenset("nNeE")


def _refuse_infinite(path: Path, table: list, x: np.ndarray, columns: list[dict]) -> None:
    """Refuse ``inf`` in a numeric column at load: a blank is imputed, infinity never is, and
    every candidate would diverge on it."""
    for j, col in enumerate(columns):
        if col["kind"] != "numeric":
            continue
        # only a value with an "n" (inf) or an "e" (1e999) in it can be infinite
        bad = [(lineno, v) for (lineno, _), v in zip(table, x[:, j])
               if (type(v) is not str or _INF_LETTERS.intersection(v)) and is_infinite(v)]
        if bad:
            lineno, value = bad[0]
            raise DataError(
                f"{path}: {len(bad)} row(s) hold infinite values in column {col['name']!r} "
                f"(the first is line {lineno}: {value!r}); replace them with numbers, or "
                "leave them blank to be imputed"
            )


@hookimpl
def register_loaders(register):
    register(TabularLoader())
