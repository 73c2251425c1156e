"""Folders of images, one sub-folder per class (optionally in ``train/``, ``val/``, ``test/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from automed.data.dataset import Dataset, LoadedData, encode_labels
from automed.data.loaders.base import Loader
from automed.errors import DataError
from automed.hookspecs import hookimpl

# .gif and .webp give their first frame (QA: they were skipped, unsaid).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# Deeper than 8 bits: 16-bit PNG/TIFF, 32-bit integer and float TIFF (always grayscale).
_DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# The folders of the held-out validation split: training data here (as the .npz loader merges
# val_* arrays into training), so the Kaggle chest X-ray layout train/ val/ test/ is read whole.
_VAL_NAMES = ("val", "valid", "validation")


class ImageFolderLoader(Loader):
    """Reads ``root/<class>/<image>`` folders, or ``root/train/<class>/...`` plus ``root/test``
    (and ``root/val``, merged into training; ``train/`` + ``val/`` alone is training data
    without a test split).

    Images may sit in sub-folders of their class folder. Grayscale images stay one channel; if
    any image has colour, all become RGB. All images must share one size. 8-bit images give
    ``uint8`` arrays of shape ``(N, C, H, W)``; 16-bit, 32-bit and float grayscale images give
    ``float32`` intensities as stored, unscaled (the preprocessor standardizes them with the
    training mean and std), and a folder may not mix the two.
    """

    name = "image-folder"
    description = ("a folder with one sub-folder of .png/.jpg/.bmp/.tif/.webp/.gif images per "
                   "class")
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
        vals = [path / n for n in _VAL_NAMES if (path / n).is_dir()]
        split = (path / "train").is_dir() and ((path / "test").is_dir() or bool(vals))
        # QA: val/ was dropped silently, and train/ + val/ without test/ failed with "train:
        # empty class folder".
        parts = ({"train": [path / "train", *vals]} if split else {"train": [path]})
        if split and (path / "test").is_dir():
            parts["test"] = [path / "test"]
        files = {name: [f for folder in folders for f in _scan(folder)]
                 for name, folders in parts.items()}
        # Every unreadable file is named in one go, after one pass (QA: a corrupt PNG, an
        # empty one and a truncated JPEG took three runs, each reading the whole folder).
        bad: list[tuple[Path, str]] = []
        probes = readable([f for found in files.values() for f, _ in found], _probe, bad)
        files = {name: [(f, c) for f, c in found if f in probes] for name, found in files.items()}
        everything = list(probes)
        # Decide colour and bit depth over all splits so train and test read alike.
        rgb = any(colour for colour, _ in probes.values())
        if not bad:
            _check_one_depth(path, everything, [deep for _, deep in probes.values()])
        # The whole folder is the dataset (QA: a train/ + test/ folder was named "train", so
        # two such datasets got one default study name).
        sources = {"train": str(path), "test": str(path / "test")}
        sets = {name: _read(found, rgb, sources[name], path, bad)
                for name, found in files.items()}
        refuse_unreadable(path, bad)
        train = sets["train"]
        test = sets.get("test")
        colour = [f for f, (c, _) in probes.items() if c]
        if colour and len(colour) < len(probes):
            # QA: one colour JPEG among grayscale PNGs made every image RGB, unsaid
            train.meta["channels_note"] = (
                f"{len(colour)} of {len(probes)} images are colour (e.g. "
                f"{colour[0].relative_to(path).as_posix()}), so every image is read as RGB; "
                "convert it to grayscale to read all as one channel")
        return LoadedData(train, test.with_classes(train.classes) if test else None)


def refuse_unreadable(root: Path, bad: list[tuple[Path, str]]) -> None:
    """Name every image under ``root`` that could not be read, in one error."""
    if bad:
        names = ", ".join(str(f.relative_to(root)) for f, _ in bad[:3])
        raise DataError(f"{root}: {len(bad)} image file(s) cannot be read ({names}"
                        f"{', ...' if len(bad) > 3 else ''}); the first: {bad[0][1]}")


def readable(files: list[Path], read, bad: list[tuple[Path, str]]) -> dict[Path, object]:
    """``read(file)`` of each file that reads; the others join ``bad`` with their error."""
    out = {}
    for f in files:
        try:
            out[f] = read(f)
        except DataError as exc:
            bad.append((f, str(exc)))
    return out


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def _scan(folder: Path) -> list[tuple[Path, str]]:
    """(file, class name) for every image under ``folder``'s class sub-folders, at any depth."""
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{folder}: no class sub-folders found; put the images of each class in a "
            "sub-folder named after the class"
        )
    loose = sorted(f.name for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                   and f.suffix.lower() in IMAGE_SUFFIXES)
    if loose:  # QA: skipped, unsaid (and predict of such a folder dropped them)
        raise DataError(f"{folder}: {len(loose)} image(s) lie outside the class sub-folders "
                        f"({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}); move "
                        "each into the sub-folder of its class")
    found: list[tuple[Path, str]] = []
    for class_dir in class_dirs:
        # QA: images in class/sub/ were skipped (predict read them), and a class folder
        # holding only a sub-folder was "empty".
        files = [f for f in class_dir.rglob("*") if f.is_file() and not _hidden(f, class_dir)]
        images = sorted(f for f in files if f.suffix.lower() in IMAGE_SUFFIXES)
        refuse_unread(class_dir, files)
        if not images:
            others = sorted({f.suffix.lower() or "(no suffix)" for f in files})
            held = (f"holds no images, only {len(files)} {', '.join(others)} file(s)" if files
                    else "is an empty class folder")
            texts = files and all(f.suffix.lower() in (".txt", ".md") for f in files)
            raise DataError(
                f"{class_dir}: {held} (automed reads {'/'.join(IMAGE_SUFFIXES)} images, also "
                "in sub-folders); "
                + ("texts in class folders are not read: write them to a .jsonl or .csv with "
                   "text and label columns" if texts else
                   "add images, or remove the folder if it is no class"))
        found.extend((f, class_dir.name) for f in images)
    return found


