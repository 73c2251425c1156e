#!/usr/bin/env python
"""Regularisers the image family does not use, measured: horizontal flips (in training, and
averaged at test time) and mixup, on the first image portfolio entry.

    python benchmarks/image_regularisers.py breast base flip-tta flip flip+flip-tta mixup:0.4
    python benchmarks/image_regularisers.py pneumonia base mixup:0.4 --seeds 0 1 2

Each variant trains the first image portfolio entry (the cnn default with 2 convolutions per
block, dropout 0.2, batches of 32, 30 epochs, class-weighted loss, balanced sampler and the
affine jitter) on MedMNIST's train + val rows and scores the official test split, once per
seed. Variants: ``base`` (what automed trains), ``flip`` (a random horizontal flip of half of
each batch on top of the jitter), ``flip-tta`` (the prediction is the mean of the image's and
its mirror's probabilities), ``mixup:ALPHA`` (Zhang et al. 2018: each batch mixed with a
shuffled copy of itself by a Beta(ALPHA, ALPHA) weight, the loss mixed alike); ``+`` joins
them. Printed per variant: test accuracy and AUROC per seed, their means, and the mean of
the first three seeds' probabilities (automed's seed bag).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family_defaults as fd  # noqa: E402

FIRST_IMAGE_ENTRY = {"convs_per_block": 2, "dropout": 0.2, "batch_size": 32, "epochs": 30}


def patched(variant: str):
    """The training module's augmentation and loss with the variant's changes."""
    from automed.searching import training as T

    parts = variant.split("+")
    aug, loss = T.augment_batch, T._loss
    mix = next((float(p.split(":")[1]) for p in parts if p.startswith("mixup:")), 0.0)
    beta = torch.distributions.Beta(mix, mix) if mix > 0 else None
    pending: dict = {}

    def augment(x, modality, generator):
        x = aug(x, modality, generator)
        if "flip" in parts:
            mirror = torch.rand(x.shape[0], generator=generator) < 0.5
            x = x.clone()
            x[mirror] = x[mirror].flip(-1)
        if beta is not None:
            lam, perm = float(beta.sample()), torch.randperm(x.shape[0], generator=generator)
            pending.update(lam=lam, perm=perm)
            x = lam * x + (1 - lam) * x[perm]
        return x

    def mixed_loss(logits, y, weight, p):
        if "perm" not in pending:
            return loss(logits, y, weight, p)
        lam, perm = pending.pop("lam"), pending.pop("perm")
        return lam * loss(logits, y, weight, p) + (1 - lam) * loss(logits, y[perm], weight, p)

    return augment, mixed_loss, "flip-tta" in parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=list(fd.MEDMNIST))
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from automed.data.preprocess import preprocessor_of
    from automed.plugin_manager import get_plugin_manager
    from automed.searching import training as T

    train, test = fd.load(args.dataset, fd.SHARED)
    arch = get_plugin_manager().architectures()["cnn"]
    pre = preprocessor_of(arch, train.modality)
    spec = pre.spec(train)
    spec = dataclasses.replace(spec, extra={**spec.extra, "n_train": len(train)})
    pre.fit(train)
    x, xt = pre.transform(train.x), pre.transform(test.x)
    params = {**arch.default_params(spec), **FIRST_IMAGE_ENTRY}
    original = T.augment_batch, T._loss
    for variant in args.variants:
        T.augment_batch, T._loss, tta = patched(variant)
        try:
            probas = []
            for seed in args.seeds:
                torch.manual_seed(seed)
                model = T.fit_model(arch.build(params, spec), x, torch.from_numpy(train.y),
                                    params, spec, seed=seed)
                p = T.predict_proba(model, xt)
                if tta:
                    p = (p + T.predict_proba(model, xt.flip(-1))) / 2
                probas.append(p)
        finally:
            T.augment_batch, T._loss = original
        accs = [float(np.mean(p.argmax(1) == test.y)) for p in probas]
        aucs = [fd.auroc(test.y, p) for p in probas]
        bag = np.mean(probas[:3], 0)
        print(f"{args.dataset} {variant}: test acc {[round(a, 3) for a in accs]} "
              f"(mean {np.mean(accs):.3f}); AUROC {[round(a, 3) for a in aucs]} "
              f"(mean {np.mean(aucs):.3f}); seed bag of {min(3, len(probas))}: "
              f"{np.mean(bag.argmax(1) == test.y):.3f} / {fd.auroc(test.y, bag):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
