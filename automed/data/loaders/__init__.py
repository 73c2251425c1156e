"""Turn a path into data: pick the loader by ``--format`` or by the file, then check the result."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from automed.data.dataset import Dataset, LoadedData
from automed.data.loaders.base import Loader
from automed.errors import ConfigError, DataError
from automed.spec import MODALITIES

__all__ = ["Loader", "load_data", "find_loader", "check_label_column", "check_data"]


def find_loader(path: Path, format: str | None = None, modality: str | None = None,
                label_col: Any = None) -> Loader:
    """The loader for ``path``: ``format`` if given, else the first that sniffs the file (or
    claims it by the column ``label_col`` names: records whose label is named by
    ``--label-col`` and no other column is text).

    A forced ``modality`` restricts the choice to loaders producing it, asked in order through
    ``accepts_forced``; failing that, the first claiming the suffix (the user said what it is).
    """
    from automed.plugin_manager import get_plugin_manager

    loaders = get_plugin_manager().loaders()
    if format:
        if format not in loaders:
            raise ConfigError(
                f"unknown format {format!r}; available: {', '.join(sorted(loaders))}"
            )
        return loaders[format]
    if modality:
        able = [lo for lo in loaders.values() if not lo.modalities or modality in lo.modalities]
        for loader in able:
            if loader.accepts_forced(path):
                return loader
        for loader in able:
            if path.suffix.lower() in loader.suffixes:
                return loader
    named = label_col if isinstance(label_col, str) else None
    # A plugin's loaders are asked first: the built-in image-folder loader claims any folder
    # of sub-folders, so a plugin's folder loader was never asked (QA: a folder of .npy files)
    ordered = sorted(loaders.values(), key=lambda lo: type(lo).__module__.startswith("automed."))
    for loader in ordered:
        if loader.sniff(path) or (named is not None and loader.claims_label(path, named)):
            return loader
    suffixes = sorted({s for lo in loaders.values() for s in lo.suffixes})
    claiming = [lo for lo in loaders.values() if path.suffix.lower() in lo.suffixes]
    if claiming and not path.is_dir():  # a known suffix whose contents no loader recognised
        raise DataError(
            f"{path}: not a {path.suffix} file automed recognises ("
            f"{'; '.join(f'{lo.name}: {lo.description}' for lo in claiming)}); check its "
            f"contents, or force a reader with --format ({', '.join(sorted(loaders))})"
        )
    hint = format_hint(path)
    if hint:  # a format people have, said with its fix (QA: "unknown data format '.dcm'")
        raise DataError(f"{path}: {hint}")
    raise DataError(
        f"{path}: unknown data format {path.suffix or '(no suffix)'!r}; automed reads "
        f"{', '.join(suffixes)} files and folders of class sub-folders, or force one with "
        f"--format ({', '.join(sorted(loaders))}); a loader plugin reads others "
        "(docs/plugins.md)"
    )


_ARRAYS = ("an array file: save the samples and labels with numpy.savez(\"data.npz\", x=x, "
           "y=y) and give the .npz")
_CONVERT = ("convert it (to 16-bit PNG images in class sub-folders, or an .npz of x and y), "
            "or read it with a loader plugin (docs/plugins.md)")
# Formats automed does not read, with what to do instead (QA: each was "unknown data format").
FORMAT_HINTS = {
    ".dcm": f"DICOM is not read directly; {_CONVERT}",
    ".nii": f"NIfTI volumes are not read; save 2-D slices, or {_CONVERT}",
    ".nii.gz": f"NIfTI volumes are not read; save 2-D slices, or {_CONVERT}",
    ".mha": f"a 3-D volume format automed does not read; {_CONVERT}",
    ".nrrd": f"a 3-D volume format automed does not read; {_CONVERT}",
    ".svs": "a whole-slide image: cut it into tiles (PNG/TIFF in class sub-folders) first",
    ".ndpi": "a whole-slide image: cut it into tiles (PNG/TIFF in class sub-folders) first",
    ".edf": ("EDF recordings are not read directly; cut them into fixed-length windows and "
             "save an .npz of x (N, channels, length) and y, or use a loader plugin "
             "(docs/plugins.md)"),
    ".bdf": "BDF recordings are not read directly; save an .npz of x (N, channels, length) and y",
    ".hea": ("a WFDB record: cut it into fixed-length windows and save an .npz of x (N, "
             "channels, length) and y (the wfdb package reads it)"),
    ".mat": _ARRAYS, ".h5": _ARRAYS, ".hdf5": _ARRAYS, ".npy": _ARRAYS,
    ".xlsx": "an Excel workbook: save the sheet as CSV UTF-8 and give the .csv",
    ".xls": "an Excel workbook: save the sheet as CSV UTF-8 and give the .csv",
    ".parquet": "save the table as .csv (pandas: df.to_csv(\"data.csv\", index=False))",
    ".feather": "save the table as .csv (pandas: df.to_csv(\"data.csv\", index=False))",
    ".json": "JSON is read one record per line: rename a JSON Lines file to .jsonl, or save "
             "the records as .csv",
    ".fastq": "FASTQ reads: convert to FASTA (e.g. seqtk seq -a reads.fastq > reads.fa) with "
              "the class in each header",
    ".gb": "GenBank: convert to FASTA (e.g. Biopython SeqIO.convert) with the class in each header",
    ".gbk": "GenBank: convert to FASTA (e.g. Biopython SeqIO.convert) with the class in each "
            "header",
    ".sto": "a Stockholm alignment: convert to FASTA without gaps, the class in each header",
    ".docx": "a document: put the texts in a .jsonl (one {\"text\": ..., \"label\": ...} per "
             "line) or a .csv with text and label columns",
    ".pdf": "a document: put the texts in a .jsonl (one {\"text\": ..., \"label\": ...} per "
            "line) or a .csv with text and label columns",
}


def format_hint(path: Path) -> str | None:
    """What to do with a file of a format automed does not read (None: no advice)."""
    from automed.data.loaders.images import IMAGE_SUFFIXES

    name = path.name.lower()
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return ("one image: automed reads a folder of class sub-folders of images "
                "(normal/a.png, pneumonia/b.png, ...); give the folder")
    if path.is_file() and not path.suffix and _is_dicom(path):
        return f"a DICOM file (no suffix, as PACS exports name them); {_CONVERT}"
    return next((hint for suffix, hint in FORMAT_HINTS.items() if name.endswith(suffix)), None)


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def load_data(
    path: str | Path,
    *,
    format: str | None = None,
    modality: str | None = None,
    test: str | Path | None = None,
    groups: str | Path | None = None,
    for_prediction: bool = False,
    **options: Any,
) -> LoadedData:
    """Load training data (and its test split, or ``test``) and check it is fit for a search.

    ``groups`` is a text file with one patient or study id per training sample, in the order
    the loader reads them: the fallback for formats without a group column or key.
    ``for_prediction`` reads data to predict on, never data to search: every sample may be
    marked test (an empty training part, e.g. a locked test file) and one class may be all
    its labels.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the path")
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
    options = {k: v for k, v in options.items() if v is not None}
    given = modality
    if modality is None and format is None:
        # --text-col or --sequence-col says what the file holds, as --modality would (QA: a
        # 'transcription' column was read as a category, and --text-col was refused by the
        # tabular loader)
        modality = ("text" if "text_col" in options else
                    "biosequence" if "sequence_col" in options else None)
    _check_file_form(path, format, modality)
    loader = find_loader(path, format, modality, options.get("label_col"))
    _check_modality(loader, path, format, modality)
    _check_options(loader, options)
    from automed.data.loaders import records

    token = records.PREDICTING.set(for_prediction)
    try:
        data = _load(loader, path, modality, options)
    finally:
        records.PREDICTING.reset(token)
    if not len(data.train) and data.test is not None and not for_prediction:
        if path.suffix.lower() == ".npz":
            raise DataError(f"{path}: holds test arrays only (no train_images/train_labels or "
                            "x/y); give it as --test beside a training file")
        raise DataError(f"{path}: every row is marked test; mark some rows train (or drop the "
                        "split column), or give this file as --test")
    data.train.meta["reason"] = (
        _reason(loader, path, format, given, data.train.modality, options.get("label_col"))
        if given is not None or modality is None else
        f"read as {data.train.modality} by the {loader.name} loader because "
        f"--{'text' if modality == 'text' else 'sequence'}-col names its column")
    data.train.meta["loader"] = loader.name  # a saved model reads new data with it again
    if options.get("label_col") is not None:
        data.train.meta["label_given"] = True  # the label column is the user's choice
    if test is not None:
        test_path = Path(test)
        if not test_path.exists():
            raise DataError(f"{test_path}: no such test file; check the --test path")
        if test_path.resolve() == path.resolve():
            raise ConfigError(f"--test {test_path} is the training data itself; give a "
                              "separate test file, or --test-fraction 0.2 to carve one out")
        if data.test is not None:
            raise ConfigError(f"{path} brings its own test split ({len(data.test)} samples); "
                              "drop --test to score on it, or give training data without one")
        # The test file is the same kind of data: its own loader only if this one declines.
        test_loader = loader if loader.sniff(test_path) else find_loader(
            test_path, format, modality, options.get("label_col"))
        _check_modality(test_loader, test_path, format, modality)
        _check_options(test_loader, options)
        test_data = _load(test_loader, test_path, modality, options)
        data = LoadedData(data.train, _merge_test(test_data))
    if groups is not None:
        if data.train.groups is not None:  # e.g. an .npz with a groups key: which ids count?
            raise ConfigError(f"{path} brings its own group ids and --groups {groups} gives "
                              "others; keep one (drop --groups to use the file's own)")
        data = _with_groups(data, Path(groups))
    return _checked(data, for_prediction)


