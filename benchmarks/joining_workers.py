"""Joining workers on PostgreSQL: does a fleet of `automed worker` processes reach the best CV
score of one worker sooner, without repeating candidates?

    python benchmarks/joining_workers.py [--data ECG200_TRAIN.txt] [--trials 12] [--workers 4]

Creates one study per arm on the local PostgreSQL server (127.0.0.1:5432, database per run,
dropped afterwards): arm 1 runs one `automed worker`, arm N runs N at once. Reports wall time,
the best CV accuracy, the wall time at which each arm first reached arm 1's best, and the number
of candidates that share parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "ucr_ecg200" / "ECG200_TRAIN.txt"


def _database():
    import psycopg

    name = f"automed_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def arm(data: Path, n: int, trials: int, max_epochs: int) -> dict:
    name, url = _database()
    try:
        automed = [sys.executable, "-m", "automed.cli"]
        subprocess.run(automed + ["search", str(data), "--workers", "0", "--study", "s",
                                  "--storage", url, "--trials", str(trials), "--folds", "3",
                                  "--max-epochs", str(max_epochs), "--no-ensemble", "-q"],
                       check=True, capture_output=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, 2 // n)))
        t0 = time.time()
        procs = [subprocess.Popen(automed + ["worker", "--study", "s", "--storage", url, "-q"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(n)]
        for p in procs:
            p.wait()
        wall = time.time() - t0
        study = optuna.load_study(study_name="s", storage=url)
        done = sorted((t for t in study.trials if t.value is not None),
                      key=lambda t: t.datetime_complete)
        curve, best = [], float("-inf")
        for t in done:
            best = max(best, t.value)
            curve.append((t.datetime_complete.timestamp() - t0, best))
        keys = [json.dumps(t.params, sort_keys=True) for t in study.trials if t.params]
        return {"workers": n, "wall_s": round(wall, 1), "best": best, "curve": curve,
                "candidates": len(study.trials), "shared_params": len(keys) - len(set(keys))}
    finally:
        _drop(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-epochs", type=int, default=8)
    args = ap.parse_args()
    one = arm(args.data, 1, args.trials, args.max_epochs)
    many = arm(args.data, args.workers, args.trials, args.max_epochs)
    target = one["best"]
    for r in (one, many):
        r["reached_one_worker_best_s"] = next(
            (round(s, 1) for s, b in r["curve"] if b >= target - 1e-12), None)
        del r["curve"]
        print(json.dumps(r))


if __name__ == "__main__":
    main()
