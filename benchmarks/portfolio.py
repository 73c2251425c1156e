#!/usr/bin/env python
"""Regenerate automed/searching/portfolio.json: an offline meta-search on the shared datasets.

For every modality and family, a small pool of diverse configurations (overrides on the
family's own default, listed in POOL below) is evaluated with automed's own objective
(k-fold CV on the *training* split only; the locked test sets are never read) on every shared
dataset of that modality. The portfolio is then built greedily, as in auto-sklearn 2.0: the
next entry is the configuration that most raises the sum over datasets of the best normalised
CV score reached by the portfolio so far (ties: the pool's order, default first).
``--order cost`` ranks by that gain per second instead (each entry's measured seconds are
written beside its scores); it is not the default because CV cannot see what the cost buys
on a shifted test set (PneumoniaMNIST: the cheap entry's CV 0.970, test 0.905; the
expensive one's CV 0.969, test 0.941; BENCHMARKS.md).

    python benchmarks/portfolio.py --json /tmp/portfolio_runs.json            # all
    python benchmarks/portfolio.py --only breast --only ecg200 --max-epochs 15 # bounded
    python benchmarks/portfolio.py --only ecg200 --family rocket  # one family; others kept
    python benchmarks/portfolio.py --runs a.json b.json  # combine runs measured apart
    python benchmarks/portfolio.py --only breast --family cnn --entry 0 --entry 3  # print only

Every run is bounded: ``--max-epochs`` caps epochs, ``--folds`` (default 3) sets the CV, and
``--limit`` seconds stops a dataset's pool early (the remaining entries are then unmeasured
there and count as the worst score). Datasets that were not run keep no say in the result.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
OUT = HERE.parent / "automed" / "searching" / "portfolio.json"

DATASETS = {  # key: (modality, training file)
    "breast": ("image", "breastmnist/breastmnist_28.npz"),
    "pneumonia": ("image", "pneumoniamnist/pneumoniamnist_28.npz"),
    "ecg200": ("signal", "ucr_ecg200/ECG200_TRAIN.txt"),
    "twolead": ("signal", "ucr_twoleadecg/TwoLeadECG_TRAIN.txt"),
    "fivedays": ("signal", "ucr_ecgfivedays/ECGFiveDays_TRAIN.txt"),
    "splice": ("biosequence", "uci_splice_junction/splice.data"),
    "ohsumed": ("text", "ohsumed_textgcn/ohsumed_23_textgcn.jsonl"),
}

# Diverse starts per modality and family: overrides on default_params(spec). {} = default.
POOL: dict[str, dict[str, list[dict]]] = {
    "image": {"cnn": [
        {},
        {"width": 64, "dropout": 0.2, "lr": 1e-3, "sampler": "shuffle"},
        {"blocks": 2, "convs_per_block": 2, "pool": "avg", "lr": 2e-3},
        # Images train class-balanced (training.py); this entry had "class_weight": "none",
        # the best CV of the pool and 0.905 on PneumoniaMNIST's test set (BENCHMARKS.md).
        {"kernel": 5, "width": 16, "dropout": 0.0, "sampler": "shuffle"},
        {"optimizer": "sgd", "lr": 1e-2, "weight_decay": 5e-4, "label_smoothing": 0.1},
        # More optimizer steps whatever the data size (the default gives sets of >= 2000
        # images batches of 128 and 15 epochs): 4x the steps at 2x the time.
        {"batch_size": 32, "epochs": 30},
        {"width": 64, "batch_size": 32, "epochs": 30},
        {"convs_per_block": 2, "dropout": 0.2, "batch_size": 32, "epochs": 30},
    ]},
    "signal": {
        "cnn": [{}, {"kernel": 7, "width": 64, "augment": False},
                {"blocks": 2, "convs_per_block": 2, "pool": "avg", "dropout": 0.3},
                {"kernel": 9, "width": 16, "lr": 1e-3, "class_weight": "none"}],
        # The default head is ridge (closed form) on small sets; the trained head's entries
        # name it, as the portfolio measured before the ridge head (2026-11-24).
        "rocket": [{}, {"features": "ppv_max"}, {"features": "multi", "diff": True},
                   {"kernels": 5000},
                   # Hydra's features added (2026-12-06); with MultiRocket's: MultiROCKET-Hydra.
                   {"hydra": True}, {"features": "multi", "diff": True, "hydra": True},
                   {"features": "ppv_max", "hydra": True},
                   {"head": "trained"}, {"head": "trained", "features": "ppv_max"},
                   {"head": "trained", "features": "multi", "diff": True},
                   {"head": "trained", "kernels": 5000, "dropout": 0.3},
                   {"head": "trained", "augment": True},
                   {"head": "trained", "lr": 3e-3, "weight_decay": 1e-1}],
        "mlp": [{}, {"layers": 1, "width": 256, "dropout": 0.1, "augment": False},
                {"layers": 3, "width": 64, "lr": 1e-3}],
        "rnn": [{}, {"stem": "patch"}, {"pooling": "maxmean", "patch": 2}],
        "lstm": [{}, {"stem": "patch"}, {"pooling": "maxmean", "patch": 2}],
        "attention": [{}, {"stem": "patch"}, {"layers": 1, "d_model": 32, "lr": 3e-3}],
    },
    "biosequence": {"biosequence": [
        {}, {"filters": 128, "dropout": 0.4}, {"layers": 1, "lr": 1e-3, "epochs": 25},
        {"pool": "max", "class_weight": "none"},
        # Finer position bins (splice sites sit at the window's centre).
        {"bins": 15}, {"filters": 128, "dropout": 0.4, "bins": 15}, {"bins": 30},
    ]},
    "text": {"mlp": [{}, {"dropout": 0.5, "width": 512}, {"pooling": "mean", "lr": 1e-3}]},
}


def evaluate_pool(path: Path, family: str, pool: list[dict], *, folds: int, seed: int,
                  max_epochs: int | None, limit: float | None, workdir: str) -> list[dict]:
    """CV score of each pool entry on one dataset, through automed's own objective."""
    import optuna

    from automed.searching.objective import Objective
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare
    from automed.searching.study import enqueue_defaults
    from automed.searching.training import TRAINING_DEFAULTS
    from automed.storage import Store

    plan = SearchPlan(data=DataPlan(path=str(path)), folds=folds, seed=seed,
                      architectures=[family], trials=len(pool), max_epochs=max_epochs,
                      prune=False, bootstrap=0)
    p = prepare(plan)
    store = Store(f"sqlite:///{workdir}/{path.stem}-{family}.db")
    dataset_id = store.upsert_dataset(
        fingerprint=p.full.fingerprint, name=path.stem, source=str(path),
        modality=p.full.modality, n_samples=len(p.full), classes=p.full.classes,
        class_counts=p.full.class_counts(), input_shape=list(p.spec.input_shape))
    name = f"{path.stem}-{family}"
    search_id, _ = store.open_search(name, dataset_id, p.metric, {"folds": folds})
    base = {**TRAINING_DEFAULTS, **p.architectures[family].default_params(p.spec)}
    configs = [{**base, **{k: v for k, v in o.items() if k in base}} for o in pool]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    from automed.contract import split_defaults

    arch = p.architectures[family]
    enqueue_defaults(study, [(family, *split_defaults(arch, p.spec, c)) for c in configs])
    objective = Objective(p, store=store, study_name=name, search_id=search_id,
                          device=torch.device("cpu"))
    out = []
    start = time.monotonic()
    for i, override in enumerate(pool):
        if limit is not None and time.monotonic() - start > limit:
            out.append({"override": override, "score": None, "seconds": None})
            continue
        twin = next((j for j in range(i) if configs[j] == configs[i]), None)
        if twin is not None:  # the same candidate on this dataset (the objective skips it)
            out.append({**out[twin], "override": override, "same_as": twin})
            print(f"  {path.stem} {family} #{i}: the same as #{twin}", flush=True)
            study.optimize(objective, n_trials=1, catch=(Exception,))  # keeps trials in step
            continue
        t0 = time.monotonic()
        study.optimize(objective, n_trials=1, catch=(Exception,))
        trial = study.trials[i]  # enqueued in order, run first-in first-out
        out.append({"override": override, "score": trial.value,
                    "seconds": round(time.monotonic() - t0, 1)})
        print(f"  {path.stem} {family} #{i}: {trial.value} ({out[-1]['seconds']} s)", flush=True)
    return out


