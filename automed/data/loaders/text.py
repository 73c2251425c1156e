"""Labeled texts: JSONL objects, or CSV/TSV rows, with a text field and a label field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automed.data.dataset import LoadedData
from automed.data.loaders import records
from automed.data.loaders.base import Loader
from automed.data.tokens import tokenize
from automed.errors import DataError
from automed.hookspecs import hookimpl

TEXT_NAMES = ("text", "abstract", "document", "sentence", "note", "notes", "report", "content",
              "body")


class TextLoader(Loader):
    """Reads ``.jsonl`` (one object per line) and ``.csv``/``.tsv`` files with a header.

    The text field is ``text_col`` or the first of ``text``, ``abstract``, ``document``, ...;
    ``text_col`` may name several fields (title and abstract), joined in that order with a
    line break. The label is ``label_col`` or the first of ``label``, ``class``, ``target``,
    .... ``group_col`` names a patient or study id for grouped CV; ``id_col`` a record id that
    must be unique (a record listed twice would sit in two folds). A
    ``split`` field marks locked test rows (``test``); every other row is training data (the
    search cross-validates, so ``val``/``dev`` rows join training). A CSV/TSV is claimed only
    when its header names a text column, so numeric tables go to the other loaders.
    """

    name = "text"
    description = "labeled texts: .jsonl objects or .csv/.tsv with text and label columns"
    suffixes = (".jsonl", ".csv", ".tsv")
    modalities = frozenset({"text"})
    options = frozenset({"label_col", "group_col", "text_col", "id_col"})

    def sniff(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if path.is_dir() or suffix not in self.suffixes:
            return False
        if suffix == ".jsonl":
            return True
        return any(n.lower() in TEXT_NAMES for n in records.header(path))

    def explain(self, path: Path) -> str:
        if path.suffix.lower() == ".jsonl":
            return "it is a .jsonl file of records"
        # the column load reads, found as it finds it (QA: the first in file order was named,
        # 'note', where load read 'text'); the text column and the columns left out are said
        # from what load read (meta "text_col", "unread_columns")
        return "its header names a text column"

    def load(self, path: Path, **options: Any) -> LoadedData:
        modality = options.get("modality") or "text"
        if modality != "text":
            raise DataError(f"{path}: the text loader reads text, not {modality}; drop "
                            "--format text or use --modality text")
        if path.suffix.lower() == ".jsonl":
            rows = records.read_jsonl(path)
            names = sorted({k for _, r in rows for k in r})
        else:
            names, table = records.read_table(path)
            rows = [(lineno, dict(zip(names, values))) for lineno, values in table]
        wanted = options.get("text_col")
        wanted = [None] if wanted is None else (
            [wanted] if isinstance(wanted, (str, int)) else list(wanted))
        text_cols = [records.find_column(path, names, w, TEXT_NAMES, "text", "--text-col")
                     for w in wanted]
        text_col = ", ".join(text_cols)
        id_col = (None if options.get("id_col") is None else records.find_column(
            path, names, options["id_col"], (), "id", "--id-col"))
        label_col = records.find_column(path, names, options.get("label_col"),
                                        records.LABEL_NAMES, "label", "--label-col")
        split_col = records.split_column(names)
        group_col = records.optional_column(path, names, options.get("group_col"), "group",
                                            "--group-col")
        # QA: --text-col label put the answer into the text (CV 1.0 on random labels)
        for role, column in (("label", label_col), ("split", split_col), ("group", group_col),
                             ("id", id_col)):
            if column is not None and column in text_cols:
                raise DataError(f"{path}: --text-col {column!r} is the {role} column; a text "
                                f"column must not hold the {role}: drop it from --text-col")
        texts, labels, is_test, groups = [], [], [], []
        for lineno, record in rows:
            if label_col not in record:
                raise DataError(f"{path}: line {lineno} has no {label_col!r} field; give every "
                                "record a label")
            labels.append(records.label_of(path, lineno, record[label_col], label_col))
            odd = next((c for c in text_cols if isinstance(record.get(c), (list, dict))), None)
            if odd is not None:  # QA: a list was read as its Python text, brackets and all
                raise DataError(f"{path}: line {lineno}: the {odd!r} field is a JSON "
                                f"{'list' if isinstance(record[odd], list) else 'object'}, "
                                "not text; give it as one string (join the parts)")
            text = "\n".join(str(record[c]) for c in text_cols if record.get(c) is not None)
            if group_col is not None:
                groups.append(records.group_of(path, lineno, record.get(group_col), group_col))
            if not tokenize(text):
                raise DataError(f"{path}: line {lineno}: the {text_col!r} field is empty after "
                                "tokenization (no letters or digits); fill or drop that row")
            texts.append(text)
            is_test.append(split_col is not None and records.is_test_split(record.get(split_col)))
        if id_col is not None:
            records.check_unique_ids(path, [(n, r.get(id_col)) for n, r in rows], id_col,
                                     groups if group_col is not None else None, group_col)
        meta = {"text_col": text_col, "label_col": label_col}
        meta.update({k: v for k, v in (("group_col", group_col), ("id_col", id_col)) if v})
        # The other columns are not read (QA: a "notes" column beside clinical features made
        # a text dataset of the table and silently dropped every feature): named.
        used = {*text_cols, label_col, split_col, group_col, id_col}
        unread = [n for n in names if n and n not in used]
        if unread:
            meta["unread_columns"] = unread
        ids = None if id_col is None else [
            "" if r.get(id_col) is None else str(r.get(id_col)).strip() for _, r in rows]
        return records.build(path, "text", texts, labels, is_test, meta=meta,
                             groups=groups if group_col is not None else None, ids=ids)


@hookimpl
def register_loaders(register):
    register(TextLoader())