COMPRESSED = {".gz": "gunzip", ".bz2": "bunzip2", ".xz": "unxz", ".zip": "unzip"}


def _check_file_form(path: Path, format: str | None, modality: str | None = None) -> None:
    """Refuse, in one line naming the fix, a file whose form no built-in loader reads but
    whose reader's own error would mislead: a compressed file, a semicolon-separated CSV, a
    tab-separated .txt table with a header. A plugin loader may read these: one claiming the
    suffix, or given with --format, is left to it."""
    from automed.plugin_manager import get_plugin_manager

    if not path.is_file():
        return
    loaders = get_plugin_manager().loaders()
    if format is not None and (format not in loaders or not type(
            loaders[format]).__module__.startswith("automed.")):
        return  # an unknown format is find_loader's to name
    suffix = path.suffix.lower()
    if suffix in COMPRESSED and not any(suffix in lo.suffixes or "".join(
            path.suffixes[-2:]).lower() in lo.suffixes for lo in loaders.values()) \
            and not path.name.lower().endswith(".nii.gz"):  # a NIfTI file: find_loader says
        # QA: a .csv.gz was an "unknown data format '.gz'", then "not a UTF-8 text file"
        tool = COMPRESSED[suffix]
        raise DataError(f"{path}: a compressed ({suffix}) file; decompress it first (e.g. "
                        f"{tool} {path}) and give automed the file inside")
    if suffix not in (".csv", ".txt", ".tsv", ".tab", ".jsonl"):
        return
    from automed.data.loaders import records
    from automed.data.loaders.signals import series_names

    first = records.first_line(path)  # "" when unreadable: the loader names the encoding
    if "\x00" in first or (len(first) >= records.FIRST_LINE_CHARS and not first.endswith("\n")):
        # QA: 1 GB of zero bytes named .csv was read whole (5.5 GB of memory, 50 s)
        what = ("holds NUL bytes" if "\x00" in first else
                f"has a first line of over {records.FIRST_LINE_CHARS:,} characters")
        raise DataError(f"{path}: {what}: not a text table; check that it is the file you "
                        "meant (a binary or damaged file?)")
    if suffix not in (".csv", ".txt"):
        return
    if ";" in first and "," not in first and "\t" not in first:
        # QA: a European Excel export ("patient_id;age;...", decimal commas) read as one
        # column: "line 2 has 2 values but line 1 has 1", "no column named 'outcome'"
        raise DataError(f"{path}: the file is semicolon-separated (a European Excel export?); "
                        "re-save it comma-separated (Excel: Save As \"CSV UTF-8 (comma "
                        "delimited)\"), with decimal points, not commas")
    names = [n.strip() for n in first.split("\t")]
    words = [n for n in names if n and not records.is_number(n)]
    if (suffix == ".txt" and format is None and "\t" in first and "," not in first
            and len(words) >= 2 and records.named(names) and not series_names(words)):
        # QA: read as a signal file, "signal values must be numbers", and the hints failed
        from automed.data.loaders.text import TEXT_NAMES

        # texts are read by the text loader (QA: "--format tabular" read them as categories)
        kind = "text" if modality == "text" or (modality is None and any(
            n.lower() in TEXT_NAMES for n in names)) else "tabular"
        raise DataError(f"{path}: looks like a tab-separated table with a header "
                        f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); rename "
                        f"it .tsv, or give --format {kind}")
    spaced = first.split()
    words = [n for n in spaced if not records.is_number(n)]
    if (suffix == ".txt" and format is None and "\t" not in first and "," not in first
            and not first.lstrip().startswith((">", ";", "@"))  # FASTA headers
            and len(words) >= 2 and records.named(spaced) and not series_names(words)):
        # QA: a fixed-width table was read as a signal file: "signal values must be numbers"
        raise DataError(f"{path}: looks like a space-aligned table with a header "
                        f"({', '.join(spaced[:4])}{', ...' if len(spaced) > 4 else ''}); save "
                        "it as CSV (comma-separated) and give the .csv")


