"""Folders of images, one sub-folder per class (optionally under ``train/`` and ``test/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from automed.data.dataset import Dataset, LoadedData, encode_labels
from automed.data.loaders.base import Loader
from automed.errors import DataError
from automed.hookspecs import hookimpl

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class ImageFolderLoader(Loader):
    """Reads ``root/<class>/<image>`` folders, or ``root/train/<class>/...`` plus ``root/test``.

    Grayscale images stay one channel; if any image has colour, all become RGB. All images must
    share one size. Returns ``uint8`` arrays of shape ``(N, C, H, W)``.
    """

    name = "image-folder"
    description = "a folder with one sub-folder of .png/.jpg/.bmp/.tif images per class"
    directories = True

    def explain(self, path: Path) -> str:
        return "it is a folder of class sub-folders of images"

    def load(self, path: Path, **options: Any) -> LoadedData:
        modality = options.get("modality")
        if modality not in (None, "image"):
            raise DataError(
                f"{path}: an image folder holds image data, not {modality}; drop the "
                "modality option or use image"
            )
        if not path.is_dir():
            raise DataError(f"{path}: not a folder; the image-folder format reads a directory")
        split = (path / "train").is_dir() and (path / "test").is_dir()
        parts = {"train": path / "train", "test": path / "test"} if split else {"train": path}
        files = {name: _scan(folder) for name, folder in parts.items()}
        # Decide colour over both splits so train and test get the same channel count.
        rgb = any(_is_colour(f) for found in files.values() for f, _ in found)
        sets = {name: _read(found, rgb, str(parts[name])) for name, found in files.items()}
        train = sets["train"]
        test = sets.get("test")
        return LoadedData(train, test.with_classes(train.classes) if test else None)


def _scan(folder: Path) -> list[tuple[Path, str]]:
    """(file, class name) for every image under ``folder``'s class sub-folders."""
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{folder}: no class sub-folders found; put the images of each class in a "
            "sub-folder named after the class"
        )
    found: list[tuple[Path, str]] = []
    for class_dir in class_dirs:
        images = sorted(
            f for f in class_dir.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DataError(
                f"{class_dir}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} images); add "
                "images or remove the folder"
            )
        found.extend((f, class_dir.name) for f in images)
    return found


def _open(file: Path) -> Image.Image:
    try:
        return Image.open(file)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(
            f"{file}: not a readable image ({exc}); replace or delete the file"
        ) from exc


def _is_colour(file: Path) -> bool:
    with _open(file) as im:
        return im.mode not in _GRAY_MODES


def _read(found: list[tuple[Path, str]], rgb: bool, source: str) -> Dataset:
    arrays: list[np.ndarray] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for file, _ in found:
        with _open(file) as im:
            if first is None:
                first = (file, im.size)
            elif im.size != first[1]:
                (w0, h0), (w1, h1) = first[1], im.size
                raise DataError(
                    f"images differ in size: {first[0]} is {w0}x{h0} but {file} is {w1}x{h1}; "
                    "resize them to one size first"
                )
            try:
                arrays.append(_pixels(im, rgb))
            except OSError as exc:  # truncated or corrupt data shows up only when decoding
                raise DataError(
                    f"{file}: not a readable image ({exc}); replace or delete the file"
                ) from exc
    x = np.stack(arrays)
    y, classes = encode_labels([c for _, c in found], source)
    # The labels are the class sub-folders: there is no label column to name.
    return Dataset(x, y, classes, "image", source, meta={"label_folders": True})


def _pixels(im: Image.Image, rgb: bool) -> np.ndarray:
    """One image as uint8 ``(C, H, W)``."""
    if rgb:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    if im.mode in ("1", "L", "LA"):
        return np.asarray(im.convert("L"))[None]
    # 16-bit and float grayscale: converting to "L" would clip, so rescale 0..65535 to 0..255.
    a = np.asarray(im, dtype=np.float64)
    if a.max(initial=0) > 255:
        a = a / 257.0
    return np.clip(np.round(a), 0, 255).astype(np.uint8)[None]


@hookimpl
def register_loaders(register):
    register(ImageFolderLoader())
