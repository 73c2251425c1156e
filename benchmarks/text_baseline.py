#!/usr/bin/env python
"""Ohsumed (TextGCN split): a 10-line scikit-learn baseline beside a time-bounded automed search.

    python benchmarks/text_baseline.py --timeout 900 --json /tmp/text_baseline.json
    python benchmarks/text_baseline.py --timeout 300 --architectures fasttext
    python benchmarks/text_baseline.py --tiny       # smoke test: a few texts per class, seconds

Baseline: ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)`` +
``LinearSVC(C=0.5)`` fitted on the 3357 training abstracts, scored on the 4043 test abstracts.
automed: ``automed.search`` on the same training rows (CV inside them, the search's own
``--timeout``), refit of the best candidate on all training rows, accuracy on the same test rows.
Both run in the same process one after the other, so they see the same machine load.
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
OHSUMED = "ohsumed_textgcn/ohsumed_23_textgcn.jsonl"


def baseline(train, test) -> dict:
    """TF-IDF (1-2-grams, sublinear tf, min_df 2) + LinearSVC(C=0.5): test accuracy, seconds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x = vec.fit_transform(list(train.x))
    clf = LinearSVC(C=0.5).fit(x, train.y)
    pred = clf.predict(vec.transform(list(test.x)))
    return {"test_accuracy": float(np.mean(pred == test.y)),
            "fit_predict_s": round(time.perf_counter() - start, 2), "features": x.shape[1]}


def _tiny(data, per_class: int = 6, seed: int = 0):
    from automed.data.dataset import LoadedData

    rng = np.random.default_rng(seed)

    def take(ds):
        idx = np.concatenate([rng.permutation(np.flatnonzero(ds.y == c))[:per_class]
                              for c in range(ds.n_classes)])
        return ds.subset(np.sort(idx))

    return LoadedData(take(data.train), take(data.test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / OHSUMED)
    parser.add_argument("--timeout", type=float, default=900.0, help="automed search seconds")
    parser.add_argument("--trials", type=int, help="stop after this many candidates too")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--architectures", help="comma-separated families (default: all text)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="smoke test on a tiny slice")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        raise SystemExit(f"error: Ohsumed not found at {args.data}; pass --data")

    from automed.data.loaders import load_data
    from automed.searching.runner import search
    from automed.storage import Store

    data = load_data(args.data)
    if args.tiny:
        data = _tiny(data)
        args.folds, args.trials, args.timeout = 2, args.trials or 2, min(args.timeout, 60)
    base = baseline(data.train, data.test)
    print(f"baseline TF-IDF + LinearSVC: test acc {base['test_accuracy']:.4f} "
          f"({base['fit_predict_s']} s)", flush=True)
    archs = args.architectures.split(",") if args.architectures else None
    with tempfile.TemporaryDirectory() as workdir:
        storage = f"sqlite:///{Path(workdir) / 'text.db'}"
        start = time.perf_counter()
        result = search(data, metric="accuracy", folds=args.folds, trials=args.trials,
                        timeout=args.timeout, storage=storage, study="text-baseline",
                        architectures=archs, seed=args.seed, device="cpu", progress=None,
                        artifacts=workdir)
        wall = time.perf_counter() - start
        families = Store(storage).leaderboard(result.study, best_per_family=True)
        trials = Store(storage).leaderboard(result.study)
    acc = (result.test_scores or {}).get("accuracy", float("nan"))
    out = {
        "dataset": str(args.data), "n_train": len(data.train), "n_test": len(data.test),
        "baseline": base, "timeout_s": args.timeout, "folds": args.folds,
        # test_accuracy is the answer's: an ensemble's when one answers ("winner": best single)
        "automed": {"test_accuracy": acc, "answer": (result.answer or {}).get("label"),
                    "winner": result.best["architecture"],
                    "cv_accuracy": result.best["score_mean"], "params": result.best["params"],
                    "completed_candidates": len(trials), "wall_s": round(wall, 1)},
        "per_family": [{"architecture": r["architecture"], "cv_accuracy": r["score_mean"],
                        "gap_to_best": r["gap_to_best"]} for r in families],
    }
    print(f"automed ({args.timeout:g} s search, {len(trials)} candidates, {wall:.0f} s with "
          f"refit): winner {out['automed']['winner']}, CV acc "
          f"{out['automed']['cv_accuracy']:.4f}; answer {out['automed']['answer']}, test acc "
          f"{acc:.4f}")
    for f in out["per_family"]:
        print(f"    {f['architecture']:11} CV {f['cv_accuracy']:.4f}  -{f['gap_to_best']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
