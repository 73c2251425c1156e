"""The baseline script's 2-conv CNN as a single-file automed plugin, with fixed parameters.

Used by benchmarks/trial_overhead.py to time the same model and the same training settings
through automed and through the plain loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

from automed import Architecture, hookimpl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_plain_optuna import SmallCNN  # noqa: E402

PARAMS = {"lr": 0.0016756813861488488, "batch_size": 64, "width": 32, "dropout": 0.03,
          "epochs": 8}


class PlainCNN(Architecture):
    name = "plaincnn"
    modalities = frozenset({"image"})
    description = "the plain script's conv-relu-pool x2 CNN (benchmark only)"

    def search_space(self, trial, spec):
        return {"width": trial.suggest_categorical("width", [PARAMS["width"]]),
                "dropout": trial.suggest_categorical("dropout", [PARAMS["dropout"]])}

    def training_space(self, trial, spec):
        # Adam == AdamW without weight decay; no class weights, augmentation or smoothing.
        return {"optimizer": "adamw", "weight_decay": 0.0, "lr": PARAMS["lr"],
                "batch_size": PARAMS["batch_size"], "epochs": PARAMS["epochs"],
                "class_weight": "none", "augment": False, "label_smoothing": 0.0,
                "sampler": "shuffle"}

    def build(self, params, spec):
        return SmallCNN(spec.n_classes, params["width"], params["dropout"], size=spec.length)


@hookimpl
def register_architectures(register):
    register(PlainCNN())
