"""A labeled dataset as the search sees it: raw samples, integer labels, optional groups."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from automed.errors import DataError
from automed.spec import MODALITIES


@dataclass(eq=False)
class Dataset:
    """Samples ``x`` (indexable by an integer array), labels ``y`` as class indices.

    ``x`` holds raw samples in the modality's natural form: ``(N, C, H, W)`` arrays for images,
    ``(N, C, L)`` for signals, object arrays of strings for text and biosequences, ``(N, F)``
    object or float arrays for tabular records. Per-fold preprocessing (scaling, vocabularies)
    turns them into tensors later, so nothing is fitted on data a fold must not see.
    """

    x: Any
    y: np.ndarray
    classes: list[str]
    modality: str
    source: str = ""
    groups: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    # Record ids (``--id-col``): never features, carried to ``automed predict``'s output.
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = self.source or "the dataset"
        if self.modality not in MODALITIES:
            raise DataError(
                f"unknown modality {self.modality!r} for {where}; "
                f"use one of {', '.join(MODALITIES)}"
            )
        # Built by hand (the Python API), not by a loader: lists become arrays, and labels
        # must be class indices into ``classes`` (QA: strings, -1 or an index past the
        # classes ended in numpy's or torch's own errors, or in every candidate failing).
        if isinstance(self.x, (list, tuple)):
            if self.modality in ("text", "biosequence"):
                items = np.empty(len(self.x), dtype=object)
                items[:] = [str(v) for v in self.x]
                self.x = items
            else:
                self.x = np.asarray(self.x)
        for name in ("groups", "ids"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                setattr(self, name, np.asarray(value))
        raw = np.asarray(self.y)
        if raw.ndim == 2 and min(raw.shape) > 1:  # QA: "200 samples but 400 labels"
            raise DataError(f"{where}: y has shape {raw.shape}, one-hot or several labels per "
                            "sample; give one class index per sample (one-hot: y.argmax(1))")
        if raw.dtype.kind == "f" and raw.size and np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
        if raw.size and raw.dtype.kind not in "iub":
            raise DataError(f"{where}: y holds {raw.dtype} values; give class indices (0 to "
                            f"{len(self.classes) - 1}) and their names in classes, or build the "
                            "data with automed.load_data")
        self.y = raw.astype(np.int64).reshape(-1)
        if len(set(map(str, self.classes))) != len(self.classes):
            raise DataError(f"{where}: classes {list(self.classes)} name a class twice; give "
                            "each class once")
        if self.y.size and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise DataError(f"{where}: y holds class indices from {int(self.y.min())} to "
                            f"{int(self.y.max())}, but classes names {len(self.classes)}; give "
                            f"indices 0 to {len(self.classes) - 1}")
        if len(self.x) != len(self.y):
            raise DataError(
                f"{where}: {len(self.x)} samples but {len(self.y)} labels; "
                "every sample needs exactly one label"
            )
        if self.groups is not None and len(self.groups) != len(self.y):
            raise DataError(f"{where}: {len(self.groups)} group ids for {len(self.y)} "
                            "samples; give exactly one group id per sample")
        if self.ids is not None and len(self.ids) != len(self.y):
            raise DataError(f"{where}: {len(self.ids)} record ids for {len(self.y)} "
                            "samples; give exactly one id per sample")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=self.n_classes)
        return {c: int(n) for c, n in zip(self.classes, counts)}

    def subset(self, index: np.ndarray) -> Dataset:
        index = np.asarray(index)
        return Dataset(
            x=self.x[index],
            y=self.y[index],
            classes=self.classes,
            modality=self.modality,
            source=self.source,
            groups=None if self.groups is None else self.groups[index],
            meta=self.meta,
            ids=None if self.ids is None else self.ids[index],
        )

    def with_classes(self, classes: list[str]) -> Dataset:
        """Re-index labels onto ``classes`` (a train set's), e.g. for a separate test file."""
        if list(classes) == list(self.classes):
            return self
        unknown = sorted(set(self.classes) - set(classes))
        if unknown:
            raise DataError(
                f"{self.source or 'the test set'}: labels {unknown} do not occur in the "
                "training data "
                f"(known: {list(classes)}); use a test file with the same classes"
            )
        mapping = np.array([classes.index(c) for c in self.classes], dtype=np.int64)
        return Dataset(self.x, mapping[self.y], list(classes), self.modality, self.source,
                       self.groups, self.meta, self.ids)

    @cached_property
    def fingerprint(self) -> str:
        """A content hash: the same data gives the same fingerprint wherever it was loaded."""
        h = hashlib.sha256()
        h.update(self.modality.encode())
        x = self.x
        if isinstance(x, np.ndarray) and x.dtype != object:
            h.update(str(x.shape).encode())
            h.update(str(x.dtype).encode())
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            # numpy's default repr, whatever print options the caller set (a notebook's
            # precision=3 changed every fingerprint). It summarises a record of more than
            # 1000 values by its first and last 3: ``long_records`` hashes those whole.
            with np.printoptions(**_REPR_OPTIONS):
                for item in x:
                    h.update(repr(item).encode())
                    h.update(b"\0")
        h.update(np.ascontiguousarray(self.y).tobytes())
        h.update("\0".join(self.classes).encode())
        return h.hexdigest()[:16]

    @cached_property
    def long_records(self) -> str | None:
        """A hash of every record of more than 1000 values, whole (None when there is none):
        the fingerprint sees only their first and last 3 values (QA: a column edited in the
        middle of a 1,200-column table resumed the study as the same data). Kept apart from
        the fingerprint, which names stored datasets, studies and saved models' data."""
        x = self.x
        if isinstance(x, np.ndarray) and x.dtype != object:
            return None  # hashed whole by the fingerprint
        long = [(i, item) for i, item in enumerate(x)
                if isinstance(item, np.ndarray) and item.size > _REPR_OPTIONS["threshold"]]
        if not long:
            return None
        h = hashlib.sha256()
        for i, item in long:
            h.update(f"{i}:{item.dtype}{item.shape}".encode())
            h.update(item.tobytes() if item.dtype != object else
                     "\0".join(map(str, item.ravel())).encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.class_counts().items())
        return (f"{len(self)} {self.modality} samples{self.shape_words()}, {self.n_classes} "
                f"classes ({counts})")

    def shape_words(self) -> str:
        """" of 12 x 500 (channels x length)" for signals and images, else "" (QA: a 12-lead
        ECG read as 500 channels of 12 could not be noticed)."""
        shape = np.shape(self.x)[1:] if self.modality in ("image", "signal") else ()
        what = {(2, "signal"): "channels x length",
                (3, "image"): "channels x height x width"}.get((len(shape), self.modality))
        return f" of {' x '.join(map(str, shape))} ({what})" if what else ""


# numpy's defaults, which the fingerprints of stored studies were made with
_REPR_OPTIONS = dict(precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False,
                     nanstr="nan", infstr="inf", sign="-", floatmode="maxprec", legacy=False)


@dataclass
class LoadedData:
    """What a loader returns: training data and, when the file carries one, a locked test set."""

    train: Dataset
    test: Dataset | None = None


def _numbers_written_as_floats(raw: np.ndarray) -> np.ndarray:
    """Text labels that are numbers, as the numbers they are where their spelling would split
    one class: "1" and "1.0" (a spreadsheet or pandas writes an integer column with a gap as
    floats; QA: a 2-class table became 4 classes), "1" and "01", "0.0" and "-0.0" (QA: two
    classes each). Otherwise the text is kept as written ("001", "0.50")."""
    text = [str(v).strip() for v in raw]
    try:
        values = np.array([float(t) for t in text]) + 0.0  # + 0.0: -0.0 is 0.0
    except ValueError:
        return raw
    if not np.all(np.isfinite(values)):
        return raw
    whole = bool(np.all(values == np.round(values)))
    if whole and any("." in t or "e" in t.lower() for t in text):
        return values
    if len(set(text)) != len(np.unique(values)):  # one number spelt two ways
        return values
    return raw


def _natural(text: str) -> tuple:
    """Sort key: numbers by value ("2" before "10"), names with numbers in them by those
    numbers ("k2" before "k10"); QA: "10" sorted before "2", which made "2" the positive
    class of a 2/10 label."""
    try:
        return (0, float(text), text)
    except ValueError:
        parts = re.split(r"(\d+)", text)
        return (1, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), text)


