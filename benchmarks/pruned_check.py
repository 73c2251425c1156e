#!/usr/bin/env python
"""Were winners pruned? Run a finished search's pruned candidates to the end and compare.

    automed search ../shared/data/uci_splice_junction/splice.data --folds 3 --timeout 300 \
        --test-fraction 0.2 --storage sqlite:////tmp/sp/a.db
    python benchmarks/pruned_check.py --storage sqlite:////tmp/sp/a.db \
        --study splice-accuracy-cv3 --data ../shared/data/uci_splice_junction/splice.data \
        --test-fraction 0.2 --min-score 0.8

Each pruned candidate whose best fold-0 score reached ``--min-score`` is enqueued, with its
exact parameters, into a fresh study and cross-validated to the end through automed's own
objective with pruning off (same folds: same data, --folds, --seed and --test-fraction). A
pruned candidate whose full CV beats the search's answer was a winner the pruner discarded.
One torch thread, like the races in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--test-fraction", type=float, default=None)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-score", type=float, default=0.0,
                    help="only candidates whose best fold-0 score reached this")
    ap.add_argument("--limit", type=int, default=20, help="at most this many candidates")
    args = ap.parse_args()

    import optuna
    import torch

    torch.set_num_threads(1)
    from automed.contract import carried_attrs
    from automed.searching.fidelity import FOLD_STEP
    from automed.searching.objective import Objective
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare
    from automed.storage import Store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = optuna.load_study(study_name=args.study, storage=args.storage)
    done = [t for t in source.trials if t.value is not None]
    answer = max(done, key=lambda t: t.value)

    def best0(t) -> float:
        return max((v for s, v in t.intermediate_values.items() if s < FOLD_STEP),
                   default=float("nan"))

    picked = [t for t in source.trials if t.user_attrs.get("automed_state") == "pruned"
              and best0(t) >= args.min_score][:args.limit]
    print(f"{args.study}: answer #{answer.number} CV {answer.value:.4f}; "
          f"{len(picked)} pruned candidate(s) with a fold-0 score >= {args.min_score}")
    if not picked:
        return
    plan = SearchPlan(data=DataPlan(path=args.data, test_fraction=args.test_fraction),
                      folds=args.folds, seed=args.seed, trials=len(picked), prune=False,
                      bootstrap=0,
                      architectures=sorted({t.params["architecture"] for t in picked}))
    p = prepare(plan)
    workdir = tempfile.mkdtemp()
    store = Store(f"sqlite:///{workdir}/check.db")
    dataset = store.upsert_dataset(
        fingerprint=p.full.fingerprint, name="check", source=args.data,
        modality=p.full.modality, n_samples=len(p.full), classes=p.full.classes,
        class_counts=p.full.class_counts(), input_shape=list(p.spec.input_shape))
    search_id, _ = store.open_search("check", dataset, p.metric, {"folds": args.folds})
    study = optuna.create_study(direction="maximize")
    for t in picked:
        study.enqueue_trial(t.params, user_attrs=carried_attrs(t))
    objective = Objective(p, store=store, study_name="check", search_id=search_id,
                          device=torch.device("cpu"))
    beat = 0
    for i, t in enumerate(picked):
        start = time.monotonic()
        study.optimize(objective, n_trials=1, catch=(Exception,))
        value = study.trials[i].value  # enqueued in order, run first-in first-out
        beat += value is not None and value > answer.value
        print(f"#{t.number} {t.params['architecture']} pruned at step {t.last_step} "
              f"(best fold-0 {best0(t):.3f}) -> full CV "
              f"{'failed' if value is None else f'{value:.4f}'} "
              f"({time.monotonic() - start:.0f} s)", flush=True)
    print(f"{beat} of {len(picked)} pruned candidate(s) beat the answer's CV {answer.value:.4f}")


if __name__ == "__main__":
    main()
