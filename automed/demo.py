"""Generated demo data, so a fresh machine can run a real search without a download.

``make_demo("image")`` writes small "chest X-ray–like" images (class 1: an opacity in a lung
field); ``make_demo("signal")`` writes "ECG-like" beats (class 1: ST elevation). Both are
MedMNIST-layout ``.npz`` files (``train_``/``val_``/``test_`` images and labels) and are
byte-for-byte reproducible for a given ``n`` and ``seed``.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from automed.errors import ConfigError

KINDS = ("image", "signal")
CLASSES = {"image": ("clear", "opacity"), "signal": ("normal", "st-elevation")}
POSITIVE_FRACTION = 0.35
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


def make_demo(kind: str = "image", path: str | Path | None = None, n: int = 600,
              seed: int = 0) -> Path:
    """Write ``n`` generated samples of ``kind`` to ``path`` and return the path."""
    if kind not in KINDS:
        raise ConfigError(f"unknown demo kind {kind!r}; use one of {', '.join(KINDS)}")
    if n < 10:
        raise ConfigError(f"n={n} is too small for train/val/test splits; use n >= 10")
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.uint8)
    y[: round(POSITIVE_FRACTION * n)] = 1
    rng.shuffle(y)
    x = _images(y, rng) if kind == "image" else _signals(y, rng)
    n_test, n_val = round(TEST_FRACTION * n), round(VAL_FRACTION * n)
    n_train = n - n_test - n_val
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
             "test": slice(n_train + n_val, n)}
    arrays = {}
    for name, part in parts.items():
        arrays[f"{name}_images"] = x[part]
        arrays[f"{name}_labels"] = y[part, None]  # (N, 1) like MedMNIST
    path = Path(path) if path is not None else Path(f"automed_demo_{kind}.npz")
    if path.exists():
        # The same demo again is the same file (a README re-run); anything else is someone's
        # data, maybe a searched study's (QA: -o ecg.npz overwrote it without a word).
        fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
        try:
            _save_npz(fresh, arrays)
            same = path.is_file() and fresh.read_bytes() == path.read_bytes()
        finally:
            fresh.unlink(missing_ok=True)
        if not same:
            raise ConfigError(f"{path} exists and holds other data; give another -o (or "
                              "delete it first)")
        return path
    _save_npz(path, arrays)
    return path


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # numpy.savez stamps the current time into the zip entries; a fixed stamp makes the file
    # itself reproducible, not just its arrays.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue())


def _smooth(a: np.ndarray, passes: int) -> np.ndarray:
    """Cheap blur over the last two axes: repeated 3x3 box filters approach a Gaussian."""
    for _ in range(passes):
        p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
        a = sum(p[..., i:i + a.shape[-2], j:j + a.shape[-1]]
                for i in range(3) for j in range(3)) / 9.0
    return a


def _images(y: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    n = len(y)
    r, c = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)  # both in [0, 1]
    # A bright chest with a darker top corner band, mottled by smooth noise.
    base = 0.62 + 0.08 * rng.standard_normal((n, 1, 1)) - 0.15 * (r < 0.08)
    img = base + 0.1 * _smooth(rng.standard_normal((n, size, size)), 3)
    lungs = np.zeros((n, size, size))
    centres = []
    for side in (-1, 1):
        cy = 0.5 + 0.03 * rng.standard_normal((n, 1, 1))
        cx = 0.5 + side * (0.2 + 0.02 * rng.standard_normal((n, 1, 1)))
        ry = 0.3 + 0.03 * rng.standard_normal((n, 1, 1))
        rx = 0.16 + 0.015 * rng.standard_normal((n, 1, 1))
        d = ((r - cy) / ry) ** 2 + ((c - cx) / rx) ** 2
        lungs = np.maximum(lungs, 1.0 / (1.0 + np.exp(8.0 * (d - 1.0))))  # soft-edged ellipse
        centres.append((cy, cx, ry, rx))
    img -= 0.3 * lungs
    # Ribs: faint horizontal bands across both classes, so brightness alone is not the label.
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    img += 0.05 * np.sin(2 * np.pi * 4.5 * r + phase) * lungs
    for i in np.flatnonzero(y == 1):
        for _ in range(rng.integers(1, 3)):
            cy, cx, ry, rx = centres[rng.integers(2)]
            # A point inside the chosen lung field, not too close to its edge.
            angle, radius = rng.uniform(0, 2 * np.pi), 0.6 * np.sqrt(rng.uniform())
            by = cy[i, 0, 0] + radius * ry[i, 0, 0] * np.sin(angle)
            bx = cx[i, 0, 0] + radius * rx[i, 0, 0] * np.cos(angle)
            sigma = rng.uniform(0.05, 0.1)
            amp = rng.uniform(0.15, 0.35)  # faint ones overlap with the noise
            img[i] += amp * np.exp(-((r - by) ** 2 + (c - bx) ** 2) / (2 * sigma**2))
    img += 0.04 * rng.standard_normal(img.shape)  # sensor noise
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)[:, None]


def _signals(y: np.ndarray, rng: np.random.Generator, length: int = 128) -> np.ndarray:
    n = len(y)
    t = np.arange(length, dtype=np.float64)[None, :]

    def wave(centre: np.ndarray, width: float | np.ndarray, amp: np.ndarray) -> np.ndarray:
        return amp * np.exp(-0.5 * ((t - centre) / width) ** 2)

    def col(mean: float, sd: float) -> np.ndarray:
        return mean + sd * rng.standard_normal((n, 1))

    shift = rng.integers(-4, 5, (n, 1))  # beat position jitter
    r_peak = 50 + shift
    beat = (wave(r_peak - 26 + col(0, 1), 4.0, col(0.15, 0.03))         # P
            + wave(r_peak - 4, 1.5, col(-0.12, 0.03))                  # Q
            + wave(r_peak, 2.0, col(1.0, 0.1))                        # R
            + wave(r_peak + 4, 1.8, col(-0.25, 0.05)))                  # S
    t_amp = col(0.3, 0.06)
    sick = (y == 1)[:, None]
    # ST elevation: a plateau from the J point into the T wave; T flattens or inverts slightly.
    st_amp = np.where(sick, rng.uniform(0.02, 0.15, (n, 1)), 0.0)
    t_amp = np.where(sick, t_amp * rng.uniform(-0.3, 0.9, (n, 1)), t_amp)
    j_point, t_centre = r_peak + 7, r_peak + 32 + col(0, 2)
    plateau = 1.0 / (1.0 + np.exp(-(t - j_point))) / (1.0 + np.exp((t - t_centre) / 3.0))
    beat += st_amp * plateau + wave(t_centre, 7.0, t_amp)
    wander = col(0, 0.05) * np.sin(2 * np.pi * t / length * rng.uniform(0.3, 1.2, (n, 1))
                                   + rng.uniform(0, 2 * np.pi, (n, 1)))
    beat += wander + 0.04 * rng.standard_normal((n, length))
    return beat.astype(np.float32)[:, None, :]
