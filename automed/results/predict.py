"""``automed predict``: per-sample class probabilities from a saved model artifact."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from automed.errors import AutomedError, ConfigError, DataError
from automed.results.artifact import LoadedModel
from automed.results.leaderboard import csv_cell

SPLITS = ("all", "train", "test")


class Part(NamedTuple):
    """One part of a file to predict: its split name, samples, true labels (or []), each
    sample's file row where they are not the file's rows in order (else None), and each
    sample's record id (``--id-col``) where the file has that column (else None)."""

    name: str
    x: Any
    labels: list
    rows: list | None = None
    ids: list | None = None


def read_samples(path: Path, options: dict, split: str = "all",
                 config: dict | None = None) -> list[Part]:
    """The parts of ``path`` (see :class:`Part`), read like in training.

    Labeled data goes through the same loader and options as the search; data the loaders
    refuse for want of labels is read as unlabeled samples for the model ``config`` describes
    (see :mod:`automed.data.unlabeled`; without ``config`` only a ``.npz`` of samples).
    """
    from automed.data.unlabeled import read_unlabeled

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if config is None:
        config = {"spec": {"modality": options.get("modality")}, "load_options": options}
    if config.get("loader_plugin"):
        from automed.plugin_manager import get_plugin_manager
        from automed.results.artifact import MissingLoader

        if config["loader_plugin"].get("loader") not in get_plugin_manager().loaders():
            raise MissingLoader(config)
    if (config.get("spec") or {}).get("modality") == "tabular" and not options.get("modality"):
        # A table's model reads records: a new file with a free-text column beside them (a
        # "notes" column) is no text data set (QA: read as one, its labels were dropped unsaid)
        options = {**options, "modality": "tabular"}
    _check_text_column(path, options, config)
    label = _study_label(path, options, config)
    try:
        if label is False:  # the file lacks the study's label column: unlabeled samples
            raise DataError(f"{path}: no label column {(config.get('data') or {})['label']!r}")
        loaded = _load_labeled(path, {**options, **({"label_col": label} if label else {})})
    except DataError as exc:
        unlabeled = read_unlabeled(path, config)
        if unlabeled is None:
            if path.is_dir() and not any(f.is_file() and not f.name.startswith(".")
                                         for f in path.rglob("*")):
                # QA: "no class sub-folders found", though predict needs none
                raise DataError(f"{path}: an empty folder; give a folder of the images (or "
                                "the files) to predict") from None
            raise _as_predict_says(exc) from None
        if label is not False:  # a feature named like a label is no unused label column
            _said_labels_unread(path, options, exc)
        return _unlabeled_parts(path, unlabeled, split, options)
    wanted = (config.get("spec") or {}).get("modality")
    other = wanted and loaded.train.modality != wanted
    if wanted == "image" and loaded.train.modality == "image":
        loaded = _in_model_channels(loaded, config)
    if other or not _fits(loaded.train.x, config):
        # e.g. an unlabeled signal table, whose first column a loader took for the label
        unlabeled = read_unlabeled(path, config)
        if unlabeled is not None:
            return _unlabeled_parts(path, unlabeled, split, options)
        if other:
            raise DataError(f"{path}: reads as {loaded.train.modality} data, but the model was "
                            f"trained on {wanted} data; give it {wanted} samples")
    if _labels_are_ids(path, loaded, options, config):
        # a file without its label column, whose group or id column came first and was read
        # as the label (QA: patient ids written as labels)
        unlabeled = read_unlabeled(path, config)
        if unlabeled is not None:
            return _unlabeled_parts(path, unlabeled, split, options)
    _said_foreign_labels(path, loaded, config)
    loaded, rows = _as_the_search_split(loaded, config)
    if split == "test" and loaded.test is None:
        data = config.get("data") or {}
        if data.get("held_out_rows"):  # a --test-fraction study, but not its file
            raise DataError(f"{path}: not the file the search held rows out of "
                            f"({data.get('source')}: its contents differ), so none of its rows "
                            "is known to be held out; predict that file, or use --split all")
        raise DataError(f"{path}: has no test split; use --split all (or train)")
    if split == "train" and not len(loaded.train):
        raise DataError(f"{path}: every sample is marked test; use --split all (or test)")
    # A file whose rows are all marked test (a locked test file) has no training part.
    parts = [("train", loaded.train)] if len(loaded.train) else []
    if loaded.test is not None:
        parts.append(("test", loaded.test))
    # A new file without a split is no training data: its rows are "all" (QA: labeled new
    # rows, never trained on, were written as "train"); --split train still selects them.
    new = loaded.test is None and loaded.train.fingerprint != (
        config.get("data") or {}).get("fingerprint")
    return [Part("all" if new else name, _in_model_order(d, config),
                 [d.classes[i] for i in d.y], rows.get(name) or _file_rows(d),
                 None if d.ids is None else [str(v) for v in d.ids])
            for name, d in parts if split in ("all", name)]


