#!/usr/bin/env python
"""One family's default candidate (with overrides) fitted once and scored on held-out data.

    python benchmarks/family_defaults.py ohsumed fasttext 'fasttext:{"dim": 0}'
    python benchmarks/family_defaults.py ohsumed tfidf 'tfidf:{"loss": "cross_entropy"}'
    python benchmarks/family_defaults.py ecg200 rnn lstm attention --seeds 0 1
    python benchmarks/family_defaults.py splice lstm 'lstm:{"pooling": "last"}'
    python benchmarks/family_defaults.py pneumonia cnn 'cnn:{"batch_size": 32}' --seeds 0 1 2

Each argument after the dataset is ``FAMILY`` or ``FAMILY:{json overrides}``. The family's
``default_params`` (plus overrides) are trained on the training rows and scored on held-out
rows: Ohsumed train -> test (TextGCN split), MedMNIST train + val -> test (``breast``,
``pneumonia``), UCR TRAIN -> TEST (``ecg200``, ``twolead``, ``fivedays``), splice a fixed
random 80/20
split. The majority-class accuracy of the held-out rows is printed beside. This is the quick
loop used to pick defaults; the searches in ``modalities.py`` / ``text_baseline.py`` are the
reported protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
UCR = {"ecg200": ("ucr_ecg200", "ECG200"), "twolead": ("ucr_twoleadecg", "TwoLeadECG"),
       "fivedays": ("ucr_ecgfivedays", "ECGFiveDays")}
MEDMNIST = {"breast": "breastmnist", "pneumonia": "pneumoniamnist"}


def load(key: str, data: Path):
    from automed.data.loaders import load_data

    if key == "ohsumed":
        d = load_data(data / "ohsumed_textgcn/ohsumed_23_textgcn.jsonl")
        return d.train, d.test
    if key in MEDMNIST:  # train + val -> the official test split
        d = load_data(data / MEDMNIST[key] / f"{MEDMNIST[key]}_28.npz")
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
    parser.add_argument("dataset", choices=["ohsumed", *MEDMNIST, *UCR, "splice"])
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
            # sized as the search sizes it: cnn and rocket scale batches and epochs by n_train
            spec = pre.spec(train)
            spec = dataclasses.replace(spec, extra={**spec.extra, "n_train": len(train)})
            pre.fit(train)
            prepared[pre.key] = (spec, pre.transform(train.x), pre.transform(test.x))
        spec, x, xt = prepared[pre.key]
        params = {**arch.default_params(spec), **json.loads(extra or "{}")}
        probas, start = [], time.perf_counter()
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = fit_model(arch.build(params, spec), x, torch.from_numpy(train.y), params,
                              spec, seed=seed)
            probas.append(predict_proba(model, xt))
        accs = [round(float(np.mean(p.argmax(1) == test.y)), 4) for p in probas]
        line = (f"{args.dataset} {candidate}: held-out acc {accs} (majority {majority:.3f}, "
                f"{time.perf_counter() - start:.0f} s)")
        if spec.n_classes == 2:
            line += f"; AUROC {[round(auroc(test.y, p), 4) for p in probas]}"
        line += f"; log-loss {[round(log_loss(test.y, p), 3) for p in probas]}"
        if len(probas) > 1:  # the seeds' mean probabilities: automed's --bag
            bag = np.mean(probas, 0)
            line += f"; seed bag of {len(probas)}: acc {np.mean(bag.argmax(1) == test.y):.4f}"
            line += f" AUROC {auroc(test.y, bag):.4f}" if spec.n_classes == 2 else ""
        print(line, flush=True)


def log_loss(y, proba) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    proba = proba / proba.sum(1, keepdims=True)  # float32 softmax sums: 1 +- 1e-7
    return float(sk_log_loss(y, proba, labels=list(range(proba.shape[1]))))


def auroc(y, proba) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba[:, 1]))


if __name__ == "__main__":
    main()
