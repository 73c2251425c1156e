#!/usr/bin/env python
"""One fixed-budget mixed-family ``automed.search`` per modality on the shared datasets.

    python benchmarks/modalities.py --trials 30 --json /tmp/modalities.json
    python benchmarks/modalities.py --only splice --trials 10
    python benchmarks/modalities.py --tiny          # smoke test: tiny slices, seconds

| key     | data (../shared/data)                  | protocol                                   |
|---------|----------------------------------------|--------------------------------------------|
| ecg200  | ucr_ecg200 TRAIN -> TEST               | CV search on TRAIN, refit best, TEST acc   |
| splice  | uci_splice_junction/splice.data        | CV accuracy + per-class CV error (%)       |
| ohsumed | ohsumed_textgcn (split field)          | CV search on train, refit best, test acc   |
| breast  | breastmnist_28.npz (train+val -> test) | CV search, refit best, test acc and AUROC  |

Splice: UCI's published per-class errors come from 10-fold CV on 1000 random examples; this
script cross-validates all 3190 rows (duplicates included), so compare with care. Per-class
error is 1 - recall per class over the pooled out-of-fold predictions of the best candidate.

For each dataset the JSON holds the winning family, the best candidate per family with its
gap to the winner, test scores, and wall time. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

DATASETS = {
    "ecg200": {"path": "ucr_ecg200/ECG200_TRAIN.txt", "test": "ucr_ecg200/ECG200_TEST.txt"},
    "splice": {"path": "uci_splice_junction/splice.data", "per_class_error": True},
    "ohsumed": {"path": "ohsumed_textgcn/ohsumed_23_textgcn.jsonl"},
    "breast": {"path": "breastmnist/breastmnist_28.npz"},
}


def _slice(data, per_class: int, seed: int = 0):
    """A few samples of each class from train and test (the --tiny smoke test)."""
    from automed.data.dataset import LoadedData

    def take(ds):
        if ds is None:
            return None
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.permutation(np.flatnonzero(ds.y == c))[:per_class]
                              for c in range(ds.n_classes)])
        return ds.subset(np.sort(idx))

    train = take(data.train)
    # Keep only classes that survive in the slice's training part.
    return LoadedData(train, take(data.test))


def per_class_cv_error(result, data, folds: int, seed: int) -> dict[str, float]:
    """Re-run the best candidate's CV and pool out-of-fold predictions per class."""
    from automed.data.preprocess import preprocessor_for
    from automed.evaluation.cv import make_folds
    from automed.plugin_manager import get_plugin_manager
    from automed.searching.training import fit_model, predict_proba

    best = result.best
    arch = get_plugin_manager().architectures()[best["architecture"]]
    train = data.train
    pred = np.full(len(train), -1)
    for i, (tr, va) in enumerate(make_folds(train, folds, seed)):
        part = train.subset(tr)
        pre = preprocessor_for(train.modality).fit(part)
        torch.manual_seed(seed + i)
        model = arch.build(best["params"], result.spec)
        fit_model(model, pre.transform(part.x), torch.from_numpy(part.y), best["params"],
                  result.spec, seed=seed + i)
        pred[va] = predict_proba(model, pre.transform(train.x[va])).argmax(1)
    return {c: round(100.0 * float(np.mean(pred[train.y == k] != k)), 2)
            for k, c in enumerate(train.classes)}


def run_one(key: str, args) -> dict:
    from automed.data.loaders import load_data
    from automed.searching.runner import search
    from automed.storage import Store

    spec = DATASETS[key]
    path = args.data / spec["path"]
    test = args.data / spec["test"] if "test" in spec else None
    data = load_data(path, test=test)
    if args.tiny:
        data = _slice(data, per_class=12)
    storage = args.storage or f"sqlite:///{Path(args.workdir) / f'{key}.db'}"
    start = time.perf_counter()
    result = search(data, metric="accuracy", folds=args.folds, trials=args.trials,
                    timeout=args.timeout, storage=storage, study=f"modalities-{key}",
                    seed=args.seed, device=args.device, progress=None)
    families = Store(storage).leaderboard(result.study, best_per_family=True)
    out = {
        "dataset": key, "source": str(path), "modality": data.train.modality,
        "n_train": len(data.train), "n_test": len(data.test) if data.test else None,
        "folds": args.folds, "trials": args.trials, "timeout": args.timeout,
        "winner": result.best["architecture"], "cv_accuracy": result.best["score_mean"],
        "cv_std": result.best["score_std"],
        # the answer's test scores: an ensemble's when one answers ("winner" is the best single)
        "answer": (result.answer or {}).get("label"), "test_scores": result.test_scores,
        "per_family": [{"architecture": r["architecture"], "trial": r["trial"],
                        "cv_accuracy": r["score_mean"], "cv_std": r["score_std"],
                        "gap_to_best": r["gap_to_best"], "params": r["params"]}
                       for r in families],
    }
    if spec.get("per_class_error"):
        out["per_class_cv_error_pct"] = per_class_cv_error(result, data, args.folds, args.seed)
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--only", action="append", choices=sorted(DATASETS))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--timeout", type=float, help="seconds per dataset")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--storage", help="one database for all (default: a temp file each)")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke test: 12 samples per class, --trials 3 --folds 2")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.folds = min(args.trials, 3), 2
    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        raise SystemExit(f"error: shared datasets not found at {args.data}; pass --data")
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        args.workdir = workdir
        for key in args.only or list(DATASETS):
            r = run_one(key, args)
            test = r["test_scores"] or {}
            print(f"{key:8} {r['modality']:11} winner {r['winner']:11} CV acc "
                  f"{r['cv_accuracy']:.4f} ± {r['cv_std']:.4f}  test acc "
                  f"{test.get('accuracy', float('nan')):.4f}  ({r['wall_s']}s)", flush=True)
            for f in r["per_family"]:
                print(f"    {f['architecture']:11} {f['cv_accuracy']:.4f}  "
                      f"-{f['gap_to_best']:.4f}")
            if "per_class_cv_error_pct" in r:
                print(f"    per-class CV error %: {r['per_class_cv_error_pct']}")
            results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