def _file_rows(d: Any) -> list | None:
    """The file record of each sample of a part a split column made, where the loader said."""
    rows = d.meta.get("file_rows")
    return list(rows) if rows is not None and len(rows) == len(d) else None


def _in_model_channels(loaded: Any, config: dict) -> Any:
    """Labeled images with the model's channel count (QA: a labeled colour folder for a
    grayscale model was read as unlabeled, its labels dropped)."""
    import dataclasses

    from automed.data.dataset import LoadedData
    from automed.data.loaders import to_channels

    shape = tuple((config.get("spec") or {}).get("input_shape") or ())

    def convert(d: Any) -> Any:
        x = to_channels(d.x, shape)
        return d if x is d.x else dataclasses.replace(d, x=x)

    return LoadedData(convert(loaded.train),
                      None if loaded.test is None else convert(loaded.test))


def _as_the_search_split(loaded: Any, config: dict) -> tuple[Any, dict]:
    """The data as the search split it, and the file row of each sample where that differs
    from its place in its part: the file a ``--test-fraction`` search held rows out of (the
    held-out rows its test part, the only ones the search never saw; the rest train), and the
    search's ``--test`` file (all test)."""
    from automed.data.dataset import LoadedData

    data, test = config.get("data") or {}, config.get("test") or {}
    if loaded.test is not None:
        return loaded, {}
    fingerprint = loaded.train.fingerprint
    rows = data.get("held_out_rows")
    if rows and fingerprint == data.get("fingerprint"):
        held = np.zeros(len(loaded.train), dtype=bool)
        held[np.asarray(rows, dtype=np.int64)] = True
        train, test_rows = np.flatnonzero(~held), np.flatnonzero(held)
        return (LoadedData(loaded.train.subset(train), loaded.train.subset(test_rows)),
                {"train": train.tolist(), "test": test_rows.tolist()})
    if test.get("fingerprint") and fingerprint == test["fingerprint"]:
        return LoadedData(loaded.train.subset(np.arange(0)), loaded.train), {}
    return loaded, {}


def _study_label(path: Path, options: dict, config: dict) -> str | bool | None:
    """A table model's label column as its search read it, where it chose it itself: the
    column to read labels from when the file has it, False when it has not (then the file is
    unlabeled), None when nothing is to be said. QA: a new file without the label column
    'label' had its feature 'class' read as the label and refused as lacking 'class'."""
    from automed.data.loaders import records

    label = (config.get("data") or {}).get("label")
    if (options.get("label_col") is not None or not isinstance(label, str)
            or (config.get("spec") or {}).get("modality") != "tabular"
            or path.suffix.lower() not in (".csv", ".tsv") or not path.is_file()):
        return None
    names = records.header(path)
    # as the loader matches a label column: its case aside ('Label' for 'label', review)
    same = [n for n in names if n.lower() == label.lower()]
    if same:
        return label if label in same else same[0]
    state = (config.get("preprocessor") or {}).get("state") or {}
    features = {c.get("name") for c in state.get("columns") or []}
    other = [n for n in names if n.lower() in records.LABEL_NAMES and n not in features]
    if other:
        import warnings

        from automed.errors import DataWarning

        warnings.warn(f"{path}: its column {other[0]!r} is not the study's label column "
                      f"{label!r}; every sample is predicted, with an empty label column",
                      DataWarning, stacklevel=3)
    return False


# Columns new data need not carry: neither is ever a feature.
OPTIONAL_COLUMNS = ("group_col", "id_col")


