#!/usr/bin/env python
"""How long the near-duplicate leakage check takes up to 100,000 samples, and what it flags.

**Scale.** N i.i.d. Gaussian samples (tabular floats, F features) in stratified K folds: wall
time of ``check_folds_leakage`` (exact hashes + near-twin check) and of the near-twin part
alone, then the same data with near-twins planted (``--twins`` of the rows replaced by a copy of
another row plus 1% noise) to show they are still flagged at that size. ``--images`` repeats it
for N x 1 x 28 x 28 uint8 images (784 pixels, randomly projected to 64 dims).

**Panel** (``--panel``): the issue's cohort (60 patients x 10 near-identical rows, random label
per patient) with and without its groups, an i.i.d. make_classification set, and the real
BreastMNIST, PneumoniaMNIST and ECG200 training data from ../shared/data when present.

**Peer** (``--peer``, needs ``pip install 'cleanlab[datalab]'``): cleanlab's Datalab
``near_duplicate`` check on the same features in the same run, its wall time, and how many
validation samples have one of its near-duplicates in their fold's training part. cleanlab is
not split-aware and flags pairs closer than 0.13 x the median nearest-neighbour distance.

    python benchmarks/leakage_scale.py                                  # 100k x 64, 5 folds
    python benchmarks/leakage_scale.py --samples 25000 50000 100000 --images --peer
    python benchmarks/leakage_scale.py --samples 0 --panel --peer       # panel only
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

from automed.data.dataset import Dataset
from automed.data.loaders import load_data
from automed.evaluation.cv import make_folds
from automed.evaluation.leakage import check_folds_leakage, check_test_leakage, leakage_warnings
from automed.evaluation.near_duplicates import fold_near_twins

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def plant_twins(x: np.ndarray, fraction: float, noise: float, seed: int) -> np.ndarray:
    """Replace ``fraction`` of the rows by a copy of another row plus small Gaussian noise."""
    rng = np.random.default_rng(seed)
    flat = x.reshape(len(x), -1).astype(np.float32)
    dst = rng.choice(len(x), int(fraction * len(x)), replace=False)
    src = rng.integers(0, len(x), len(dst))
    flat[dst] = flat[src] + noise * flat.std() * rng.standard_normal(flat[dst].shape)
    return flat.reshape(x.shape)


def peer(data: Dataset, splits) -> str:
    """cleanlab's near-duplicate check: wall time and validation samples with a twin in training."""
    try:
        from cleanlab import Datalab
    except ImportError:
        return "cleanlab not installed"
    import warnings

    feats = np.asarray(data.x, dtype=np.float32).reshape(len(data), -1)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = Datalab(data={"y": data.y}, label_name="y", verbosity=0)
        lab.find_issues(features=feats, issue_types={"near_duplicate": {}})
    secs = time.perf_counter() - t0
    issues = lab.get_issues("near_duplicate")
    sets = issues["near_duplicate_sets"].tolist()
    leaks = 0
    for train_idx, val_idx in splits:
        in_train = np.zeros(len(data), dtype=bool)
        in_train[train_idx] = True
        leaks += sum(bool(len(sets[v]) and in_train[np.asarray(sets[v])].any()) for v in val_idx)
    return (f"cleanlab {secs:.2f}s, {int(issues['is_near_duplicate_issue'].sum())} flagged, "
            f"{leaks}/{len(data)} val samples with a flagged twin in training")


def ours(data: Dataset, splits) -> str:
    t0 = time.perf_counter()
    report = check_folds_leakage(data, splits)
    secs = time.perf_counter() - t0
    near = report["near_duplicates"]
    if not near.get("checked"):
        return f"automed {secs:.2f}s, not checked ({near.get('reason')})"
    est = sum(near["estimated_near_twins_per_part"])
    return (f"automed {secs:.2f}s, leaky={near['leaky']}, {near['near_twins']}/{near['queries']}"
            f" queried val samples with a near-twin (~{est}/{len(data)} of all) at radius "
            f"{near['radius']}, chance {near['expected_by_chance']}, "
            f"exact dups {sum(report['val_duplicates_per_fold'])}, "
            f"{len(leakage_warnings(report))} warning(s)")