def _load(loader: Loader, path: Path, modality: str | None, options: dict) -> LoadedData:
    """``loader.load``, held to the loader contract: a plugin loader that raises anything but
    automed's own errors, or returns something else than LoadedData, is named in one line
    (QA: a third-party loader's KeyError ended the search in a traceback)."""
    import inspect

    from automed.errors import AutomedError, PluginError

    try:
        where = inspect.getsourcefile(type(loader)) or type(loader).__module__
    except TypeError:
        where = type(loader).__module__
    try:
        data = loader.load(path, modality=modality, **options)
    except AutomedError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's bug, named with its loader
        said = str(exc).splitlines()[0] if str(exc) else ""
        raise PluginError(f"loader {loader.name!r} ({where}) failed on "
                          f"{path}: {type(exc).__name__}: {said}; fix the loader, or read the "
                          "file with another: --format NAME") from None
    if not isinstance(data, LoadedData) or not isinstance(data.train, Dataset) or not (
            data.test is None or isinstance(data.test, Dataset)):
        raise PluginError(f"loader {loader.name!r} ({where}) returned "
                          f"{type(data).__name__} for {path}, not LoadedData(train, test); fix "
                          "the loader, or read the file with another: --format NAME")
    return data


def check_data(data: LoadedData, *, for_prediction: bool = False) -> LoadedData:
    """Data built in memory (the Python API) checked as :func:`load_data` checks a file's: a
    test set of the training data's kind and shape, on its classes (re-indexed onto them: a
    test set listing the classes in another order scored 0.0 where the truth was 1.0), no
    NaN or infinite samples, two classes or more for training; images and signals in the
    loaders' layout ((N, H, W) images as (N, 1, H, W), (N, L) signals as (N, 1, L))."""
    if not isinstance(data, LoadedData):
        raise ConfigError(f"expected LoadedData(train, test=None), got {type(data).__name__}")
    data = LoadedData(_in_layout(data.train), None if data.test is None else
                      _in_layout(data.test))
    return _checked(data, for_prediction)