def _check_text_column(path: Path, options: dict, config: dict) -> None:
    """A text model given a table without a column its search would take for the texts: one
    line naming the fix (QA: "reads as tabular data", or "no label column found")."""
    from automed.data.loaders import records
    from automed.data.loaders.text import TEXT_NAMES

    if ((config.get("spec") or {}).get("modality") != "text" or options.get("text_col")
            or not path.is_file() or path.suffix.lower() not in (".csv", ".tsv")):
        return
    import csv
    import itertools

    names = records.header(path)
    if not names or any(n.lower() in TEXT_NAMES for n in names):
        return
    try:  # a column of sentences among the first rows; a table of numbers is said otherwise
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(itertools.islice(csv.reader(f, delimiter=records.delimiter_for(path)),
                                         1, 51))
    except (OSError, UnicodeDecodeError, csv.Error):
        return
    wordy = any(sum(len(r[j].split()) >= 3 for r in rows if j < len(r)) >= 0.5 * len(rows)
                for j in range(len(names))) if rows else False
    if wordy:
        raise DataError(f"{path}: no column of texts among {', '.join(names[:8])}; the model "
                        f"reads them from a column named {', '.join(TEXT_NAMES[:5])}, ... as "
                        "its search did: name the texts' column 'text'")


def _load_labeled(path: Path, options: dict) -> Any:
    """The file through the training loader; new data need not carry the group or the id
    column (neither is a feature), so a file without them is read without them. (A file with
    them keeps them: only the loaders that take the column read it.)"""
    from automed.data.loaders import load_data

    try:
        return load_data(path, for_prediction=True, **options)
    except (DataError, ConfigError):
        # ConfigError: a file without labels may go to a loader that takes no such column
        # (unlabeled records to the signal-table loader), to be read as unlabeled samples.
        if not any(k in options for k in OPTIONAL_COLUMNS):
            raise
    return load_data(path, for_prediction=True,
                     **{k: v for k, v in options.items() if k not in OPTIONAL_COLUMNS})


def _labels_are_ids(path: Path, loaded: Any, options: dict, config: dict) -> bool:
    """Whether the labels read are none of the model's classes and the file names the
    study's group or id column, which then stood where the label was."""
    from automed.data.loaders import records

    classes = {str(c) for c in config.get("classes") or []}
    if not classes or classes & {str(c) for c in loaded.train.classes}:
        return False
    named = {str(options[k]) for k in ("group_col", "id_col") if options.get(k) is not None}
    meta = loaded.train.meta
    read_from = meta.get("label_col") or meta.get("label_name")
    if isinstance(read_from, str):
        # the loader names the column it read: ids only if that is the group or id column
        # (QA: a text file's real labels, none of the model's classes, were dropped unsaid)
        return read_from in named
    return bool(named) and path.is_file() and bool(named & set(records.header(path)))


def _said_foreign_labels(path: Path, loaded: Any, config: dict) -> None:
    """Labels that are none of the model's classes are most often no labels (QA: a folder of
    new images in one sub-folder 'sub' came out labeled 'sub'; FASTA descriptions became
    labels): said, and written as read."""
    import warnings

    from automed.data.tabular import to_float
    from automed.errors import DataWarning

    classes = [str(c) for c in config.get("classes") or []]
    found = [str(c) for c in loaded.train.classes]
    foreign = [c for c in found if c not in classes]
    spec = config.get("spec") or {}
    values = [to_float(c) for c in foreign]
    numbers = all(v is not None for v in values)
    if (spec.get("modality") == "signal" and classes and foreign == found and numbers
            and (any(not math.isfinite(v) or v != int(v) for v in values)
                 # whole-number series (raw ADC counts): too many distinct "labels" (review)
                 or len(foreign) > max(10, 3 * len(classes)))):
        # QA: unlabeled series one point longer than the model reads: each one's first
        # point was taken for a label (none a class, all fractions) and the rest predicted
        length = (spec.get("input_shape") or [None])[-1]
        shown = ", ".join(map(repr, foreign[:3])) + (" ..." if len(foreign) > 3 else "")
        raise DataError(f"{path}: the first value of each row ({shown}) was read as its label, "
                        f"but none is one of the model's classes ({', '.join(classes)}) and "
                        "they read as points of a series: rows without a label are one point "
                        f"longer than the {length} the model reads; resample them to {length} "
                        "points, or put each row's label first")
    if classes and foreign:
        shown = ", ".join(map(repr, foreign[:5])) + (" ..." if len(foreign) > 5 else "")
        warnings.warn(f"{path}: its label(s) {shown} are none of the model's classes "
                      f"({', '.join(classes)}); the label column holds them as read",
                      DataWarning, stacklevel=2)


