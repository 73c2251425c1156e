#!/usr/bin/env python
"""How long a rocket model takes to fit and to predict a UCR test set (one torch thread).

    python benchmarks/rocket_speed.py fivedays '{}' '{"hydra": true}' \
        '{"features": "multi", "diff": true}'

Each configuration (JSON overrides on the family default) is fitted on the dataset's TRAIN
file and predicts its TEST file, ``--repeat`` times; the best time of each is printed with the
test accuracy (the same at every repeat: the features are fixed once fitted). The prediction
is what a search's answer pays per fold model, and what every candidate pays on its folds.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from family_defaults import SHARED, UCR, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(UCR))
    parser.add_argument("configs", nargs="+", help="JSON overrides on rocket's default")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from automed.data.preprocess import preprocessor_of
    from automed.plugin_manager import get_plugin_manager
    from automed.searching.training import fit_model, predict_proba

    train, test = load(args.dataset, SHARED)
    arch = get_plugin_manager().architectures()["rocket"]
    pre = preprocessor_of(arch, train.modality)
    spec = pre.spec(train)
    pre.fit(train)
    xtr, xte = pre.transform(train.x), pre.transform(test.x)
    ytr = torch.from_numpy(train.y)
    for config in args.configs:
        params = {**arch.default_params(spec), **json.loads(config)}
        fits, predicts = [], []
        for _ in range(args.repeat):
            torch.manual_seed(0)
            started = time.perf_counter()
            model = fit_model(arch.build(params, spec), xtr, ytr, params, spec, seed=0)
            fits.append(time.perf_counter() - started)
            started = time.perf_counter()
            proba = predict_proba(model, xte)
            predicts.append(time.perf_counter() - started)
        acc = float((proba.argmax(1) == test.y).mean())
        print(f"{args.dataset} rocket {config}: fit {min(fits):.2f} s on {len(xtr)} series, "
              f"predict {min(predicts):.2f} s on {len(xte)} (length {xte.shape[-1]}), "
              f"test acc {acc:.4f}; {torch.get_num_threads()} thread(s)", flush=True)


if __name__ == "__main__":
    main()