# C0 and C1 control characters and the bidirectional overrides: in a class or column name
# they reach terminals (escape sequences), reports and model cards (QA: a class name holding
# ESC [2J cleared the screen of whoever ran `automed show`; U+202E showed "gnp.exe" as
# "exe.png").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _refuse_control(data: LoadedData) -> None:
    train = data.train
    names = [("class", c) for c in train.classes] + [
        ("column", c) for c in (train.meta.get("feature_names") or [])]
    if train.meta.get("label_name") is not None:
        names.append(("column", train.meta["label_name"]))
    for kind, name in names:
        found = _CONTROL.search(str(name))
        if found:
            raise DataError(f"{train.source or 'the data'}: {kind} name {str(name)[:40]!r} "
                            f"holds the control character {found.group()!r}; remove it from "
                            f"the {'labels' if kind == 'class' else 'header'}")


def _checked(data: LoadedData, for_prediction: bool) -> LoadedData:
    _refuse_control(data)
    # A loader plugin's (N, L) signals or (N, H, W) images get their channel axis, as the
    # built-in loaders give them (QA: `plugins check --data` passed such a loader, and the
    # search then crashed in the signal preprocessor with a traceback).
    data = LoadedData(_channelled(data.train), None if data.test is None else
                      _channelled(data.test))
    if data.test is not None:
        data = LoadedData(data.train, _check_test(data.train, data.test))
    for part in (data.train, data.test):
        _check_finite(part)
    if data.train.n_classes < 2 and len(data.train) and not for_prediction:
        raise DataError(
            f"{data.train.source or 'the training data'}: only one class "
            f"({data.train.classes[0]!r}) in the training data; a classifier needs at least two"
        )
    return data