def greedy_portfolio(scores: dict[str, list[float | None]], size: int,
                     seconds: dict[str, list[float | None]] | None = None) -> list[int]:
    """Entry indexes, in portfolio order, from ``{dataset: [score per pool entry]}``.

    Without ``seconds``: auto-sklearn 2.0's greedy rule, the entry that most raises the sum
    over datasets of the best normalised score so far. With ``seconds`` (same layout): the
    entry with the most gain per unit of cost, cost being its seconds relative to the pool's
    median on each dataset, averaged (an unmeasured entry costs the most measured). Under a
    wall-time budget the order matters: on PneumoniaMNIST the best-on-average entry took 525 s
    of CV on one thread and the next one 57 s for a CV level with it (0.965 against 0.969),
    so the expensive one first left time for 9 candidates in 15 minutes.
    """
    if not scores:
        return [0]
    n = len(next(iter(scores.values())))
    norm = {}
    for ds, vals in scores.items():
        got = [v for v in vals if v is not None]
        lo, hi = (min(got), max(got)) if got else (0.0, 1.0)
        norm[ds] = [0.0 if v is None or hi == lo else (v - lo) / (hi - lo) for v in vals]
    cost = [1.0] * n
    if seconds:
        rel = []
        for secs in seconds.values():
            got = sorted(v for v in secs if v)
            if not got:
                continue
            mid, top = float(np.median(got)), got[-1]
            rel.append([(v if v else top) / mid for v in secs])
        if rel:
            cost = [float(np.mean([r[i] for r in rel])) for i in range(n)]
    chosen: list[int] = []
    best = {ds: 0.0 for ds in norm}
    for _ in range(min(size, n)):
        now = sum(best.values())
        gains = [(sum(max(best[ds], norm[ds][i]) for ds in norm) - now, i) for i in range(n)
                 if i not in chosen]
        if seconds and any(g > 0 for g, _ in gains):
            _, pick = max((g / cost[i], -i) for g, i in gains if g > 0)
            pick = -pick
        else:
            _, pick = max((g, -i) for g, i in gains)
            pick = -pick
        chosen.append(pick)
        best = {ds: max(best[ds], norm[ds][pick]) for ds in norm}
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--only", action="append", choices=sorted(DATASETS))
    ap.add_argument("--family", action="append",
                    help="only these families (the others keep their entries in --out)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int)
    ap.add_argument("--limit", type=float, help="seconds per dataset and family")
    ap.add_argument("--size", type=int, default=3, help="entries per family")
    ap.add_argument("--order", choices=("score", "cost"), default="score",
                    help="score: auto-sklearn 2.0's greedy on CV scores (default); cost: most "
                    "gain per second first (on PneumoniaMNIST the cheap entry's CV was level "
                    "with the expensive one's, 0.970 against 0.969, but its test accuracy "
                    "was 0.905 against 0.941, so cheap-first is not the default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write every measured score here")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--entry", type=int, action="append",
                    help="measure only these pool entries (indexes) of each --family and print "
                    "their CV; nothing is written (a portfolio needs the whole pool)")
    ap.add_argument("--runs", type=Path, nargs="+",
                    help="build from these --json files of earlier runs (measured apart, e.g. "
                    "one dataset per process) instead of measuring")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keys = args.only or list(DATASETS)
    runs: dict[str, dict[str, dict[str, list]]] = {}
    for path in args.runs or []:
        for modality, families in json.loads(path.read_text()).items():
            for family, per_ds in families.items():
                runs.setdefault(modality, {}).setdefault(family, {}).update(per_ds)
    if args.runs:  # recorded as the one command that measures the same
        keys = sorted({ds for fams in runs.values() for per in fams.values() for ds in per})
        args.family = sorted({f for fams in runs.values() for f in fams})
    with tempfile.TemporaryDirectory() as workdir:
        for key in [] if args.runs else keys:
            modality, rel = DATASETS[key]
            for family, pool in POOL.get(modality, {}).items():
                if args.family and family not in args.family:
                    continue
                if args.entry:
                    pool = [pool[i] for i in args.entry]
                print(f"{key} / {family}: {len(pool)} configurations", flush=True)
                res = evaluate_pool(args.data / rel, family, pool, folds=args.folds,
                                    seed=args.seed, max_epochs=args.max_epochs,
                                    limit=args.limit, workdir=workdir)
                runs.setdefault(modality, {}).setdefault(family, {})[key] = res
    if args.entry:
        print(json.dumps(runs, indent=1, default=float))
        return
    old = json.loads(args.out.read_text()) if args.out.is_file() else {"portfolios": {}}
    portfolios = old.get("portfolios", {})
    for modality, families in runs.items():
        for family, per_ds in families.items():
            scores = {ds: [r["score"] for r in res] for ds, res in per_ds.items()}
            seconds = {ds: [r.get("seconds") for r in res] for ds, res in per_ds.items()}
            order = greedy_portfolio(scores, args.size,
                                     seconds if args.order == "cost" else None)
            pool = POOL[modality][family]
            portfolios.setdefault(modality, {})[family] = [
                {"params": pool[i], "cv": {ds: (None if s[i] is None else round(s[i], 4))
                                           for ds, s in scores.items()},
                 "seconds": {ds: t[i] for ds, t in seconds.items()}} for i in order]
    command = ("benchmarks/portfolio.py " + " ".join(f"--only {k}" for k in keys)
               + "".join(f" --family {f}" for f in args.family or [])
               + f" --folds {args.folds}"
               + (" --order cost" if args.order == "cost" else "")
               + (f" --max-epochs {args.max_epochs}" if args.max_epochs else "")
               + (f" --limit {args.limit:g}" if args.limit else ""))
    note = ("overrides on each family's default_params(spec); cv = mean CV accuracy "
            "measured on the training split of each dataset (test sets unread)")
    if args.family and old.get("generated_by"):  # the other families' entries are kept
        command = f"{old['generated_by']}; {time.strftime('%Y-%m-%d')}: {command}"
        note = old.get("note") or note
    doc = {"version": 1, "generated_by": command, "date": time.strftime("%Y-%m-%d"),
           "note": note, "portfolios": portfolios}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
