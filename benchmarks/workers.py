"""Candidates per hour with 1 and with N local worker processes on the same budget.

    python benchmarks/workers.py --workers 1 2 --trials 12

Each run is a fresh SQLite study on the same data (ECG200 by default: small models, where one
process cannot keep every core busy), the same seed and budget, pruning off so that every run
trains the same number of folds. Reports wall seconds and candidates per hour.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import automed
from automed.searching.devices import cpu_count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/ucr_ecg200/ECG200_TRAIN.txt")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--arch", default="cnn")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    rows = []
    for n in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = automed.search(args.data, trials=args.trials, folds=args.folds,
                                    workers=n, architectures=[args.arch], prune=False,
                                    refit=False, storage=f"sqlite:///{Path(tmp) / 'w.db'}")
            seconds = time.perf_counter() - started
        done = len(result.leaderboard)
        rows.append({"workers": n, "candidates": done, "seconds": round(seconds, 1),
                     "candidates_per_hour": round(3600 * done / seconds)})
        print(rows[-1], flush=True)
    out = {"data": Path(args.data).name, "trials": args.trials, "folds": args.folds,
           "arch": args.arch, "cores": cpu_count(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "runs": rows}
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