def _channelled(d: Dataset) -> Dataset:
    import numpy as np

    if isinstance(d.x, np.ndarray) and d.x.dtype.kind in "biuf" and (
            (d.modality == "signal" and d.x.ndim == 2) or (d.modality == "image"
                                                           and d.x.ndim == 3)):
        return dataclasses.replace(d, x=d.x[:, None])
    return d


def _in_layout(d: Dataset) -> Dataset:
    import numpy as np

    from automed.data.loaders.npz import _shape

    if d.modality not in ("image", "signal") or not isinstance(d.x, np.ndarray):
        return d
    x = _shape(d.x, d.modality, d.source or "the samples")
    if x is d.x:
        return d
    return Dataset(x, d.y, d.classes, d.modality, d.source, d.groups, d.meta, d.ids)


def _reason(loader: Loader, path: Path, format: str | None, modality: str | None,
            result: str, label_col: Any = None) -> str:
    """"read as <modality> because ...": how the data was understood, for the first line."""
    import inspect

    if format:
        why = f"--format {format} was given"
    elif modality:
        why = f"--modality {modality} was given"
    else:
        try:
            # a loader whose explain takes the label column says where it took the label
            takes = label_col is not None and "label_col" in inspect.signature(
                loader.explain).parameters
            why = loader.explain(path, label_col=label_col) if takes else loader.explain(path)
        except Exception:  # noqa: BLE001 - a plugin loader's explanation is a courtesy
            why = f"the {loader.name} loader claimed it"
    return f"read as {result} by the {loader.name} loader because {why}"


# A label column with this many distinct values, and fewer than 3 rows per value, is a feature.
MANY_CLASSES = 30
# ... and a label of this many distinct non-integer numbers is a measurement, however many rows.
MEASURED = 10


def check_label_column(train: Dataset) -> None:
    """Refuse a label column that is evidently a feature (hundreds of distinct values) with a
    message saying so, instead of letting the fold check list hundreds of "classes".

    Called by the fold check (training), not by ``load_data``: data to predict on may hold a
    few samples of many classes.
    """
    n, k = len(train), train.n_classes
    numbers = [c for c in train.classes if _float(c) is not None] if k >= MEASURED else []
    kind = (" (non-integer numbers, a measurement)" if len(numbers) == k
            and any(not float(c).is_integer() for c in numbers) else "")
    # QA: a measurement rounded to one decimal (32 values in 1,500 rows) was searched as 32
    # classes, unsaid
    if (k < MANY_CLASSES or 3 * k <= n) and not kind:
        return
    name = train.meta.get("label_name", train.meta.get("label_col"))
    column = f"label column {name!r}" if name is not None else "the label column"
    fix, rows = "name the label with --label-col", "rows"
    if train.modality == "signal":
        fix += " or read the columns as features with --modality tabular"
    if train.meta.get("label_given"):  # QA: the hint was to give the --label-col just given
        fix = ("automed classifies: bin the measurement into classes (a column of 'low' / "
               "'high', say) and name that column with --label-col" if kind else
               "if it is the label, group its values into fewer classes")
    if "label_key" in train.meta:  # an .npz: its labels are an array, with no column to name
        key = train.meta["label_key"]
        column, rows = f"label array {key!r}", "samples"
        fix = (f"save one class label per sample as {key!r} (integers or names; bin a "
               "measurement into classes first)")
    elif train.meta.get("label_folders"):  # an image folder: its classes are sub-folders
        column, rows = "class sub-folders", "images"
        fix = ("put the images in one sub-folder per class (a folder per diagnosis, not per "
               "patient or image)")
    raise DataError(
        f"{train.source}: {k} distinct values in {column} of {n} {rows}{kind}: this looks like a "
        f"feature, not a label; {fix}"
    )


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


