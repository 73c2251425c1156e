#!/usr/bin/env python
"""Each family's first portfolio candidate, one fold, in float32 and under CPU bf16 autocast.

    python benchmarks/cpu_bf16.py ../shared/data/uci_splice_junction/splice.data
    python benchmarks/cpu_bf16.py ../shared/data/breastmnist/breastmnist_28.npz --family cnn
    python benchmarks/cpu_bf16.py ohsumed_1500.jsonl        # any file automed search reads

The evidence behind ``Architecture.cpu_bf16``: fold 0 of a 3-fold split (seed 0) is trained
twice from the same seed, once in float32 and once with ``fit_model(..., cpu_bf16=True)``
(forced on with ``AUTOMED_CPU_BF16=1``, so a CPU without native bf16 shows its emulation
cost), with one torch thread. Prints one JSON line per family: fit and predict seconds and
the fold-0 validation accuracy in each precision.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--test", help="a separate test file (UCR _TEST), as automed reads it")
    parser.add_argument("--family", action="append", help="only these families")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["AUTOMED_CPU_BF16"] = "1"

    import torch

    torch.set_num_threads(args.threads)
    from automed.data.preprocess import preprocessor_of
    from automed.evaluation import metrics as M
    from automed.searching.plan import DataPlan, SearchPlan
    from automed.searching.prepare import prepare
    from automed.searching.runner import _family_defaults
    from automed.searching.training import cpu_bf16_supported, fit_model, predict_proba

    p = prepare(SearchPlan(data=DataPlan(path=args.data, test=args.test), folds=3, seed=0))
    print(json.dumps({"data": args.data, "native_bf16": _native(), "forced": cpu_bf16_supported(),
                      "threads": args.threads}))
    seen: set[str] = set()
    for name, params, fixed in _family_defaults(p.architectures, p.spec, None, p.specs):
        if name in seen or (args.family and name not in args.family):
            continue
        seen.add(name)
        params = {**params, **fixed}
        arch, spec = p.architectures[name], p.spec_for(name)
        tr, va = p.splits[0]
        pre = preprocessor_of(arch, p.train.modality)
        part = p.train.subset(tr)
        pre.fit(part)
        xtr, ytr = pre.transform(part.x), torch.from_numpy(part.y)
        xva, yva = pre.transform(p.train.x[va]), p.train.y[va]
        row = {"family": name, "opted_in": arch.cpu_bf16, "epochs": params.get("epochs")}
        for precision, bf16 in (("float32", False), ("bf16", True)):
            torch.manual_seed(0)
            model = arch.build(params, spec)
            start = time.perf_counter()
            fit_model(model, xtr, ytr, params, spec, seed=0, cpu_bf16=bf16)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            proba = predict_proba(model, xva, cpu_bf16=bf16)
            row[precision] = {
                "fit_s": round(fit_s, 1), "predict_s": round(time.perf_counter() - start, 2),
                "accuracy": round(M.score("accuracy", yva, proba, p.average, p.pos_label), 4)}
        row["speedup"] = round(row["float32"]["fit_s"] / max(row["bf16"]["fit_s"], 1e-3), 2)
        print(json.dumps(row), flush=True)


def _native() -> bool:
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


if __name__ == "__main__":
    main()
