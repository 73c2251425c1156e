#!/usr/bin/env python
"""Which regions of the search spaces produce collapsed candidates? Measured, not guessed.

Draws candidates uniformly at random (Optuna's RandomSampler, no pruner) from every family's
search space on shared datasets, runs them through automed's own objective with collapse
stopping on (a collapsed candidate stops after about two epochs, so this is cheap), and
tabulates the share of collapsed candidates by optimizer x learning-rate decade, batch size,
class weighting and sampler.

    python benchmarks/collapse_regions.py --only breast --only ecg200 --limit 240 \
        --max-epochs 10 --json /tmp/collapse.json

Only training splits are read (CV folds); test sets are never touched.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
DATASETS = {
    "breast": "breastmnist/breastmnist_28.npz",
    "pneumonia": "pneumoniamnist/pneumoniamnist_28.npz",
    "ecg200": "ucr_ecg200/ECG200_TRAIN.txt",
    "splice": "uci_splice_junction/splice.data",
}


def sample(path: Path, *, folds: int, seed: int, max_epochs: int | None, limit: float,
           trials: int, workdir: str) -> list[dict]:
    import optuna

    from automed.architecture import unprefixed
    from automed.searching.objective import Objective
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare
    from automed.storage import Store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = SearchPlan(data=DataPlan(path=str(path)), folds=folds, seed=seed, trials=trials,
                      max_epochs=max_epochs, prune=True, bootstrap=0)
    p = prepare(plan)
    store = Store(f"sqlite:///{workdir}/{path.stem}.db")
    dataset_id = store.upsert_dataset(
        fingerprint=p.full.fingerprint, name=path.stem, source=str(path),
        modality=p.full.modality, n_samples=len(p.full), classes=p.full.classes,
        class_counts=p.full.class_counts(), input_shape=list(p.spec.input_shape))
    search_id, _ = store.open_search(path.stem, dataset_id, p.metric, {"folds": folds})
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed),
                                pruner=optuna.pruners.NopPruner())
    objective = Objective(p, store=store, study_name=path.stem, search_id=search_id,
                          device=torch.device("cpu"))
    study.optimize(objective, n_trials=trials, timeout=limit, catch=(Exception,))
    rows = {r["trial"]: r for r in store.candidates(path.stem)}
    out = []
    for t in study.trials:
        row = rows.get(t.number)
        if row is None:
            continue
        family, params = unprefixed(t.params)
        out.append({"dataset": path.stem, "family": family, "params": params,
                    "state": row["state"], "reason": row["error"],
                    "score": row["score_mean"], "seconds": round(row["duration_s"], 1)})
    return out


def region_table(rows: list[dict]) -> dict[str, dict[str, list[int]]]:
    """``{axis: {value: [collapsed, total]}}`` over the drawn candidates."""
    def lr_bin(lr: float) -> str:
        return f"1e{math.floor(math.log10(lr))}"

    axes = {
        "optimizer x lr": lambda p: f"{p.get('optimizer')} lr {lr_bin(p['lr'])}"
        if "lr" in p else None,
        "batch_size": lambda p: p.get("batch_size"),
        "class_weight x sampler": lambda p: f"{p.get('class_weight')} / {p.get('sampler')}",
        "family": None,
    }
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in rows:
        if r["state"] == "failed":
            continue
        for axis, fn in axes.items():
            key = r["family"] if fn is None else fn(r["params"])
            if key is None:
                continue
            cell = table[axis][str(key)]
            cell[0] += r["state"] == "collapsed"
            cell[1] += 1
    return {a: dict(sorted(v.items())) for a, v in table.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--only", action="append", choices=sorted(DATASETS))
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument("--limit", type=float, default=240, help="seconds per dataset")
    ap.add_argument("--trials", type=int, default=200, help="at most this many per dataset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        for key in args.only or ["breast", "ecg200"]:
            got = sample(args.data / DATASETS[key], folds=args.folds, seed=args.seed,
                         max_epochs=args.max_epochs, limit=args.limit, trials=args.trials,
                         workdir=workdir)
            n_col = sum(r["state"] == "collapsed" for r in got)
            print(f"{key}: {len(got)} candidates, {n_col} collapsed", flush=True)
            rows += got
    table = region_table(rows)
    for axis, cells in table.items():
        print(f"\n{axis}:")
        for key, (c, n) in cells.items():
            print(f"  {key:<28} {c:>3}/{n:<3} collapsed ({100 * c / n:.0f} %)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": table,
                                         "wall_s": round(time.monotonic() - start, 1)},
                                        indent=1))


if __name__ == "__main__":
    main()
