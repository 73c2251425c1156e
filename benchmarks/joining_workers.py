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


def arm(data: Path, n: int, trials: int, max_epochs: int, prune: bool = True) -> dict:
    name, url = _database()
    try:
        automed = [sys.executable, "-m", "automed.cli"]
        subprocess.run(automed + ["search", str(data), "--workers", "0", "--study", "s",
                                  "--storage", url, "--trials", str(trials), "--folds", "3",
                                  "--max-epochs", str(max_epochs), "--no-ensemble", "-q",
                                  *([] if prune else ["--no-prune"])],
                       check=True, capture_output=True)
        # No OMP_NUM_THREADS: the workers divide the machine's cores among themselves.
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
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
        states: dict[str, int] = {}
        for t in study.trials:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        ran = [t for t in study.trials if t.datetime_start and t.datetime_complete]
        first_start = min(t.datetime_start.timestamp() for t in ran) - t0 if ran else None
        return {"workers": n, "wall_s": round(wall, 1), "best": best, "curve": curve,
                "candidates": len(study.trials), "states": states,
                "candidate_s": round(sum((t.datetime_complete - t.datetime_start)
                                         .total_seconds() for t in ran), 1),
                "first_candidate_start_s": round(first_start, 1) if ran else None,
                "shared_params": len(keys) - len(set(keys))}
    finally:
        _drop(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--many-trials", type=int,
                    help="trial budget of the N-worker arm (default: --trials); a larger one "
                         "asks how soon the fleet reaches one worker's best, not whether it "
                         "draws the same candidates")
    ap.add_argument("--no-prune", action="store_true",
                    help="every candidate trains all folds (the arms then differ only in "
                         "which candidates TPE draws and in parallelism)")
    args = ap.parse_args()
    one = arm(args.data, 1, args.trials, args.max_epochs, not args.no_prune)
    many = arm(args.data, args.workers, args.many_trials or args.trials, args.max_epochs,
               not args.no_prune)
    target = one["best"]
    for r in (one, many):
        r["reached_one_worker_best_s"] = next(
            (round(s, 1) for s, b in r["curve"] if b >= target - 1e-12), None)
        del r["curve"]
        print(json.dumps(r))


if __name__ == "__main__":
    main()