def refuse_unread(folder: Path, files: list[Path]) -> None:
    """Refuse a folder holding files of an image or medical format automed does not read
    (DICOM, NIfTI, whole-slide images, ...): they were skipped unsaid, so 12 DICOM scans and
    2 PNGs per class searched 4 images (QA). Other files (notes, a .csv) stay ignored."""
    from automed.data.loaders import format_hint

    unread = [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES and format_hint(f)]
    if unread:
        raise DataError(f"{folder}: {len(unread)} file(s) automed does not read, such as "
                        f"{unread[0].name}: {format_hint(unread[0])}")


def _open(file: Path) -> Image.Image:
    try:
        return Image.open(file)
    except Image.DecompressionBombError as exc:
        # QA: reported as "loader 'image-folder' failed ... fix the loader"
        raise DataError(f"{file}: image too large to read safely ({str(exc).rstrip('.')}); "
                        "downscale it") from None
    except (UnidentifiedImageError, OSError) as exc:
        if file.suffix.lower() == ".webp" and not features.check("webp"):
            raise DataError(f"{file}: this Pillow cannot read .webp images; convert it to "
                            ".png") from None
        raise DataError(
            f"{file}: not a readable image ({exc}); replace or delete the file"
        ) from exc


def _probe(file: Path) -> tuple[bool, bool]:
    """(has colour, deeper than 8 bits), from the header alone."""
    with _open(file) as im:
        return _has_colour(im), im.mode in _DEEP_MODES


def _has_colour(im: Image.Image) -> bool:
    """Whether an image holds colour. A palette image is grayscale when every palette entry
    is a gray (QA: a grayscale PNG saved with a palette made its whole folder RGB)."""
    if im.mode in ("P", "PA"):
        palette = im.getpalette() or []
        return any(palette[i] != palette[i + 1] or palette[i] != palette[i + 2]
                   for i in range(0, len(palette) - 2, 3))
    return im.mode not in _GRAY_MODES


def _check_one_depth(where: Path, files: list[Path], deep: list[bool]) -> None:
    """QA: 8-bit and 16-bit images of one folder were scaled differently, per image."""
    if any(deep) and not all(deep):
        eight = files[deep.index(False)]
        sixteen = files[deep.index(True)]
        raise DataError(f"{where}: mixes 8-bit images ({eight.name}) and 16-bit or float "
                        f"images ({sixteen.name}); export them at one bit depth")


def decode(file: Path, rgb: bool) -> np.ndarray:
    """One image file as :func:`_pixels` gives it, upright as its EXIF orientation says
    (QA: a phone JPEG with Orientation=6 was read as stored, on its side)."""
    with _open(file) as im:
        try:
            return _pixels(ImageOps.exif_transpose(im), rgb)
        except OSError as exc:  # truncated or corrupt data shows up only when decoding
            raise DataError(
                f"{file}: not a readable image ({exc}); replace or delete the file"
            ) from None


def _read(found: list[tuple[Path, str]], rgb: bool, source: str, root: Path,
          bad: list[tuple[Path, str]]) -> Dataset | None:
    """The images of one split; a file that cannot be decoded joins ``bad`` (None is
    returned when any has: the caller names them all)."""
    decoded = readable([f for f, _ in found], lambda f: decode(f, rgb), bad)
    if bad:
        return None
    arrays = list(decoded.values())
    first = arrays[0].shape[1:]
    odd = next((f for f, a in decoded.items() if a.shape[1:] != first), None)
    if odd is not None:
        (h0, w0), (h1, w1) = first, decoded[odd].shape[1:]
        raise DataError(f"images differ in size: {found[0][0]} is {w0}x{h0} but {odd} is "
                        f"{w1}x{h1}; resize them to one size first")
    x = np.stack(arrays)
    y, classes = encode_labels([c for _, c in found], source)
    # The labels are the class sub-folders: there is no label column to name. Each image's
    # id is its file, relative to the folder given (predict writes it).
    ids = np.array([f.relative_to(root).as_posix() for f, _ in found], dtype=object)
    return Dataset(x, y, classes, "image", source, meta={"label_folders": True}, ids=ids)


def _pixels(im: Image.Image, rgb: bool) -> np.ndarray:
    """One image as ``(C, H, W)``: ``uint8`` for 8-bit images, with ``C`` 3 if ``rgb`` else 1
    (colour to grayscale by luminance, as Pillow's ``convert("L")``; grayscale to RGB by
    repeating); ``float32`` intensities as stored for 16-bit, 32-bit and float images."""
    if im.mode in _DEEP_MODES:
        # QA: these were divided by 257 only when the image's max passed 255: 12-bit X-rays
        # came out near black, dark and bright images of one set on different scales, and
        # float images in 0..1 binary. One rule for every image: the stored intensities.
        a = np.asarray(im, dtype=np.float32)[None]
        return np.repeat(a, 3, axis=0) if rgb else a
    if rgb:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    # QA: a colour image read for a grayscale model came out (1, H, W, 3)
    return np.asarray(im.convert("L"))[None]


@hookimpl
def register_loaders(register):
    register(ImageFolderLoader())