FLAGS = {"label_col": "--label-col", "group_col": "--group-col", "text_col": "--text-col",
         "sequence_col": "--sequence-col", "id_col": "--id-col"}


def _check_options(loader: Loader, options: dict[str, Any]) -> None:
    """Refuse an option the loader would not honour: silence would be a wrong answer."""
    unsupported = [k for k in options if k not in loader.options]
    if unsupported:
        names = ", ".join(FLAGS.get(k, k) for k in unsupported)
        supported = ", ".join(FLAGS.get(k, k) for k in sorted(loader.options)) or "none"
        hint = " (give patient ids with --groups FILE)" if "group_col" in unsupported else ""
        raise ConfigError(f"the {loader.name} loader does not support {names}; it supports: "
                          f"{supported}{hint}")


def _check_modality(loader: Loader, path: Path, format: str | None,
                    modality: str | None) -> None:
    """Refuse a forced ``modality`` the chosen loader cannot produce, naming the flag the user
    gave: --format picked the loader, or no loader producing ``modality`` claims the file."""
    if modality is None or not loader.modalities or modality in loader.modalities:
        return
    kinds = sorted(loader.modalities)
    if format:
        raise DataError(f"{path}: the {loader.name} loader reads {' or '.join(kinds)}, not "
                        f"{modality}; drop --format {format} or use --modality "
                        f"{' or --modality '.join(kinds)}")
    other = (f" to read it as {kinds[0]}" if len(kinds) == 1 else
             f", or use --modality {' or --modality '.join(kinds)}")
    raise DataError(f"{path}: no loader reads this file as {modality} (the {loader.name} loader "
                    f"claims it, as {' or '.join(kinds)}); drop --modality {modality}{other}")


def _check_finite(data: Dataset | None) -> None:
    """NaN or infinite samples would fail every candidate: refuse them at load, once."""
    import numpy as np

    x = None if data is None else data.x
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fc":
        return
    flat = x.reshape(len(x), -1)
    # Tabular NaN is a missing value, imputed per fold; infinity never is.
    bad = np.isinf(flat).any(axis=1) if data.modality == "tabular" else \
        ~np.isfinite(flat).all(axis=1)
    if bad.any():
        what = "infinite" if data.modality == "tabular" else "NaN or infinite"
        raise DataError(
            f"{data.source or 'the dataset'}: {int(bad.sum())} sample(s) hold {what} values "
            # counted from 1, as records and lines are (QA: "sample 4" was line 5's record)
            f"(the first is sample {int(np.flatnonzero(bad)[0]) + 1}); clean or drop them"
        )


