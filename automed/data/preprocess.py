"""Per-fold preprocessing: fitted on a fold's training part only, so nothing leaks.

One preprocessor per modality turns raw samples into the tensor an architecture receives and
describes that tensor as a :class:`Spec`. ``state()`` / ``from_state()`` let an exported model
carry its preprocessing without pickle.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from automed.data.dataset import Dataset
from automed.errors import DataError
from automed.spec import Spec


class Preprocessor:
    """Base class: subclasses set ``modality`` and implement fit/transform/spec."""

    modality = ""

    @property
    def key(self) -> str:
        """What the search caches fitted fold tensors under: equal keys, equal tensors."""
        return self.modality

    def spec(self, dataset: Dataset) -> Spec:
        raise NotImplementedError

    def fit(self, dataset: Dataset) -> Preprocessor:
        return self

    def transform(self, x: Any) -> torch.Tensor:
        raise NotImplementedError

    def state(self) -> dict:
        return {}

    @classmethod
    def from_state(cls, state: dict) -> Preprocessor:
        obj = cls()
        obj.__dict__.update({k: np.asarray(v) if isinstance(v, list) else v
                             for k, v in state.items()})
        return obj


class ChannelStandardizer(Preprocessor):
    """Images and signals: scale uint8 to [0, 1], then standardize each channel.

    Other arrays (16-bit and float images, signals) are standardized as they are, unscaled.
    """

    # Whether samples of the other pixel kind than the fitted one are refused (images only).
    checks_pixels = False

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        # "uint8" or "float": what fit saw; None for a state saved before it was recorded.
        self.pixels: str | None = None

    def _float(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype == np.uint8:
            return x.astype(np.float32) / 255.0
        return x.astype(np.float32, copy=False)

    def fit(self, dataset: Dataset) -> ChannelStandardizer:
        self.pixels = _pixel_kind(dataset.x)
        x = self._float(dataset.x)
        axes = (0,) + tuple(range(2, x.ndim))
        self.mean = x.mean(axis=axes).astype(np.float32)
        self.std = np.maximum(x.std(axis=axes), 1e-6).astype(np.float32)
        return self

    def transform(self, x: Any) -> torch.Tensor:
        kind = _pixel_kind(x)
        if self.checks_pixels and self.pixels is not None and kind != self.pixels:
            # QA: 16-bit images given to a model trained on 8-bit ones (uint8 is scaled to
            # 0..1, the rest is not) were predicted on a scale 257 times off, unsaid.
            said = PIXEL_WORDS
            # for arrays in memory, the conversion itself (QA: "export" read as file advice)
            how = ("; in memory, x.astype('float32') / 255 if the training images were 0..1"
                   if kind == "uint8" else
                   "; in memory, (x * 255).round().astype('uint8') if these are 0..1"
                   if self.pixels == "uint8" else "")
            raise DataError(f"images are {said[kind]} but the model was trained on "
                            f"{said[self.pixels]} images; export them at the training images' "
                            f"bit depth{how}")
        x = self._float(x)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        x = (x - self.mean.reshape(shape)) / self.std.reshape(shape)
        if not np.isfinite(x).all():
            raise DataError("input contains NaN or infinite values; clean the data first")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def state(self) -> dict:
        state = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.checks_pixels and self.pixels is not None:
            state["pixels"] = self.pixels
        return state

    @classmethod
    def from_state(cls, state: dict) -> ChannelStandardizer:
        obj = cls()
        # float32 as fitted: float64 statistics would shift predictions in the last bits.
        obj.mean = np.asarray(state["mean"], dtype=np.float32)
        obj.std = np.asarray(state["std"], dtype=np.float32)
        obj.pixels = state.get("pixels")  # absent in states saved before: not checked
        return obj


def _pixel_kind(x: Any) -> str:
    return "uint8" if np.asarray(x).dtype == np.uint8 else "float"


PIXEL_WORDS = {"uint8": "8-bit (uint8)", "float": "16-bit or float"}


def pixel_depth_mismatch(x: Any, other: Any, others: str, xs: str) -> str | None:
    """Why images ``other`` cannot join or be scored beside images ``x``, or None: 8-bit
    pixels are scaled to 0..1 and others are taken as they are, so a mix trains or scores
    on scales 255 times apart."""
    a, b = _pixel_kind(x), _pixel_kind(other)
    if a == b:
        return None
    return (f"{others} are {PIXEL_WORDS[b]} but the {xs} are {PIXEL_WORDS[a]}; save them at "
            "one bit depth (8-bit pixels are read as 0..1, the others as they are)")


class ImagePreprocessor(ChannelStandardizer):
    modality = "image"
    checks_pixels = True

    def spec(self, dataset: Dataset) -> Spec:
        c, h, w = dataset.x.shape[1:]
        return Spec("image", (int(c), int(h), int(w)), dataset.n_classes)


class SignalPreprocessor(ChannelStandardizer):
    modality = "signal"

    def spec(self, dataset: Dataset) -> Spec:
        c, length = dataset.x.shape[1:]
        return Spec("signal", (int(c), int(length)), dataset.n_classes)


# Modalities whose preprocessing lives in its own module (imported on first use, so this
# module never imports them at load time: no cycle, and no sklearn-free path pays for them).
_MODULES = {"image": "automed.data.preprocess", "signal": "automed.data.preprocess",
            "tabular": "automed.data.tabular", "text": "automed.data.tokens",
            "biosequence": "automed.data.tokens"}
PREPROCESSORS: dict[str, type[Preprocessor]] = {
    "image": ImagePreprocessor,
    "signal": SignalPreprocessor,
}


def preprocessor_class(modality: str) -> type[Preprocessor]:
    if modality not in PREPROCESSORS and modality in _MODULES:
        importlib.import_module(_MODULES[modality])  # registers itself in PREPROCESSORS
    try:
        return PREPROCESSORS[modality]
    except KeyError:
        raise DataError(
            f"no preprocessing for {modality} data yet; supported: {', '.join(_MODULES)}"
        ) from None


def preprocessor_for(modality: str) -> Preprocessor:
    return preprocessor_class(modality)()


def preprocessor_of(arch: Any, modality: str) -> Preprocessor:
    """A fresh (unfitted) preprocessor for family ``arch``: its own when it declares one
    (:meth:`automed.architecture.Architecture.preprocessor`), else the modality's shared one."""
    own = arch.preprocessor(modality) if arch is not None else None
    return own if own is not None else preprocessor_for(modality)
