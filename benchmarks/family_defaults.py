#!/usr/bin/env python
"""One family's default candidate (with overrides) fitted once and scored on held-out data.

    python benchmarks/family_defaults.py ohsumed fasttext 'fasttext:{"dim": 0}'
    python benchmarks/family_defaults.py ohsumed tfidf 'tfidf:{"loss": "cross_entropy"}'
    python benchmarks/family_defaults.py ecg200 rnn lstm attention --seeds 0 1
    python benchmarks/family_defaults.py splice lstm 'lstm:{"pooling": "last"}'

Each argument after the dataset is ``FAMILY`` or ``FAMILY:{json overrides}``. The family's
``default_params`` (plus overrides) are trained on the training rows and scored on held-out
rows: Ohsumed train -> test (TextGCN split), UCR TRAIN -> TEST (``ecg200``, ``twolead``,
``fivedays``), splice a fixed random 80/20
split. The majority-class accuracy of the held-out rows is printed beside. This is the quick
loop used to pick defaults; the searches in ``modalities.py`` / ``text_baseline.py`` are the
reported protocol.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
UCR = {"ecg200": ("ucr_ecg200", "ECG200"), "twolead": ("ucr_twoleadecg", "TwoLeadECG"),
       "fivedays": ("ucr_ecgfivedays", "ECGFiveDays")}


def load(key: str, data: Path):
    from automed.data.loaders import load_data

    if key == "ohsumed":
        d = load_data(data / "ohsumed_textgcn/ohsumed_23_textgcn.jsonl")
        return d.train, d.test
    if key in UCR:
        folder, name = UCR[key]
        d = load_data(data / folder / f"{name}_TRAIN.txt", test=data / folder / f"{name}_TEST.txt")
        return d.train, d.test
    full = load_data(data / "uci_splice_junction/splice.data").train
    idx = np.random.default_rng(0).permutation(len(full))
    cut = int(0.8 * len(full))
    return full.subset(np.sort(idx[:cut])), full.subset(np.sort(idx[cut:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["ohsumed", *UCR, "splice"])
    parser.add_argument("candidates", nargs="+", help="FAMILY or FAMILY:{json overrides}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from automed.data.preprocess import preprocessor_of
    from automed.plugin_manager import get_plugin_manager
    from automed.searching.training import fit_model, predict_proba

    train, test = load(args.dataset, args.data)
    majority = np.bincount(test.y).max() / len(test.y)
    archs = get_plugin_manager().architectures()
    prepared: dict[str, tuple] = {}  # per preprocessing key (a family may bring its own)
    for candidate in args.candidates:
        family, _, extra = candidate.partition(":")
        arch = archs[family]
        pre = preprocessor_of(arch, train.modality)
        if pre.key not in prepared:
            spec = pre.spec(train)
            pre.fit(train)
            prepared[pre.key] = (spec, pre.transform(train.x), pre.transform(test.x))
        spec, x, xt = prepared[pre.key]
        params = {**arch.default_params(spec), **json.loads(extra or "{}")}
        accs, start = [], time.perf_counter()
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = fit_model(arch.build(params, spec), x, torch.from_numpy(train.y), params,
                              spec, seed=seed)
            accs.append(float(np.mean(predict_proba(model, xt).argmax(1) == test.y)))
        print(f"{args.dataset} {candidate}: held-out acc {np.round(accs, 4).tolist()} "
              f"(majority {majority:.3f}, {time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