def scale(name: str, x: np.ndarray, y: np.ndarray, modality: str, folds: int, with_peer: bool):
    data = Dataset(x, y, ["0", "1"], modality, name)
    splits = make_folds(data, folds)
    exact = [np.zeros(len(v), dtype=bool) for _, v in splits]
    t0 = time.perf_counter()
    fold_near_twins(data.x, modality, None, splits, exact)
    near_secs = time.perf_counter() - t0
    print(f"{name} {x.shape}, {folds} folds: near-twin part {near_secs:.2f}s | "
          f"{ours(data, splits)}")
    if with_peer:
        print(f"    peer: {peer(data, splits)}")


def cohort(noise: float, groups: bool) -> Dataset:
    rng = np.random.default_rng(0)
    base, labels = rng.standard_normal((60, 12)), rng.integers(0, 2, 60)
    pid = np.repeat(np.arange(60), 10)
    x = base[pid] + noise * rng.standard_normal((600, 12))
    return Dataset(x, labels[pid], ["0", "1"], "tabular", "cohort",
                   groups=pid.astype(str) if groups else None)


def panel(with_peer: bool) -> None:
    x, y = make_classification(2000, 20, random_state=0)
    cases = [(f"cohort noise {s}", cohort(s, False)) for s in (0.01, 0.1)]
    cases.append(("cohort noise 0.01 grouped", cohort(0.01, True)))
    cases.append(("make_classification 2000x20", Dataset(x, y, ["0", "1"], "tabular", "mc")))
    tests = {}
    for rel in ("breastmnist/breastmnist_28.npz", "pneumoniamnist/pneumoniamnist_28.npz",
                "ucr_ecg200/ECG200_TRAIN.txt"):
        if (SHARED / rel).exists():
            loaded = load_data(SHARED / rel)
            name = rel.split("/")[-1] + " (train)"
            cases.append((name, loaded.train))
            tests[name] = loaded.test
    for name, data in cases:
        splits = make_folds(data, 3 if name.startswith("cohort") else 5)
        print(f"{name} ({len(data)}): {ours(data, splits)}")
        if with_peer and data.groups is None:
            print(f"    peer: {peer(data, splits)}")
        if tests.get(name) is not None:
            report = check_test_leakage(data, tests[name])
            near = report["test_near_duplicates"]
            print(f"    its test split ({len(tests[name])}): {report['test_duplicates']} exact "
                  f"copies of training samples, leaky={near['leaky']}, {near['near_twins']}/"
                  f"{near['queries']} with a near-twin at radius {near['radius']} (chance "
                  f"{near['expected_by_chance']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[100_000], help="0: skip")
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--twins", type=float, default=0.05, help="fraction of rows made twins")
    ap.add_argument("--images", action="store_true", help="also N x 1 x 28 x 28 images")
    ap.add_argument("--panel", action="store_true", help="cohort, i.i.d. and real data")
    ap.add_argument("--peer", action="store_true", help="also cleanlab's near_duplicate check")
    args = ap.parse_args()
    print(f"{platform.machine()}, python {platform.python_version()}")
    for n in (s for s in args.samples if s > 0):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, args.features)).astype(np.float32)
        y = rng.integers(0, 2, n)
        scale("iid tabular", x, y, "tabular", args.folds, args.peer)
        scale("tabular + twins", plant_twins(x, args.twins, 0.01, 1), y, "tabular", args.folds,
              args.peer)
        if args.images:
            img = rng.integers(0, 256, (n, 1, 28, 28)).astype(np.uint8)
            scale("iid images", img, y, "image", args.folds, False)
            scale("images + twins", plant_twins(img, args.twins, 0.01, 1), y, "image",
                  args.folds, False)
    if args.panel:
        panel(args.peer)


if __name__ == "__main__":
    main()
