"""Is an automed trial slower than the plain loop, for the same model and settings?

    python benchmarks/trial_overhead.py --data ../shared/data/pneumoniamnist/pneumoniamnist_28.npz

Times 3-fold CV of the baseline script's 2-conv CNN with fixed parameters (plain_cnn_plugin.py)
twice: with the plain script's own train/predict loop over in-memory tensors, and as one
automed candidate (per-fold preprocessing, the training loop, scoring and storage included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from sklearn.model_selection import StratifiedKFold

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from baseline_plain_optuna import load, predict_proba, train  # noqa: E402
from plain_cnn_plugin import PARAMS  # noqa: E402

import automed  # noqa: E402
from automed.storage import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/pneumoniamnist/pneumoniamnist_28.npz")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, _, _ = load(Path(args.data))
    plain, ours = [], []
    for r in range(args.repeat):
        start = time.perf_counter()
        folds = StratifiedKFold(3, shuffle=True, random_state=0).split(x, y)
        for i, (tr, va) in enumerate(folds):
            model = train(x[tr], y[tr], PARAMS, 2, seed=i)
            predict_proba(model, x[va])
        plain.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'o.db'}"
            result = automed.search(args.data, architectures=["plaincnn"], trials=1, folds=3,
                                    prune=False, refit=False, storage=url,
                                    plugins=[str(HERE / "plain_cnn_plugin.py")])
            ours.append(Store(url).candidates(result.study)[0]["duration_s"])
        print(f"run {r}: plain {plain[-1]:.1f} s, automed candidate {ours[-1]:.1f} s", flush=True)
    out = {"data": Path(args.data).name, "params": PARAMS, "threads": args.threads,
           "plain_seconds": [round(v, 1) for v in plain],
           "automed_candidate_seconds": [round(v, 1) for v in ours],
           "ratio_best": round(min(ours) / min(plain), 3), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
