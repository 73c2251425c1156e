"""A single-file automed loader plugin: a folder of class sub-folders of ``.npy`` files.

One signal or image per file, one sub-folder per class (``ecg/normal/rec001.npy``,
``ecg/afib/rec002.npy``): the usual shape of DICOM, EDF or WFDB records converted with
``numpy.save``. No packaging needed: ``automed search ecg --plugin
examples/single_file/npy_folder_loader.py`` (plugin loaders are asked before the built-in
ones; ``--format npy-folder`` forces it), and ``automed plugins check
examples/single_file/npy_folder_loader.py --data ecg`` to test it. docs/plugins.md walks
through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automed import hookimpl
from automed.data.dataset import Dataset, LoadedData, encode_labels
from automed.data.loaders.base import Loader
from automed.errors import DataError

__version__ = "0.1.0"


class NpyFolderLoader(Loader):
    name = "npy-folder"  # the --format value; must not be a built-in loader's name
    description = "a folder with one sub-folder of .npy arrays (a signal or image each) per class"
    directories = True
    modalities = frozenset({"signal", "image"})

    def sniff(self, path: Path) -> bool:
        # Claim only folders whose class sub-folders hold .npy files, never a file and never
        # an image folder (the built-in image-folder loader's), without reading any array.
        return path.is_dir() and any(path.glob("*/**/*.npy"))

    def explain(self, path: Path) -> str:  # "read as signal by ... because <this>"
        return "it is a folder of class sub-folders of .npy files"

    def load(self, path: Path, **options: Any) -> LoadedData:
        modality = options.get("modality")  # --modality, or None: decide from the arrays
        if modality not in (None, "signal", "image"):
            raise DataError(f"{path}: .npy folders hold signals or images, not {modality}; "
                            "give --modality signal or image, or none")
        classes = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise DataError(f"{path}: no class sub-folders; put each class's .npy files in a "
                            "sub-folder named after the class")
        files, labels = [], []
        for folder in classes:
            found = sorted(f for f in folder.rglob("*.npy")  # hidden ones (._x.npy) aside
                           if not any(p.startswith(".") for p in f.relative_to(folder).parts))
            if not found:  # errors are DataErrors of one line that name the fix
                raise DataError(f"{folder}: no .npy files; add some or remove the folder")
            files += found
            labels += [folder.name] * len(found)
        arrays = [_read(f) for f in files]
        for f, a in zip(files, arrays):
            if a.shape != arrays[0].shape:
                raise DataError(f"{f} has shape {a.shape} but {files[0]} has "
                                f"{arrays[0].shape}; crop, pad or resample them to one shape")
        x = np.stack(arrays)
        if modality is None:  # (L,) and (few channels, L) are signals, the rest images
            one = arrays[0]
            few = one.ndim == 2 and one.shape[0] <= 16 and one.shape[1] >= 4 * one.shape[0]
            modality = "signal" if one.ndim == 1 or few else "image"
        if (modality, x.ndim) in (("signal", 2), ("image", 3)):
            x = x[:, None]  # the channel axis: signals (N, C, L), images (N, C, H, W)
        y, names = encode_labels(labels, str(path))  # class names -> indices 0..k-1
        # Each sample's id is its file, relative to the folder: `automed predict` writes it.
        ids = np.array([f.relative_to(path).as_posix() for f in files], dtype=object)
        return LoadedData(Dataset(x, y, names, modality, str(path), ids=ids))  # no test split


def _read(file: Path) -> np.ndarray:
    try:
        a = np.load(file, allow_pickle=False)  # never unpickle a file you were given
    except (ValueError, OSError) as exc:
        raise DataError(f"{file}: not a readable .npy array ({str(exc).splitlines()[0]}); "
                        "re-save it with numpy.save") from None
    if a.dtype.kind not in "biuf" or a.ndim not in (1, 2, 3):
        raise DataError(f"{file}: holds a {a.dtype} array of shape {a.shape}; save one numeric "
                        "signal (L,) or (C, L), or image (H, W) or (C, H, W), per file")
    return a


@hookimpl
def register_loaders(register):
    register(NpyFolderLoader())
