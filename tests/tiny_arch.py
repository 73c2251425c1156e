"""A tiny MLP architecture plugin for fast end-to-end tests (loaded as a plugin file)."""

from __future__ import annotations

import math

from torch import nn

from automed.architecture import Architecture
from automed.hookspecs import hookimpl


class TinyMLP(Architecture):
    name = "tinymlp"
    modalities = frozenset({"signal", "image"})

    def search_space(self, trial, spec):
        return {"hidden": trial.suggest_categorical("hidden", [16, 32])}

    def training_space(self, trial, spec):
        return {"epochs": trial.suggest_int("epochs", 20, 30), "batch_size": 16,
                "lr": trial.suggest_float("lr", 5e-3, 2e-2, log=True), "optimizer": "adamw",
                "weight_decay": 0.0, "augment": False,
                "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
                "sampler": trial.suggest_categorical("sampler", ["shuffle", "balanced"])}

    def build(self, params, spec):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(spec.input_shape),
                                                     params["hidden"]),
                             nn.ReLU(), nn.Linear(params["hidden"], spec.n_classes))


@hookimpl
def register_architectures(register):
    register(TinyMLP())