def _with_groups(data: LoadedData, path: Path) -> LoadedData:
    """``--groups FILE``: one group id per training sample in loading order, or lines
    ``ID,GROUP`` (or tab-separated) naming each sample by the id `automed predict` writes (an
    image's path within the folder, a FASTA record's id), in any order, test samples too.
    QA: the loading order (class folders by name, then each one's files by path) was written
    nowhere, and a list made with `find` grouped the wrong images, unsaid."""
    import numpy as np

    if not path.is_file():
        raise DataError(f"{path}: no such groups file; give one id per line")
    train, test = data.train, data.test
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()
             if line.strip()]
    by_id = _groups_by_id(path, lines, train, test)
    if by_id is not None:
        def grouped(part: Dataset) -> Dataset:
            gone = [str(i) for i in part.ids if str(i) not in by_id]
            if gone:
                raise DataError(f"{path}: no group for {len(gone)} sample(s) of {part.source} "
                                f"({', '.join(gone[:3])}{', ...' if len(gone) > 3 else ''}); "
                                "give a line ID,GROUP for each")
            return dataclasses.replace(part, groups=np.array([by_id[str(i)] for i in part.ids]))

        # a --test folder's ids are its own paths: the same names as training ones cannot be
        # told apart, so its groups come from elsewhere (review: it took training groups)
        wants_test = test is not None and test.ids is not None and not _shared_ids(
            train, test) and any(str(i) in by_id for i in test.ids)
        return LoadedData(grouped(train), grouped(test) if wants_test else test)
    if len(lines) != len(train):
        raise DataError(
            f"{path}: {len(lines)} group ids for {len(train)} training samples; give one id "
            "per training sample, in loading order, or lines ID,GROUP (ids as `automed "
            "predict` writes them)"
        )
    return LoadedData(dataclasses.replace(train, groups=np.array(lines)), test)


def _groups_by_id(path: Path, lines: list[str], train: Dataset,
                  test: Dataset | None) -> dict[str, str] | None:
    """``{sample id: group}`` of a groups file of ``ID,GROUP`` lines whose ids name the
    samples; None for a file of one group per line (no line names a sample)."""
    import csv

    if train.ids is None or not lines:
        return None
    known = {str(i) for part in (train, test) if part is not None and part.ids is not None
             for i in part.ids}
    shared = _shared_ids(train, test)
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    example = f"e.g. {str(train.ids[0])!r}; quote an id that holds a comma"
    if not any(len(r) == 2 and r[0].strip() in known for r in rows):
        if all(len(r) >= 2 for r in rows):
            # review: such a file was read as one group per line, each line its own group
            raise DataError(f"{path}: its lines read as ID,GROUP but no id names a sample of "
                            f"the data (the first: {rows[0][0].strip()!r}); give ids as "
                            f"`automed predict` writes them ({example}), or one group per line")
        return None
    header = rows[0][0].strip() not in known  # "path,patient"
    out: dict[str, str] = {}
    for n, row in enumerate(rows[header:], 1 + header):
        if len(row) != 2 or not row[1].strip():
            raise DataError(f"{path}: line {n} is {','.join(row)!r}, not ID,GROUP; give each "
                            f"sample's id and its group ({example})")
        sample, group = row[0].strip(), row[1].strip()
        if sample not in known:
            raise DataError(f"{path}: line {n} names {sample!r}, no sample of the data; give "
                            f"ids as `automed predict` writes them ({example})")
        if out.setdefault(sample, group) != group:
            if sample in shared:
                raise DataError(f"{path}: {sample!r} names a training and a test sample (a "
                                "--test folder's ids are paths within it), so their groups "
                                "cannot be told apart here; give the training samples' groups "
                                "only")
            raise DataError(f"{path}: {sample!r} is given groups {out[sample]!r} and "
                            f"{group!r}; give each sample one group")
    return out


def _shared_ids(train: Dataset, test: Dataset | None) -> set[str]:
    """Ids naming a training and a test sample alike (a separate --test folder's)."""
    if test is None or train.ids is None or test.ids is None:
        return set()
    return {str(i) for i in train.ids} & {str(i) for i in test.ids}


def _merge_test(test_data: LoadedData) -> Dataset:
    # A separate test file is all test data, whether or not it carries its own split (and
    # whether its split marks some rows test or all of them).
    if test_data.test is None:
        return test_data.train
    if not len(test_data.train):
        t = test_data.test
        return Dataset(t.x, t.y, t.classes, t.modality, test_data.train.source, t.groups, t.meta)
    import numpy as np

    a, b = test_data.train, test_data.test.with_classes(test_data.train.classes)
    groups = (np.concatenate([a.groups, b.groups])
              if a.groups is not None and b.groups is not None else None)
    ids = (np.concatenate([a.ids, b.ids]) if a.ids is not None and b.ids is not None else None)
    # the meta too: a table's column names line it up with the training data's
    return Dataset(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), a.classes,
                   a.modality, a.source, groups, dict(a.meta), ids)


