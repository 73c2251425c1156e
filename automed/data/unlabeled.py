"""Samples without labels, for ``automed predict``: every loader format, read like in training.

The loaders read labeled data and refuse a file without labels. A saved model knows what its
samples look like (modality, input shape, text or sequence column, feature names), so a file
the loaders refuse can still be read as unlabeled samples here:

- ``.npz``: an ``x``, ``X`` or ``images`` array (or ``train_images``/``test_images``) alone;
- signal tables (``.txt``/``.tsv``/``.csv``): rows of exactly the model's series length,
  with an optional header row;
- image folders: the images directly in the folder (or in sub-folders), sorted by path;
- text (``.jsonl``/``.csv``/``.tsv``): the training text column, or the first known name;
- biosequences: FASTA records (headers need no label), or a CSV/TSV sequence column;
- tabular records: the training feature columns, found by name (extra columns are ignored).

Every reader returns samples in the modality's natural form (see
:class:`automed.data.dataset.Dataset`) or None when the file is not of that kind.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from automed.errors import AutomedError, DataError


def read_unlabeled(path: Path, config: dict[str, Any]) -> Any | None:
    """Unlabeled samples of ``path`` for the model described by ``config``, or None.

    None also when the file cannot be read this way at all: the caller then reports the
    loader's own error, which names the problem with the labeled reading.
    """
    try:
        return _read(path, config)
    except AutomedError:
        raise
    except (ValueError, OSError, KeyError, IndexError, TypeError, zipfile.BadZipFile):
        return None


def _read(path: Path, config: dict[str, Any]) -> Any | None:
    spec = config.get("spec") or {}
    modality = spec.get("modality")
    shape = tuple(spec.get("input_shape") or ())
    options = config.get("load_options") or {}
    if path.is_dir():
        return _images(path, shape) if modality == "image" else None
    suffix = path.suffix.lower()
    if modality == "image" and _is_image_file(path):  # one image (QA: "unknown format")
        return _images(path, shape)
    if suffix == ".npz":
        return _npz(path, modality)
    if modality == "signal" and suffix in (".txt", ".tsv", ".csv"):
        return _signal_table(path, shape, options)
    if modality == "text" and suffix in (".jsonl", ".csv", ".tsv"):
        return _texts(path, options)
    if modality == "biosequence":
        return _sequences(path, options)
    if modality == "tabular" and suffix in (".csv", ".tsv"):
        return _records(path, config)
    return None


def _npz(path: Path, modality: str | None) -> np.ndarray | None:
    from automed.data.loaders.npz import _check_declared_size, _shape

    if not zipfile.is_zipfile(path):
        return None
    _check_declared_size(path)
    with np.load(path, allow_pickle=False) as archive:
        key = next((k for k in ("x", "X", "images", "train_images", "test_images")
                    if k in archive.files), None)
        if key is None:
            return None
        x = archive[key]
    x = _shape(x, modality, str(path))
    _check_finite(x, str(path))
    return x


def _check_finite(x: np.ndarray, source: str) -> None:
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataError(f"{source}: sample {row} has NaN or infinite values; clean or drop it")


def _signal_table(path: Path, shape: tuple, options: dict | None = None
                  ) -> np.ndarray | None:
    """Rows of ``length`` numbers (an optional header row is skipped; a column it names as the
    study's group or id column is no value: QA, its patient ids were read as labels)."""
    from automed.data.loaders.records import read_text
    from automed.data.loaders.signals import _delimiter, _split, _unquote

    if len(shape) != 2 or shape[0] != 1:
        return None
    length = shape[1]
    lines = [(i, ln) for i, ln in enumerate(read_text(path).splitlines(), 1) if ln.strip()]
    if not lines:
        return None
    delimiter = _delimiter(path, lines[0][1])
    first = [_unquote(v).strip() for v in _split(lines[0][1], delimiter)]
    named = {str(options.get(k)) for k in ("group_col", "id_col")
             if (options or {}).get(k) is not None}
    skip = {j for j, name in enumerate(first) if name in named}
    rows = []
    for n, (lineno, line) in enumerate(lines):
        fields = [_unquote(v) for j, v in enumerate(_split(line, delimiter)) if j not in skip]
        try:
            values = [float(v) for v in fields]
        except ValueError:
            if n == 0:
                continue  # a header row
            return None
        rows.append((lineno, values))
    widths = {len(v) for _, v in rows}
    if len(widths) == 1 and widths != {length} and widths != {length + 1}:
        # QA: predict said "(1, 79)" of rows of 80 values (a label taken off first)
        raise DataError(f"{path}: its rows hold {widths.pop()} values; the model reads series "
                        f"of {length} (or {length + 1} with the label first); resample them "
                        f"to {length}")
    if widths != {length}:
        return None
    for lineno, values in rows:
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{path}: line {lineno} has NaN or infinite values; clean or drop "
                            "that row")
    return np.asarray([v for _, v in rows], dtype=np.float32)[:, None, :]