def said_about_samples(where: Any, xs: list, config: dict) -> None:
    """What new samples make of their predictions, said as one warning line each (the CLI and
    ``LoadedModel.predict_proba`` alike; QA: the Python API said none of it):

    - a table's categorical values the model never saw in training are read as missing (QA:
      they were encoded as zeros, unsaid), and a column empty in every record is imputed;
    - a sequence without a letter, or longer than the model reads (its tail is cut off).
    """
    import warnings

    from automed.data.tabular import is_missing, unseen_levels
    from automed.errors import DataWarning

    modality = (config.get("spec") or {}).get("modality")
    state = (config.get("preprocessor") or {}).get("state") or {}
    if modality == "tabular":
        arrays = [a for a in (np.asarray(x, dtype=object) for x in xs)
                  if a.ndim == 2 and len(a)]
        columns = state.get("columns") or []
        if not arrays or any(a.shape[1] != len(columns) for a in arrays):
            return  # the model's own check refuses the shape
        for j, col in enumerate(columns):
            values = [v for a in arrays for v in a[:, j]]
            if len(values) > 1 and all(is_missing(v) for v in values):  # one record: its own
                warnings.warn(f"{where}: column {col.get('name')!r} is empty in every record; "
                              "the model reads it as missing (imputed as in training), so the "
                              "predictions lack what it measures", DataWarning, stacklevel=3)
                continue
            new = unseen_levels(col, values)
            if new:
                warnings.warn(f"{where}: column {col.get('name')!r} holds values the model "
                              f"never saw in training ({new}); they are read as missing",
                              DataWarning, stacklevel=3)
    elif modality == "biosequence":
        length = int(state.get("length") or 0)
        seqs = [str(s) for x in xs for s in (x if isinstance(x, (list, tuple, np.ndarray))
                                             else [x])]
        empty = [i for i, s in enumerate(seqs) if not "".join(s.split())]
        long = [i for i, s in enumerate(seqs) if length and len("".join(s.split())) > length]
        for found, what in ((empty, "have no letter: their predictions say nothing of them"),
                            (long, f"are longer than the {length} letters the model reads: "
                                   f"only their first {length} are read")):
            if found:
                shown = ", ".join(map(str, found[:5])) + (" ..." if len(found) > 5 else "")
                warnings.warn(f"{where}: {len(found)} sequence(s) (index {shown}) {what}",
                              DataWarning, stacklevel=3)


# Options of `automed search` that a loader's refusal may name: predict has none of them.
SEARCH_FLAGS = ("--format", "--text-col", "--sequence-col", "--label-col", "--group-col",
                "--modality")


def _as_predict_says(exc: DataError) -> DataError:
    """A loader's refusal as predict's: the options it names are the search's, which predict
    takes from the model (QA: "force one with --format", "name it with --text-col", flags
    predict does not have)."""
    text = str(exc)
    named = [f for f in SEARCH_FLAGS if f in text]
    if not named:
        return exc
    what = "is an `automed search` option" if len(named) == 1 else \
        "are `automed search` options"
    return DataError(f"{text} ({', '.join(named)} {what}: predict reads a file as its study's "
                     "search read the training data; give it a file of that kind)")


def _said_labels_unread(path: Path, options: dict, exc: DataError) -> None:
    """A file with a label column read as unlabeled samples says why (QA: one blank label
    dropped every label of the output, silently)."""
    import warnings

    from automed.data.loaders.records import LABEL_NAMES
    from automed.data.unlabeled import _column, _table_rows
    from automed.errors import DataWarning

    if path.is_dir() or path.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        return
    try:
        names, _ = _table_rows(path)
    except (AutomedError, ValueError, OSError):
        return
    given = options.get("label_col")
    # the column the search read labels from, where it was named; else one named like a label
    label = (str(given) if str(given) in names else None) if given is not None else \
        _column(names, None, LABEL_NAMES)
    if label is not None:
        warnings.warn(f"{path}: its label column {label!r} is not used ({exc}); every sample "
                      "is predicted, with an empty label column", DataWarning, stacklevel=2)


def _unlabeled_parts(path: Path, x: Any, split: str, options: dict) -> list[Part]:
    if split != "all":
        raise DataError(f"{path}: unlabeled samples have no {split} split; use --split all")
    return [Part("all", x, [], None, _unlabeled_ids(path, options.get("id_col"), len(x)))]