def _check_test(train: Dataset, test: Dataset) -> Dataset:
    if test.modality != train.modality:
        raise DataError(
            f"{test.source}: test data is {test.modality} but training data is "
            f"{train.modality}; pass a test file of the same kind"
        )
    test = _in_training_columns(train, test.with_classes(train.classes))
    test = _in_training_channels(train, test)
    if train.modality == "image" and len(test) and len(train):
        from automed.data.preprocess import pixel_depth_mismatch

        # QA: the whole budget was searched, then the answer refused the test set
        mismatch = pixel_depth_mismatch(train.x, test.x, "test images", "training images")
        if mismatch:
            raise DataError(f"{test.source}: {mismatch}")
    tx, trx = getattr(test.x, "shape", None), getattr(train.x, "shape", None)
    if tx is not None and trx is not None and len(tx) > 1 and tx[1:] != trx[1:]:
        raise DataError(
            f"{test.source}: test samples have shape {tuple(tx[1:])} but training samples "
            f"{tuple(trx[1:])}; resize or re-export the test set to match"
        )
    return test


def _in_training_channels(train: Dataset, test: Dataset) -> Dataset:
    """Test images with the training images' channel count, as predict converts them for a
    model: grayscale repeated into RGB, RGB to grayscale by luminance (Pillow's
    ``convert("L")`` weights). QA: a colour --test folder for grayscale training images was
    told to "resize or re-export" itself."""
    import numpy as np

    if train.modality != "image" or test.modality != "image":
        return test
    x = to_channels(test.x, np.shape(train.x)[1:])
    return test if x is test.x else dataclasses.replace(test, x=x)


def to_channels(x: Any, shape: tuple) -> Any:
    """Images ``x`` (N, C, H, W) with the channel count of ``shape`` (C, H, W) where only
    that differs (1 vs 3): grayscale repeated into RGB, RGB to grayscale by luminance
    (Pillow's ``convert("L")`` weights); else ``x`` itself."""
    import numpy as np

    have = np.shape(x)
    if len(have) != 4 or len(shape) != 3 or tuple(have[2:]) != tuple(shape[1:]) or {
            have[1], shape[0]} != {1, 3}:
        return x
    x = np.asarray(x)
    if shape[0] == 3:
        return np.repeat(x, 3, axis=1)
    weights = np.array([299, 587, 114], dtype=np.float64).reshape(1, 3, 1, 1) / 1000
    gray = (x.astype(np.float64) * weights).sum(axis=1, keepdims=True)
    return np.round(gray).astype(x.dtype) if x.dtype == np.uint8 else gray.astype(x.dtype)


def _in_training_columns(train: Dataset, test: Dataset) -> Dataset:
    """A test table's columns found by name in the training table's order, as ``automed
    predict`` finds them (QA: a --test file with two columns swapped was scored by position,
    0.55 where the truth was 0.90), and its values checked against the training layout now,
    not after the search (a text value in a numeric column)."""
    import numpy as np

    from automed.data.tabular import to_float

    want, have = train.meta.get("feature_names"), test.meta.get("feature_names")
    if not want or not have:
        return test
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    if missing or extra:
        said = "; ".join(part for part in (
            f"no column(s) {', '.join(map(repr, missing))}" if missing else "",
            f"column(s) {', '.join(map(repr, extra))} the training data does not have"
            if extra else "") if part)
        raise DataError(f"{test.source}: {said}; a test file has the training data's feature "
                        f"columns ({', '.join(want)}), in any order")
    x = np.asarray(test.x)
    if list(have) != list(want):
        x = x[:, [list(have).index(n) for n in want]]
    for j, col in enumerate(train.meta.get("tabular_columns") or []):
        if col.get("kind") != "numeric":
            continue
        bad = next((i for i, v in enumerate(x[:, j]) if to_float(v) is None), None)
        if bad is not None:
            raise DataError(f"{test.source}: column {col['name']!r} holds {x[bad, j]!r} (test "
                            f"record {bad + 1}), but it is numeric in the training data; fix "
                            "or blank the value")
    return dataclasses.replace(test, x=x, meta={
        **test.meta, "feature_names": list(want),
        "tabular_columns": train.meta.get("tabular_columns")})
