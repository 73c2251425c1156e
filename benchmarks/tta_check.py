#!/usr/bin/env python
"""Would test-time augmentation help the image start? Out-of-fold predictions only.

    python benchmarks/tta_check.py breast

The image portfolio's first entry is trained on each of 3 stratified folds of the training
split (train + val; the test split is not read), and each fold's validation images are
predicted plainly and as the mean over 8 and 16 views (the plain one and the training
jitter, ``augment_batch``). Prints the out-of-fold AUROC and accuracy of each.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from family_defaults import MEDMNIST, SHARED, load
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(MEDMNIST))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from automed.data.preprocess import preprocessor_of
    from automed.plugin_manager import get_plugin_manager
    from automed.searching.portfolio import PACKAGED
    from automed.searching.training import (
        TRAINING_DEFAULTS,
        augment_batch,
        fit_model,
        predict_proba,
    )

    train, _ = load(args.dataset, SHARED)
    arch = get_plugin_manager().architectures()["cnn"]
    pre = preprocessor_of(arch, train.modality)
    spec = pre.spec(train)
    first = json.loads(PACKAGED.read_text())["portfolios"]["image"]["cnn"][0]["params"]
    params = {**TRAINING_DEFAULTS, **arch.default_params(spec), **first}
    y = train.y
    oof = {views: np.zeros((len(y), spec.n_classes)) for views in (1, 8, 16)}
    folds = StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
    for f, (tr, va) in enumerate(folds):
        part = train.subset(tr)
        pre.fit(part)
        xtr, xva = pre.transform(part.x), pre.transform(train.x[va])
        torch.manual_seed(f)
        started = time.time()
        model = fit_model(arch.build(params, spec), xtr, torch.from_numpy(part.y), params,
                          spec, seed=f)
        plain = predict_proba(model, xva)
        for views in oof:
            g = torch.Generator().manual_seed(123)
            total = plain.copy()
            for _ in range(views - 1):
                total += predict_proba(model, augment_batch(xva, "image", g))
            oof[views][va] = total / views
        print(f"fold {f}: {time.time() - started:.0f} s", flush=True)
    for views, p in oof.items():
        print(f"{views:2d} view(s): out-of-fold AUROC {roc_auc_score(y, p[:, 1]):.4f}, "
              f"accuracy {accuracy_score(y, p.argmax(1)):.4f}")


if __name__ == "__main__":
    main()
