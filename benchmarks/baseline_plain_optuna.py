#!/usr/bin/env python
"""Baseline: a plain, hand-written Optuna + PyTorch script (what automed must beat).

A 2-conv CNN (conv-relu-pool x2, then a linear head), in-memory tensors, a manual
mini-batch loop (no DataLoader), Adam, unweighted cross-entropy, no augmentation.
Optuna TPE (seeded) searches lr, batch size, width, dropout and epochs; the objective is
the mean accuracy over StratifiedKFold CV on train+val. The best parameters are then
refit on all of train+val and scored once on the test split:
ACC at prob(class 1) > 0.5 and ROC AUC on prob(class 1) (the MedMNIST convention).

This is deliberately "what a competent person writes in half an hour", not a tuned recipe.

    python benchmarks/baseline_plain_optuna.py --json /tmp/baseline.json

Timings depend on the machine and on other load; the script pins torch to 2 threads
by default (--threads) so that numbers from different runs are comparable.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "pneumoniamnist"
    / "pneumoniamnist_28.npz"
)


class SmallCNN(nn.Module):
    """conv-relu-pool x2, then linear. Input 1x28x28."""

    def __init__(self, n_classes: int, width: int, dropout: float, size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width * (size // 4) ** 2, n_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


class SmallCNN1d(nn.Module):
    """The same network in 1-D, for UCR signal tables (the --data *_TRAIN.txt case)."""

    def __init__(self, n_classes: int, width: int, dropout: float, size: int,
                 channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, width, 5, padding=2)
        self.conv2 = nn.Conv1d(width, 2 * width, 5, padding=2)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width * (size // 4), n_classes)

    def forward(self, x):
        x = F.max_pool1d(F.relu(self.conv1(x)), 2)
        x = F.max_pool1d(F.relu(self.conv2(x)), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


def load_ucr(path: Path):
    """UCR TRAIN/TEST text files (label first), z-normalised per series, labels 0..k-1."""
    test_path = path.with_name(path.name.replace("_TRAIN", "_TEST"))
    tr, te = np.loadtxt(path), np.loadtxt(test_path)
    classes = np.unique(tr[:, 0])

    def prep(a):
        x = a[:, 1:]
        x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)
        y = np.searchsorted(classes, a[:, 0])
        return torch.from_numpy(x).float().unsqueeze(1), torch.from_numpy(y.astype(np.int64))

    return (*prep(tr), *prep(te))


def load_dna(path: Path, test_path: Path):
    """UCI splice-style lines ``CLASS, NAME, SEQUENCE``: one-hot A/C/G/T (other IUPAC codes
    spread evenly), 4 channels."""
    def read(p):
        rows = [line.split(",") for line in p.read_text().splitlines() if line.strip()]
        return [r[0].strip() for r in rows], [r[-1].strip().upper() for r in rows]

    (ytr, str_), (yte, ste) = read(path), read(test_path)
    classes = sorted(set(ytr))
    index = {"A": 0, "C": 1, "G": 2, "T": 3}

    def onehot(seqs):
        x = np.full((len(seqs), 4, max(map(len, seqs))), 0.0, dtype=np.float32)
        for i, seq in enumerate(seqs):
            for j, ch in enumerate(seq):
                if ch in index:
                    x[i, index[ch], j] = 1.0
                else:
                    x[i, :, j] = 0.25
        return torch.from_numpy(x)

    def labels(ys):
        return torch.tensor([classes.index(c) for c in ys], dtype=torch.int64)

    return onehot(str_), labels(ytr), onehot(ste), labels(yte)


def load(path: Path, test_path: Path | None = None):
    if path.suffix == ".data":
        return load_dna(path, test_path)
    if path.suffix == ".txt":
        return load_ucr(path)
    d = np.load(path)

    def prep(split):
        x = torch.from_numpy(d[f"{split}_images"]).float().div_(255.0).unsqueeze(1)
        y = torch.from_numpy(d[f"{split}_labels"].reshape(-1).astype(np.int64))
        return x, y

    xtr, ytr = prep("train")
    xva, yva = prep("val")
    xte, yte = prep("test")
    return torch.cat([xtr, xva]), torch.cat([ytr, yva]), xte, yte


def train(x, y, params, n_classes, seed):
    torch.manual_seed(seed)
    net = SmallCNN1d if x.dim() == 3 else SmallCNN
    extra = {"channels": x.shape[1]} if x.dim() == 3 else {}
    model = net(n_classes, params["width"], params["dropout"], size=x.shape[-1], **extra)
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"])
    bs = params["batch_size"]
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(params["epochs"]):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def predict_proba(model, x, bs=1024):
    model.eval()
    return torch.cat([F.softmax(model(x[i:i + bs]), 1) for i in range(0, len(x), bs)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--test", type=Path, default=None, help="test file (DNA .data files)")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="seconds, for study.optimize")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    c_start = time.process_time()
    x, y, xte, yte = load(args.data, args.test)
    n_classes = int(max(y.max(), yte.max())) + 1
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    splits = list(skf.split(np.zeros(len(y)), y.numpy()))

    def objective(trial):
        params = {
            "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
            "width": trial.suggest_categorical("width", [8, 16, 32]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "epochs": trial.suggest_int("epochs", 3, 10),
        }
        accs = []
        for k, (tr, va) in enumerate(splits):
            m = train(x[tr], y[tr], params, n_classes, seed=args.seed + k)
            pred = predict_proba(m, x[va]).argmax(1)
            accs.append((pred == y[va]).float().mean().item())
            trial.report(float(np.mean(accs)), k)
        return float(np.mean(accs))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed)
    )
    t0 = time.perf_counter()
    def log_trial(study, trial):
        print(f"trial {trial.number}: cv_acc={trial.value} params={trial.params} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)

    study.optimize(objective, n_trials=args.trials, timeout=args.timeout, callbacks=[log_trial])
    search_s = time.perf_counter() - t0
    n_done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])

    best = study.best_params
    model = train(x, y, best, n_classes, seed=args.seed)
    proba = predict_proba(model, xte).numpy()
    yt = yte.numpy()
    if n_classes == 2:
        test_acc = float(((proba[:, 1] > 0.5).astype(int) == yt).mean())
        test_auc = float(roc_auc_score(yt, proba[:, 1]))
    else:
        test_acc = float((proba.argmax(1) == yt).mean())
        test_auc = float(roc_auc_score(yt, proba, multi_class="ovr"))
    total_s = time.perf_counter() - t_start

    result = {
        "data": str(args.data),
        "trials": n_done,
        "folds": args.folds,
        "seed": args.seed,
        "threads": args.threads,
        "best_params": best,
        "best_cv": study.best_value,
        "search_seconds": round(search_s, 2),
        "total_seconds": round(total_s, 2),
        "seconds_per_trial": round(search_s / max(n_done, 1), 2),
        "cpu_seconds": round(time.process_time() - c_start, 2),
        "test_acc": round(test_acc, 4),
        "test_auc": round(test_auc, 4),
    }
    for k, v in result.items():
        print(f"{k}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
