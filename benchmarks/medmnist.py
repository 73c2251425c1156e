"""automed's default search on a MedMNIST .npz at a fixed wall-time budget.

    python benchmarks/medmnist.py --data ../shared/data/pneumoniamnist/pneumoniamnist_28.npz \
        --timeout 150 --json out.json

Prints seconds per candidate, the best CV score, and the refit best's test ACC/AUC, to compare
with the plain Optuna script (benchmarks/baseline_plain_optuna.py) at the same wall time and
with the published MedMNIST v2 rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import automed
from automed.storage import Store

PUBLISHED = {
    "pneumoniamnist": {"ResNet-18 (28)": (0.854, 0.944), "AutoKeras": (0.878, 0.947),
                       "Google AutoML Vision": (0.946, 0.991)},
    "breastmnist": {"ResNet-18 (28)": (0.863, 0.901), "Google AutoML Vision": (None, 0.919)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/pneumoniamnist/pneumoniamnist_28.npz")
    ap.add_argument("--timeout", type=float, default=150.0, help="search budget in seconds")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--metric", default="accuracy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        timings = []
        result = automed.search(
            args.data, metric=args.metric, folds=args.folds, trials=args.trials,
            timeout=args.timeout, storage=storage, seed=args.seed,
            progress=lambda e: timings.append((time.perf_counter(), e)))
        total = time.perf_counter() - started
        rows = Store(storage).candidates(result.study)
    refit_start = next(t for t, e in timings if e["event"] == "refit")
    search_seconds = refit_start - started
    out = {
        "data": Path(args.data).name, "timeout": args.timeout, "folds": args.folds,
        "seed": args.seed, "candidates": len(rows),
        "complete": sum(r["state"] == "complete" for r in rows),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "failed": sum(r["state"] == "failed" for r in rows),
        "search_seconds": round(search_seconds, 1), "total_seconds": round(total, 1),
        "seconds_per_candidate": round(search_seconds / max(1, len(rows)), 1),
        "best_cv": result.best["score_mean"], "best_architecture": result.best["architecture"],
        "best_params": result.best["params"],
        "test_acc": result.test_scores["accuracy"], "test_auc": result.test_scores["auroc"],
        "test_acc_ci95": [(result.test_ci or {}).get("accuracy", {}).get(k) for k in
                          ("low", "high")],
        "test_auc_ci95": [(result.test_ci or {}).get("auroc", {}).get(k) for k in
                          ("low", "high")],
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(out, indent=2))
    for name, (acc, auc) in PUBLISHED.get(Path(args.data).stem.split("_")[0], {}).items():
        print(f"  published {name}: ACC {acc} AUC {auc}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
