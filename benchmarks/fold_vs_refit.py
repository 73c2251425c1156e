#!/usr/bin/env python
"""The same candidate answered two ways: its k cross-validation models, or refit on all data.

    python benchmarks/fold_vs_refit.py ../shared/data/pneumoniamnist/pneumoniamnist_28.npz
    python benchmarks/fold_vs_refit.py ../shared/data/ucr_ecg200/ECG200_TRAIN.txt \
        --test ../shared/data/ucr_ecg200/ECG200_TEST.txt
    python benchmarks/fold_vs_refit.py ../shared/data/uci_splice_junction/splice.data \
        --test-fraction 0.2 --family biosequence

The evidence behind answering with fold models (automed.searching.foldbag). A family's first
portfolio entry (``--family``/``--entry`` pick another) is cross-validated as a search does
(3 folds, seed 0, one torch thread, bf16 where the family opts in and the CPU has it), and
each fold model predicts the locked test set; their mean is the fold bag. Then the same
candidate is refit on all training data ``--refit`` times with different seeds (automed's
``--refit-full --bag N``) and their mean is the refit bag. Prints one JSON line: CV seconds
and accuracy, each fold model's and the fold bag's test accuracy / AUROC, the refit seconds
and the refit bag's test accuracy / AUROC.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--test", help="a separate test file (UCR _TEST)")
    parser.add_argument("--test-fraction", type=float, help="carve a test set (splice: 0.2)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--family", help="the family whose portfolio entry to run")
    parser.add_argument("--entry", type=int, default=0, help="which of its entries (0: first)")
    parser.add_argument("--refit", type=int, default=3, help="refit seeds (0: no refit)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from automed.data.preprocess import preprocessor_of
    from automed.evaluation import metrics as M
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare
    from automed.searching.runner import _family_defaults
    from automed.searching.training import fit_model, predict_proba

    plan = SearchPlan(data=DataPlan(path=args.data, test=args.test,
                                    test_fraction=args.test_fraction), folds=args.folds, seed=0)
    p = prepare(plan)
    starts = [s for s in _family_defaults(p.architectures, p.spec, None, p.specs)
              if args.family in (None, s[0])]
    name, params, fixed = starts[args.entry]
    params = {**params, **fixed}
    arch, spec = p.architectures[name], p.spec_for(name)

    def scores(proba):
        return {m: round(M.score(m, p.test.y, proba, p.average, p.pos_label), 4)
                for m in ("accuracy", "auroc")}

    oof = np.zeros((len(p.train), spec.n_classes))
    fold_test = []
    start = time.perf_counter()
    for i, (tr, va) in enumerate(p.splits):
        pre = preprocessor_of(arch, p.train.modality)
        part = p.train.subset(tr)
        pre.fit(part)
        torch.manual_seed(plan.seed + i)
        model = arch.build(params, spec)
        fit_model(model, pre.transform(part.x), torch.from_numpy(part.y), params, spec,
                  seed=plan.seed + i, cpu_bf16=arch.cpu_bf16)
        oof[va] = predict_proba(model, pre.transform(p.train.x[va]), cpu_bf16=arch.cpu_bf16)
        fold_test.append(predict_proba(model, pre.transform(p.test.x), cpu_bf16=arch.cpu_bf16))
    out = {"data": args.data, "family": name, "entry": args.entry, "bf16": arch.cpu_bf16,
           "cv_seconds": round(time.perf_counter() - start, 1),
           "cv_accuracy": round(M.score("accuracy", p.train.y, oof, p.average, p.pos_label), 4),
           "fold_models": [scores(q)["accuracy"] for q in fold_test],
           "fold_bag": scores(np.mean(fold_test, 0))}
    if args.refit:
        pre = preprocessor_of(arch, p.train.modality).fit(p.train)
        x, y = pre.transform(p.train.x), torch.from_numpy(p.train.y)
        seeds, start = [], time.perf_counter()
        for k in range(args.refit):
            torch.manual_seed(100 + k)
            model = arch.build(params, spec)
            fit_model(model, x, y, params, spec, seed=100 + k, cpu_bf16=arch.cpu_bf16)
            seeds.append(predict_proba(model, pre.transform(p.test.x), cpu_bf16=arch.cpu_bf16))
        out.update(refit_seconds=round(time.perf_counter() - start, 1),
                   refit_models=[scores(q)["accuracy"] for q in seeds],
                   refit_bag=scores(np.mean(seeds, 0)))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