def _unlabeled_ids(path: Path, column: Any, n: int) -> list | None:
    """The ``--id-col`` values of a table of unlabeled records, when it has that column; an
    image folder's files (relative paths) and a FASTA file's record ids."""
    from automed.data.loaders.records import first_line
    from automed.data.loaders.sequences import FASTA_SUFFIXES
    from automed.data.unlabeled import _is_image_file, _table_rows, fasta_ids, image_files

    if _is_image_file(path):
        return [path.name] if n == 1 else None
    if path.is_dir():
        files = image_files(path)
        return [f.relative_to(path).as_posix() for f in files] if len(files) == n else None
    if path.suffix.lower() in FASTA_SUFFIXES or (
            path.suffix.lower() == ".txt" and first_line(path).startswith(">")):
        ids = fasta_ids(path)
        return ids if len(ids) == n else None

    if column is None or path.is_dir() or path.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
        return None
    try:
        names, rows = _table_rows(path)
    except (AutomedError, ValueError, OSError):
        return None
    if str(column) not in names or len(rows) != n:
        return None
    return ["" if r.get(str(column)) is None else str(r.get(str(column))).strip() for r in rows]


def _fits(x: Any, config: dict) -> bool:
    spec = config.get("spec") or {}
    shape = getattr(x, "shape", None)
    if spec.get("modality") not in ("image", "signal") or shape is None:
        return True
    return tuple(shape[1:]) == tuple(spec.get("input_shape") or ())


def _in_model_order(d: Any, config: dict) -> Any:
    """Tabular records with their columns in the model's order, found by name."""
    state = (config.get("preprocessor") or {}).get("state") or {}
    wanted = [c.get("name") for c in state.get("columns") or []]
    have = d.meta.get("feature_names")
    if d.modality != "tabular" or not wanted or not have or list(have) == wanted:
        return d.x
    missing = [w for w in wanted if w not in have]
    if missing:
        raise DataError(f"{d.source}: no column(s) {', '.join(map(repr, missing))}; the model "
                        f"was trained on {', '.join(wanted)}")
    return np.asarray(d.x)[:, [list(have).index(w) for w in wanted]]


def predict_file(model_dir: str | Path, data: str | Path, output: str | Path | None = None,
                 *, split: str = "all", device: str = "cpu", stream: Any = None) -> int:
    """Write one CSV row per sample (split, index, label, predicted class, probabilities;
    after the index the record id, for a model searched with ``--id-col``). A text cell that
    starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``, tab, CR) and is no plain
    number is written with a leading ``'`` (see :func:`~automed.results.leaderboard.csv_cell`).

    ``output`` None writes to ``stream`` (default stdout). Returns the number of rows written.
    """
    from automed.searching.devices import resolve_device

    model = LoadedModel(model_dir)
    config = model.reading_config()
    parts = read_samples(Path(data), config.get("load_options") or {}, split, config)
    said_about_samples(Path(data), [part.x for part in parts], config)
    dev = resolve_device(device)
    # Every sample is predicted before a line is written: a refusal (wrong shape, bad values)
    # leaves no header-only CSV behind that would read as an empty prediction.
    try:
        predicted = [(part, model.proba(part.x, device=dev)) for part in parts]
    except DataError as exc:  # QA: "column 'bp': value ... (record 4)" named no file
        if str(exc).startswith(str(data)):
            raise
        raise DataError(f"{data}: {exc}") from None
    # the --id-col ids, an image's file or a FASTA record's id (QA: predictions of images
    # and sequences could not be traced back to their files or records)
    with_ids = ((config.get("load_options") or {}).get("id_col") is not None
                or any(part.ids for part in parts))
    handle = (stream or sys.stdout) if output is None else open(output, "w", newline="",
                                                                encoding="utf-8")
    rows = 0
    try:
        writer = csv.writer(handle)
        # Ids, labels and class names are the data's text: csv_cell keeps a spreadsheet from
        # running one that starts like a formula (=, +, -, @); index and probabilities are
        # numbers and written as they are.
        writer.writerow(["split", "index", *(["id"] if with_ids else []), "label", "predicted",
                         *[csv_cell(f"p_{c}") for c in model.classes]])
        lines = [[part.name, part.rows[i] if part.rows else i,
                  *([csv_cell(part.ids[i]) if part.ids else ""] if with_ids else []),
                  csv_cell(part.labels[i]) if part.labels else "",
                  csv_cell(model.classes[int(p.argmax())]), *[f"{v:.6g}" for v in p]]
                 for part, proba in predicted for i, p in enumerate(proba)]
        if predicted and all(part.rows for part, _ in predicted):
            lines.sort(key=lambda line: line[1])  # parts of one file: the file's own order
        writer.writerows(lines)
        rows = len(lines)
    finally:
        if output is not None:
            handle.close()
    return rows