def _is_image_file(path: Path) -> bool:
    from automed.data.loaders.images import IMAGE_SUFFIXES

    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, hidden files and folders aside, in the order their
    samples are read (and their ids, the paths relative to ``folder``, written by predict);
    an image file alone is itself."""
    from automed.data.loaders.images import IMAGE_SUFFIXES, refuse_unread

    if _is_image_file(folder):
        return [folder]
    files = [f for f in folder.rglob("*") if f.is_file()
             and not any(p.startswith(".") for p in f.relative_to(folder).parts)]
    refuse_unread(folder, files)  # QA: 2 DICOM scans of 3 files got no prediction, unsaid
    return sorted(f for f in files if f.suffix.lower() in IMAGE_SUFFIXES)


def fasta_ids(path: Path) -> list[str]:
    """Each FASTA record's id: its header's first word (before any space)."""
    from automed.data.loaders import records

    return [(line[1:].split() or [""])[0] for line in records.read_text(path).splitlines()
            if line.startswith(">")]


def _images(folder: Path, shape: tuple) -> np.ndarray | None:
    """The images under ``folder`` (hidden files and folders aside), read as the image-folder
    loader reads them, with the model's channel count: colour images for a grayscale model by
    luminance, grayscale ones for a colour model by repeating (QA: colour images for a
    grayscale model came out (1, H, W, 3), "resize the data")."""
    from automed.data.loaders.images import (
        _check_one_depth,
        _probe,
        decode,
        readable,
        refuse_unreadable,
    )

    files = image_files(folder)
    if not files:
        return None
    # Every unreadable image named at once, as in training (QA: one per run)
    bad: list[tuple[Path, str]] = []
    probes = readable(files, _probe, bad)
    rgb = len(shape) == 3 and shape[0] == 3
    decoded = readable(list(probes), lambda f: decode(f, rgb), bad)
    refuse_unreadable(folder, bad)
    # One bit depth, as in training; the model's preprocessor refuses the other kind.
    _check_one_depth(folder, files, [deep for _, deep in probes.values()])
    first, *_ = decoded.items()
    odd = next(((f, a) for f, a in decoded.items() if a.shape[1:] != first[1].shape[1:]), None)
    if odd is not None:  # the two files named, as training names them (QA: sizes alone)
        (h0, w0), (h1, w1) = first[1].shape[1:], odd[1].shape[1:]
        raise DataError(f"{folder}: images differ in size: {first[0].relative_to(folder)} is "
                        f"{w0}x{h0} but {odd[0].relative_to(folder)} is {w1}x{h1}; resize them "
                        "like the training images")
    return np.stack(list(decoded.values()))


def _table_rows(path: Path) -> tuple[list[str], list[dict]]:
    from automed.data.loaders import records

    if path.suffix.lower() == ".jsonl":
        rows = [r for _, r in records.read_jsonl(path)]
        names = sorted({k for r in rows for k in r})
        return names, rows
    names, table = records.read_table(path)
    if len(set(names)) != len(names):  # as training refuses it (QA: the last copy was used)
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: column {dup!r} appears twice in the header; rename one")
    return names, [dict(zip(names, values)) for _, values in table]


def _column(names: list[str], wanted: Any, candidates: tuple[str, ...]) -> str | None:
    if wanted is not None and str(wanted) in names:
        return str(wanted)
    lower = {n.lower(): n for n in names}
    return next((lower[c] for c in candidates if c in lower), None)


def _strings(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _texts(path: Path, options: dict) -> np.ndarray | None:
    from automed.data.loaders.text import TEXT_NAMES

    names, rows = _table_rows(path)
    wanted = options.get("text_col")
    if isinstance(wanted, (list, tuple)) and len(wanted) > 1:
        # several text columns, joined in order as the text loader joins them (QA: predict
        # read only one of them, or none)
        cols = [str(w) for w in wanted]
        if not all(c in names for c in cols):
            return None
    else:
        if isinstance(wanted, (list, tuple)):
            wanted = wanted[0] if wanted else None
        col = _column(names, wanted, TEXT_NAMES)
        if col is None:
            return None
        cols = [col]
    texts = ["\n".join(str(r[c]) for c in cols if r.get(c) is not None) for r in rows]
    _said_wordless(path, ", ".join(cols), texts)
    return _strings(texts)


def _said_wordless(path: Path | str, column: str, texts: list[str]) -> None:
    """Texts without a word (empty, or a record without the field) get a prediction that
    says nothing of them: said, with their rows (QA: predicted at 0.5 / 0.5, unsaid; a search
    refuses such rows)."""
    import warnings

    from automed.data.tokens import tokenize
    from automed.errors import DataWarning

    empty = [i for i, text in enumerate(texts) if not tokenize(text)]
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
        where = column if column.startswith("the ") else repr(column)
        warnings.warn(f"{path}: {len(empty)} record(s) have no word in {where} (index "
                      f"{shown}): their predictions say nothing of them", DataWarning,
                      stacklevel=2)


def _sequences(path: Path, options: dict) -> np.ndarray | None:
    from automed.data.loaders import records
    from automed.data.loaders.sequences import FASTA_SUFFIXES, SEQUENCE_NAMES

    suffix = path.suffix.lower()
    if suffix in FASTA_SUFFIXES or records.first_line(path).startswith(">"):
        seqs: list[str] = []
        current: list[str] | None = None
        for line in records.read_text(path).splitlines():
            if line.startswith(">"):
                if current is not None:
                    seqs.append("".join(current))
                current = []
            elif line.strip() and not line.startswith(";") and current is not None:
                current.append("".join(line.split()).upper())
        if current is not None:
            seqs.append("".join(current))
        return _strings(seqs) if seqs else None
    if suffix not in (".csv", ".tsv"):
        return None
    names, rows = _table_rows(path)
    col = _column(names, options.get("sequence_col"), SEQUENCE_NAMES)
    if col is None:
        return None
    return _strings(["".join(str(r.get(col) or "").split()).upper() for r in rows])


def _records(path: Path, config: dict) -> np.ndarray | None:
    state = (config.get("preprocessor") or {}).get("state") or {}
    wanted = [c.get("name") for c in state.get("columns") or []]
    if not wanted:
        return None
    names, rows = _table_rows(path)
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(map(repr, missing))}; the model was "
                        f"trained on {', '.join(wanted)}")
    return np.array([[str(r[w]).strip() for w in wanted] for r in rows], dtype=object)
