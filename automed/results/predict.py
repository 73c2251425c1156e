"""``automed predict``: per-sample class probabilities from a saved model artifact."""

from __future__ import annotations

import csv
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from automed.errors import ConfigError, DataError
from automed.results.artifact import LoadedModel

SPLITS = ("all", "train", "test")


def read_samples(path: Path, options: dict, split: str = "all") -> list[tuple[str, Any, list]]:
    """``(split name, samples, true labels or [])`` parts of ``path``, read like in training.

    Labeled data goes through the same loader and options as the search; a ``.npz`` with
    samples only (``x``, ``X`` or ``images``) is read as unlabeled.
    """
    from automed.data.loaders import load_data

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    try:
        loaded = load_data(path, **options)
    except DataError:
        unlabeled = _unlabeled_npz(path, options.get("modality"))
        if unlabeled is None:
            raise
        return [("all", unlabeled, [])]
    parts = [("train", loaded.train)]
    if loaded.test is not None:
        parts.append(("test", loaded.test))
    return [(name, d.x, [d.classes[i] for i in d.y]) for name, d in parts
            if split in ("all", name)]


def _unlabeled_npz(path: Path, modality: str | None) -> np.ndarray | None:
    from automed.data.loaders.npz import _shape

    if path.suffix.lower() != ".npz" or not zipfile.is_zipfile(path):
        return None
    with np.load(path, allow_pickle=False) as archive:
        key = next((k for k in ("x", "X", "images") if k in archive.files), None)
        return None if key is None else _shape(archive[key], modality, str(path))


def predict_file(model_dir: str | Path, data: str | Path, output: str | Path | None = None,
                 *, split: str = "all", device: str = "cpu") -> int:
    """Write one CSV row per sample (split, index, label, predicted class, probabilities).

    ``output`` None writes to stdout. Returns the number of rows written.
    """
    from automed.searching.devices import resolve_device

    model = LoadedModel(model_dir)
    parts = read_samples(Path(data), model.config.get("load_options", {}), split)
    dev = resolve_device(device)
    handle = sys.stdout if output is None else open(output, "w", newline="", encoding="utf-8")
    rows = 0
    try:
        writer = csv.writer(handle)
        writer.writerow(["split", "index", "label", "predicted",
                         *[f"p_{c}" for c in model.classes]])
        for name, x, labels in parts:
            proba = model.predict_proba(x, device=dev)
            for i, p in enumerate(proba):
                writer.writerow([name, i, labels[i] if labels else "",
                                 model.classes[int(p.argmax())], *[f"{v:.6f}" for v in p]])
            rows += len(proba)
    finally:
        if output is not None:
            handle.close()
    return rows
