#!/usr/bin/env python
"""How long the leakage checks take at 100,000 samples, and whether they still see planted twins.

Builds N i.i.d. Gaussian samples (tabular floats, F features), makes stratified K folds, and
times ``check_folds_leakage`` (exact hashes + near-twin check) end to end and its near-twin part
alone. Then plants near-twins (a fraction of the rows replaced by a noisy copy of another row)
and checks again, to show the check still flags them at this size; optionally the same for
images (N x 1 x 28 x 28, projected to 64 dims). Wall seconds, one run each.

    python benchmarks/leakage_scale.py                              # 100k x 64, 5 folds
    python benchmarks/leakage_scale.py --samples 20000 --images
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from automed.cv import make_folds
from automed.dataset import Dataset
from automed.leakage import check_folds_leakage, leakage_warnings, sample_hashes
from automed.near_duplicates import fold_near_twins


def plant_twins(x: np.ndarray, fraction: float, noise: float, seed: int) -> np.ndarray:
    """Replace ``fraction`` of the rows by a copy of another row plus small Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    n = len(x)
    dst = rng.choice(n, int(fraction * n), replace=False)
    src = rng.integers(0, n, len(dst))
    flat = x.reshape(n, -1)
    flat[dst] = flat[src] + noise * flat.std() * rng.standard_normal(flat[dst].shape)
    return x


def run(name: str, x: np.ndarray, y: np.ndarray, modality: str, folds: int) -> None:
    data = Dataset(x, y, ["0", "1"], modality, name)
    splits = make_folds(data, folds)
    t0 = time.perf_counter()
    hashes = sample_hashes(data.x)
    t1 = time.perf_counter()
    exact = [np.zeros(len(v), dtype=bool) for _, v in splits]
    near = fold_near_twins(data.x, modality, None, splits, exact)
    t2 = time.perf_counter()
    report = check_folds_leakage(data, splits)
    t3 = time.perf_counter()
    print(f"{name}: {x.shape} {folds} folds | hashes {t1 - t0:.2f}s | near-twin check "
          f"{t2 - t1:.2f}s | check_folds_leakage total {t3 - t2:.2f}s | unique hashes "
          f"{len(set(hashes.tolist()))}")
    print(f"  leaky={near['leaky']} near_twins={near['near_twins']}/{near['queries']} queried "
          f"at radius {near['radius']} (chance {near['expected_by_chance']}, "
          f"p={near['p_value']}); warnings: {len(leakage_warnings(report))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--twins", type=float, default=0.05, help="fraction of rows made twins")
    ap.add_argument("--images", action="store_true", help="also N x 1 x 28 x 28 images")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.samples, args.features)).astype(np.float32)
    y = rng.integers(0, 2, args.samples)
    run("iid tabular", x, y, "tabular", args.folds)
    run("tabular + twins", plant_twins(x, args.twins, 0.01, 1), y, "tabular", args.folds)
    if args.images:
        img = rng.integers(0, 256, (args.samples, 1, 28, 28)).astype(np.uint8)
        run("iid images", img, y, "image", args.folds)
        twins = plant_twins(img.astype(np.float32), args.twins, 0.01, 1)
        run("images + twins", twins, y, "image", args.folds)


if __name__ == "__main__":
    main()