def encode_labels(raw_labels: Any, source: str) -> tuple[np.ndarray, list[str]]:
    """Map raw labels (numbers or strings) to class indices, classes sorted naturally."""
    raw = np.asarray(raw_labels).reshape(-1)
    if raw.size == 0:
        raise DataError(f"{source}: no samples found; point automed at a file with labeled data")
    if raw.dtype.kind in "OUS":
        raw = _numbers_written_as_floats(raw)
    if raw.dtype.kind == "f":
        if np.isnan(raw).any():
            row = int(np.flatnonzero(np.isnan(raw))[0])
            raise DataError(f"{source}: sample {row} has no label; fill or drop unlabeled rows")
        raw = raw + 0.0  # -0.0 is 0.0
        if np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
    if raw.dtype.kind in "iu":
        values = np.unique(raw)
        classes = [str(v) for v in values]
    else:
        raw = np.array([str(v).strip() for v in raw], dtype=object)
        empty = np.flatnonzero(raw == "")
        if empty.size:
            raise DataError(
                f"{source}: sample {int(empty[0])} has an empty label; fill or drop unlabeled rows"
            )
        values = np.array(sorted(set(raw.tolist()), key=_natural), dtype=object)
        classes = [str(v) for v in values]
    index = {v: i for i, v in enumerate(values.tolist())}
    y = np.array([index[v] for v in raw.tolist()], dtype=np.int64)
    return y, classes
